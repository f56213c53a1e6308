/**
 * The parent's side of `spawn()`'s fast channel: a Unix socket the child
 * connects to, with its stdin and stdout as the fallback.
 *
 * `Deno.Command` cannot hand a child any descriptor beyond stdio, and Deno
 * reads and writes a child's stdio on its thread pool, which costs every
 * message a thread hand-off. So the parent listens on a fresh abstract
 * Unix socket (no file; a random 128-bit name) and names it in the child's
 * environment (`IPCKIT_PARENT_CHANNEL=<parent pid>:<name>`). A child that
 * calls `parentChannel()` with `--allow-ffi` connects to it; any other
 * child (no `--allow-ffi`, not ipckit, not Deno) ignores it and uses stdio.
 *
 * The parent cannot know in advance which the child will do, so:
 *
 * - Until one is chosen, messages to the child go to its stdin.
 * - A connection is taken only from the child itself: its pid, as the
 *   kernel recorded it at connect (`SO_PEERCRED`), must be the child's.
 *   Anyone else who finds the name (abstract names are listed in
 *   `/proc/net/unix`) is closed unread.
 * - The first of these decides, once: the child's connection (then its
 *   stdin is closed after what was written to it, and every later message
 *   goes over the socket; the child reads its stdin to the end first, so
 *   nothing is reordered), or the first bytes on its stdout (then the
 *   listener is closed and stdio it is). A child that takes the socket
 *   connects before it can print, so bytes on stdout decide only after one
 *   more look at the listener's queue; and a connection is switched to in
 *   the very step that accepts it, so that look cannot miss one that was
 *   accepted but not yet acted on.
 * - After the switch, whatever the child still writes to stdout is copied
 *   to this process's stderr, so a log line neither blocks the child nor
 *   corrupts the channel.
 *
 * @module
 */

import {
  acceptSocket,
  AF,
  bindSocket,
  listenSocket,
  openSocket,
  peerCredentials,
  requireLinuxSockets,
  SOCK,
  unixAddress,
} from "../../ffi/socket.ts";
import { ERRNO } from "../../ffi/errno.ts";
import { libc } from "../../ffi/load.ts";
import { SocketFd } from "../_socket/descriptor.ts";
import { FOREVER, raceDeadline } from "../_wait/deadline.ts";

/** The environment variable that names the socket to the child. */
export const PARENT_CHANNEL_ENV = "IPCKIT_PARENT_CHANNEL";

/** What bounds a read that may give up (FramedChannel's `ByteIOWait`). */
export interface LinkWait {
  until: number;
  timeout: number;
  signal?: AbortSignal;
  action: string;
}

/** A direction of the channel as `FramedChannel` reads or writes it (its `io`). */
export interface LinkIo {
  /** Reads some bytes; `null` at the end. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Reads without waiting: `undefined` when nothing is there. */
  tryRead?(buffer: Uint8Array): number | null | undefined;
  /** A read within `wait` that takes nothing when it gives up. */
  readWithin?(buffer: Uint8Array, wait: LinkWait): Promise<number | null>;
  /** Writes some bytes; resolves to the count written. */
  write(bytes: Uint8Array): Promise<number>;
  /** Writes without waiting: `undefined` when none could be. */
  tryWrite?(bytes: Uint8Array): number | undefined;
  /** Half-close. */
  closeWrite(): Promise<void>;
  /** Releases this direction. */
  close(): void;
}

/** A listener waiting for one child, and what the child's environment must say. */
export interface ChildInvitation {
  /** `IPCKIT_PARENT_CHANNEL`'s value for the child. */
  value: string;
  /** The listening socket. */
  listener: SocketFd;
}

/**
 * Listens on a fresh abstract name for a child about to be spawned, or
 * returns undefined where that cannot be done here (no `--allow-ffi`, not
 * Linux, or the socket fails): the child then talks over stdio.
 */
export function inviteChild(): ChildInvitation | undefined {
  try {
    requireLinuxSockets("offer a child a socket");
    libc();
  } catch {
    return undefined;
  }
  const random = Array.from(
    crypto.getRandomValues(new Uint8Array(16)),
    (byte) => byte.toString(16).padStart(2, "0"),
  ).join("");
  const name = `ipckit-spawn-${Deno.pid}-${random}`;
  const fd = openSocket(AF.UNIX, SOCK.STREAM);
  if (fd < 0) return undefined;
  if (
    bindSocket(fd, unixAddress(name, true)) < 0 || listenSocket(fd, 8) < 0
  ) {
    libc().symbols.close(fd);
    return undefined;
  }
  return {
    value: `${Deno.pid}:${name}`,
    listener: new SocketFd(fd, `the socket offered to a child (@${name})`),
  };
}

/**
 * Both directions of a child's channel, over its stdio until the child
 * connects to the invitation's socket, and over that socket after.
 */
export class ChildLink {
  /** What `FramedChannel` reads the child's messages from. */
  readonly incoming: LinkIo;
  /** What `FramedChannel` writes messages to the child to. */
  readonly outgoing: LinkIo;
  #mode: "undecided" | "stdio" | "socket" = "undecided";
  #pid: number;
  #what: string;
  #listener: SocketFd | undefined;
  #socket: SocketFd | undefined;
  #accepted: Promise<void>;
  #stdout: ReadableStreamDefaultReader<Uint8Array>;
  #pendingStdout: Promise<ReadableStreamReadResult<Uint8Array>> | undefined;
  #leftover: Uint8Array | undefined;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #stdinWrite: Promise<unknown> = Promise.resolve();
  #stdinClosed: Promise<void> | undefined;
  // Whether stdin is closed after what was written to it: socket writes may go.
  #stdinDone = false;
  #writeClosed = false;
  #incomingClosed = false;
  #outgoingClosed = false;

  /**
   * @param invitation the listener made before spawning, or undefined for
   * stdio only
   */
  constructor(
    stdout: ReadableStream<Uint8Array>,
    stdin: WritableStream<Uint8Array>,
    pid: number,
    what: string,
    invitation: ChildInvitation | undefined,
  ) {
    this.#pid = pid;
    this.#what = what;
    this.#stdout = stdout.getReader();
    this.#stdin = stdin.getWriter();
    this.#listener = invitation?.listener;
    if (!this.#listener) this.#mode = "stdio";
    this.#accepted = this.#acceptChild();
    this.incoming = {
      read: (buffer) => this.#read(buffer),
      tryRead: (buffer) => this.#tryRead(buffer),
      readWithin: (buffer, wait) => this.#readWithin(buffer, wait),
      write: () => Promise.reject(new TypeError("incoming only")),
      closeWrite: () => Promise.resolve(),
      close: () => this.#closeIncoming(),
    };
    this.outgoing = {
      read: () => Promise.reject(new TypeError("outgoing only")),
      write: (bytes) => this.#write(bytes),
      tryWrite: (bytes) =>
        this.#mode === "socket" && this.#stdinDone
          ? this.#socket!.tryWrite(bytes)
          : undefined,
      closeWrite: () => this.#closeWrite(),
      close: () => this.#closeOutgoing(),
    };
  }

  /** `"socket"` once the child connected, `"stdio"` once it used stdout; for tests. */
  get mode(): "undecided" | "stdio" | "socket" {
    return this.#mode;
  }

  /** Stops offering the socket (the child exited, or the channel closed). */
  withdraw(): void {
    this.#listener?.close();
    this.#listener = undefined;
  }

  /**
   * Waits for the child's connection until it arrives or the offer is
   * withdrawn. The connection is accepted and switched to inside the wait's
   * own attempt, never in a later continuation: otherwise a stdout read
   * that resolves in between would find the queue empty (the connection
   * taken but not yet looked at) and wrongly decide for stdio.
   */
  async #acceptChild(): Promise<void> {
    const listener = this.#listener;
    if (!listener) return;
    try {
      await listener.wait(
        "read",
        () => this.#takeQueued(listener),
        (outcome) => outcome === "waiting",
        FOREVER,
        undefined,
        `accept the child's connection on ${listener.what}`,
      );
    } catch {
      // Withdrawn or closed: stdio it is.
    }
  }

  /**
   * Takes the child's connection if it waits in the listener's queue now,
   * closing unread any connection from another process: `"taken"`,
   * `"waiting"` when the queue is empty, or `"over"` when nothing more is
   * to be accepted (decided, withdrawn, or accept failed, e.g. `EMFILE`).
   */
  #takeQueued(listener: SocketFd): "taken" | "waiting" | "over" {
    for (;;) {
      if (listener.closed || this.#mode !== "undecided") return "over";
      const fd = acceptSocket(listener.fd);
      if (fd === -ERRNO.EAGAIN) return "waiting";
      if (fd === -ERRNO.ECONNABORTED) continue;
      if (fd < 0) return "over";
      const peer = peerCredentials(fd);
      if (typeof peer !== "number" && peer.pid === this.#pid) {
        this.#switchToSocket(new SocketFd(fd, this.#what));
        return "taken";
      }
      libc().symbols.close(fd);
    }
  }

  #switchToSocket(socket: SocketFd): void {
    this.#mode = "socket";
    this.#socket = socket;
    this.withdraw();
    // What was written to stdin stays first: the child reads stdin to its
    // end before the socket.
    this.#stdinClosed = this.#stdinWrite.then(() => {}, () => {}).then(() =>
      this.#stdin.close().catch(() => {})
    ).then(() => {
      this.#stdinDone = true;
    });
    if (this.#writeClosed) {
      this.#stdinClosed.then(() => socket.closeWrite()).catch(() => {});
    }
    this.#forwardStdout();
  }

  /** Copies the child's stdout to this process's stderr once it is no longer the channel. */
  async #forwardStdout(): Promise<void> {
    try {
      for (;;) {
        const { done, value } = await (this.#pendingStdout ??
          this.#stdout.read());
        this.#pendingStdout = undefined;
        if (done) return;
        await Deno.stderr.write(value);
      }
    } catch {
      // The channel closed, or stderr is gone: nothing to copy to.
    }
  }

  /** A read that does not wait: `undefined` when nothing is there yet. */
  #tryRead(buffer: Uint8Array): number | null | undefined {
    if (this.#mode === "socket") return this.#socket!.tryRead(buffer);
    return this.#leftover ? this.#copyLeftover(buffer) : undefined;
  }

  /**
   * A read within `wait` that takes nothing when it gives up: a stdout
   * read it was waiting for stays for the next call, and its bytes are
   * copied only into a buffer whose caller still waits.
   */
  async #readWithin(
    buffer: Uint8Array,
    wait: LinkWait,
  ): Promise<number | null> {
    const deadline = { at: wait.until, timeout: wait.timeout };
    if (this.#mode === "undecided") {
      await raceDeadline(this.#decide(), deadline, wait.signal, wait.action);
    }
    if (this.#mode === "socket") {
      return await this.#socket!.readWithin(buffer, wait);
    }
    if (!this.#leftover) {
      this.#pendingStdout ??= this.#stdout.read();
      const { done, value } = await raceDeadline(
        this.#pendingStdout,
        deadline,
        wait.signal,
        wait.action,
      );
      this.#pendingStdout = undefined;
      if (done) return null;
      this.#leftover = value;
    }
    return this.#copyLeftover(buffer);
  }

  #copyLeftover(buffer: Uint8Array): number {
    const chunk = this.#leftover!;
    const count = Math.min(chunk.byteLength, buffer.byteLength);
    buffer.set(chunk.subarray(0, count));
    this.#leftover = count < chunk.byteLength
      ? chunk.subarray(count)
      : undefined;
    return count;
  }

  async #read(buffer: Uint8Array): Promise<number | null> {
    if (this.#mode === "undecided") await this.#decide();
    if (this.#mode === "socket") return await this.#socket!.read(buffer);
    if (!this.#leftover) {
      const { done, value } = await (this.#pendingStdout ??
        this.#stdout.read());
      this.#pendingStdout = undefined;
      if (done) return null;
      this.#leftover = value;
    }
    return this.#copyLeftover(buffer);
  }

  /** Waits for the child's connection or its first bytes on stdout, whichever comes first. */
  async #decide(): Promise<void> {
    this.#pendingStdout ??= this.#stdout.read();
    const stdout = this.#pendingStdout.then(() => "stdout" as const);
    const winner = await Promise.race([
      stdout,
      this.#accepted.then(() => "accepted" as const),
    ]);
    if (this.#mode !== "undecided") return;
    if (winner === "accepted") {
      // Withdrawn without a connection (the child exited): stdio it is.
      await stdout;
    }
    // A child that took the socket connected before it could print
    // anything (its connect returns before parentChannel() does), so its
    // connection is queued already even if the accept loop has not run yet.
    if (this.#listener) this.#takeQueued(this.#listener);
    if (this.#mode === "undecided") {
      this.#mode = "stdio";
      this.withdraw();
    }
  }

  async #write(bytes: Uint8Array): Promise<number> {
    if (this.#mode === "socket") {
      await this.#stdinClosed;
      return await this.#socket!.write(bytes);
    }
    const written = this.#stdin.write(bytes);
    this.#stdinWrite = written;
    await written;
    return bytes.byteLength;
  }

  async #closeWrite(): Promise<void> {
    this.#writeClosed = true;
    if (this.#mode === "socket") {
      await this.#stdinClosed;
      await this.#socket!.closeWrite();
      return;
    }
    await this.#stdinWrite.catch(() => {});
    await this.#stdin.close();
  }

  #closeIncoming(): void {
    if (this.#incomingClosed) return;
    this.#incomingClosed = true;
    this.withdraw();
    // Over the socket, stdout is the child's log: it is copied to its end
    // (the child's exit), not cut off.
    if (this.#mode !== "socket") this.#stdout.cancel().catch(() => {});
    this.#release();
  }

  #closeOutgoing(): void {
    if (this.#outgoingClosed) return;
    this.#outgoingClosed = true;
    this.#stdin.abort().catch(() => {});
    if (this.#socket && !this.#incomingClosed) {
      this.#socket.closeWrite().catch(() => {});
    }
    this.#release();
  }

  #release(): void {
    if (this.#incomingClosed && this.#outgoingClosed) this.#socket?.close();
  }
}
