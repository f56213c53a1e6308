/**
 * Datagram sockets — UDP and Unix datagram sockets — as typed channels: one
 * codec message per datagram, kernel-kept boundaries, and the sender's
 * address on every received message.
 *
 * Datagrams have no connection and no backpressure: a datagram that finds
 * the receiver's buffer full is dropped (UDP) or makes the sender wait (Unix
 * datagram sockets on Linux). A message must fit in one datagram: UDP carries
 * at most 65,507 bytes over IPv4 (65,527 over IPv6); a larger message is a
 * `RangeError` before anything is sent.
 *
 * Deno 2.9 cannot send on a Unix datagram socket while a `receive()` on it
 * is waiting (it holds the socket exclusively): such a send fails with
 * `Deno.errors.Busy`. Receive and send in turn on a Unix datagram socket, or
 * use UDP, whose sockets have no such limit, when both must overlap (as
 * request/response does).
 *
 * Built on `Deno.listenDatagram`, which Deno 2.9 still marks unstable: run
 * with `--unstable-net` (or `"unstable": ["net"]` in deno.json). Permissions
 * are Deno's own: `--allow-net` on the host and port for UDP; for Unix
 * datagram sockets `--allow-net=unix:<path>` (the exact path) plus
 * `--allow-read` and `--allow-write` on it, for this socket's own path and
 * for every path it sends to.
 *
 * @example Two UDP endpoints on loopback
 * ```ts ignore
 * // deno run --unstable-net --allow-net=127.0.0.1 udp.ts
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

import type { Channel, Message, WaitOptions } from "./channel.ts";
import { type Codec, codecs } from "./codec.ts";
import { DecodeError } from "./errors.ts";
import { closedError } from "./_common/system_error.ts";
import { receiveUntilEnd } from "./_common/iterate.ts";
import { KeptOperation } from "./_wait/race.ts";
import {
  checkAddress,
  type CheckedAddress,
  describeAddress,
  formatAddr,
} from "./_kernel/socket_address.ts";
import {
  type BoundSocketFile,
  boundSocketFile,
  closeBoundSocket,
  freeUnixPathForListening,
} from "./_kernel/socket_file.ts";
import { deadlineOf, raceDeadline } from "./_wait/deadline.ts";

/** The largest UDP payload over IPv4: 65,535 minus the IP and UDP headers. */
export const UDP_MAX_PAYLOAD_IPV4 = 65_507;
/** The largest UDP payload over IPv6 without jumbograms. */
export const UDP_MAX_PAYLOAD_IPV6 = 65_527;
/**
 * The default largest message on a Unix datagram socket. Linux allows up to
 * about the socket's send buffer (`net.core.wmem_default`, 212,992 bytes
 * by default); raise `maxMessageSize` up to that if you need to.
 */
export const UNIX_DATAGRAM_DEFAULT_MAX = 65_536;

/**
 * Where a datagram goes: `{ hostname, port }` (UDP) or `{ path }` (Unix), or
 * a `Deno.Addr` as received.
 *
 * @example
 * ```ts
 * import type { DatagramAddress } from "@ipckit/ipckit";
 *
 * const udp: DatagramAddress = { hostname: "127.0.0.1", port: 5353 };
 * const unix: DatagramAddress = { path: "/tmp/logs.sock" };
 * ```
 */
export type DatagramAddress =
  | { hostname?: string; port: number }
  | { path: string }
  | Deno.NetAddr
  | Deno.UnixAddr;

/**
 * A received datagram message and who sent it.
 *
 * @example
 * ```ts
 * import type { DatagramMessage } from "@ipckit/ipckit";
 *
 * const message: DatagramMessage<string> = {
 *   value: "hello",
 *   from: { transport: "udp", hostname: "127.0.0.1", port: 40000 },
 * };
 * ```
 */
export interface DatagramMessage<T> extends Message<T> {
  /** The sender's address; send a reply with `{ to: message.from }`. */
  from: Deno.Addr;
}

/**
 * Options for sending a datagram.
 *
 * @example
 * ```ts
 * import type { DatagramSendOptions } from "@ipckit/ipckit";
 *
 * const options: DatagramSendOptions = { to: { hostname: "127.0.0.1", port: 9000 } };
 * ```
 */
export interface DatagramSendOptions extends WaitOptions {
  /** The destination; default the `peer` given when binding. */
  to?: DatagramAddress;
}

/**
 * How to bind a datagram socket: `{ hostname, port }` for UDP (port `0`
 * picks a free one) or `{ path }` for a Unix datagram socket.
 *
 * @example
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
 */
export type DatagramOptions<T> =
  & ({ path: string } | { hostname?: string; port?: number })
  & {
    /** Where `send()` goes when it is given no `to`. */
    peer?: DatagramAddress;
    /** How values become bytes. Default `codecs.json<T>()`. */
    codec?: Codec<T>;
    /**
     * The largest message, in bytes. Default and maximum for UDP: the
     * protocol's limit; for Unix: {@linkcode UNIX_DATAGRAM_DEFAULT_MAX}.
     */
    maxMessageSize?: number;
  };

/**
 * A bound datagram socket carrying values of type `T`, one per datagram.
 * `receive()` resolves to a {@linkcode DatagramMessage} with the sender's
 * address. Closing a Unix datagram socket removes its file.
 *
 * @example Reply to whoever asked
 * ```ts ignore
 * import { bindDatagram } from "@ipckit/ipckit";
 *
 * using server = await bindDatagram<{ n: number }>({ path: "/tmp/double.sock" });
 * for await (const { value, from } of server) {
 *   await server.send({ n: value.n * 2 }, { to: from });
 * }
 * ```
 */
export class DatagramChannel<T>
  implements Channel<T, DatagramMessage<T>>, AsyncDisposable {
  #conn: Deno.DatagramConn;
  #codec: Codec<T>;
  #max: number;
  #what: string;
  #transport: "udp" | "unixpacket";
  #peer: Deno.Addr | undefined;
  #socketFile: BoundSocketFile | undefined;
  #closed = false;
  // One byte more than the limit, so a truncated oversized datagram shows.
  // Every receive reuses it: a datagram is decoded as soon as it arrives,
  // before the next receive can start (see #receiveOne).
  #buffer: Uint8Array<ArrayBuffer>;
  // Receives one at a time, each datagram to exactly one caller; a datagram
  // that arrives after its caller gave up goes to the next caller.
  #receives = new KeptOperation<DatagramMessage<T>>();

  private constructor(
    conn: Deno.DatagramConn,
    address: CheckedAddress,
    max: number,
    peer: Deno.Addr | undefined,
    codec: Codec<T>,
  ) {
    this.#conn = conn;
    this.#codec = codec;
    this.#max = max;
    this.#peer = peer;
    this.#transport = address.transport === "unix" ? "unixpacket" : "udp";
    this.#what = address.transport === "unix"
      ? describeAddress(address, "Unix datagram socket")
      : `UDP socket ${formatAddr(conn.addr)}`;
    this.#buffer = new Uint8Array(max + 1);
    if (address.transport === "unix") {
      this.#socketFile = boundSocketFile(address.path);
    }
  }

  /** Binds the socket; use {@linkcode bindDatagram}. */
  static async bind<T>(
    options: DatagramOptions<T>,
  ): Promise<DatagramChannel<T>> {
    const address = checkAddress(options, "bind a datagram socket", false);
    const transport = address.transport === "unix" ? "unixpacket" : "udp";
    const max = _checkMax(options.maxMessageSize, address);
    const peer = options.peer === undefined
      ? undefined
      : _toAddr(options.peer, transport, "bind a datagram socket");
    const codec = options.codec ?? codecs.json<T>();
    let conn: Deno.DatagramConn;
    if (address.transport === "unix") {
      const action = `bind ${describeAddress(address, "Unix datagram socket")}`;
      await freeUnixPathForListening(address.path, action);
      conn = Deno.listenDatagram({
        transport: "unixpacket",
        path: address.path,
      });
    } else {
      conn = Deno.listenDatagram({
        transport: "udp",
        hostname: address.hostname,
        port: address.port,
      });
    }
    return new DatagramChannel<T>(conn, address, max, peer, codec);
  }

  /** The address this socket is bound to (with the real port when `0` was asked). */
  get addr(): Deno.Addr {
    return this.#conn.addr;
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
   * when binding.
   *
   * @throws {RangeError} when the encoded value exceeds the datagram limit (nothing is sent)
   * @throws {TypeError} when there is no destination
   * @throws {Deno.errors.Busy} on a Unix datagram socket while a receive waits
   */
  async send(value: T, options: DatagramSendOptions = {}): Promise<void> {
    if (this.#closed) throw closedError(this.#what);
    const to = options.to === undefined
      ? this.#peer
      : _toAddr(options.to, this.#transport, `send to ${this.#what}`);
    if (!to) {
      throw new TypeError(
        `Cannot send from ${this.#what}: give { to } or bind it with a peer`,
      );
    }
    if (this.#transport === "unixpacket" && this.#receives.inFlight) {
      // Deno 2.9 holds a Unix datagram socket exclusively while a receive
      // waits, and would fail this send with a bare "Socket already in use".
      throw new Deno.errors.Busy(
        `Cannot send from ${this.#what}: a receive() is waiting on it, and Deno cannot send on a Unix datagram socket while it receives; use UDP or a stream socket for request/response`,
      );
    }
    const bytes = this.#codec.encode(value);
    if (bytes.byteLength > this.#max) {
      throw new RangeError(
        `Cannot send from ${this.#what}: the message is ${bytes.byteLength} bytes, above the datagram limit of ${this.#max} bytes (one message per datagram)`,
      );
    }
    const deadline = deadlineOf(options);
    try {
      await raceDeadline(
        this.#conn.send(bytes, to),
        deadline,
        options.signal,
        `send from ${this.#what}`,
      );
    } catch (error) {
      if (this.#closed) throw closedError(this.#what);
      throw error;
    }
  }

  /**
   * Receives one datagram and decodes it.
   *
   * @throws {DecodeError} when it cannot be decoded, or is larger than
   * `maxMessageSize` (the datagram is consumed; the next call gets the next)
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   */
  async receive(options: WaitOptions = {}): Promise<DatagramMessage<T>> {
    const deadline = deadlineOf(options);
    if (this.#closed) throw closedError(this.#what);
    try {
      return await this.#receives.run(
        () => this.#receiveOne(),
        deadline,
        options.signal,
        `receive from ${this.#what}`,
      );
    } catch (error) {
      if (this.#closed) throw closedError(this.#what);
      throw error;
    }
  }

  /**
   * One datagram, decoded in the continuation of the receive that filled
   * the shared buffer, before another receive can reuse it.
   */
  async #receiveOne(): Promise<DatagramMessage<T>> {
    const [bytes, from] = await this.#conn.receive(this.#buffer);
    if (bytes.byteLength > this.#max) {
      throw new DecodeError(
        `Cannot receive from ${this.#what}: a datagram from ${
          formatAddr(from)
        } is larger than maxMessageSize ${this.#max}`,
        bytes.subarray(0, 64),
      );
    }
    return { value: this.#codec.decode(bytes), from };
  }

  /**
   * Waits until a datagram has arrived, without taking it: the next
   * `receive()` returns it at once (see `Selectable.ready`). The datagram
   * is received into this channel meanwhile, so on a Unix datagram socket a
   * `send()` fails with `Busy` while `ready()` waits, as it does while a
   * `receive()` waits.
   *
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   * @throws {Deno.errors.BadResource} when the socket is closed
   *
   * @example
   * ```ts ignore
   * import { bindDatagram } from "@ipckit/ipckit";
   *
   * using server = await bindDatagram<string>({ port: 9000 });
   * await server.ready({ timeout: 1000 });
   * const { value, from } = await server.receive({ timeout: 0 });
   * ```
   */
  async ready(options: WaitOptions = {}): Promise<void> {
    const deadline = deadlineOf(options);
    if (this.#closed) throw closedError(this.#what);
    try {
      await this.#receives.ready(
        () => this.#receiveOne(),
        deadline,
        options.signal,
        `wait for a datagram on ${this.#what}`,
      );
    } catch (error) {
      if (this.#closed) throw closedError(this.#what);
      throw error;
    }
    if (this.#closed) throw closedError(this.#what);
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
   * @example
   * ```ts ignore
   * import { bindDatagram } from "@ipckit/ipckit";
   *
   * using server = await bindDatagram<string>({ port: 9000 });
   * const request = await server.receive();
   * await server.reply(request, "got it");
   * ```
   */
  reply(message: DatagramMessage<T>, value: T): Promise<void> {
    return this.send(value, { to: message.from });
  }

  /** Closes the socket (and removes a Unix socket's file); idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#receives.close(closedError(this.#what));
    closeBoundSocket(this.#conn, this.#socketFile);
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
}

/**
 * Binds a datagram socket for values of type `T`: `{ hostname, port }` for
 * UDP (default `127.0.0.1`, port `0` = any free port), `{ path }` for a Unix
 * datagram socket. A stale Unix socket file (nothing bound to it) is replaced.
 * Needs `--unstable-net`.
 *
 * @throws {TypeError} / {RangeError} for bad options, before any system call
 * @throws {Deno.errors.AddrInUse} when the address is taken
 *
 * @example
 * ```ts ignore
 * import { bindDatagram } from "@ipckit/ipckit";
 *
 * using logs = await bindDatagram<string>({ path: "/tmp/logs.sock" });
 * for await (const { value, from } of logs) console.log(from, value);
 * ```
 */
export function bindDatagram<T>(
  options: DatagramOptions<T>,
): Promise<DatagramChannel<T>> {
  return DatagramChannel.bind<T>(options);
}

function _checkMax(max: unknown, address: CheckedAddress): number {
  const limit = address.transport === "unix"
    ? 16 * 1024 * 1024
    : address.hostname.includes(":")
    ? UDP_MAX_PAYLOAD_IPV6
    : UDP_MAX_PAYLOAD_IPV4;
  const fallback = address.transport === "unix"
    ? UNIX_DATAGRAM_DEFAULT_MAX
    : limit;
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

function _toAddr(
  address: DatagramAddress,
  transport: "udp" | "unixpacket",
  action: string,
): Deno.Addr {
  const checked = checkAddress(address, action, true);
  if ((checked.transport === "unix") !== (transport === "unixpacket")) {
    throw new TypeError(
      `Cannot ${action}: a ${
        transport === "udp" ? "UDP" : "Unix datagram"
      } socket cannot reach ${
        checked.transport === "unix" ? "a Unix path" : "a host and port"
      }`,
    );
  }
  return checked.transport === "unix"
    ? { transport: "unixpacket", path: checked.path }
    : { transport: "udp", hostname: checked.hostname, port: checked.port };
}
