/**
 * Datagram sockets — UDP and Unix datagram sockets — as typed channels: one
 * codec message per datagram, kernel-kept boundaries, and the sender's
 * address on every received message.
 *
 * Datagrams have no connection. A datagram that finds a UDP receiver's
 * buffer full is dropped; on a Unix datagram socket the sender waits
 * instead (backpressure). A message must fit in one datagram: UDP carries
 * at most 65,507 bytes over IPv4 (65,527 over IPv6); a larger message is a
 * `RangeError` before anything is sent.
 *
 * The sockets are ipckit's own, made through libc and read and written on
 * the main thread without blocking it: a receive spins briefly, then parks
 * on the reactor (the one `epoll_wait` of the process). Sending and
 * receiving on one socket may overlap freely, so request/response over a
 * Unix datagram socket works (`serve` answers each sender with `reply`),
 * and concurrent `receive()` calls each get their own datagram.
 *
 * Permissions are Deno's own, as Deno 2.9 asks them for its datagram API,
 * plus `--allow-ffi`: `--allow-net=<host>:<port>` for UDP, on this
 * socket's own address and on every address it sends to (a server that
 * replies needs its senders' addresses too); for a Unix datagram socket
 * `--allow-read`, `--allow-write` and `--allow-net=unix:<path>` on its own
 * path and on every path it sends to; for an abstract name, `--allow-net`
 * without a list. No `--unstable-net` is needed. A socket file is created
 * with mode `0o600` unless `mode` says otherwise. Linux only.
 *
 * @example Two UDP endpoints on loopback
 * ```ts
 * // deno run --allow-ffi --allow-net=127.0.0.1 udp.ts
 * import { bindDatagram } from "@ipckit/ipckit/datagram";
 *
 * using server = await bindDatagram<string>({ hostname: "127.0.0.1", port: 0 });
 * using client = await bindDatagram<string>({ port: 0, peer: server.addr });
 * await client.send("ping");
 * const { value, from } = await server.receive({ timeout: 1000 });
 * await server.send(value + "/pong", { to: from });
 * console.log((await client.receive({ timeout: 1000 })).value); // ping/pong
 * ```
 *
 * @module
 */

import { ERRNO } from "../ffi/errno.ts";
import { libc } from "../ffi/load.ts";
import {
  AF,
  bindSocket,
  decodeAddress,
  getIntOption,
  localAddressOf,
  MessageHeader,
  MSG,
  openSocket,
  receiveMessage,
  requireLinuxSockets,
  sendBytesTo,
  SOCK,
  type SocketAddressBytes,
  SOCKOPT,
} from "../ffi/socket.ts";
import type { Channel, Message, WaitOptions } from "./channel.ts";
import { type Codec, codecs } from "./codec.ts";
import { DecodeError } from "./errors.ts";
import { checkMode, checkOptionKeys } from "./_common/checks.ts";
import { receiveUntilEnd } from "./_common/iterate.ts";
import { closedError, systemError } from "./_common/system_error.ts";
import {
  checkAddress,
  type CheckedAddress,
  describeAddress,
  formatAddr,
} from "./_kernel/socket_address.ts";
import { SocketFd } from "./_socket/descriptor.ts";
import { markPassable, registerAdopter } from "./_socket/passing.ts";
import {
  requireAbstractAccess,
  requireHostAccess,
} from "./_socket/permissions.ts";
import { fromDenoAddr, resolveAddress, toDenoAddr } from "./_socket/resolve.ts";
import {
  anchorSocketPath,
  checkSocketTarget,
  UnixSocketFile,
} from "./_socket/unix_file.ts";
import { checkFramingOptions } from "./_stream/options.ts";
import { deadlineOf } from "./_wait/deadline.ts";
import { backoffPark, retryAsync } from "./_wait/retry.ts";
import { checkSpinMicros, DEFAULT_SPIN_MICROS, Spinner } from "./_wait/spin.ts";

/** The largest UDP payload over IPv4: 65,535 minus the IP and UDP headers. */
export const UDP_MAX_PAYLOAD_IPV4 = 65_507;
/** The largest UDP payload over IPv6 without jumbograms. */
export const UDP_MAX_PAYLOAD_IPV6 = 65_527;
/**
 * The default largest message on a Unix datagram socket. Linux allows up to
 * about the socket's send buffer (`net.core.wmem_default`, 212,992 bytes
 * by default); raise `maxMessageSize` up to that if you need to.
 *
 * @category Sockets
 */
export const UNIX_DATAGRAM_DEFAULT_MAX = 65_536;

/** The largest `maxMessageSize` a Unix datagram socket takes: 16 MiB. */
const _UNIX_DATAGRAM_LIMIT = 16 * 1024 * 1024;

/**
 * Where a datagram goes: `{ hostname, port }` (UDP), `{ path }` or
 * `{ abstract }` (Unix), or a `Deno.Addr` as received.
 *
 * @example A UDP and a Unix destination
 * ```ts
 * import type { DatagramAddress } from "@ipckit/ipckit";
 *
 * const udp: DatagramAddress = { hostname: "127.0.0.1", port: 5353 };
 * const unix: DatagramAddress = { path: "/tmp/logs.sock" };
 * ```
 *
 * @category Sockets
 */
export type DatagramAddress =
  | { hostname?: string; port: number }
  | { path: string }
  | { abstract: string }
  | Deno.NetAddr
  | Deno.UnixAddr;

/**
 * A received datagram message and who sent it.
 *
 * @example A message as received over UDP
 * ```ts
 * import type { DatagramMessage } from "@ipckit/ipckit";
 *
 * const message: DatagramMessage<string> = {
 *   value: "hello",
 *   from: { transport: "udp", hostname: "127.0.0.1", port: 40000 },
 * };
 * ```
 *
 * @category Sockets
 */
export interface DatagramMessage<T> extends Message<T> {
  /**
   * The sender's address; send a reply with `{ to: message.from }`. A Unix
   * sender is `{ transport: "unixpacket", path }` (an abstract name is a
   * path starting with NUL, as Deno writes it; an unbound sender has the
   * path `""` and cannot be answered).
   */
  from: Deno.Addr;
}

/**
 * Options for sending a datagram.
 *
 * @example Send to a UDP address
 * ```ts
 * import type { DatagramSendOptions } from "@ipckit/ipckit";
 *
 * const options: DatagramSendOptions = { to: { hostname: "127.0.0.1", port: 9000 } };
 * ```
 *
 * @category Sockets
 */
export interface DatagramSendOptions extends WaitOptions {
  /** The destination; default the `peer` given when binding. */
  to?: DatagramAddress;
}

/**
 * How to bind a datagram socket: `{ hostname, port }` for UDP (port `0`
 * picks a free one), `{ path }` or `{ abstract }` for a Unix datagram
 * socket.
 *
 * @example A UDP socket on a free port, with a default destination
 * ```ts
 * import type { DatagramOptions } from "@ipckit/ipckit";
 *
 * const options: DatagramOptions<number[]> = {
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   peer: { hostname: "127.0.0.1", port: 9000 },
 *   maxMessageSize: 1200,
 * };
 * ```
 *
 * @category Sockets
 */
export type DatagramOptions<T> =
  & (
    | { path: string; mode?: number }
    | { abstract: string }
    | { hostname?: string; port?: number }
  )
  & {
    /** Where `send()` goes when it is given no `to`. */
    peer?: DatagramAddress;
    /** How values become bytes. Default `codecs.json<T>()`. */
    codec?: Codec<T>;
    /**
     * The largest message, in bytes. Default and maximum for UDP: the
     * protocol's limit; for Unix: {@linkcode UNIX_DATAGRAM_DEFAULT_MAX}
     * (at most 16 MiB).
     */
    maxMessageSize?: number;
    /** Microseconds a receive retries before it parks: 0 to 1000, default 50. */
    spin?: number;
  };

/** Destinations checked and encoded, kept per socket so a busy sender does not re-check. */
const _MAX_KNOWN_DESTINATIONS = 256;

// Made on first use: importing this module must not need --allow-ffi.
let _header: MessageHeader | undefined;
let _scratch = new Uint8Array(new ArrayBuffer(UDP_MAX_PAYLOAD_IPV6 + 1));

/** How long a Unix datagram send waits between tries while the receiver's queue is full. */
const _FULL_FIRST_MS = 1;
const _FULL_MAX_MS = 25;

// Set in DatagramChannel's static block: lets the adopter build channels
// while the constructor stays private.
let _datagram: <T>(
  socket: SocketFd,
  unix: boolean,
  max: number,
  peer: CheckedAddress | undefined,
  codec: Codec<T>,
  file: UnixSocketFile | undefined,
  spin: number,
) => DatagramChannel<T>;

/**
 * A bound datagram socket carrying values of type `T`, one per datagram.
 * `receive()` resolves to a {@linkcode DatagramMessage} with the sender's
 * address. Closing a Unix datagram socket removes the file it created.
 *
 * @example Reply to whoever asked
 * ```ts
 * import { bindDatagram } from "@ipckit/ipckit";
 *
 * const path = `/tmp/double-${Deno.pid}.sock`;
 * const server = await bindDatagram<{ n: number }>({ path });
 * const serving = (async () => {
 *   for await (const { value, from } of server) {
 *     await server.send({ n: value.n * 2 }, { to: from });
 *   }
 * })();
 * using client = await bindDatagram<{ n: number }>({
 *   path: `/tmp/double-client-${Deno.pid}.sock`,
 *   peer: { path },
 * });
 * await client.send({ n: 21 });
 * console.log((await client.receive({ timeout: 1000 })).value); // { n: 42 }
 * server.close(); // ends the iteration and removes the socket file
 * await serving;
 * ```
 *
 * @category Sockets
 */
export class DatagramChannel<T>
  implements Channel<T, DatagramMessage<T>>, AsyncDisposable {
  #socket: SocketFd;
  #codec: Codec<T>;
  #max: number;
  #unix: boolean;
  #addr: Deno.Addr;
  #peer: CheckedAddress | undefined;
  #file: UnixSocketFile | undefined;
  #closed = false;
  #destinations = new Map<string, SocketAddressBytes>();
  #sendSpinner: Spinner;

  static {
    _datagram = <T>(
      socket: SocketFd,
      unix: boolean,
      max: number,
      peer: CheckedAddress | undefined,
      codec: Codec<T>,
      file: UnixSocketFile | undefined,
      spin: number,
    ) => new DatagramChannel<T>(socket, unix, max, peer, codec, file, spin);
  }

  private constructor(
    socket: SocketFd,
    unix: boolean,
    max: number,
    peer: CheckedAddress | undefined,
    codec: Codec<T>,
    file: UnixSocketFile | undefined,
    spin: number,
  ) {
    this.#socket = socket;
    this.#unix = unix;
    this.#max = max;
    this.#peer = peer;
    this.#codec = codec;
    this.#file = file;
    this.#sendSpinner = new Spinner(spin);
    this.#addr = file
      ? { transport: "unixpacket", path: file.path }
      : toDenoAddr(localAddressOf(socket.fd), unix ? "unixpacket" : "udp");
    markPassable(this, () => ({ kind: "datagram", fd: socket.fd, meta: {} }));
  }

  /** Binds the socket; use {@linkcode bindDatagram}. */
  static async bind<T>(
    options: DatagramOptions<T>,
  ): Promise<DatagramChannel<T>> {
    const action = "bind a datagram socket";
    checkOptionKeys(options, _KEYS, action);
    const address = checkAddress(options, action, false);
    const unix = address.transport !== "inet";
    const max = _checkMax(options.maxMessageSize, address);
    const peer = options.peer === undefined
      ? undefined
      : _checkDestination(options.peer, unix, action);
    if (options.codec !== undefined) {
      checkFramingOptions({ codec: options.codec }, action);
    }
    const codec = options.codec ?? codecs.json<T>();
    const spin = checkSpinMicros(options.spin, action);
    const mode = (options as { mode?: number }).mode;
    if (mode !== undefined && address.transport !== "unix") {
      throw new TypeError(
        `Cannot ${action}: mode applies to a socket file ({ path }) only`,
      );
    }
    const fileMode = checkMode(mode ?? 0o600, action);
    const protocol = unix ? "Unix datagram socket" : "UDP socket";
    const bindAction = `bind ${describeAddress(address, protocol)}`;
    requireLinuxSockets(bindAction);
    let anchored: ReturnType<typeof anchorSocketPath> | undefined;
    if (address.transport === "unix") {
      anchored = anchorSocketPath(address.path, bindAction);
    } else if (address.transport === "abstract") {
      requireAbstractAccess(address.name);
    } else {
      requireHostAccess(address.hostname, address.port, bindAction);
    }
    let fd = -1;
    let file: UnixSocketFile | undefined;
    try {
      const [target] = await resolveAddress(address, SOCK.DGRAM, bindAction);
      fd = openSocket(target.family, SOCK.DGRAM);
      if (fd < 0) throw systemError("socket", bindAction, -fd);
      if (anchored) {
        file = UnixSocketFile.bind(anchored, fd, fileMode, bindAction);
        anchored = undefined;
      } else {
        const bound = bindSocket(fd, target);
        if (bound < 0) {
          throw systemError(
            "bind",
            bindAction,
            -bound,
            -bound === ERRNO.EADDRINUSE
              ? "another process is using it"
              : undefined,
          );
        }
      }
      const local = toDenoAddr(
        localAddressOf(fd),
        unix ? "unixpacket" : "udp",
      );
      const what = address.transport === "inet"
        ? `UDP socket ${formatAddr(local)}`
        : describeAddress(address, protocol);
      const socket = new SocketFd(fd, what, spin);
      fd = -1;
      return new DatagramChannel<T>(
        socket,
        unix,
        max,
        peer,
        codec,
        file,
        spin,
      );
    } catch (error) {
      if (fd >= 0) libc().symbols.close(fd);
      file?.remove();
      anchored?.close();
      throw error;
    }
  }

  /** The address this socket is bound to (with the real port when `0` was asked). */
  get addr(): Deno.Addr {
    return this.#addr;
  }

  /** The largest message this socket sends or accepts, in bytes. */
  get maxMessageSize(): number {
    return this.#max;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sends one value as one datagram to `options.to`, or to the `peer` given
   * when binding. The destination's permission is checked as Deno checks
   * it, once per destination.
   *
   * @throws {RangeError} when the encoded value exceeds the datagram limit (nothing is sent)
   * @throws {TypeError} when there is no destination, or it is of the other family
   * @throws {Deno.errors.NotCapable} without permission for the destination
   *
   * @example Send to an address other than the default
   * ```ts
   * import { bindDatagram } from "@ipckit/ipckit";
   *
   * using receiver = await bindDatagram<string>({ port: 0 });
   * using socket = await bindDatagram<string>({ port: 0 });
   * await socket.send("hello", { to: receiver.addr });
   * console.log((await receiver.receive({ timeout: 1000 })).value); // hello
   * ```
   */
  async send(value: T, options: DatagramSendOptions = {}): Promise<void> {
    const what = this.#socket.what;
    const action = `send from ${what}`;
    const deadline = deadlineOf(options);
    if (this.#closed) throw closedError(what);
    const destination = options.to === undefined
      ? this.#peer
      : _checkDestination(options.to, this.#unix, action);
    if (!destination) {
      throw new TypeError(
        `Cannot send from ${what}: give { to } or bind it with a peer`,
      );
    }
    const bytes = this.#codec.encode(value) as Uint8Array<ArrayBuffer>;
    if (bytes.byteLength > this.#max) {
      throw new RangeError(
        `Cannot send from ${what}: the message is ${bytes.byteLength} bytes, above the datagram limit of ${this.#max} bytes (one message per datagram)`,
      );
    }
    const to = await this.#encoded(destination, action);
    const attempt = () => {
      const fd = this.#socket.fd;
      return fd < 0 ? -ERRNO.EBADF : sendBytesTo(fd, bytes, to);
    };
    const full = (result: number) =>
      result === -ERRNO.EAGAIN || result === -ERRNO.ENOBUFS;
    let result = attempt();
    if (full(result)) {
      // A Unix datagram socket polls writable although the receiver's
      // queue is full (poll only watches a connected peer's queue), so it
      // waits on a backoff; a full UDP send buffer can be waited on.
      result = this.#unix
        ? await retryAsync(
          {
            attempt,
            wouldBlock: full,
            // The receiver usually drains its queue (net.unix.max_dgram_qlen
            // datagrams, 10 by default) within microseconds.
            spinner: this.#sendSpinner,
            deadline,
            signal: options.signal,
            action,
          },
          backoffPark(_FULL_FIRST_MS, _FULL_MAX_MS, {
            deadline,
            signal: options.signal,
            action,
          }),
        )
        : await this.#socket.wait(
          "write",
          attempt,
          full,
          deadline,
          options.signal,
          action,
        );
    }
    if (result >= 0) return;
    if (-result === ERRNO.EBADF && this.#socket.closed) throw closedError(what);
    throw systemError(
      "sendto",
      `${action} to ${_describeDestination(destination)}`,
      -result,
    );
  }

  /**
   * Receives one datagram and decodes it. Concurrent calls each get their
   * own datagram.
   *
   * @throws {DecodeError} when it cannot be decoded, or is larger than
   * `maxMessageSize` (the datagram is consumed; the next call gets the next)
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   *
   * @example Receive, waiting at most a second
   * ```ts
   * import { bindDatagram } from "@ipckit/ipckit";
   *
   * using socket = await bindDatagram<string>({ port: 0 });
   * using sender = await bindDatagram<string>({ port: 0, peer: socket.addr });
   * await sender.send("hello");
   * const { value, from } = await socket.receive({ timeout: 1000 });
   * console.log(value, from.transport); // hello udp
   * ```
   */
  async receive(options: WaitOptions = {}): Promise<DatagramMessage<T>> {
    const what = this.#socket.what;
    const action = `receive from ${what}`;
    const deadline = deadlineOf(options);
    if (this.#closed) throw closedError(what);
    const attempt = () => this.#attemptReceive(action);
    let result = attempt();
    if (result === -ERRNO.EAGAIN) {
      result = await this.#socket.retry(
        "read",
        attempt,
        deadline,
        options.signal,
        action,
      );
    }
    if (typeof result !== "number") return result;
    if (-result === ERRNO.EBADF && this.#socket.closed) throw closedError(what);
    throw systemError("recvmsg", action, -result);
  }

  /**
   * One non-blocking receive, decoded in the same synchronous attempt
   * (the scratch buffer is shared by every datagram socket of the process).
   */
  #attemptReceive(action: string): DatagramMessage<T> | number {
    const fd = this.#socket.fd;
    if (fd < 0) return -ERRNO.EBADF;
    if (_scratch.byteLength < this.#max + 1) {
      _scratch = new Uint8Array(new ArrayBuffer(this.#max + 1));
    }
    const received = _header ??= new MessageHeader();
    const count = receiveMessage(
      fd,
      received.forReceive(_scratch, 0),
      MSG.TRUNC,
    );
    if (count < 0) return count;
    const from = toDenoAddr(
      decodeAddress(received.name, received.nameLength),
      this.#unix ? "unixpacket" : "udp",
    );
    const bytes = _scratch.subarray(0, Math.min(count, this.#max));
    if (received.flags & MSG.CTRUNC) {
      throw new DecodeError(
        `Cannot ${action}: a datagram from ${
          formatAddr(from)
        } carried descriptors, which datagram channels do not take (use a seqpacket socket); the kernel closed them`,
        bytes.slice(0, 64),
      );
    }
    if (count > this.#max || (received.flags & MSG.TRUNC)) {
      throw new DecodeError(
        `Cannot ${action}: a datagram from ${
          formatAddr(from)
        } is larger than maxMessageSize ${this.#max}`,
        bytes.slice(0, 64),
      );
    }
    // Decoded in place: codecs copy what they keep (the bytes codec does).
    return { value: this.#codec.decode(bytes), from };
  }

  /**
   * Waits until a datagram has arrived, without taking it: the next
   * `receive()` returns it at once (see `Selectable.ready`).
   *
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   * @throws {Deno.errors.BadResource} when the socket is closed
   *
   * @example Wait for a datagram, then take it without waiting
   * ```ts
   * import { bindDatagram } from "@ipckit/ipckit";
   *
   * using server = await bindDatagram<string>({ port: 0 });
   * using client = await bindDatagram<string>({ port: 0, peer: server.addr });
   * const later = new Promise((resolve) => setTimeout(resolve, 10))
   *   .then(() => client.send("later"));
   * await server.ready({ timeout: 1000 });
   * const { value } = await server.receive({ timeout: 0 });
   * console.log(value); // later
   * await later;
   * ```
   */
  async ready(options: WaitOptions = {}): Promise<void> {
    const what = this.#socket.what;
    const deadline = deadlineOf(options);
    if (this.#closed) throw closedError(what);
    const result = await this.#socket.peek(
      deadline,
      options.signal,
      `wait for a datagram on ${what}`,
    );
    if (this.#closed || (result === -ERRNO.EBADF && this.#socket.closed)) {
      throw closedError(what);
    }
  }

  /** Receives until the socket is closed. */
  [Symbol.asyncIterator](): AsyncGenerator<DatagramMessage<T>, void> {
    return receiveUntilEnd(
      () => this.receive(),
      () => this.#closed,
      false,
    );
  }

  /**
   * Sends `value` back to whoever sent `message`; request/response
   * (`serve` in `@ipckit/ipckit/rpc`) uses this to answer each client.
   *
   * @example Answer a request
   * ```ts
   * import { bindDatagram } from "@ipckit/ipckit";
   *
   * using server = await bindDatagram<string>({ port: 0 });
   * using client = await bindDatagram<string>({ port: 0, peer: server.addr });
   * await client.send("job 1");
   * const request = await server.receive({ timeout: 1000 });
   * await server.reply(request, "got it");
   * console.log((await client.receive({ timeout: 1000 })).value); // got it
   * ```
   */
  reply(message: DatagramMessage<T>, value: T): Promise<void> {
    return this.send(value, { to: message.from });
  }

  /** Closes the socket (and removes a socket file it created); idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.close();
    this.#file?.remove();
  }

  /** Closes the socket; see {@linkcode DatagramChannel.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes the socket; see {@linkcode DatagramChannel.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  /**
   * The destination's `sockaddr`, its permission checked (and, for a
   * path, that a socket file is there) the first time it is used.
   */
  async #encoded(
    destination: CheckedAddress,
    action: string,
  ): Promise<SocketAddressBytes> {
    const key = destination.transport === "inet"
      ? `i:${destination.hostname}:${destination.port}`
      : destination.transport === "unix"
      ? `u:${destination.path}`
      : `a:${destination.name}`;
    const known = this.#destinations.get(key);
    if (known) return known;
    const toAction = `${action} to ${_describeDestination(destination)}`;
    if (destination.transport === "unix") {
      checkSocketTarget(destination.path, toAction);
    } else if (destination.transport === "abstract") {
      requireAbstractAccess(destination.name);
    } else {
      requireHostAccess(destination.hostname, destination.port, toAction);
    }
    const [encoded] = await resolveAddress(destination, SOCK.DGRAM, toAction);
    if (this.#destinations.size >= _MAX_KNOWN_DESTINATIONS) {
      this.#destinations.clear();
    }
    this.#destinations.set(key, encoded);
    return encoded;
  }
}

const _KEYS = [
  "path",
  "abstract",
  "hostname",
  "port",
  "mode",
  "peer",
  "codec",
  "maxMessageSize",
  "spin",
] as const;

/**
 * Binds a datagram socket for values of type `T`: `{ hostname, port }` for
 * UDP (default `127.0.0.1`, port `0` = any free port), `{ path }` or
 * `{ abstract }` for a Unix datagram socket. A stale socket file (no
 * socket bound to it) is replaced; a live one is left alone.
 *
 * @throws {TypeError} / {RangeError} for bad options, before any system call
 * @throws {Deno.errors.NotCapable} without the permissions in the module doc
 * @throws {Deno.errors.AddrInUse} when the address is taken
 *
 * @example A log socket that prints what it is sent
 * ```ts
 * import { bindDatagram } from "@ipckit/ipckit";
 *
 * const path = `/tmp/logs-${Deno.pid}.sock`;
 * using logs = await bindDatagram<string>({ path });
 * using writer = await bindDatagram<string>({
 *   path: `/tmp/logs-writer-${Deno.pid}.sock`,
 *   peer: { path },
 * });
 * await writer.send("started");
 * for await (const { value, from } of logs) {
 *   console.log(from.transport, value); // unixpacket started
 *   break; // a log server would go on
 * }
 * ```
 *
 * @category Sockets
 */
export function bindDatagram<T>(
  options: DatagramOptions<T>,
): Promise<DatagramChannel<T>> {
  return DatagramChannel.bind<T>(options);
}

function _checkMax(max: unknown, address: CheckedAddress): number {
  const unix = address.transport !== "inet";
  const limit = unix
    ? _UNIX_DATAGRAM_LIMIT
    : address.hostname.includes(":")
    ? UDP_MAX_PAYLOAD_IPV6
    : UDP_MAX_PAYLOAD_IPV4;
  const fallback = unix ? UNIX_DATAGRAM_DEFAULT_MAX : limit;
  const value = max ?? fallback;
  if (
    !Number.isSafeInteger(value) || (value as number) < 1 ||
    (value as number) > limit
  ) {
    throw new RangeError(
      `Cannot bind a datagram socket: maxMessageSize must be an integer from 1 to ${limit}, got ${
        String(max)
      }`,
    );
  }
  return value as number;
}

/** Checks a destination and that this socket's family can reach it. */
function _checkDestination(
  address: DatagramAddress,
  unix: boolean,
  action: string,
): CheckedAddress {
  let checked: CheckedAddress | undefined;
  if (
    typeof address === "object" && address !== null && "transport" in address
  ) {
    checked = fromDenoAddr(address as Deno.Addr);
    if (!checked) {
      throw new TypeError(
        `Cannot ${action}: the address has no path or host (an unbound sender cannot be answered)`,
      );
    }
    checked = checkAddress(
      checked.transport === "inet"
        ? { hostname: checked.hostname, port: checked.port }
        : checked.transport === "unix"
        ? { path: checked.path }
        : { abstract: checked.name },
      action,
      true,
    );
  } else {
    checked = checkAddress(address, action, true);
  }
  if ((checked.transport !== "inet") !== unix) {
    throw new TypeError(
      `Cannot ${action}: a ${
        unix ? "Unix datagram" : "UDP"
      } socket cannot reach ${
        checked.transport === "inet" ? "a host and port" : "a Unix path"
      }`,
    );
  }
  return checked;
}

function _describeDestination(address: CheckedAddress): string {
  return describeAddress(
    address,
    address.transport === "inet" ? "UDP" : "Unix datagram socket",
  );
}

// A datagram socket that arrived over a seqpacket socket.
registerAdopter("datagram", (fd) => {
  const action = "take a datagram socket that arrived";
  const domain = getIntOption(fd, SOCKOPT.SOL_SOCKET, SOCKOPT.SO_DOMAIN);
  const kind = getIntOption(fd, SOCKOPT.SOL_SOCKET, SOCKOPT.SO_TYPE);
  if (domain < 0) throw systemError("getsockopt", action, -domain);
  if (kind !== SOCK.DGRAM) {
    throw new TypeError(`Cannot ${action}: it is not a datagram socket`);
  }
  const unix = domain === AF.UNIX;
  const local = toDenoAddr(localAddressOf(fd), unix ? "unixpacket" : "udp");
  const what = `${unix ? "Unix datagram socket" : "UDP socket"} ${
    formatAddr(local)
  } (passed)`;
  const max = unix
    ? UNIX_DATAGRAM_DEFAULT_MAX
    : domain === AF.INET6
    ? UDP_MAX_PAYLOAD_IPV6
    : UDP_MAX_PAYLOAD_IPV4;
  return _datagram(
    new SocketFd(fd, what),
    unix,
    max,
    undefined,
    codecs.json<unknown>(),
    undefined,
    DEFAULT_SPIN_MICROS,
  );
});
