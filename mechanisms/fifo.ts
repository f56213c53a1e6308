/**
 * Named pipes (FIFOs): a byte stream that unrelated processes find by path,
 * carrying typed messages with {@linkcode FramedChannel} framing.
 *
 * A FIFO is one-way: one side opens it for reading, the other for writing.
 * {@linkcode Fifo.duplex} joins two FIFOs into a two-way channel between a
 * server and a client.
 *
 * Waiting never freezes the event loop. Every descriptor is opened with
 * `O_NONBLOCK`:
 *
 * - A reader opens at once (its existence is what lets writers in). Its first
 *   `receive()` waits for the first writer: before any writer has come, a
 *   non-blocking read returns 0 just as at end of stream, so ipckit only
 *   treats 0 as the end once a writer has been seen (data arrived, or Linux
 *   reported POLLHUP, which it does only after a writer came and went).
 *   When that writer closes, iteration ends, as `cat fifo` does.
 * - A writer's open fails with ENXIO while no reader exists; `openWriter`
 *   retries with a short backoff (1 ms doubling to 25 ms) until a reader
 *   comes, the `timeout` passes or the `signal` aborts. `{ nonBlocking: true }`
 *   fails at once instead.
 * - Reads and writes then park on the reactor (one `epoll_wait` for every
 *   descriptor of the process) when they would block.
 *
 * Several writers: the kernel writes at most PIPE_BUF bytes (4096 on Linux)
 * whole, so larger frames from two writers can interleave, and a writer
 * killed in the middle of a frame leaves half of it for the reader, which
 * then misreads every other writer's messages. Declare such a FIFO shared:
 * `{ sharedWriters: true }` on every writer (and on the reader) holds each
 * frame, header included, to PIPE_BUF bytes and writes it with one
 * write(2), which the kernel performs whole or not at all. A larger
 * message is a `RangeError` before anything is written. A shared reader
 * holds a write end of its own, so writers may come and go without ending
 * its stream; a frame header it cannot trust (one announcing more than a
 * shared frame can hold: a writer that did not declare the FIFO shared)
 * cannot be skipped, since nothing marks where the next frame starts, so
 * it is a `DecodeError` and the reader closes, as for any broken stream.
 *
 * Safety: the path checked is the path opened. Its directory is opened
 * first and Deno's permission is checked on the directory's real path
 * (symbolic links followed) joined with the file name, so a link inside an
 * allowed directory does not reach outside it; the FIFO is then opened
 * relative to that directory, a final symbolic link is never followed
 * (`O_NOFOLLOW`), and anything at the path that is not a FIFO is refused,
 * both before and after opening. `Fifo.create` adopts an existing FIFO only
 * when it is the caller's own (see {@linkcode FifoCreateOptions.adopt});
 * removing a FIFO never removes another file put in its place. Writing
 * after the reader has gone fails with `Deno.errors.BrokenPipe`; the process
 * is never killed by SIGPIPE, which Deno ignores.
 *
 * Permissions: `--allow-ffi`, plus `--allow-write` on the path to create,
 * remove or write, `--allow-read` on the path to read: on the path as given
 * and on its real location, where they differ.
 *
 * Cleanup follows the rule of every named object in ipckit: a FIFO stays
 * in the file system after its handles close, for other processes, unless
 * the handle that opened it was given `unlinkOnClose: true` (then closing
 * it removes that FIFO, never another file put in its place).
 *
 * @example Lines that `echo` and `cat` understand
 * ```ts
 * import { codecs, Fifo } from "@ipckit/ipckit";
 *
 * const path = `/tmp/greetings-${Deno.pid}`;
 * using _fifo = Fifo.create(path, { unlinkOnClose: true });
 * await using reader = await Fifo.openReader(path, {
 *   framing: "lines",
 *   codec: codecs.text(),
 * });
 * // Any program can write lines into it: here, echo.
 * await new Deno.Command("sh", { args: ["-c", `echo hello > ${path}`] }).output();
 * for await (const { value } of reader) console.log(value); // hello
 * ```
 *
 * @module
 */

import { O, PIPE_BUF, S_IFLNK, S_IFMT } from "../ffi/c.ts";
import { ERRNO } from "../ffi/errno.ts";
import { libc } from "../ffi/load.ts";
import { type FileStatus, sameFile, statFd } from "../ffi/stat.ts";
import type { WaitOptions } from "./channel.ts";
import type { Codec } from "./codec.ts";
import { codecs } from "./codec.ts";
import { FramedChannel, type FramedChannelOptions } from "./framing.ts";
import {
  checkFlag,
  checkMode,
  checkOptionKeys,
  optionKeys,
} from "./_common/checks.ts";
import { systemError } from "./_common/system_error.ts";
import { Lifecycle, unlinkQuietly, watchDropped } from "./_common/lifecycle.ts";
import { type FdHandle, fdReadable, fdWritable } from "./_stream/fd_streams.ts";
import { checkAdoptOption, requireAdoptable } from "./_kernel/adoption.ts";
import { AnchoredPath } from "./_kernel/anchored_path.ts";
import {
  describeFileType,
  isFifoType,
  lstatType,
} from "./_kernel/file_type.ts";
import { checkFilePath } from "./_kernel/paths.ts";
import { requirePermission } from "./_kernel/permissions.ts";
import { checkFramingOptions } from "./_stream/options.ts";
import { FRAME_HEADER_BYTES } from "./_stream/frames.ts";
import { type Deadline, deadlineOf } from "./_wait/deadline.ts";
import { backoffPark, retryAsync } from "./_wait/retry.ts";

/**
 * How to create a FIFO.
 *
 * @example A FIFO the owner's group may use, and that must not exist yet
 * ```ts
 * import type { FifoCreateOptions } from "@ipckit/ipckit";
 *
 * const options: FifoCreateOptions = { mode: 0o660, exclusive: true };
 * ```
 *
 * @category FIFOs and pipes
 */
export interface FifoCreateOptions {
  /** Permission bits, before the process umask is applied. Default `0o600`. */
  mode?: number;
  /**
   * Fail with `AlreadyExists` if a FIFO is already at the path. Default
   * `false`: an existing FIFO is used, as `adopt` allows.
   */
  exclusive?: boolean;
  /**
   * Which existing FIFO to use when one is already at the path.
   * `"owned"` (default): only one owned by this process's effective uid,
   * whose mode grants nothing beyond `mode` and which has no other hard
   * link; any other fails with `PermissionDenied` naming its owner and
   * mode. `"any-owner"`: any FIFO, whoever made it. Cannot be combined with
   * `exclusive`.
   */
  adopt?: "owned" | "any-owner";
  /**
   * Remove the FIFO when this handle closes, whether it created or adopted
   * it: that FIFO, never another file put in its place. Default `false`:
   * the FIFO stays for other processes, like every named object.
   */
  unlinkOnClose?: boolean;
}

/**
 * How to open the reading end of a FIFO. The open itself never waits; the
 * first `receive()` waits for the first writer and takes its own
 * `{ timeout, signal }`.
 *
 * @example A reader of text lines
 * ```ts
 * import { codecs, type FifoReaderOptions } from "@ipckit/ipckit";
 *
 * const options: FifoReaderOptions<string> = { framing: "lines", codec: codecs.text() };
 * ```
 *
 * @category FIFOs and pipes
 */
export interface FifoReaderOptions<T>
  extends
    Pick<FramedChannelOptions<T>, "codec" | "framing" | "maxMessageSize"> {
  /**
   * Several processes write to this FIFO (see the module doc): frames are
   * at most PIPE_BUF bytes, so `maxMessageSize` defaults to (and may not
   * exceed) {@linkcode SHARED_FIFO_MAX_MESSAGE} less one for `"lines"`; and
   * the reader keeps a write end of its own open, so its stream does not
   * end when the last writer leaves (iteration ends when it is closed).
   * That write end needs `--allow-write` on the path. Default `false`.
   */
  sharedWriters?: boolean;
}

/**
 * How to open the writing end of a FIFO.
 *
 * @example A writer that waits at most 5 s for a reader
 * ```ts
 * import type { FifoWriterOptions } from "@ipckit/ipckit";
 *
 * const options: FifoWriterOptions<{ id: number }> = { timeout: 5000 };
 * ```
 *
 * @category FIFOs and pipes
 */
export interface FifoWriterOptions<T>
  extends
    Pick<FramedChannelOptions<T>, "codec" | "framing" | "maxMessageSize">,
    WaitOptions {
  /**
   * Fail at once with an `IpcError` (code `ENXIO`) when no process has the
   * FIFO open for reading, instead of waiting for a reader. Default `false`.
   */
  nonBlocking?: boolean;
  /**
   * Other processes write to this FIFO too (see the module doc): every
   * frame, header included, is at most PIPE_BUF bytes and is written with
   * one write(2), so no other writer's bytes can land inside it and a
   * writer killed at any moment leaves no partial frame. A message above
   * {@linkcode SHARED_FIFO_MAX_MESSAGE} bytes (one less for `"lines"`) is a
   * `RangeError` before anything is written. Default `false`.
   */
  sharedWriters?: boolean;
}

/**
 * How to join a {@linkcode Fifo.duplex} channel.
 *
 * @example The client end of a pair
 * ```ts
 * import type { FifoDuplexOptions } from "@ipckit/ipckit";
 *
 * const options: FifoDuplexOptions<string> = { role: "client", timeout: 5000 };
 * ```
 *
 * @category FIFOs and pipes
 */
export interface FifoDuplexOptions<T>
  extends
    Pick<FramedChannelOptions<T>, "codec" | "framing" | "maxMessageSize">,
    WaitOptions {
  /**
   * `"server"` creates both FIFOs (if missing); `"client"` waits for them
   * to appear.
   */
  role: "server" | "client";
  /**
   * Remove both FIFOs when this channel closes (the ones it opened, never
   * other files put in their place). Default `false`: they stay for the
   * next client or server, like every named object.
   */
  unlinkOnClose?: boolean;
  /** Permission bits of FIFOs the server creates. Default `0o600`. */
  mode?: number;
  /**
   * Which existing FIFOs the server uses, as {@linkcode FifoCreateOptions.adopt}.
   * Server only. Default `"owned"`.
   */
  adopt?: "owned" | "any-owner";
}

// The FIFOs of a Fifo.duplex pair: client to server, server to client.
const _TO_SERVER_SUFFIX = ".to-server";
const _TO_CLIENT_SUFFIX = ".to-client";

/**
 * The largest message of a FIFO opened with `sharedWriters` under
 * `"frames"` framing: PIPE_BUF less the 4-byte header (4092 bytes on
 * Linux). Under `"lines"` it is one less again, for the newline.
 *
 * @category FIFOs and pipes
 */
export const SHARED_FIFO_MAX_MESSAGE = PIPE_BUF - FRAME_HEADER_BYTES;

const _CREATE_KEYS = optionKeys<FifoCreateOptions>({
  mode: true,
  exclusive: true,
  adopt: true,
  unlinkOnClose: true,
});
const _READER_KEYS = optionKeys<FifoReaderOptions<unknown>>({
  codec: true,
  framing: true,
  maxMessageSize: true,
  sharedWriters: true,
});
const _WRITER_KEYS = optionKeys<FifoWriterOptions<unknown>>({
  codec: true,
  framing: true,
  maxMessageSize: true,
  timeout: true,
  signal: true,
  nonBlocking: true,
  sharedWriters: true,
});
const _DUPLEX_KEYS = optionKeys<FifoDuplexOptions<unknown>>({
  codec: true,
  framing: true,
  maxMessageSize: true,
  timeout: true,
  signal: true,
  role: true,
  mode: true,
  adopt: true,
  unlinkOnClose: true,
});

/**
 * First and longest wait between two attempts to open a writer or find a
 * path: neither a missing reader nor a missing path can be waited on.
 */
const _FIRST_BACKOFF_MS = 1;
const _MAX_BACKOFF_MS = 25;

/** Closes the descriptors of a channel dropped without close(). */
function _closeAll(handles: FdHandle[]): () => void {
  return () => {
    for (const handle of handles) {
      if (handle.fd >= 0) libc().symbols.close(handle.fd);
      handle.fd = -1;
    }
  };
}

/**
 * A named pipe in the filesystem. `Fifo.create()` makes one; the static
 * `openReader`, `openWriter` and `duplex` open typed channels on any FIFO,
 * created here or by `mkfifo(1)`.
 *
 * The FIFO stays at its path when the handle closes, unless it was made
 * with `unlinkOnClose: true`.
 *
 * @example A writer and a reader in one process
 * ```ts
 * import { Fifo } from "@ipckit/ipckit";
 *
 * const path = `/tmp/jobs-${Deno.pid}`;
 * using fifo = Fifo.create(path, { unlinkOnClose: true });
 * await using reader = await fifo.openReader<{ id: number }>();
 * await using writer = await fifo.openWriter<{ id: number }>({ timeout: 1000 });
 * await writer.send({ id: 1 });
 * console.log((await reader.receive()).value.id); // 1
 * ```
 *
 * @category FIFOs and pipes
 */
export class Fifo implements Disposable, AsyncDisposable {
  #path: string;
  #created: boolean;
  #identity: _Identity;
  #unlinkOnClose: boolean;
  #life: Lifecycle;
  #removed = false;

  private constructor(
    path: string,
    created: boolean,
    identity: _Identity,
    unlinkOnClose: boolean,
  ) {
    this.#path = path;
    this.#created = created;
    this.#identity = identity;
    this.#unlinkOnClose = unlinkOnClose;
    this.#life = new Lifecycle(`FIFO "${path}"`);
  }

  /**
   * Creates a FIFO at `path` with `mkfifo(3)`, or adopts a FIFO already
   * there (unless `exclusive`; only the caller's own, unless `adopt`).
   *
   * Cleanup: the FIFO stays after its handles close, for other
   * processes, unless this handle is opened with `unlinkOnClose: true`
   * (the one rule of every named object; see the README's "Cleaning up").
   *
   * @throws {TypeError} for an invalid path or mode, before any system call
   * @throws {Deno.errors.NotCapable} without `--allow-write` on the path
   * (as given and where it really leads)
   * @throws {Deno.errors.AlreadyExists} when something that is not a FIFO
   * (a file, a directory, a symbolic link) is at the path, or with
   * `exclusive` when a FIFO is
   * @throws {Deno.errors.PermissionDenied} when the FIFO there belongs to
   * another user, has a wider mode than `mode` or another hard link (see
   * `adopt`), or when the kernel denies writing the parent directory
   * @throws {Deno.errors.NotFound} when the parent directory does not exist
   *
   * @example Create a FIFO, or adopt the caller's own
   * ```ts
   * import { Fifo } from "@ipckit/ipckit";
   *
   * using fifo = Fifo.create(`/tmp/jobs-${Deno.pid}`, {
   *   mode: 0o600,
   *   unlinkOnClose: true,
   * });
   * console.log(fifo.created); // true, unless it was there already
   * ```
   */
  static create(path: string | URL, options: FifoCreateOptions = {}): Fifo {
    checkOptionKeys(options, _CREATE_KEYS, `create FIFO "${String(path)}"`);
    const file = checkFilePath(path, "create FIFO");
    const action = `create FIFO "${file}"`;
    // Only undefined means the default: a null mode is an error here.
    const mode = checkMode(
      options.mode === undefined ? 0o600 : options.mode,
      action,
    );
    checkFlag(options.exclusive, "exclusive", action);
    checkFlag(options.unlinkOnClose, "unlinkOnClose", action);
    const unlinkOnClose = options.unlinkOnClose ?? false;
    const adopt = checkAdoptOption(
      options.adopt,
      true,
      options.exclusive,
      action,
    );
    using at = AnchoredPath.open(file, ["write"], action);
    const made = at.makeFifo(mode);
    if (made === 0) {
      return new Fifo(file, true, _fifoAt(at, action), unlinkOnClose);
    }
    const errno = -made;
    if (errno !== ERRNO.EEXIST) throw _createError(file, errno);
    const status = at.stat();
    if (typeof status === "number") throw systemError("lstat", action, -status);
    const type = status.mode & S_IFMT;
    if (!isFifoType(type)) {
      throw systemError(
        "mkfifo",
        action,
        errno,
        `the path already exists and is ${
          describeFileType(type)
        }, not a FIFO; ipckit neither replaces nor follows it`,
      );
    }
    if (options.exclusive) {
      throw systemError(
        "mkfifo",
        action,
        errno,
        "a FIFO already exists there (exclusive: true)",
      );
    }
    requireAdoptable(status, mode, adopt, "mkfifo", action);
    return new Fifo(file, false, status, unlinkOnClose);
  }

  /**
   * Removes the FIFO at `path`. Processes that have it open keep their
   * descriptors; the pipe goes away when the last one closes. Anything else
   * at the path is left alone, also when it takes the FIFO's place while
   * this runs.
   *
   * @throws {Deno.errors.NotFound} when nothing is at the path
   * @throws {Deno.errors.AlreadyExists} when the path is not a FIFO (it is left alone)
   * @throws {Deno.errors.NotCapable} without `--allow-write` on the path
   * (as given and where it really leads)
   *
   * @example Remove a FIFO that outlived its handle
   * ```ts
   * import { Fifo } from "@ipckit/ipckit";
   *
   * const path = `/tmp/jobs-${Deno.pid}`;
   * Fifo.create(path).close(); // the FIFO stays
   * Fifo.unlink(path); // now it is gone
   * ```
   */
  static unlink(path: string | URL): void {
    const file = checkFilePath(path, "remove FIFO");
    _removeFifo(file, undefined);
  }

  /**
   * Opens the reading end of the FIFO at `path`. Resolves at once: a reader
   * does not wait for a writer, its first `receive()` does. Iteration ends
   * when the last writer closes after having written.
   *
   * @throws {Deno.errors.NotCapable} without `--allow-read` on the path (as
   * given and where it really leads)
   * @throws {Deno.errors.NotFound} when nothing is at the path
   * @throws {IpcError} when the path is not a FIFO (code `EINVAL`) or is a
   * symbolic link (code `ELOOP`)
   *
   * @example Read until the writer closes
   * ```ts
   * import { Fifo } from "@ipckit/ipckit";
   *
   * const path = `/tmp/jobs-${Deno.pid}`;
   * using _fifo = Fifo.create(path, { unlinkOnClose: true });
   * await using reader = await Fifo.openReader<{ id: number }>(path);
   * {
   *   await using writer = await Fifo.openWriter<{ id: number }>(path);
   *   await writer.send({ id: 1 });
   * } // the writer closes: the reader's iteration ends
   * for await (const { value } of reader) console.log(value.id); // 1
   * ```
   */
  static openReader<T = unknown>(
    path: string | URL,
    options: FifoReaderOptions<T> = {},
  ): Promise<FramedChannel<T>> {
    return Fifo.#openReader(path, options, undefined);
  }

  static #openReader<T>(
    path: string | URL,
    options: FifoReaderOptions<T>,
    expected: _Identity | undefined,
  ): Promise<FramedChannel<T>> {
    try {
      checkOptionKeys(
        options,
        _READER_KEYS,
        `open FIFO "${String(path)}" for reading`,
      );
      const file = checkFilePath(path, "open FIFO");
      const action = `open FIFO "${file}" for reading`;
      checkFramingOptions(options, action);
      const shared = _sharedFraming(options, `FIFO "${file}"`, action);
      requirePermission("read", file);
      if (shared) requirePermission("write", file);
      const handle = { fd: _openFifo(file, O.RDONLY, action, expected) };
      // A shared reader's own write end: while it is open, the last writer
      // leaving is not the end of the stream (read() waits, never returns 0).
      const keeper = { fd: -1 };
      if (shared) {
        try {
          keeper.fd = _openFifo(file, O.WRONLY, action, expected);
        } catch (error) {
          libc().symbols.close(handle.fd);
          throw error;
        }
      }
      let disarm = () => {};
      const channel = new FramedChannel<T>({
        ..._framingOf(options),
        ...shared,
        readable: fdReadable(handle, `FIFO "${file}"`, {
          awaitFirstWriter: true,
        }),
        description: `FIFO "${file}"`,
        onClose: () => {
          disarm();
          if (keeper.fd >= 0) libc().symbols.close(keeper.fd);
          keeper.fd = -1;
        },
      });
      disarm = watchDropped(channel, _closeAll([handle, keeper]));
      return Promise.resolve(channel);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Opens the writing end of the FIFO at `path`, waiting (without blocking
   * the event loop) until some process has it open for reading.
   *
   * @throws {Deno.errors.NotCapable} without `--allow-write` on the path (as
   * given and where it really leads)
   * @throws {Deno.errors.NotFound} when nothing is at the path
   * @throws {Deno.errors.TimedOut} when no reader comes before `timeout`
   * @throws {IpcError} code `ENXIO` with `nonBlocking: true` and no reader;
   * code `EINVAL` when the path is not a FIFO, `ELOOP` for a symbolic link
   *
   * @example Open a writer once a reader is there
   * ```ts
   * import { Fifo } from "@ipckit/ipckit";
   *
   * const path = `/tmp/jobs-${Deno.pid}`;
   * using _fifo = Fifo.create(path, { unlinkOnClose: true });
   * await using reader = await Fifo.openReader<{ id: number }>(path);
   * await using writer = await Fifo.openWriter<{ id: number }>(path, { timeout: 5000 });
   * await writer.send({ id: 1 });
   * ```
   */
  static openWriter<T = unknown>(
    path: string | URL,
    options: FifoWriterOptions<T> = {},
  ): Promise<FramedChannel<T>> {
    return Fifo.#openWriter(path, options, undefined);
  }

  static async #openWriter<T>(
    path: string | URL,
    options: FifoWriterOptions<T>,
    expected: _Identity | undefined,
  ): Promise<FramedChannel<T>> {
    checkOptionKeys(
      options,
      _WRITER_KEYS,
      `open FIFO "${String(path)}" for writing`,
    );
    const file = checkFilePath(path, "open FIFO");
    const action = `open FIFO "${file}" for writing`;
    checkFramingOptions(options, action);
    const shared = _sharedFraming(options, `FIFO "${file}"`, action);
    checkFlag(options.nonBlocking, "nonBlocking", action);
    const deadline = deadlineOf(options, action);
    // As Deno would check it, before any system call; each attempt checks
    // the real location again.
    requirePermission("write", file);
    const fd = await _openWriterFd(file, action, options, deadline, expected);
    const handle = { fd };
    // Each frame is one chunk of the stream, and the stream writes a chunk
    // with one write(2) when it fits PIPE_BUF: the kernel then writes it
    // whole (or, non-blocking, not at all), which is what sharing needs.
    let disarm = () => {};
    const channel = new FramedChannel<T>({
      ..._framingOf(options),
      ...shared,
      writable: fdWritable(handle, `FIFO "${file}"`),
      description: `FIFO "${file}"`,
      onClose: () => disarm(),
    });
    disarm = watchDropped(channel, _closeAll([handle]));
    return channel;
  }

  /**
   * A two-way channel over two FIFOs, `<basePath>.to-server` and
   * `<basePath>.to-client`. The server creates them (if missing) and removes
   * those it created when its channel closes; the client waits for them to
   * appear. Either side may start first. Resolves once both directions are
   * open, that is once the peer has joined. The channel sends `TSend` and
   * receives `TReceive` (default `TSend`), seen from this side: a server
   * `Fifo.duplex<Reply, Request>()` talks to a client
   * `Fifo.duplex<Request, Reply>()`. The FIFOs stay when the channel closes,
   * unless `unlinkOnClose`.
   *
   * @throws {Deno.errors.TimedOut} when the peer does not join before `timeout`
   * @throws {Deno.errors.NotCapable} without `--allow-read` and `--allow-write`
   * on both paths
   *
   * @example A server that answers one request
   * ```ts
   * import { Fifo } from "@ipckit/ipckit";
   *
   * const base = `/tmp/echo-${Deno.pid}`;
   * // Either side may start first; each resolves once the other has joined.
   * const [server, client] = await Promise.all([
   *   Fifo.duplex<string>(base, { role: "server", timeout: 5000, unlinkOnClose: true }),
   *   Fifo.duplex<string>(base, { role: "client", timeout: 5000 }),
   * ]);
   * await client.send("hello");
   * const { value } = await server.receive();
   * await server.send(value.toUpperCase());
   * console.log((await client.receive()).value); // HELLO
   * client.close();
   * server.close();
   * ```
   */
  static async duplex<TSend = unknown, TReceive = TSend>(
    basePath: string | URL,
    options: FifoDuplexOptions<TSend | TReceive>,
  ): Promise<FramedChannel<TSend, TReceive>> {
    checkOptionKeys(
      options,
      _DUPLEX_KEYS,
      `open FIFO pair "${String(basePath)}"`,
    );
    const base = checkFilePath(basePath, "open FIFO pair");
    const role = options?.role;
    if (role !== "server" && role !== "client") {
      throw new TypeError(
        `Cannot open FIFO pair "${base}": role must be "server" or "client", got ${
          JSON.stringify(role)
        }`,
      );
    }
    const action = `open FIFO pair "${base}" as ${role}`;
    checkFramingOptions(options, action);
    checkFlag(options.unlinkOnClose, "unlinkOnClose", action);
    // Only undefined means the default: a null mode is an error here.
    const mode = checkMode(
      options.mode === undefined ? 0o600 : options.mode,
      action,
    );
    const adopt = checkAdoptOption(
      options.adopt,
      role === "server",
      false,
      action,
    );
    const deadline = deadlineOf(options, action);
    const toServer = checkFilePath(base + _TO_SERVER_SUFFIX, action);
    const toClient = checkFilePath(base + _TO_CLIENT_SUFFIX, action);
    for (const file of [toServer, toClient]) {
      requirePermission("read", file);
      requirePermission("write", file);
    }
    const [incoming, outgoing] = role === "server"
      ? [toServer, toClient]
      : [toClient, toServer];

    // A failed join removes the FIFOs it made (and only those); a channel
    // that closes removes both only with unlinkOnClose.
    const created: Fifo[] = [];
    const handles: FdHandle[] = [];
    const cleanUp = () => {
      _closeAll(handles)();
      for (const fifo of created) unlinkQuietly(() => fifo.unlink());
    };
    try {
      if (role === "server") {
        for (const file of [toServer, toClient]) {
          const fifo = Fifo.create(file, { mode, adopt });
          if (fifo.created) created.push(fifo);
        }
      } else {
        await _waitForPaths([toServer, toClient], action, deadline, options);
      }
      // The reading end first: it opens at once, and lets the peer's writer in.
      const readHandle = {
        fd: _openFifo(incoming, O.RDONLY, `${action}: ${incoming}`),
      };
      handles.push(readHandle);
      const writeHandle = {
        fd: await _openWriterFd(
          outgoing,
          `${action}: ${outgoing}`,
          options,
          deadline,
          undefined,
        ),
      };
      handles.push(writeHandle);
      // What was opened, to remove exactly that on close.
      const opened: [string, _Identity][] = options.unlinkOnClose
        ? [
          [incoming, _identityOf(readHandle.fd, action)],
          [outgoing, _identityOf(writeHandle.fd, action)],
        ]
        : [];
      const what = `FIFO pair "${base}"`;
      let disarm = () => {};
      const channel = new FramedChannel<TSend, TReceive>({
        ..._framingOf(options),
        readable: fdReadable(readHandle, what, { awaitFirstWriter: true }),
        writable: fdWritable(writeHandle, what),
        description: what,
        onClose: () => {
          disarm();
          for (const [file, identity] of opened) {
            unlinkQuietly(() => _removeFifo(file, identity));
          }
        },
      });
      disarm = watchDropped(channel, _closeAll(handles));
      return channel;
    } catch (error) {
      cleanUp();
      throw error;
    }
  }

  /** The path of the FIFO. */
  get path(): string {
    return this.#path;
  }

  /** Whether this handle created the FIFO (rather than adopting one that was there). */
  get created(): boolean {
    return this.#created;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * Opens the reading end of this FIFO; see {@linkcode Fifo.openReader}.
   * Fails with `NotFound` when the FIFO at the path is no longer the one
   * this handle created or adopted.
   *
   * @example Open this FIFO's reading end
   * ```ts
   * import { Fifo } from "@ipckit/ipckit";
   *
   * using fifo = Fifo.create(`/tmp/jobs-${Deno.pid}`, { unlinkOnClose: true });
   * await using reader = await fifo.openReader<string>();
   * ```
   */
  openReader<T = unknown>(
    options: FifoReaderOptions<T> = {},
  ): Promise<FramedChannel<T>> {
    if (this.#life.closed) {
      return Promise.reject(this.#life.closedError("open a reader of"));
    }
    return Fifo.#openReader<T>(this.#path, options, this.#identity);
  }

  /**
   * Opens the writing end of this FIFO; see {@linkcode Fifo.openWriter}.
   * Fails with `NotFound` when the FIFO at the path is no longer the one
   * this handle created or adopted.
   *
   * @example Open this FIFO's writing end
   * ```ts
   * import { Fifo } from "@ipckit/ipckit";
   *
   * using fifo = Fifo.create(`/tmp/jobs-${Deno.pid}`, { unlinkOnClose: true });
   * await using reader = await fifo.openReader<string>();
   * await using writer = await fifo.openWriter<string>({ timeout: 1000 });
   * ```
   */
  openWriter<T = unknown>(
    options: FifoWriterOptions<T> = {},
  ): Promise<FramedChannel<T>> {
    if (this.#life.closed) {
      return Promise.reject(this.#life.closedError("open a writer of"));
    }
    return Fifo.#openWriter<T>(this.#path, options, this.#identity);
  }

  /**
   * Removes this handle's FIFO now, whether it created or adopted it;
   * idempotent for this handle. A different file at the path (another FIFO
   * included) is left alone, and the call fails with `NotFound`.
   *
   * @example Remove the FIFO now
   * ```ts
   * import { Fifo } from "@ipckit/ipckit";
   *
   * const fifo = Fifo.create(`/tmp/jobs-${Deno.pid}`);
   * fifo.unlink();
   * ```
   */
  unlink(): void {
    if (this.#removed) return;
    _removeFifo(this.#path, this.#identity);
    this.#removed = true;
  }

  /**
   * Closes the handle; idempotent. Channels opened from it stay open (each
   * closes on its own). With `unlinkOnClose` the FIFO is removed, if it is
   * still the one this handle created or adopted; without it, it stays at
   * its path for other processes.
   *
   * @example Close a handle made with unlinkOnClose
   * ```ts
   * import { Fifo } from "@ipckit/ipckit";
   *
   * const fifo = Fifo.create(`/tmp/jobs-${Deno.pid}`, { unlinkOnClose: true });
   * fifo.close(); // the FIFO is gone
   * ```
   */
  close(): void {
    this.#life.close(() => {
      if (this.#unlinkOnClose) unlinkQuietly(() => this.unlink());
    });
  }

  /** Closes the handle; see {@linkcode Fifo.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes the handle; see {@linkcode Fifo.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.#life.closeAsync(() => this.close());
  }
}

/** The options of a FIFO channel that its framing takes. */
function _framingOf<T>(
  options: Pick<
    FramedChannelOptions<T>,
    "codec" | "framing" | "maxMessageSize"
  >,
): Pick<FramedChannelOptions<T>, "codec" | "framing" | "maxMessageSize"> {
  return {
    codec: options.codec,
    framing: options.framing,
    maxMessageSize: options.maxMessageSize,
  };
}

/** The device and inode of the FIFO open on `fd`. */
function _identityOf(fd: number, action: string): _Identity {
  const status = statFd(fd);
  if (typeof status === "number") throw systemError("fstat", action, -status);
  return status;
}

/** The device and inode of the FIFO a handle created or adopted. */
type _Identity = Pick<FileStatus, "dev" | "ino">;

/** The FIFO just made at `at`: its identity, after checking it is still a FIFO. */
function _fifoAt(at: AnchoredPath, action: string): _Identity {
  const status = at.stat();
  if (typeof status === "number") throw systemError("lstat", action, -status);
  if (!isFifoType(status.mode & S_IFMT)) throw _replacedError(action, false);
  return status;
}

/**
 * The error for a path whose FIFO is not the one a handle knows (`known`),
 * or whose file changed between the look before opening and the open.
 */
function _replacedError(action: string, known: boolean): Error {
  return systemError(
    "lstat",
    action,
    ERRNO.ENOENT,
    known
      ? "the FIFO this handle knows is no longer there: another file took its place, so it was left alone"
      : "another file took its place while it was being opened",
  );
}

/**
 * Removes the FIFO at `file` (checked), or only the one `expected`
 * identifies; anything else there is left alone, also when it is swapped in
 * during the removal.
 */
function _removeFifo(file: string, expected: _Identity | undefined): void {
  const action = `remove FIFO "${file}"`;
  using at = AnchoredPath.open(file, ["write"], action);
  at.remove((status) => {
    if (expected && !sameFile(status, expected)) {
      return _replacedError(action, true);
    }
    const type = status.mode & S_IFMT;
    return isFifoType(type)
      ? undefined
      : _notFifoError("unlink", action, type, ERRNO.EEXIST);
  }, action);
}

/**
 * The framing options of a FIFO shared by several writers: a limit that
 * keeps every frame within PIPE_BUF, and a codec that says so when a
 * message is too large, before anything is written. Undefined when the
 * FIFO is not declared shared.
 */
function _sharedFraming<T>(
  options: {
    sharedWriters?: boolean;
    framing?: string;
    maxMessageSize?: number;
    codec?: Codec<T>;
  },
  what: string,
  action: string,
): { maxMessageSize: number; codec: Codec<T> } | undefined {
  const { sharedWriters } = options;
  if (sharedWriters === undefined || sharedWriters === false) return undefined;
  if (sharedWriters !== true) {
    throw new TypeError(
      `Cannot ${action}: sharedWriters must be a boolean, got ${typeof sharedWriters}`,
    );
  }
  const lines = options.framing === "lines";
  const limit = lines ? PIPE_BUF - 1 : SHARED_FIFO_MAX_MESSAGE;
  const max = options.maxMessageSize ?? limit;
  if (max > limit) {
    throw new RangeError(
      `Cannot ${action}: maxMessageSize is ${max}, above ${limit}, the most a FIFO shared by several writers carries (frames of at most PIPE_BUF = ${PIPE_BUF} bytes${
        lines ? ", newline" : ", header"
      } included)`,
    );
  }
  const inner = options.codec ?? codecs.json<T>();
  const codec: Codec<T> = {
    name: inner.name,
    encode: (value) => {
      const bytes = inner.encode(value);
      if (bytes.byteLength > max) {
        throw new RangeError(
          `Cannot send to ${what}: the message is ${bytes.byteLength} bytes, and a FIFO shared by several writers carries at most ${max} (frames of at most PIPE_BUF = ${PIPE_BUF} bytes${
            lines ? ", newline" : ", header"
          } included, each written whole by one write(2)); nothing was written`,
        );
      }
      return bytes;
    },
    decode: (bytes) => inner.decode(bytes),
  };
  return { maxMessageSize: max, codec };
}

function _createError(file: string, errno: number): Error {
  const action = `create FIFO "${file}"`;
  switch (errno) {
    case ERRNO.ENOENT:
      return systemError(
        "mkfifo",
        action,
        errno,
        "its parent directory does not exist",
      );
    case ERRNO.EACCES:
      return systemError(
        "mkfifo",
        action,
        errno,
        "the kernel denied write access to its parent directory",
      );
    case ERRNO.EROFS:
      return systemError(
        "mkfifo",
        action,
        errno,
        "the file system is read-only",
      );
    default:
      return systemError("mkfifo", action, errno);
  }
}

function _notFifoError(
  syscall: string,
  action: string,
  type: number,
  errno: number,
): Error {
  return systemError(
    syscall,
    action,
    errno,
    `it is ${describeFileType(type)}, not a FIFO${
      errno === ERRNO.ELOOP ? "; ipckit does not follow symbolic links" : ""
    }`,
  );
}

/**
 * Opens the FIFO at `file` with O_NONBLOCK, O_NOFOLLOW and O_CLOEXEC,
 * relative to its checked directory (see `AnchoredPath`): lstat first says
 * it is a FIFO (and, with `expected`, the one a handle knows), and fstat on
 * the descriptor confirms that the same file was opened. Returns the
 * descriptor, or for a writer without a reader `-ENXIO`.
 */
function _openFifo(
  file: string,
  access: number,
  action: string,
  expected?: _Identity,
): number {
  using at = AnchoredPath.open(
    file,
    [access === O.RDONLY ? "read" : "write"],
    action,
  );
  const before = at.stat();
  if (typeof before === "number") throw systemError("lstat", action, -before);
  const type = before.mode & S_IFMT;
  if (!isFifoType(type)) {
    throw _notFifoError(
      "lstat",
      action,
      type,
      type === S_IFLNK ? ERRNO.ELOOP : ERRNO.EINVAL,
    );
  }
  if (expected && !sameFile(before, expected)) {
    throw _replacedError(action, true);
  }
  const fd = at.open(access | O.NONBLOCK, 0);
  if (fd === -ERRNO.ENXIO && access === O.WRONLY) return fd;
  if (fd < 0) throw systemError("open", action, -fd);
  const after = statFd(fd);
  if (typeof after === "number" || !sameFile(after, before)) {
    libc().symbols.close(fd);
    throw typeof after === "number"
      ? systemError("fstat", action, -after)
      : _replacedError(action, false);
  }
  return fd;
}

/** Opens a writer, retrying ENXIO with backoff until a reader comes. */
async function _openWriterFd(
  file: string,
  action: string,
  options: { nonBlocking?: boolean; signal?: AbortSignal },
  deadline: Deadline,
  expected: _Identity | undefined,
): Promise<number> {
  const plan = {
    attempt: () => _openFifo(file, O.WRONLY, action, expected),
    // -ENXIO: no reader yet.
    wouldBlock: (fd: number) => fd < 0 && !options.nonBlocking,
    deadline,
    signal: options.signal,
    action,
  };
  const fd = await retryAsync(
    plan,
    backoffPark(_FIRST_BACKOFF_MS, _MAX_BACKOFF_MS, plan),
  );
  if (fd >= 0) return fd;
  throw systemError(
    "open",
    action,
    -fd,
    "no process has it open for reading, and nonBlocking: true does not wait for one",
  );
}

/** Waits until every path exists (a client waiting for its server). */
async function _waitForPaths(
  files: string[],
  action: string,
  deadline: Deadline,
  options: WaitOptions,
): Promise<void> {
  const plan = {
    // The first path that is still missing, or the lstat error, or 0.
    attempt: () => {
      for (const file of files) {
        const type = lstatType(file);
        if (type < 0) return type;
      }
      return 0;
    },
    wouldBlock: (result: number) => result === -ERRNO.ENOENT,
    deadline,
    signal: options.signal,
    action,
  };
  const result = await retryAsync(
    plan,
    backoffPark(_FIRST_BACKOFF_MS, _MAX_BACKOFF_MS, plan),
  );
  if (result < 0) throw systemError("lstat", action, -result);
}
