/**
 * Stream and packet sockets — Unix domain sockets and TCP — as typed
 * channels. Sockets are the IPC most programs use, and the one that also
 * crosses machines.
 *
 * `listen<TSend, TReceive>()` returns a {@linkcode SocketServer} that
 * yields one {@linkcode SocketChannel} per connection; `connect()` returns
 * the client end; `socketpair()` returns two connected ends at once. Each
 * channel sends `TSend` and receives `TReceive` (default `TSend`): a server
 * `listen<Reply, Request>()` talks to clients `connect<Request, Reply>()`.
 *
 * ## Kinds of socket
 *
 * - Unix stream sockets (`{ path }` or `{ abstract }`) and TCP
 *   (`{ hostname, port }`): a byte stream, messages framed by
 *   {@linkcode FramedChannel}: `"frames"` (4-byte big-endian length, the
 *   default) or `"lines"` (newline-delimited, to talk with `socat`, `nc`
 *   and friends).
 * - Unix `SOCK_SEQPACKET` (`type: "seqpacket"`): the kernel keeps message
 *   boundaries, so each message is one packet and nothing is framed. Only
 *   these sockets pass descriptors (below): a packet is the unit the
 *   kernel delivers descriptors with, so there is no doubt which message
 *   they belong to.
 * - Unix names in Linux's abstract namespace (`{ abstract: "name" }`): no
 *   file at all; the name disappears with the last socket bound to it.
 *
 * ## At kernel speed
 *
 * The sockets are ipckit's own, made through libc (`socket`, `bind`,
 * `listen`, `accept4`, `connect`) as non-blocking descriptors, read and
 * written on the main thread. A read or write that would block spins
 * briefly (the `spin` option, 50 µs by default) and then parks on the
 * reactor, the one `epoll_wait` of the process, as message queues and
 * FIFOs do; Deno's own sockets hand every answer to another thread first.
 * Both directions have backpressure: a reader that does not keep up
 * leaves data in the kernel's socket buffers, and the writer's `send()`
 * waits. `closeWrite()` half-closes (`shutdown(SHUT_WR)`).
 *
 * ## What owning the descriptor allows
 *
 * - **Peer credentials**: every accepted Unix connection carries the
 *   peer's pid, uid and gid as the kernel recorded them (`SO_PEERCRED`),
 *   in {@linkcode SocketChannel.peer}; `listen({ allow })` refuses a peer
 *   before any of its bytes is read.
 * - **Descriptor passing** (`SCM_RIGHTS`, seqpacket only): `send(value, {
 *   handles })` sends ipckit handles (`SharedMemory`, including
 *   `SharedMemory.anonymous()` which has no name anyone else could open;
 *   `MappedFile`; `MessageQueue`; a FIFO reader or writer; a socket, a
 *   server or a datagram socket), and the receiver, who asks for them with
 *   `receive({ maxHandles })`, gets working handles of the same kind in
 *   `message.handles`. Received handles use their kind's defaults (the
 *   JSON codec, `"frames"`). Descriptors beyond `maxHandles` are closed and
 *   the message refused with a `DecodeError`; none is ever leaked. "A file"
 *   here is a `MappedFile`: Deno 2's `Deno.FsFile` exposes no descriptor.
 *
 * ## Permissions, as Deno asks for them
 *
 * `--allow-ffi`, plus what Deno 2.9 demands for its own sockets:
 *
 * - A Unix socket file, to listen or connect: `--allow-read` and
 *   `--allow-write` on the path and `--allow-net=unix:<the exact path>`
 *   (also for its real location when links lead elsewhere).
 * - An abstract name: `--allow-net` without a list. Deno asks for net
 *   access to `unix:\0name`, which no list can spell.
 * - TCP: `--allow-net=<host>:<port>` with the host as written.
 * - `socketpair()`: nothing beyond `--allow-ffi` (no name, no address).
 *
 * A TCP listener binds `127.0.0.1` unless you give another `hostname`: an
 * IPC endpoint is private until you say otherwise. TCP connections have
 * Nagle's algorithm switched off (`TCP_NODELAY`), since messages are
 * written whole. A socket file is created with mode `0o600` (minus the
 * umask) unless `mode` says otherwise, from the start (see
 * `_socket/unix_file.ts`). TLS is out of scope: use `Deno.connectTls`.
 * Linux only.
 *
 * @example A Unix socket server and client
 * ```ts
 * // Needs --allow-ffi, and on the socket file --allow-read, --allow-write and
 * // --allow-net=unix:<the path>
 * import { connect, listen } from "@ipckit/ipckit/socket";
 *
 * type Ping = { n: number };
 * const path = `/tmp/app-${Deno.pid}.sock`;
 * await using server = await listen<Ping>({ path });
 * const serving = (async () => {
 *   for await (const connection of server) {
 *     for await (const { value } of connection) {
 *       await connection.send({ n: value.n + 1 });
 *     }
 *     connection.close();
 *   }
 * })();
 * await using client = await connect<Ping>({ path });
 * await client.send({ n: 1 });
 * console.log((await client.receive()).value); // { n: 2 }
 * client.close();
 * server.close(); // removes the socket file
 * await serving;
 * ```
 *
 * @module
 */

import {
  AF,
  bindSocket,
  getIntOption,
  listenSocket,
  localAddressOf,
  openSocket,
  openSocketPair,
  peerAddressOf,
  peerCredentials,
  requireLinuxSockets,
  setIntOption,
  SOCK,
  SOCKOPT,
} from "../ffi/socket.ts";
import { ERRNO } from "../ffi/errno.ts";
import { libc } from "../ffi/load.ts";
import type { Channel, Message, WaitOptions } from "./channel.ts";
import { type Codec, codecs } from "./codec.ts";
import { FramedChannel, type Framing } from "./framing.ts";
import type { DatagramChannel } from "./datagram.ts";
import type { MappedFile } from "./mapped_file.ts";
import type { MessageQueue } from "./message_queue.ts";
import type { SharedMemory } from "./shared_memory.ts";
import { checkOptionKeys } from "./_common/checks.ts";
import { receiveUntilEnd } from "./_common/iterate.ts";
import { closedError, systemError } from "./_common/system_error.ts";
import {
  checkAddress,
  describeAddress,
  formatAddr,
} from "./_kernel/socket_address.ts";
import { SocketFd } from "./_socket/descriptor.ts";
import { checkMaxHandles, PacketIo } from "./_socket/packets.ts";
import { markPassable, registerAdopter } from "./_socket/passing.ts";
import {
  requireAbstractAccess,
  requireHostAccess,
} from "./_socket/permissions.ts";
import { resolveAddress, toDenoAddr } from "./_socket/resolve.ts";
import {
  anchorSocketPath,
  checkSocketTarget,
  UnixSocketFile,
} from "./_socket/unix_file.ts";
import {
  checkListenSettings,
  checkSocketSettings,
  CONNECT_KEYS,
  LISTEN_KEYS,
  PAIR_KEYS,
  protocolName,
  SEQPACKET_DEFAULT_MAX,
  SEQPACKET_MAX,
  type SocketSettings,
  socketTypeOf,
} from "./_socket/settings.ts";
import { type Deadline, deadlineOf, FOREVER, sleep } from "./_wait/deadline.ts";
// Received handles of these kinds are rebuilt by their own modules, which
// register themselves when loaded: load them with the sockets.
import "./datagram.ts";
import "./fifo.ts";
import "./mapped_file.ts";
import "./message_queue.ts";
import "./shared_memory.ts";

/**
 * `"stream"`: a byte stream, framed (the default). `"seqpacket"`: Unix
 * only, one message per packet, boundaries kept by the kernel, handles
 * passed with messages.
 *
 * @category Sockets
 */
export type SocketType = "stream" | "seqpacket";

export { SEQPACKET_DEFAULT_MAX, SEQPACKET_MAX };

/**
 * How messages are carried on a socket.
 *
 * @example Newline-delimited text, at most 4 KiB a message
 * ```ts
 * import { codecs, type SocketChannelOptions } from "@ipckit/ipckit";
 *
 * const options: SocketChannelOptions<string> = {
 *   codec: codecs.text(),
 *   framing: "lines",
 *   maxMessageSize: 4096,
 * };
 * ```
 *
 * @category Sockets
 */
export interface SocketChannelOptions<T> {
  /** How values become bytes. Default `codecs.json<T>()`. */
  codec?: Codec<T>;
  /** Stream sockets: `"frames"` (4-byte length prefix, default) or `"lines"`. */
  framing?: Framing;
  /**
   * The largest message accepted, in bytes. Default 64 MiB on a stream,
   * {@linkcode SEQPACKET_DEFAULT_MAX} on a seqpacket socket (at most
   * {@linkcode SEQPACKET_MAX}).
   */
  maxMessageSize?: number;
  /**
   * Microseconds a read or write that would block retries before it parks
   * on the reactor: 0 to 1000, default 50. Spinning buys latency with CPU.
   */
  spin?: number;
  /**
   * Bytes the kernel may hold of this end's sends that the peer has not
   * read yet (`SO_SNDBUF`), 4 KiB to 64 MiB. Default 1 MiB on Unix sockets
   * (the kernel's own default, about 200 KB, makes a large message cost a
   * wake-up per 200 KB), capped by `net.core.wmem_max`; on TCP the kernel's
   * own sizing unless given. It bounds what backpressure lets pile up.
   */
  sendBufferSize?: number;
}

/**
 * A Unix socket file.
 *
 * @example A socket file
 * ```ts
 * import type { UnixSocketOptions } from "@ipckit/ipckit";
 *
 * const options: UnixSocketOptions<number> = { path: "/tmp/counter.sock" };
 * ```
 *
 * @category Sockets
 */
export interface UnixSocketOptions<T> extends SocketChannelOptions<T> {
  /** The socket file, at most 107 bytes long. */
  path: string;
  /** `"stream"` (default) or `"seqpacket"`. */
  type?: SocketType;
}

/**
 * A name in Linux's abstract socket namespace: no file, nothing to clean
 * up; visible to every process in the same network namespace.
 *
 * @example An abstract name for a seqpacket socket
 * ```ts
 * import type { AbstractSocketOptions } from "@ipckit/ipckit";
 *
 * const options: AbstractSocketOptions<number> = { abstract: "counter", type: "seqpacket" };
 * ```
 *
 * @category Sockets
 */
export interface AbstractSocketOptions<T> extends SocketChannelOptions<T> {
  /** The name, without the leading NUL the kernel uses; at most 106 bytes. */
  abstract: string;
  /** `"stream"` (default) or `"seqpacket"`. */
  type?: SocketType;
}

/**
 * Where a TCP socket listens or connects.
 *
 * @example A TCP address
 * ```ts
 * import type { TcpSocketOptions } from "@ipckit/ipckit";
 *
 * const options: TcpSocketOptions<number> = { hostname: "127.0.0.1", port: 9000 };
 * ```
 *
 * @category Sockets
 */
export interface TcpSocketOptions<T> extends SocketChannelOptions<T> {
  /** Default `"127.0.0.1"`, for listening and connecting alike. */
  hostname?: string;
  /** The port; `0` when listening picks a free one (read it from `server.addr`). */
  port: number;
}

/**
 * `{ path }` or `{ abstract }` for a Unix socket, `{ hostname, port }` for TCP.
 *
 * @example The three kinds of address
 * ```ts
 * import type { SocketOptions } from "@ipckit/ipckit";
 *
 * const unix: SocketOptions<string> = { path: "/tmp/a.sock" };
 * const abstract: SocketOptions<string> = { abstract: "a" };
 * const tcp: SocketOptions<string> = { port: 9000 };
 * ```
 *
 * @category Sockets
 */
export type SocketOptions<T> =
  | UnixSocketOptions<T>
  | AbstractSocketOptions<T>
  | TcpSocketOptions<T>;

/**
 * Who is at the other end of a Unix connection, as the kernel recorded it
 * when the peer connected (`SO_PEERCRED`): it cannot be forged by the peer.
 *
 * @example A test a listener's allow could use
 * ```ts
 * import type { PeerCredentials } from "@ipckit/ipckit";
 *
 * const sameUser = (peer: PeerCredentials) => peer.uid === Deno.uid();
 * ```
 *
 * @category Sockets
 */
export interface PeerCredentials {
  /** The peer's process id. */
  readonly pid: number;
  /** Its effective user id. */
  readonly uid: number;
  /** Its effective group id. */
  readonly gid: number;
}

/**
 * What only a listener takes.
 *
 * @example A group-writable socket file that only one user may use
 * ```ts
 * import type { ListenOptions } from "@ipckit/ipckit";
 *
 * const options: ListenOptions = {
 *   mode: 0o660,
 *   allow: (peer) => peer.uid === 1000,
 *   onAcceptError: (error) => console.error("accept is failing:", error.message),
 * };
 * ```
 *
 * @category Sockets
 */
export interface ListenOptions {
  /**
   * Permission bits of the socket file (`{ path }` only), before the
   * process umask: who may connect. Default `0o600`: only this user.
   */
  mode?: number;
  /** How many connections may wait to be accepted. Default 511. */
  backlog?: number;
  /**
   * Unix only: decides, from the peer's credentials, whether to take a
   * connection. A refused connection is closed before any of its bytes is
   * read, and `accept()` waits for the next one.
   */
  allow?: (peer: PeerCredentials) => boolean;
  /**
   * Told when iterating the server (`for await`) meets an accept that
   * fails for a reason that passes once resources are free again: too many
   * open descriptors in this process (`EMFILE`) or the system (`ENFILE`),
   * no buffer space or memory (`ENOBUFS`, `ENOMEM`). The iteration does
   * not end: it retries with a backoff from 5 ms doubling to 1 s, and calls
   * this for every failed attempt. Default: one `console.warn` per episode
   * (until an accept succeeds again).
   */
  onAcceptError?: (error: Error) => void;
}

/**
 * An ipckit handle that can travel over a seqpacket socket, and what a
 * received one is. Narrow it with `instanceof`.
 *
 * @example Find the shared memory among received handles
 * ```ts
 * import { type PassedHandle, SharedMemory } from "@ipckit/ipckit";
 *
 * function memoryOf(handles: PassedHandle[]): SharedMemory | undefined {
 *   return handles.find((handle): handle is SharedMemory =>
 *     handle instanceof SharedMemory
 *   );
 * }
 * console.log(memoryOf([])); // undefined
 * ```
 *
 * @category Sockets
 */
export type PassedHandle =
  | SharedMemory
  | MappedFile
  | MessageQueue<unknown>
  | FramedChannel<unknown>
  | SocketChannel<unknown>
  | SocketServer<unknown>
  | DatagramChannel<unknown>;

/**
 * A message from a socket, and the handles that came with it (seqpacket
 * sockets only; always empty on a stream).
 *
 * @example A message without handles
 * ```ts
 * import type { SocketMessage } from "@ipckit/ipckit";
 *
 * const message: SocketMessage<string> = { value: "hello", handles: [] };
 * ```
 *
 * @category Sockets
 */
export interface SocketMessage<T> extends Message<T> {
  /** Handles built from descriptors that came with the message; the receiver owns them. */
  handles: PassedHandle[];
}

/**
 * Options for {@linkcode SocketChannel.send}.
 *
 * @example Send a handle, waiting at most a second
 * ```ts
 * import { SharedMemory, type SocketSendOptions } from "@ipckit/ipckit";
 *
 * using memory = SharedMemory.anonymous(4096);
 * const options: SocketSendOptions = { handles: [memory], timeout: 1000 };
 * ```
 *
 * @category Sockets
 */
export interface SocketSendOptions extends WaitOptions {
  /**
   * Seqpacket sockets: handles whose descriptors travel with the message.
   * The sender keeps its own handles; the receiver gets new ones.
   */
  handles?: readonly PassedHandle[];
}

/**
 * Options for {@linkcode SocketChannel.receive}.
 *
 * @example Take up to four handles, waiting at most a second
 * ```ts
 * import type { SocketReceiveOptions } from "@ipckit/ipckit";
 *
 * const options: SocketReceiveOptions = { maxHandles: 4, timeout: 1000 };
 * ```
 *
 * @category Sockets
 */
export interface SocketReceiveOptions extends WaitOptions {
  /**
   * Seqpacket sockets: the most handles this receive takes with a message
   * (0 to 253). Default 0: a message that carries any is refused with a
   * `DecodeError` and its descriptors are closed.
   */
  maxHandles?: number;
}

const _NO_HANDLES: PassedHandle[] = Object.freeze([]) as never;

/** A stream message, with the empty list of handles every stream message has. */
function _withoutHandles<T>(message: Message<T>): SocketMessage<T> {
  (message as SocketMessage<T>).handles = _NO_HANDLES;
  return message as SocketMessage<T>;
}

// Set in SocketChannel's static block: lets the server and the functions
// of this module build channels while the constructor stays private.
let _newChannel: (
  socket: SocketFd,
  settings: SocketSettings<unknown>,
  localAddr: Deno.Addr,
  remoteAddr: Deno.Addr,
  peer: PeerCredentials | undefined,
) => SocketChannel<unknown, unknown>;

/** A channel of the given types (the constructor is private: see the static block). */
function _channel<TSend, TReceive>(
  socket: SocketFd,
  settings: SocketSettings<TSend | TReceive>,
  localAddr: Deno.Addr,
  remoteAddr: Deno.Addr,
  peer: PeerCredentials | undefined,
): SocketChannel<TSend, TReceive> {
  return _newChannel(
    socket,
    settings as SocketSettings<unknown>,
    localAddr,
    remoteAddr,
    peer,
  ) as SocketChannel<TSend, TReceive>;
}

/**
 * One connection: a typed {@linkcode Channel} that knows both addresses
 * and, on a Unix socket, who the peer is. `closeWrite()` half-closes (the
 * peer's iteration ends, this side can still receive); `close()` closes
 * both directions.
 *
 * @example Half-close, then read the rest of the replies
 * ```ts
 * import { connect, listen } from "@ipckit/ipckit";
 *
 * await using server = await listen<string>({ port: 0 }); // a free port
 * const { port } = server.addr as Deno.NetAddr;
 * const serving = (async () => {
 *   await using connection = await server.accept();
 *   for await (const { value } of connection) {
 *     await connection.send(value.toUpperCase());
 *   }
 *   await connection.closeWrite();
 * })();
 * await using channel = await connect<string>({ port });
 * console.log(channel.remoteAddr); // { transport: "tcp", hostname: "127.0.0.1", port }
 * await channel.send("last request");
 * await channel.closeWrite();
 * for await (const { value } of channel) console.log(value); // LAST REQUEST
 * await serving;
 * ```
 *
 * @category Sockets
 */
export class SocketChannel<TSend, TReceive = TSend>
  implements Channel<TSend, SocketMessage<TReceive>>, AsyncDisposable {
  /** This end's address. */
  readonly localAddr: Deno.Addr;
  /** The peer's address (an unnamed Unix client has the path `""`). */
  readonly remoteAddr: Deno.Addr;
  /** On a Unix socket: the peer's pid, uid and gid when it connected; undefined over TCP. */
  readonly peer: PeerCredentials | undefined;
  /** `"stream"` or `"seqpacket"`. */
  readonly type: SocketType;
  #socket: SocketFd;
  #framed: FramedChannel<TSend, TReceive> | undefined;
  #packets: PacketIo<TSend | TReceive> | undefined;
  #closed = false;
  // Packets are sent one at a time, in call order, even when the socket's
  // buffer is full for a while.
  #sendTurn: Promise<unknown> = Promise.resolve();
  #pendingSends = 0;

  static {
    _newChannel = (socket, settings, localAddr, remoteAddr, peer) =>
      new SocketChannel<unknown, unknown>(
        socket,
        settings,
        localAddr,
        remoteAddr,
        peer,
      );
  }

  private constructor(
    socket: SocketFd,
    settings: SocketSettings<TSend | TReceive>,
    localAddr: Deno.Addr,
    remoteAddr: Deno.Addr,
    peer: PeerCredentials | undefined,
  ) {
    this.#socket = socket;
    this.type = settings.type;
    this.localAddr = localAddr;
    this.remoteAddr = remoteAddr;
    this.peer = peer;
    if (settings.type === "stream") {
      this.#framed = new FramedChannel<TSend, TReceive>({
        io: socket,
        codec: settings.codec,
        framing: settings.framing,
        maxMessageSize: settings.maxMessageSize,
        description: socket.what,
      });
    } else {
      this.#packets = new PacketIo<TSend | TReceive>(
        socket,
        settings.codec,
        settings.maxMessageSize,
      );
    }
    markPassable(this, () => ({ kind: "socket", fd: socket.fd, meta: {} }));
  }

  /** Whether `close()` has been called (or the channel closed itself). */
  get closed(): boolean {
    return this.#closed || this.#socket.closed;
  }

  /**
   * Sends one value: resolves once the kernel has taken all of it, waiting
   * (without blocking the event loop) while the socket's buffer is full.
   * On a stream, a send that times out or is aborted may have written part
   * of its frame, so the channel closes itself then.
   *
   * @throws {RangeError} when the encoded value exceeds `maxMessageSize`
   * (nothing is sent), or is empty on a seqpacket socket
   * @throws {TypeError} for `handles` on a stream socket, or a handle that cannot be passed
   * @throws {Deno.errors.BrokenPipe} when the peer has closed its end
   *
   * @example Send, waiting at most a second for room
   * ```ts
   * import { socketpair } from "@ipckit/ipckit";
   *
   * const [a, b] = socketpair<string>();
   * await a.send("hello", { timeout: 1000 });
   * console.log((await b.receive()).value); // hello
   * a.close();
   * b.close();
   * ```
   */
  send(value: TSend, options: SocketSendOptions = {}): Promise<void> {
    if (this.#framed) {
      if (options.handles !== undefined && options.handles.length > 0) {
        return Promise.reject(
          new TypeError(
            `Cannot send to ${this.#socket.what}: only seqpacket sockets pass handles (a byte stream has no message boundary the descriptors could belong to); listen and connect with type: "seqpacket"`,
          ),
        );
      }
      return this.#framed.send(value, options);
    }
    let deadline: Deadline;
    try {
      deadline = deadlineOf(options);
      if (this.#closed) throw closedError(this.#socket.what);
    } catch (error) {
      return Promise.reject(error);
    }
    const packets = this.#packets!;
    const run = () =>
      packets.send(value, options.handles, deadline, options.signal);
    // With nothing queued, the packet goes out now, in this call.
    const turn = this.#pendingSends === 0 ? run() : this.#sendTurn.then(run);
    this.#pendingSends++;
    const settled = () => {
      this.#pendingSends--;
    };
    this.#sendTurn = turn.then(settled, settled);
    return turn;
  }

  /**
   * Receives one message, waiting without blocking the event loop.
   * Concurrent calls each get their own message.
   *
   * @throws {Deno.errors.UnexpectedEof} when the peer closed its end and no
   * message is left
   * @throws {DecodeError} when a message cannot be decoded (with its
   * bytes), or carries more handles than `maxHandles` (they are closed)
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   *
   * @example Receive a message and the memory that came with it
   * ```ts
   * import { SharedMemory, socketpair } from "@ipckit/ipckit";
   *
   * const [a, b] = socketpair<string>({ type: "seqpacket" });
   * {
   *   using memory = SharedMemory.anonymous(4096);
   *   await a.send("a buffer for you", { handles: [memory] });
   * }
   * const { value, handles } = await b.receive({ maxHandles: 1, timeout: 1000 });
   * const [memory] = handles;
   * console.log(value, memory instanceof SharedMemory); // a buffer for you true
   * for (const handle of handles) await handle.close();
   * a.close();
   * b.close();
   * ```
   */
  receive(
    options: SocketReceiveOptions = {},
  ): Promise<SocketMessage<TReceive>> {
    if (this.#framed) {
      if (options.maxHandles !== undefined && options.maxHandles !== 0) {
        return Promise.reject(
          new TypeError(
            `Cannot receive from ${this.#socket.what}: only seqpacket sockets pass handles; listen and connect with type: "seqpacket"`,
          ),
        );
      }
      return this.#framed.receive(options).then(_withoutHandles<TReceive>);
    }
    try {
      const action = `receive from ${this.#socket.what}`;
      const maxHandles = checkMaxHandles(options.maxHandles, action);
      const deadline = deadlineOf(options, action);
      if (this.#closed) throw closedError(this.#socket.what);
      return this.#packets!.receive(
        maxHandles,
        deadline,
        options.signal,
      ) as Promise<SocketMessage<TReceive>>;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Waits until a `receive()` would not wait (a whole message is there, or
   * the peer closed its end), taking nothing (see `Selectable.ready`).
   *
   * @example Wait for a message, then take it without waiting
   * ```ts
   * import { socketpair } from "@ipckit/ipckit";
   *
   * const [a, b] = socketpair<string>();
   * const later = new Promise((resolve) => setTimeout(resolve, 10))
   *   .then(() => a.send("later"));
   * await b.ready({ timeout: 1000 });
   * const { value } = await b.receive({ timeout: 0 });
   * console.log(value); // later
   * await later;
   * a.close();
   * b.close();
   * ```
   */
  async ready(options: WaitOptions = {}): Promise<void> {
    if (this.#framed) return await this.#framed.ready(options);
    const deadline = deadlineOf(options);
    if (this.#closed) throw closedError(this.#socket.what);
    await this.#packets!.ready(deadline, options.signal);
  }

  /** Receives until the peer closes its end or this channel is closed. */
  [Symbol.asyncIterator](): AsyncGenerator<SocketMessage<TReceive>, void> {
    return receiveUntilEnd(() => this.receive(), () => this.closed, true);
  }

  /**
   * Half-close: flushes what was sent and shuts the writing side, so the
   * peer's iteration ends, while this side can still receive.
   *
   * @example Say that this was the last message
   * ```ts
   * import { socketpair } from "@ipckit/ipckit";
   *
   * const [a, b] = socketpair<string>();
   * await a.send("last");
   * await a.closeWrite();
   * for await (const { value } of b) console.log(value); // last
   * a.close();
   * b.close();
   * ```
   */
  async closeWrite(): Promise<void> {
    if (this.#framed) return await this.#framed.closeWrite();
    await this.#sendTurn;
    await this.#socket.closeWrite();
  }

  /**
   * Closes both directions; idempotent. Pending operations reject with
   * `Deno.errors.BadResource`.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#framed) this.#framed.close();
    else this.#socket.close();
  }

  /** Closes the channel; see {@linkcode SocketChannel.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Flushes pending sends, half-closes, then closes. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.closeWrite();
    } catch {
      // The peer may be gone already; closing is still the right end.
    }
    this.close();
  }
}

// Set in SocketServer's static block, like _channel.
let _newServer: (
  socket: SocketFd,
  settings: SocketSettings<unknown>,
  addr: Deno.Addr,
  file: UnixSocketFile | undefined,
  options: ListenOptions,
) => SocketServer<unknown, unknown>;

/** A server of the given types (the constructor is private: see the static block). */
function _server<TSend, TReceive>(
  socket: SocketFd,
  settings: SocketSettings<TSend | TReceive>,
  addr: Deno.Addr,
  file: UnixSocketFile | undefined,
  options: ListenOptions,
): SocketServer<TSend, TReceive> {
  return _newServer(
    socket,
    settings as SocketSettings<unknown>,
    addr,
    file,
    options,
  ) as SocketServer<TSend, TReceive>;
}

/**
 * A listening socket. Iterate it (or call `accept()`) to get one typed
 * {@linkcode SocketChannel} per client. Closing the server stops accepting
 * and, for a socket file it created, removes the file; connections already
 * accepted stay open until they are closed.
 *
 * @example Serve every client concurrently
 * ```ts
 * import { connect, listen, type SocketChannel } from "@ipckit/ipckit";
 *
 * async function echo(connection: SocketChannel<string>): Promise<void> {
 *   using _ = connection;
 *   for await (const { value } of connection) await connection.send(value);
 * }
 * await using server = await listen<string>({ port: 0 });
 * const { port } = server.addr as Deno.NetAddr;
 * const serving = (async () => {
 *   const echoes: Promise<void>[] = [];
 *   for await (const connection of server) echoes.push(echo(connection));
 *   await Promise.all(echoes);
 * })();
 * const clients = await Promise.all(
 *   ["a", "b", "c"].map(() => connect<string>({ port })),
 * );
 * await Promise.all(clients.map((client, i) => client.send(`client ${i}`)));
 * for (const client of clients) {
 *   console.log((await client.receive()).value); // client 0, client 1, client 2
 *   client.close();
 * }
 * server.close(); // ends the iteration
 * await serving;
 * ```
 *
 * @category Sockets
 */
export class SocketServer<TSend, TReceive = TSend>
  implements
    AsyncIterable<SocketChannel<TSend, TReceive>>,
    Disposable,
    AsyncDisposable {
  /** `"stream"` or `"seqpacket"`. */
  readonly type: SocketType;
  #socket: SocketFd;
  #settings: SocketSettings<TSend | TReceive>;
  #addr: Deno.Addr;
  #file: UnixSocketFile | undefined;
  #allow: ((peer: PeerCredentials) => boolean) | undefined;
  #onAcceptError: (error: Error) => void;
  #warned = false;
  #closed = false;
  // Aborted by close(), so that a backoff between failed accepts ends at once.
  #closing = new AbortController();

  static {
    _newServer = (socket, settings, addr, file, options) =>
      new SocketServer<unknown, unknown>(socket, settings, addr, file, options);
  }

  private constructor(
    socket: SocketFd,
    settings: SocketSettings<TSend | TReceive>,
    addr: Deno.Addr,
    file: UnixSocketFile | undefined,
    options: ListenOptions,
  ) {
    this.#socket = socket;
    this.#settings = settings;
    this.type = settings.type;
    this.#addr = addr;
    this.#file = file;
    this.#allow = options.allow;
    this.#onAcceptError = options.onAcceptError ??
      ((error) => this.#warnOnce(error));
    markPassable(this, () => ({ kind: "socket", fd: socket.fd, meta: {} }));
  }

  /** The address the server listens on (with the real port when `0` was asked). */
  get addr(): Deno.Addr {
    return this.#addr;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Waits for the next client. With `allow`, peers it refuses are closed
   * unread and the wait goes on.
   *
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   * @throws {Deno.errors.BadResource} when the server is closed
   * @throws {IpcError} with code `EMFILE` (and the like) when the process
   * has no descriptor left for the connection; it stays queued
   *
   * @example Take one connection, waiting at most five seconds
   * ```ts
   * import { connect, listen } from "@ipckit/ipckit";
   *
   * await using server = await listen<string>({ port: 0 });
   * const { port } = server.addr as Deno.NetAddr;
   * await using client = await connect<string>({ port });
   * await using connection = await server.accept({ timeout: 5000 });
   * console.log(connection.remoteAddr.transport); // tcp
   * ```
   */
  async accept(
    options: WaitOptions = {},
  ): Promise<SocketChannel<TSend, TReceive>> {
    const deadline = deadlineOf(options);
    const what = this.#socket.what;
    for (;;) {
      if (this.#closed) throw closedError(what);
      let fd: number;
      try {
        fd = await this.#socket.accept(
          deadline,
          options.signal,
          `accept on ${what}`,
        );
      } catch (error) {
        if (this.#closed) throw closedError(what);
        throw error;
      }
      const channel = this.#take(fd);
      if (channel) return channel;
    }
  }

  /** Wraps an accepted descriptor, or closes it when `allow` refuses the peer. */
  #take(fd: number): SocketChannel<TSend, TReceive> | undefined {
    const unix = this.#addr.transport === "unix";
    let peer: PeerCredentials | undefined;
    try {
      if (unix) {
        const credentials = peerCredentials(fd);
        if (typeof credentials === "number") {
          throw systemError(
            "getsockopt",
            `accept on ${this.#socket.what}`,
            -credentials,
          );
        }
        peer = Object.freeze(credentials);
        if (this.#allow && !this.#allow(peer)) {
          libc().symbols.close(fd);
          return undefined;
        }
      } else {
        setIntOption(fd, SOCKOPT.IPPROTO_TCP, SOCKOPT.TCP_NODELAY, 1);
      }
      _tune(fd, this.#settings);
    } catch (error) {
      libc().symbols.close(fd);
      throw error;
    }
    const remoteAddr = toDenoAddr(peerAddressOf(fd), unix ? "unix" : "tcp");
    const what = unix
      ? `${this.#socket.what} connection from pid ${peer!.pid}`
      : `TCP connection from ${formatAddr(remoteAddr)} to ${
        formatAddr(this.#addr)
      }`;
    const socket = new SocketFd(fd, what, this.#settings.spin);
    return _channel<TSend, TReceive>(
      socket,
      this.#settings,
      this.#addr,
      remoteAddr,
      peer,
    );
  }

  /**
   * Yields each client until the server is closed. An accept that fails
   * for want of descriptors or memory does not end the iteration: it is
   * retried with a backoff and reported (see `onAcceptError`).
   */
  [Symbol.asyncIterator](): AsyncGenerator<
    SocketChannel<TSend, TReceive>,
    void
  > {
    return receiveUntilEnd(
      () => this.#acceptRetrying(),
      () => this.#closed,
      false,
    );
  }

  /** accept(), retrying failures that pass once resources are free again. */
  async #acceptRetrying(): Promise<SocketChannel<TSend, TReceive>> {
    let delay = _FIRST_BACKOFF_MS;
    for (;;) {
      try {
        const connection = await this.accept();
        this.#warned = false;
        return connection;
      } catch (error) {
        if (this.#closed || !_passes(error)) throw error;
        try {
          this.#onAcceptError(error as Error);
        } catch {
          // A failing reporter must not end the server.
        }
        try {
          await sleep(
            delay,
            FOREVER,
            this.#closing.signal,
            `accept on ${this.#socket.what}`,
          );
        } catch {
          // Closed while backing off: the next accept() says so.
        }
        delay = Math.min(delay * 2, _MAX_BACKOFF_MS);
      }
    }
  }

  #warnOnce(error: Error): void {
    if (this.#warned) return;
    this.#warned = true;
    console.warn(
      `Warning: accepting on ${this.#socket.what} fails (${error.message}); retrying with a backoff up to ${_MAX_BACKOFF_MS} ms until resources are free`,
    );
  }

  /** Stops listening and removes the socket file it created; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort();
    this.#socket.close();
    this.#file?.remove();
  }

  /** Closes the server; see {@linkcode SocketServer.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes the server; see {@linkcode SocketServer.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}

/** The first wait after a failed accept; it doubles up to the next. */
const _FIRST_BACKOFF_MS = 5;
/** The longest wait between two accepts that fail. */
const _MAX_BACKOFF_MS = 1000;
/** accept() errors that pass once resources are free: the listener is fine. */
const _PASSING_ACCEPT_ERRORS = new Set([
  "EMFILE",
  "ENFILE",
  "ENOBUFS",
  "ENOMEM",
]);

function _passes(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return typeof code === "string" && _PASSING_ACCEPT_ERRORS.has(code);
}

/**
 * Listens on a Unix socket (`{ path }`, `{ abstract }`) or a TCP port
 * (`{ hostname, port }`) for clients exchanging values of type `T`.
 *
 * A socket file left behind by a crashed server is replaced, but only when
 * no socket is bound to it; the check connects a datagram socket, so it
 * takes nothing from a live server.
 *
 * @throws {TypeError} / {RangeError} for a bad address or option, before any system call
 * @throws {Deno.errors.NotCapable} without the permissions listed in the module doc
 * @throws {Deno.errors.AddrInUse} when another process listens there already
 * @throws {Deno.errors.AlreadyExists} when the path exists and is not a socket
 *
 * @example Jobs over a Unix socket, and who sent them
 * ```ts
 * import { connect, listen } from "@ipckit/ipckit";
 *
 * const path = `/tmp/jobs-${Deno.pid}.sock`;
 * await using server = await listen<{ job: string }>({ path });
 * await using client = await connect<{ job: string }>({ path });
 * await client.send({ job: "resize" });
 * for await (const connection of server) {
 *   const { value } = await connection.receive();
 *   console.log(value.job, "from pid", connection.peer?.pid); // resize from pid <this pid>
 *   connection.close();
 *   break;
 * }
 * ```
 *
 * @category Sockets
 */
export async function listen<TSend, TReceive = TSend>(
  options: SocketOptions<TSend | TReceive> & ListenOptions,
): Promise<SocketServer<TSend, TReceive>> {
  const action = "listen on a socket";
  checkOptionKeys(options, LISTEN_KEYS, action);
  const address = checkAddress(options, action, true);
  const settings = checkSocketSettings<TSend | TReceive>(
    options,
    address,
    action,
    codecs.json,
  );
  const { mode, backlog } = checkListenSettings(options, address, action);
  const what = describeAddress(address, protocolName(address, settings.type));
  const listenAction = `listen on ${what}`;
  requireLinuxSockets(listenAction);
  let anchored: ReturnType<typeof anchorSocketPath> | undefined;
  if (address.transport === "unix") {
    anchored = anchorSocketPath(address.path, listenAction);
  } else if (address.transport === "abstract") {
    requireAbstractAccess(address.name);
  } else {
    requireHostAccess(address.hostname, address.port, listenAction);
  }
  let fd = -1;
  let file: UnixSocketFile | undefined;
  try {
    const socketType = socketTypeOf(settings.type);
    const [target] = await resolveAddress(address, socketType, listenAction);
    fd = openSocket(target.family, socketType);
    if (fd < 0) throw systemError("socket", listenAction, -fd);
    if (anchored) {
      file = UnixSocketFile.bind(anchored, fd, mode, listenAction);
      anchored = undefined; // the file owns it now
    } else {
      if (target.family !== AF.UNIX) {
        setIntOption(fd, SOCKOPT.SOL_SOCKET, SOCKOPT.SO_REUSEADDR, 1);
      }
      const bound = bindSocket(fd, target);
      if (bound < 0) {
        throw systemError(
          "bind",
          listenAction,
          -bound,
          -bound === ERRNO.EADDRINUSE
            ? "another process is using it"
            : undefined,
        );
      }
    }
    const listening = listenSocket(fd, backlog);
    if (listening < 0) throw systemError("listen", listenAction, -listening);
    const addr = address.transport === "unix"
      ? { transport: "unix" as const, path: address.path }
      : toDenoAddr(
        localAddressOf(fd),
        target.family === AF.UNIX ? "unix" : "tcp",
      );
    const serverWhat = address.transport === "inet"
      ? `${protocolName(address, settings.type)} ${formatAddr(addr)}`
      : what;
    const socket = new SocketFd(fd, serverWhat, settings.spin);
    fd = -1;
    return _server<TSend, TReceive>(socket, settings, addr, file, options);
  } catch (error) {
    if (fd >= 0) libc().symbols.close(fd);
    file?.remove();
    anchored?.close();
    throw error;
  }
}

/**
 * Connects to a Unix socket (`{ path }`, `{ abstract }`) or a TCP server
 * (`{ hostname, port }`); `timeout` and `signal` bound the attempt. A host
 * name is looked up, and each of its addresses tried in turn.
 *
 * @throws {TypeError} / {RangeError} for a bad address or option, before any system call
 * @throws {Deno.errors.NotCapable} without the permissions listed in the module doc
 * @throws {Deno.errors.NotFound} when no socket file exists at `path`
 * @throws {Deno.errors.ConnectionRefused} when nothing listens there
 * @throws {Deno.errors.TimedOut} when `timeout` passes first
 *
 * @example Connect, waiting at most a second
 * ```ts
 * import { connect, listen } from "@ipckit/ipckit";
 *
 * const path = `/tmp/queue-${Deno.pid}.sock`;
 * await using server = await listen<{ job: string }>({ path });
 * await using jobs = await connect<{ job: string }>({ path, timeout: 1000 });
 * await jobs.send({ job: "resize" });
 * await using connection = await server.accept();
 * console.log((await connection.receive()).value); // { job: "resize" }
 * ```
 *
 * @category Sockets
 */
export async function connect<TSend, TReceive = TSend>(
  options: SocketOptions<TSend | TReceive> & WaitOptions,
): Promise<SocketChannel<TSend, TReceive>> {
  const action = "connect to a socket";
  checkOptionKeys(options, CONNECT_KEYS, action);
  const address = checkAddress(options, action, true);
  const settings = checkSocketSettings<TSend | TReceive>(
    options,
    address,
    action,
    codecs.json,
  );
  const deadline = deadlineOf(options, action);
  const protocol = protocolName(address, settings.type);
  const target = describeAddress(address, protocol);
  const connectAction = `connect to ${target}`;
  requireLinuxSockets(connectAction);
  if (address.transport === "unix") {
    checkSocketTarget(address.path, connectAction);
  } else if (address.transport === "abstract") {
    requireAbstractAccess(address.name);
  } else {
    requireHostAccess(address.hostname, address.port, connectAction);
  }
  const socketType = socketTypeOf(settings.type);
  const candidates = await resolveAddress(address, socketType, connectAction);
  let failure: unknown;
  for (const candidate of candidates) {
    const fd = openSocket(candidate.family, socketType);
    if (fd < 0) throw systemError("socket", connectAction, -fd);
    const unix = candidate.family === AF.UNIX;
    const socket = new SocketFd(
      fd,
      `${protocol} connection to ${target.slice(protocol.length + 1)}`,
      settings.spin,
    );
    try {
      if (!unix) setIntOption(fd, SOCKOPT.IPPROTO_TCP, SOCKOPT.TCP_NODELAY, 1);
      _tune(fd, settings);
      await socket.connect(candidate, deadline, options.signal, connectAction);
    } catch (error) {
      socket.close();
      failure = error;
      if (
        error instanceof Deno.errors.TimedOut ||
        error === options.signal?.reason
      ) {
        throw error;
      }
      continue;
    }
    const remoteAddr = address.transport === "unix"
      ? { transport: "unix" as const, path: address.path }
      : toDenoAddr(peerAddressOf(fd), unix ? "unix" : "tcp");
    const localAddr = toDenoAddr(localAddressOf(fd), unix ? "unix" : "tcp");
    const peer = unix ? _credentialsOf(fd) : undefined;
    return _channel<TSend, TReceive>(
      socket,
      settings,
      localAddr,
      remoteAddr,
      peer,
    );
  }
  throw failure;
}

/**
 * Options of {@linkcode socketpair}.
 *
 * @example A seqpacket pair
 * ```ts
 * import type { SocketPairOptions } from "@ipckit/ipckit";
 *
 * const options: SocketPairOptions<string> = { type: "seqpacket" };
 * ```
 *
 * @category Sockets
 */
export interface SocketPairOptions<T> extends SocketChannelOptions<T> {
  /** `"stream"` (default) or `"seqpacket"`. */
  type?: SocketType;
}

/**
 * Two connected Unix sockets (`socketpair(2)`), with no name and no file:
 * for processes that share descriptors otherwise, as when one end is sent
 * to another process over a seqpacket socket (`send(value, { handles })`).
 * Needs only `--allow-ffi`.
 *
 * @throws {TypeError} / {RangeError} for a bad option, before any system call
 *
 * @example Two connected ends in one process
 * ```ts
 * import { socketpair } from "@ipckit/ipckit";
 *
 * const [a, b] = socketpair<string>();
 * await a.send("hello");
 * console.log((await b.receive()).value); // hello
 * a.close();
 * b.close();
 * ```
 *
 * @category Sockets
 */
export function socketpair<TSend, TReceive = TSend>(
  options: SocketPairOptions<TSend | TReceive> = {},
): [SocketChannel<TSend, TReceive>, SocketChannel<TReceive, TSend>] {
  const action = "make a socket pair";
  checkOptionKeys(options, PAIR_KEYS, action);
  const settings = checkSocketSettings<TSend | TReceive>(
    options,
    undefined,
    action,
    codecs.json,
  );
  requireLinuxSockets(action);
  const pair = openSocketPair(socketTypeOf(settings.type));
  if (typeof pair === "number") throw systemError("socketpair", action, -pair);
  const protocol = protocolName(undefined, settings.type);
  const unnamed: Deno.Addr = { transport: "unix", path: "" };
  for (const fd of pair) _tune(fd, settings);
  const peer = _credentialsOf(pair[0]);
  const end = (fd: number, index: number) =>
    new SocketFd(fd, `${protocol} pair end ${index}`, settings.spin);
  return [
    _channel<TSend, TReceive>(
      end(pair[0], 1),
      settings,
      unnamed,
      unnamed,
      peer,
    ),
    _channel<TReceive, TSend>(
      end(pair[1], 2),
      settings,
      unnamed,
      unnamed,
      peer,
    ),
  ];
}

/** Sets the send buffer the settings ask for (the kernel caps it; nothing fails). */
function _tune(fd: number, settings: SocketSettings<unknown>): void {
  if (settings.sendBufferSize === undefined) return;
  setIntOption(
    fd,
    SOCKOPT.SOL_SOCKET,
    SOCKOPT.SO_SNDBUF,
    settings.sendBufferSize,
  );
}

/** The peer's credentials, or undefined where the kernel cannot say. */
function _credentialsOf(fd: number): PeerCredentials | undefined {
  const credentials = peerCredentials(fd);
  return typeof credentials === "number"
    ? undefined
    : Object.freeze(credentials);
}

// A socket that arrived over a seqpacket socket: a listener becomes a
// server, a connection a channel, each with the defaults of its kind.
registerAdopter("socket", (fd) => {
  const action = "take a socket that arrived";
  const listening = getIntOption(fd, SOCKOPT.SOL_SOCKET, SOCKOPT.SO_ACCEPTCONN);
  const domain = getIntOption(fd, SOCKOPT.SOL_SOCKET, SOCKOPT.SO_DOMAIN);
  const kind = getIntOption(fd, SOCKOPT.SOL_SOCKET, SOCKOPT.SO_TYPE);
  for (const value of [listening, domain, kind]) {
    if (value < 0) throw systemError("getsockopt", action, -value);
  }
  if (kind !== SOCK.STREAM && kind !== SOCK.SEQPACKET) {
    throw new TypeError(
      `Cannot ${action}: it is neither a stream nor a seqpacket socket`,
    );
  }
  const unix = domain === AF.UNIX;
  const type: SocketType = kind === SOCK.SEQPACKET ? "seqpacket" : "stream";
  const settings = checkSocketSettings<unknown>(
    { type },
    unix ? { transport: "abstract", name: "passed" } : {
      transport: "inet",
      hostname: "",
      port: 0,
    },
    action,
    codecs.json,
  );
  const transport = unix ? "unix" : "tcp";
  const local = toDenoAddr(localAddressOf(fd), transport);
  const protocol = unix
    ? (type === "seqpacket" ? "Unix seqpacket socket" : "Unix socket")
    : "TCP";
  if (listening === 1) {
    const socket = new SocketFd(
      fd,
      `${protocol} ${formatAddr(local)} (passed)`,
      settings.spin,
    );
    return _server(socket, settings, local, undefined, {});
  }
  const remote = toDenoAddr(peerAddressOf(fd), transport);
  const socket = new SocketFd(
    fd,
    `${protocol} connection to ${formatAddr(remote)} (passed)`,
    settings.spin,
  );
  const peer = unix ? _credentialsOf(fd) : undefined;
  return _channel(socket, settings, local, remote, peer);
});
