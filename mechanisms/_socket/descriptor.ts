/**
 * A non-blocking socket descriptor owned by one handle, and every wait on
 * it: each operation is tried on the main thread (exact errno), retried
 * during a short spin, then parked on the reactor until the descriptor is
 * ready, through the one retry loop (`_wait/retry.ts`) and the one
 * deadline race (`_wait/deadline.ts`), as message queues and FIFOs do.
 *
 * Nothing is left behind by a wait that times out or is aborted: its
 * reactor registration and timer go with it (no operation runs on another
 * thread that would have to be kept for the next caller), and concurrent
 * callers each make their own attempts, so each gets its own connection,
 * datagram or bytes.
 *
 * @module
 */

import { ERRNO, retryTransfer } from "../../ffi/errno.ts";
import { libc } from "../../ffi/load.ts";
import {
  acceptSocket,
  connectSocket,
  MSG,
  peerAddressOf,
  receiveBytes,
  sendBytes,
  SHUT,
  shutdownSocket,
  type SocketAddressBytes,
  socketError,
} from "../../ffi/socket.ts";
import { closedError, systemError } from "../_common/system_error.ts";
import { type Deadline, FOREVER } from "../_wait/deadline.ts";
import { type Direction, reactor } from "../_wait/reactor.ts";
import { backoffPark, retryAsync } from "../_wait/retry.ts";
import { DEFAULT_SPIN_MICROS, Spinner } from "../_wait/spin.ts";

/** How long to wait between connects refused with EAGAIN (a full Unix backlog). */
const _FIRST_BACKOFF_MS = 1;
const _MAX_BACKOFF_MS = 25;

// Where a peek for "is a message there" puts its byte; never read.
const _peekByte = new Uint8Array(new ArrayBuffer(1));

// A safety net for handles dropped without close(); close() is the contract.
const _leaked = new FinalizationRegistry<{ fd: number }>((cell) => {
  if (cell.fd >= 0) libc().symbols.close(cell.fd);
});

/** One socket descriptor, non-blocking, and the waits on it. */
export class SocketFd {
  /** The object, for messages: `Unix socket "/tmp/a.sock"`. */
  what: string;
  readonly #cell: { fd: number };
  readonly #readSpin: Spinner;
  readonly #writeSpin: Spinner;
  #writeShut = false;

  readonly #read: (fd: number, into: Uint8Array<ArrayBuffer>) => number;
  readonly #write: (fd: number, bytes: Uint8Array<ArrayBuffer>) => number;

  /**
   * Takes ownership of `fd`, which must be non-blocking.
   *
   * @param spinMicros how long a read or write retries before it parks
   * @param kind `"socket"` (recv/send) or `"pipe"` (read/write, for a
   * pipe such as a child's stdin)
   */
  constructor(
    fd: number,
    what: string,
    spinMicros = DEFAULT_SPIN_MICROS,
    kind: "socket" | "pipe" = "socket",
  ) {
    this.what = what;
    this.#read = kind === "socket" ? receiveBytes : readBytes;
    this.#write = kind === "socket" ? sendBytes : writeBytes;
    this.#cell = { fd };
    this.#readSpin = new Spinner(spinMicros);
    this.#writeSpin = new Spinner(spinMicros);
    _leaked.register(this, this.#cell, this);
  }

  /** The descriptor, or -1 once closed. */
  get fd(): number {
    return this.#cell.fd;
  }

  /** Whether `close()` has run. */
  get closed(): boolean {
    return this.#cell.fd < 0;
  }

  /** The descriptor, or `BadResource` once closed. */
  requireOpen(): number {
    if (this.#cell.fd < 0) throw closedError(this.what);
    return this.#cell.fd;
  }

  /**
   * Runs `attempt` until it no longer says "would block" (`-EAGAIN`),
   * spinning and then parking on the reactor for `direction`. An attempt
   * made after `close()` returns `-EBADF`; that is reported as closed.
   */
  wait<R>(
    direction: Direction,
    attempt: () => R,
    wouldBlock: (result: R) => boolean,
    deadline: Deadline,
    signal: AbortSignal | undefined,
    action: string,
  ): Promise<R> {
    return retryAsync({
      attempt,
      wouldBlock,
      spinner: direction === "read" ? this.#readSpin : this.#writeSpin,
      deadline,
      signal,
      action,
    }, () =>
      reactor().park(
        this.requireOpen(),
        direction,
        this.what,
        deadline,
        signal,
        action,
      ));
  }

  /**
   * {@linkcode SocketFd.wait} for an attempt that would block when it
   * fails with `-EAGAIN`, which is what every recv and send does.
   */
  retry<R>(
    direction: Direction,
    attempt: () => R,
    deadline: Deadline,
    signal: AbortSignal | undefined,
    action: string,
  ): Promise<R> {
    return this.wait(direction, attempt, _isEagain, deadline, signal, action);
  }

  /**
   * Waits until a message, the end of the connection or an error is there,
   * taking nothing: resolves to what a one-byte `MSG_PEEK` receive returns
   * (a count, 0 at the end of a stream, or `-errno`, `-EBADF` once closed).
   */
  peek(
    deadline: Deadline,
    signal: AbortSignal | undefined,
    action: string,
  ): Promise<number> {
    const attempt = () =>
      this.#cell.fd < 0
        ? -ERRNO.EBADF
        : receiveBytes(this.#cell.fd, _peekByte, MSG.PEEK);
    const first = attempt();
    if (first !== -ERRNO.EAGAIN) return Promise.resolve(first);
    return this.retry("read", attempt, deadline, signal, action);
  }

  /**
   * Reads into `into` (a stream socket): resolves to the count, or `null`
   * at the end of the stream. What `FramedChannel` calls through its `io`.
   */
  read(into: Uint8Array): Promise<number | null> {
    const target = into as Uint8Array<ArrayBuffer>;
    const attempt = () =>
      this.#cell.fd < 0 ? -ERRNO.EBADF : this.#read(this.#cell.fd, target);
    const first = attempt();
    if (first !== -ERRNO.EAGAIN) return this.#settledRead(first);
    const action = `read from ${this.what}`;
    return this.retry("read", attempt, FOREVER, undefined, action)
      .then((count) => this.#countRead(count));
  }

  /**
   * Reads into `into` within `wait` (what `FramedChannel` calls to wait):
   * a read that times out or is aborted has taken nothing.
   */
  readWithin(
    into: Uint8Array,
    wait: {
      until: number;
      timeout: number;
      signal?: AbortSignal;
      action: string;
    },
  ): Promise<number | null> {
    const target = into as Uint8Array<ArrayBuffer>;
    const attempt = () =>
      this.#cell.fd < 0 ? -ERRNO.EBADF : this.#read(this.#cell.fd, target);
    const first = attempt();
    if (first !== -ERRNO.EAGAIN) return this.#settledRead(first);
    return this.retry(
      "read",
      attempt,
      { at: wait.until, timeout: wait.timeout },
      wait.signal,
      wait.action,
    ).then((count) => this.#countRead(count));
  }

  /**
   * A read's result: the count, `null` at the end, or the error thrown.
   * Plain values, not promises, in the `.then` of a wait: a promise
   * returned there would cost two more turns of the microtask queue.
   */
  #countRead(count: number): number | null {
    if (count > 0) return count;
    if (count === 0) return null;
    throw this.#error("recv", `read from ${this.what}`, count);
  }

  #settledRead(count: number): Promise<number | null> {
    try {
      return Promise.resolve(this.#countRead(count));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Writes some of `bytes` (a stream socket): resolves to how many the
   * kernel took, waiting while its buffer is full (backpressure).
   */
  write(bytes: Uint8Array): Promise<number> {
    const source = bytes as Uint8Array<ArrayBuffer>;
    const attempt = () =>
      this.#cell.fd < 0 ? -ERRNO.EBADF : this.#write(this.#cell.fd, source);
    const first = attempt();
    if (first !== -ERRNO.EAGAIN) return this.#settledWrite(first);
    const action = `write to ${this.what}`;
    return this.retry("write", attempt, FOREVER, undefined, action)
      .then((count) => this.#countWritten(count));
  }

  #countWritten(count: number): number {
    if (count >= 0) return count;
    throw this.#error("send", `write to ${this.what}`, count);
  }

  #settledWrite(count: number): Promise<number> {
    try {
      return Promise.resolve(this.#countWritten(count));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Reads without waiting (what `FramedChannel` calls first): the count,
   * `null` at the end of the stream, or `undefined` when nothing is there.
   */
  tryRead(into: Uint8Array): number | null | undefined {
    const fd = this.#cell.fd;
    const count = fd < 0
      ? -ERRNO.EBADF
      : this.#read(fd, into as Uint8Array<ArrayBuffer>);
    if (count > 0) return count;
    if (count === 0) return null;
    if (count === -ERRNO.EAGAIN) return undefined;
    throw this.#error("recv", `read from ${this.what}`, count);
  }

  /** Writes without waiting: how many bytes the kernel took, or `undefined` for none. */
  tryWrite(bytes: Uint8Array): number | undefined {
    const fd = this.#cell.fd;
    const count = fd < 0
      ? -ERRNO.EBADF
      : this.#write(fd, bytes as Uint8Array<ArrayBuffer>);
    if (count >= 0) return count;
    if (count === -ERRNO.EAGAIN) return undefined;
    throw this.#error("send", `write to ${this.what}`, count);
  }

  /** Half-close: `shutdown(SHUT_WR)`, so the peer reads the end of the stream. */
  closeWrite(): Promise<void> {
    if (this.#cell.fd < 0 || this.#writeShut) return Promise.resolve();
    this.#writeShut = true;
    const result = shutdownSocket(this.#cell.fd, SHUT.WR);
    // Already disconnected: the peer sees the end either way.
    if (result < 0 && result !== -ERRNO.ENOTCONN) {
      return Promise.reject(
        systemError("shutdown", `half-close ${this.what}`, -result),
      );
    }
    return Promise.resolve();
  }

  /**
   * Accepts one connection: resolves to its descriptor (non-blocking,
   * close-on-exec). A connection reset before it was taken
   * (`ECONNABORTED`) is skipped; other failures (`EMFILE`, …) throw.
   */
  async accept(
    deadline: Deadline,
    signal: AbortSignal | undefined,
    action: string,
  ): Promise<number> {
    const attempt = () =>
      this.#cell.fd < 0 ? -ERRNO.EBADF : acceptSocket(this.#cell.fd);
    const fd = await this.wait(
      "read",
      attempt,
      (result) => result === -ERRNO.EAGAIN || result === -ERRNO.ECONNABORTED,
      deadline,
      signal,
      action,
    );
    if (fd < 0) throw this.#error("accept4", action, fd);
    return fd;
  }

  /**
   * Connects to `address`. A TCP connect that is in progress waits until
   * the socket is writable and then reads its outcome (`SO_ERROR`); a Unix
   * connect refused for a full backlog (`EAGAIN`) is retried with a short
   * backoff, since nothing can be waited on for it.
   */
  async connect(
    address: SocketAddressBytes,
    deadline: Deadline,
    signal: AbortSignal | undefined,
    action: string,
  ): Promise<void> {
    const fd = this.requireOpen();
    let result = connectSocket(fd, address);
    if (result === -ERRNO.EAGAIN) {
      const plan = { deadline, signal, action };
      result = await retryAsync({
        attempt: () =>
          this.#cell.fd < 0 ? -ERRNO.EBADF : connectSocket(fd, address),
        wouldBlock: _isEagain,
        deadline,
        signal,
        action,
      }, backoffPark(_FIRST_BACKOFF_MS, _MAX_BACKOFF_MS, plan));
    }
    if (result === -ERRNO.EINPROGRESS) {
      // Writable means the handshake is over, one way or the other.
      await this.wait(
        "write",
        () => this.#cell.fd < 0 ? -ERRNO.EBADF : _pending(fd),
        (pending) => pending === -ERRNO.EINPROGRESS,
        deadline,
        signal,
        action,
      ).then((outcome) => (result = outcome));
    }
    if (result < 0) throw this.#error("connect", action, result);
  }

  /**
   * Forgets the descriptor in the reactor (its parked waits reject with
   * `BadResource`) and closes it; idempotent.
   */
  close(): void {
    const fd = this.#cell.fd;
    if (fd < 0) return;
    reactor().release(fd);
    libc().symbols.close(fd);
    this.#cell.fd = -1;
    _leaked.unregister(this);
  }

  /** The error for a failed call: closed, the peer gone, or the errno's own. */
  #error(syscall: string, action: string, result: number): Error {
    const errno = -result;
    if (errno === ERRNO.EBADF && this.#cell.fd < 0) {
      return closedError(this.what);
    }
    if (errno === ERRNO.EPIPE) {
      return systemError(syscall, action, errno, "the peer closed its end");
    }
    return systemError(syscall, action, errno);
  }
}

/** read(2): for a pipe, where recv(2) fails with ENOTSOCK. */
function readBytes(fd: number, into: Uint8Array<ArrayBuffer>): number {
  const read = libc().symbols.read;
  return retryTransfer(() => Number(read(fd, into, BigInt(into.byteLength))));
}

/** write(2): for a pipe. */
function writeBytes(fd: number, bytes: Uint8Array<ArrayBuffer>): number {
  const write = libc().symbols.write;
  return retryTransfer(() =>
    Number(write(fd, bytes, BigInt(bytes.byteLength)))
  );
}

function _isEagain(result: unknown): boolean {
  return result === -ERRNO.EAGAIN;
}

/**
 * Where a non-blocking connect stands: `-EINPROGRESS` while it is not
 * over, then 0 or `-errno`. The outcome of a failed connect is the
 * socket's pending error (`SO_ERROR`); while the handshake is still on,
 * there is none yet and `getpeername` says ENOTCONN.
 */
function _pending(fd: number): number {
  const error = socketError(fd);
  if (error < 0) return error;
  if (error > 0) return -error;
  const peer = peerAddressOf(fd);
  return peer === -ERRNO.ENOTCONN ? -ERRNO.EINPROGRESS : 0;
}
