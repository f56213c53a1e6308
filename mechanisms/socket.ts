/**
 * Stream sockets — Unix domain sockets and TCP — as typed channels. Sockets
 * are the IPC that also crosses machines.
 *
 * `listen<T>()` returns a {@linkcode SocketServer} that yields one
 * {@linkcode SocketChannel} per connection; `connect<T>()` returns the client
 * end. Messages are framed by {@linkcode FramedChannel}: `"frames"` (4-byte
 * big-endian length, the default) or `"lines"` (newline-delimited, to talk
 * with `socat`, `nc` and friends). Both directions have backpressure: a
 * reader that does not keep up leaves data in the kernel's socket buffers,
 * and the writer's `send()` waits.
 *
 * Built on Deno's own `Deno.listen`/`Deno.connect`, so the permissions are
 * Deno's own:
 *
 * - TCP: `--allow-net=127.0.0.1:8080` (or the host and port you use).
 * - Unix sockets, for listening and connecting alike (Deno 2.9):
 *   `--allow-net=unix:/tmp/app.sock` (the exact path; a directory does not
 *   cover the sockets in it) plus `--allow-read` and `--allow-write` on the
 *   path. The listener's stale-file check and removal need the same flags.
 *
 * A TCP listener binds `127.0.0.1` unless you give another `hostname`: an IPC
 * endpoint is private until you say otherwise. TCP connections have Nagle's
 * algorithm switched off (`TCP_NODELAY`), since messages are written whole.
 *
 * @example A Unix socket server and client
 * ```ts ignore
 * // deno run --allow-net=unix:/tmp/app.sock --allow-read=/tmp --allow-write=/tmp app.ts
 * import { connect, listen } from "@ipckit/ipckit/socket";
 *
 * type Ping = { n: number };
 * await using server = await listen<Ping>({ path: "/tmp/app.sock" });
 * (async () => {
 *   for await (const connection of server) {
 *     for await (const { value } of connection) await connection.send({ n: value.n + 1 });
 *   }
 * })();
 * await using client = await connect<Ping>({ path: "/tmp/app.sock" });
 * await client.send({ n: 1 });
 * console.log((await client.receive()).value); // { n: 2 }
 * ```
 *
 * @module
 */

import type { WaitOptions } from "./channel.ts";
import type { Codec } from "./codec.ts";
import { closedError } from "./_common/system_error.ts";
import { FramedChannel, type Framing } from "./framing.ts";
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

/**
 * How messages are carried on a stream socket.
 *
 * @example
 * ```ts
 * import { codecs, type SocketChannelOptions } from "@ipckit/ipckit";
 *
 * const options: SocketChannelOptions<string> = {
 *   codec: codecs.text(),
 *   framing: "lines",
 *   maxMessageSize: 4096,
 * };
 * ```
 */
export interface SocketChannelOptions<T> {
  /** How values become bytes. Default `codecs.json<T>()`. */
  codec?: Codec<T>;
  /** `"frames"` (4-byte length prefix, default) or `"lines"`. */
  framing?: Framing;
  /** The largest message accepted, in bytes. Default 64 MiB. */
  maxMessageSize?: number;
}

/**
 * Where a Unix stream socket lives.
 *
 * @example
 * ```ts
 * import type { UnixSocketOptions } from "@ipckit/ipckit";
 *
 * const options: UnixSocketOptions<number> = { path: "/tmp/counter.sock" };
 * ```
 */
export interface UnixSocketOptions<T> extends SocketChannelOptions<T> {
  /** The socket file, at most 107 bytes long. */
  path: string;
}

/**
 * Where a TCP socket listens or connects.
 *
 * @example
 * ```ts
 * import type { TcpSocketOptions } from "@ipckit/ipckit";
 *
 * const options: TcpSocketOptions<number> = { hostname: "127.0.0.1", port: 9000 };
 * ```
 */
export interface TcpSocketOptions<T> extends SocketChannelOptions<T> {
  /** Default `"127.0.0.1"`, for listening and connecting alike. */
  hostname?: string;
  /** The port; `0` when listening picks a free one (read it from `server.addr`). */
  port: number;
}

/**
 * What only a listener takes.
 *
 * @example
 * ```ts
 * import type { ListenOptions } from "@ipckit/ipckit";
 *
 * const options: ListenOptions = {
 *   onAcceptError: (error) => console.error("accept is failing:", error.message),
 * };
 * ```
 */
export interface ListenOptions {
  /**
   * Told when iterating the server (`for await`) meets an accept that fails
   * for a reason that passes once resources are free again: too many open
   * descriptors in this process (`EMFILE`) or the system (`ENFILE`), no
   * buffer space or memory (`ENOBUFS`, `ENOMEM`), or a connection reset
   * before it was taken (`ECONNABORTED`). The iteration does not end: it
   * retries with a backoff from 5 ms doubling to 1 s, and calls this for
   * every failed attempt. Default: one `console.warn` per episode (until an
   * accept succeeds again).
   */
  onAcceptError?: (error: Error) => void;
}

/**
 * `{ path }` for a Unix socket, `{ hostname, port }` for TCP.
 *
 * @example
 * ```ts
 * import type { SocketOptions } from "@ipckit/ipckit";
 *
 * const unix: SocketOptions<string> = { path: "/tmp/a.sock" };
 * const tcp: SocketOptions<string> = { port: 9000 };
 * ```
 */
export type SocketOptions<T> = UnixSocketOptions<T> | TcpSocketOptions<T>;

/**
 * One connection: a {@linkcode FramedChannel} that knows both addresses.
 * `closeWrite()` half-closes (the peer's iteration ends, this side can still
 * receive); `close()` closes both directions.
 *
 * @example
 * ```ts ignore
 * import { connect } from "@ipckit/ipckit";
 *
 * await using channel = await connect<string>({ port: 9000 });
 * console.log(channel.remoteAddr);
 * await channel.send("last request");
 * await channel.closeWrite();
 * for await (const { value } of channel) console.log(value);
 * ```
 */
export class SocketChannel<TSend, TReceive = TSend>
  extends FramedChannel<TSend, TReceive> {
  /** This end's address. */
  readonly localAddr: Deno.Addr;
  /** The peer's address. */
  readonly remoteAddr: Deno.Addr;

  /** Wraps an open connection; `listen()` and `connect()` build these for you. */
  constructor(
    conn: Deno.Conn,
    options: SocketChannelOptions<TSend | TReceive> & {
      description?: string;
    } = {},
  ) {
    if (conn.remoteAddr.transport === "tcp") {
      // Frames are written whole: waiting to coalesce them only adds latency.
      (conn as Deno.TcpConn).setNoDelay(true);
    }
    super({
      // Direct reads and writes: a socket needs no Web streams in between,
      // and conn.closeWrite() is the half-close.
      io: conn,
      codec: options.codec,
      framing: options.framing,
      maxMessageSize: options.maxMessageSize,
      description: options.description ??
        `${
          conn.remoteAddr.transport === "unix" ? "Unix socket" : "TCP"
        } connection to ${formatAddr(conn.remoteAddr)}`,
    });
    this.localAddr = conn.localAddr;
    this.remoteAddr = conn.remoteAddr;
  }
}

/**
 * A listening stream socket. Iterate it (or call `accept()`) to get one typed
 * {@linkcode SocketChannel} per client. Closing the server stops accepting
 * and, for a Unix socket, removes the socket file; connections already
 * accepted stay open until they are closed.
 *
 * @example Serve every client concurrently
 * ```ts ignore
 * import { listen, type SocketChannel } from "@ipckit/ipckit";
 *
 * async function echo(connection: SocketChannel<string>): Promise<void> {
 *   using _ = connection;
 *   for await (const { value } of connection) await connection.send(value);
 * }
 * await using server = await listen<string>({ port: 9000 });
 * for await (const connection of server) echo(connection);
 * ```
 */
export class SocketServer<TSend, TReceive = TSend>
  implements
    AsyncIterable<SocketChannel<TSend, TReceive>>,
    Disposable,
    AsyncDisposable {
  #listener: Deno.Listener;
  #options: SocketChannelOptions<TSend | TReceive>;
  #what: string;
  #socketFile: BoundSocketFile | undefined;
  #closed = false;
  // Aborted by close(), so that a backoff between failed accepts ends at once.
  #closing = new AbortController();
  #onAcceptError: (error: Error) => void;
  #warned = false;
  // Accepts one at a time, each connection to exactly one caller; one
  // accepted after its caller gave up goes to the next caller.
  #accepts = new KeptOperation<Deno.Conn>();

  private constructor(
    listener: Deno.Listener,
    address: CheckedAddress,
    options: SocketChannelOptions<TSend | TReceive>,
    onAcceptError: ((error: Error) => void) | undefined,
  ) {
    this.#listener = listener;
    this.#options = options;
    this.#onAcceptError = onAcceptError ?? ((error) => this.#warnOnce(error));
    this.#what = describeAddress(
      address.transport === "unix" ? address : {
        ...address,
        port: (listener.addr as Deno.NetAddr).port,
      },
      address.transport === "unix" ? "Unix socket" : "TCP",
    );
    if (address.transport === "unix") {
      this.#socketFile = boundSocketFile(address.path);
    }
  }

  /** Opens the listener; use {@linkcode listen}. */
  static async listen<TSend, TReceive = TSend>(
    options: SocketOptions<TSend | TReceive> & ListenOptions,
  ): Promise<SocketServer<TSend, TReceive>> {
    const address = checkAddress(options, "listen on a socket", true);
    const channelOptions = _channelOptions(options);
    const onAcceptError = options.onAcceptError;
    if (onAcceptError !== undefined && typeof onAcceptError !== "function") {
      throw new TypeError(
        "Cannot listen on a socket: onAcceptError must be a function",
      );
    }
    let listener: Deno.Listener;
    if (address.transport === "unix") {
      await freeUnixPathForListening(
        address.path,
        `listen on ${describeAddress(address, "Unix socket")}`,
      );
      listener = Deno.listen({ transport: "unix", path: address.path });
    } else {
      listener = Deno.listen({
        transport: "tcp",
        hostname: address.hostname,
        port: address.port,
      });
    }
    return new SocketServer<TSend, TReceive>(
      listener,
      address,
      channelOptions,
      onAcceptError,
    );
  }

  /** The address the server listens on (with the real port when `0` was asked). */
  get addr(): Deno.Addr {
    return this.#listener.addr;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Waits for the next client.
   *
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   * @throws {Deno.errors.BadResource} when the server is closed
   *
   * @example
   * ```ts ignore
   * import { listen } from "@ipckit/ipckit";
   *
   * await using server = await listen<string>({ port: 9000 });
   * await using connection = await server.accept({ timeout: 5000 });
   * ```
   */
  async accept(
    options: WaitOptions = {},
  ): Promise<SocketChannel<TSend, TReceive>> {
    const deadline = deadlineOf(options);
    if (this.#closed) throw closedError(this.#what);
    let conn: Deno.Conn;
    try {
      conn = await this.#accepts.run(
        () => this.#listener.accept(),
        deadline,
        options.signal,
        `accept on ${this.#what}`,
      );
    } catch (error) {
      if (this.#closed) throw closedError(this.#what);
      throw error;
    }
    return new SocketChannel<TSend, TReceive>(conn, this.#options);
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
        await _sleep(delay, this.#closing.signal);
        delay = Math.min(delay * 2, _MAX_BACKOFF_MS);
      }
    }
  }

  #warnOnce(error: Error): void {
    if (this.#warned) return;
    this.#warned = true;
    console.warn(
      `Warning: accepting on ${this.#what} fails (${error.message}); retrying with a backoff up to ${_MAX_BACKOFF_MS} ms until resources are free`,
    );
  }

  /** Stops listening and removes a Unix socket's file; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort();
    // A connection accepted after its caller gave up: nobody owns it.
    this.#accepts.close(closedError(this.#what), (conn) => conn.close());
    closeBoundSocket(this.#listener, this.#socketFile);
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

/**
 * Listens on a Unix stream socket (`{ path }`) or a TCP port
 * (`{ hostname, port }`). Each connection sends `TSend` and receives
 * `TReceive` (default `TSend`), seen from the server: a server
 * `listen<Reply, Request>()` talks to clients `connect<Request, Reply>()`.
 *
 * A Unix socket file left behind by a crashed server is replaced, but only
 * when connecting to it is refused (nothing listens there).
 *
 * @throws {TypeError} / {RangeError} for a bad address or option, before any system call
 * @throws {Deno.errors.AddrInUse} when another process listens there already
 * @throws {Deno.errors.AlreadyExists} when the path exists and is not a socket
 * @throws {Deno.errors.NotCapable} without the permissions listed in the module doc
 *
 * @example
 * ```ts ignore
 * import { listen } from "@ipckit/ipckit";
 *
 * await using server = await listen<{ job: string }>({ path: "/tmp/jobs.sock" });
 * for await (const connection of server) {
 *   const { value } = await connection.receive();
 *   console.log(value.job);
 *   connection.close();
 * }
 * ```
 */
export function listen<TSend, TReceive = TSend>(
  options: SocketOptions<TSend | TReceive> & ListenOptions,
): Promise<SocketServer<TSend, TReceive>> {
  return SocketServer.listen<TSend, TReceive>(options);
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
  "ECONNABORTED",
]);

function _passes(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return typeof code === "string" && _PASSING_ACCEPT_ERRORS.has(code);
}

/** Waits `ms`, or less when `signal` aborts (the caller then sees the close). */
function _sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * Connects to a Unix stream socket (`{ path }`) or a TCP server
 * (`{ hostname, port }`); `timeout` and `signal` bound the connection attempt.
 * The channel sends `TSend` and receives `TReceive` (default `TSend`).
 *
 * @throws {Deno.errors.NotFound} when no socket file exists at `path`
 * @throws {Deno.errors.ConnectionRefused} when nothing listens there
 * @throws {Deno.errors.TimedOut} when `timeout` passes first
 *
 * @example
 * ```ts ignore
 * import { connect } from "@ipckit/ipckit";
 *
 * await using jobs = await connect<{ job: string }>({ path: "/tmp/jobs.sock", timeout: 1000 });
 * await jobs.send({ job: "resize" });
 * ```
 */
export async function connect<TSend, TReceive = TSend>(
  options: SocketOptions<TSend | TReceive> & WaitOptions,
): Promise<SocketChannel<TSend, TReceive>> {
  const address = checkAddress(options, "connect to a socket", true);
  const channelOptions = _channelOptions(options);
  const deadline = deadlineOf(options);
  const what = describeAddress(
    address,
    address.transport === "unix" ? "Unix socket" : "TCP",
  );
  const connecting: Promise<Deno.Conn> = address.transport === "unix"
    ? Deno.connect({ transport: "unix", path: address.path })
    : Deno.connect({ hostname: address.hostname, port: address.port });
  let conn: Deno.Conn;
  try {
    conn = await raceDeadline(
      connecting,
      deadline,
      options.signal,
      `connect to ${what}`,
      (late) => late.close(),
    );
  } catch (error) {
    throw _connectError(error, what);
  }
  return new SocketChannel<TSend, TReceive>(conn, channelOptions);
}

/** Checks the framing options before any system call, with framing's own messages. */
function _channelOptions<T>(
  options: SocketChannelOptions<T>,
): SocketChannelOptions<T> {
  new FramedChannel<T>({
    writable: new WritableStream(),
    framing: options.framing,
    maxMessageSize: options.maxMessageSize,
  }).close();
  return {
    codec: options.codec,
    framing: options.framing,
    maxMessageSize: options.maxMessageSize,
  };
}

/** Deno's connect errors, with the address in the message; same classes. */
function _connectError(error: unknown, what: string): unknown {
  if (error instanceof Deno.errors.NotFound) {
    return new Deno.errors.NotFound(
      `Cannot connect to ${what}: no socket file exists there`,
      { cause: error },
    );
  }
  if (error instanceof Deno.errors.ConnectionRefused) {
    return new Deno.errors.ConnectionRefused(
      `Cannot connect to ${what}: nothing is listening there`,
      { cause: error },
    );
  }
  return error;
}
