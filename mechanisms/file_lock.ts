/**
 * File locks: whole-file or byte-range locks, shared or exclusive, on any
 * regular file, with Linux's open-file-description locks (`fcntl` with
 * `F_OFD_SETLK`). A lock belongs to one {@linkcode FileLock} handle (its
 * own `open()` of the file), so two handles in one process conflict
 * exactly as two processes would; it is released by `release()`, by
 * `close()` and `using`, and by the kernel when the process dies.
 *
 * ## With the locks of other programs
 *
 * What the kernel defines, and tests/file_lock_test.ts checks:
 * - classic POSIX locks (`fcntl(F_SETLK)`, `lockf(3)`, Python's
 *   `fcntl.lockf`) of other processes conflict with these on the bytes both
 *   cover;
 * - `flock(2)` locks, and so `flock(1)`, are a separate kind on Linux: an
 *   exclusive `flock -x` on a file does not stop an exclusive `FileLock` of
 *   the same file, nor the other way round. Programs that must exclude each
 *   other have to use the same kind; use `fcntl`-style locks on the other
 *   side (`lockf`, `fcntl.lockf`, `F_SETLK`, `F_OFD_SETLK`).
 *
 * ## How an async lock waits
 *
 * `F_OFD_SETLKW` blocks its thread until the lock is free and cannot be
 * cancelled from JavaScript: on the thread pool it would hold a thread per
 * wait and take the lock after its caller gave up. So `lock()` tries
 * `F_OFD_SETLK` on the main thread, through the one retry loop, and sleeps
 * between tries on the timer shared by every wait on the file in this
 * process: 1 ms after activity, doubling to 32 ms
 * (mechanisms/_wait/poll_group.ts). A release in this process wakes its
 * waiters at once; one in another process is noticed within 32 ms. The
 * README's "What waiting costs" has the measurements. `lockSync()` without
 * a timeout blocks in `F_OFD_SETLKW`.
 *
 * Permissions: `--allow-read=<path>` to open the file for shared locks only
 * (`write: false`), and also `--allow-write=<path>` otherwise (an
 * exclusive lock needs the file open for writing); `--allow-ffi`. Checked
 * on the path as given and where it really leads, as for `MappedFile`.
 *
 * @example One process at a time
 * ```ts
 * import { FileLock } from "@ipckit/ipckit/file-lock";
 *
 * const path = Deno.makeTempFileSync({ suffix: ".lock" });
 * using lock = FileLock.open(path, { create: true });
 * {
 *   using _held = await lock.lock({ timeout: 5000 });
 *   // … only one holder of the whole file at a time …
 * }
 * Deno.removeSync(path); // (the lock goes with the handle, not the file)
 * ```
 *
 * @module
 */

import { O, S_IFMT, S_IFREG } from "../ffi/c.ts";
import { ERRNO } from "../ffi/errno.ts";
import { libc } from "../ffi/load.ts";
import { getLock, OFD, setLock } from "../ffi/lock.ts";
import { statFd } from "../ffi/stat.ts";
import type { WaitOptions } from "./channel.ts";
import {
  checkFlag,
  checkMode,
  checkOptionKeys,
  optionKeys,
} from "./_common/checks.ts";
import { holdOf, Lifecycle, untilClosed } from "./_common/lifecycle.ts";
import { systemError } from "./_common/system_error.ts";
import { AnchoredPath } from "./_kernel/anchored_path.ts";
import { describeFileType } from "./_kernel/file_type.ts";
import { checkFilePath } from "./_kernel/paths.ts";
import type { Access } from "./_kernel/permissions.ts";
import { type Deadline, deadlineOf } from "./_wait/deadline.ts";
import {
  backoffSleeper,
  type PollGroup,
  pollGroup,
} from "./_wait/poll_group.ts";
import { retryAsync, type RetryPlan, retrySync } from "./_wait/retry.ts";
import { checkSpinMicros, Spinner } from "./_wait/spin.ts";

/**
 * How to open a file for locking.
 *
 * @example
 * ```ts
 * import type { FileLockOptions } from "@ipckit/ipckit";
 *
 * const options: FileLockOptions = { create: true, mode: 0o600 };
 * ```
 *
 * @category File locks
 */
export interface FileLockOptions {
  /** Create the file (empty) if it does not exist. Default `false`. */
  create?: boolean;
  /** Permission bits of a created file (before the umask). Default `0o600`. */
  mode?: number;
  /**
   * Open the file for writing too, which exclusive locks need. Default
   * `true`; `false` allows shared locks only, and needs only `--allow-read`.
   */
  write?: boolean;
  /** Microseconds a waiting `lock()` retries before it sleeps, 0 to 1000. Default 50. */
  spin?: number;
}

/**
 * Which bytes to lock, and how.
 *
 * @example
 * ```ts
 * import type { LockOptions } from "@ipckit/ipckit";
 *
 * const header: LockOptions = { shared: true, start: 0, length: 4096, timeout: 1000 };
 * ```
 *
 * @category File locks
 */
export interface LockOptions extends WaitOptions {
  /** A shared (read) lock, which other shared locks do not exclude. Default `false`: exclusive. */
  shared?: boolean;
  /** First byte. Default 0. */
  start?: number;
  /**
   * How many bytes. Default 0: from `start` to the end of the file however
   * far it grows, so the default lock covers the whole file.
   */
  length?: number;
}

/**
 * A lock held through a {@linkcode FileLock}: `release()` or leaving its
 * `using` block unlocks its bytes.
 *
 * @example
 * ```ts
 * import { FileLock } from "@ipckit/ipckit";
 *
 * const path = Deno.makeTempFileSync({ suffix: ".lock" });
 * using lock = FileLock.open(path);
 * const held = await lock.lock({ timeout: 1000 });
 * held.release();
 * console.log(held.held); // false
 * Deno.removeSync(path); // (the lock goes with the handle, not the file)
 * ```
 *
 * @category File locks
 */
export interface FileLockHold extends Disposable, AsyncDisposable {
  /** Whether it is shared. */
  readonly shared: boolean;
  /** Its first byte. */
  readonly start: number;
  /** Its length; 0 to the end of the file. */
  readonly length: number;
  /** Whether it is still held. */
  readonly held: boolean;
  /** Unlocks its bytes; idempotent. */
  release(): void;
  /** The same as {@linkcode FileLockHold.release}. */
  close(): void;
  /** Releases it; see {@linkcode FileLockHold.release}. */
  [Symbol.dispose](): void;
  /** Releases it; see {@linkcode FileLockHold.release}. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Who holds a lock that conflicts with the one asked about.
 *
 * @example
 * ```ts
 * import type { LockHolder } from "@ipckit/ipckit";
 *
 * const holder: LockHolder = { shared: false, start: 0, length: 0, pid: -1 };
 * ```
 *
 * @category File locks
 */
export interface LockHolder {
  /** Whether the conflicting lock is shared. */
  shared: boolean;
  /** Its first byte. */
  start: number;
  /** Its length; 0 to the end of the file. */
  length: number;
  /**
   * The process holding a classic `fcntl` lock; -1 for an open-file-
   * description lock (this module's, in any process), which has no owner
   * process.
   */
  pid: number;
}

const _OPEN_KEYS = optionKeys<FileLockOptions>({
  create: true,
  mode: true,
  write: true,
  spin: true,
});
const _LOCK_KEYS = optionKeys<LockOptions>({
  shared: true,
  start: true,
  length: true,
  timeout: true,
  signal: true,
});
const _RANGE_KEYS = optionKeys<
  Pick<LockOptions, "shared" | "start" | "length">
>(
  { shared: true, start: true, length: true },
);
const _LOCK_SYNC_KEYS = optionKeys<
  Pick<LockOptions, "shared" | "start" | "length" | "timeout">
>({ shared: true, start: true, length: true, timeout: true });

interface _Range {
  type: number;
  start: number;
  length: number;
  shared: boolean;
}

/**
 * A file opened for locking, with its own open file description: its
 * locks conflict with those of every other `FileLock` on the file, in this
 * process or another.
 *
 * @example Readers share, a writer excludes
 * ```ts
 * import { FileLock } from "@ipckit/ipckit";
 *
 * const path = Deno.makeTempFileSync({ suffix: ".lock" });
 * using reader = FileLock.open(path);
 * using writer = FileLock.open(path);
 * using _reading = await reader.lock({ shared: true, timeout: 1000 });
 * console.log(writer.tryLock()); // undefined: the reader holds it
 * Deno.removeSync(path); // (the lock goes with the handle, not the file)
 * ```
 *
 * @category File locks
 */
export class FileLock implements Disposable, AsyncDisposable {
  #path: string;
  #what: string;
  #handle: { fd: number };
  #writable: boolean;
  #life: Lifecycle;
  #closing = new AbortController();
  #spinner: Spinner;
  #group: () => PollGroup;

  private constructor(
    path: string,
    fd: number,
    writable: boolean,
    fileKey: string,
    spin: number,
  ) {
    this.#path = path;
    this.#what = `file "${path}"`;
    this.#life = new Lifecycle(this.#what);
    const handle = { fd };
    this.#handle = handle;
    // The safety net for a handle dropped without close(): closing the
    // descriptor releases its locks, as the kernel does at exit.
    this.#life.guard(this, () => {
      if (handle.fd >= 0) libc().symbols.close(handle.fd);
    });
    this.#writable = writable;
    this.#spinner = new Spinner(spin);
    this.#group = () => pollGroup(`file-lock:${fileKey}`);
  }

  /**
   * Opens `path` (a regular file; with `create`, made empty if missing)
   * for locking.
   *
   * @throws {TypeError} for an invalid path or option, before any system call
   * @throws {Deno.errors.NotCapable} without `--allow-read` (and
   * `--allow-write`, unless `write: false`) on the path
   * @throws {Deno.errors.NotFound} when it does not exist and `create` is not set
   * @throws {IpcError} with code `EINVAL` when it is not a regular file
   * @throws {Deno.errors.NotSupported} where the kernel has no OFD locks (not Linux)
   *
   * @example
   * ```ts
   * import { FileLock } from "@ipckit/ipckit";
   *
   * const dir = Deno.makeTempDirSync();
   * using lock = FileLock.open(new URL(`file://${dir}/app.lock`), { create: true });
   * console.log(lock.path.endsWith("app.lock")); // true
   * Deno.removeSync(dir, { recursive: true });
   * ```
   */
  static open(path: string | URL, options: FileLockOptions = {}): FileLock {
    checkOptionKeys(options, _OPEN_KEYS, "lock file");
    const filePath = checkFilePath(path, "lock file");
    const action = `lock file "${filePath}"`;
    if (Deno.build.os !== "linux") {
      throw new Deno.errors.NotSupported(
        `Cannot ${action}: open-file-description locks (F_OFD_SETLK) are Linux's, not ${Deno.build.os}'s`,
      );
    }
    checkFlag(options.create, "create", action);
    checkFlag(options.write, "write", action);
    const mode = checkMode(options.mode ?? 0o600, action);
    const spin = checkSpinMicros(options.spin, action);
    const write = options.write ?? true;
    const create = options.create ?? false;
    const accesses: Access[] = ["read"];
    if (write || create) accesses.push("write");
    using at = AnchoredPath.open(filePath, accesses, action);
    // O_NONBLOCK: opening a FIFO swapped in must not wait for a peer.
    const flags = (write ? O.RDWR : O.RDONLY) | O.NONBLOCK |
      (create ? O.CREAT : 0);
    const fd = at.open(flags, mode);
    if (fd < 0) throw systemError("open", action, -fd);
    let fileKey: string;
    try {
      const status = statFd(fd);
      if (typeof status === "number") {
        throw systemError("fstat", action, -status);
      }
      if ((status.mode & S_IFMT) !== S_IFREG) {
        throw systemError(
          "open",
          action,
          ERRNO.EINVAL,
          `it is ${describeFileType(status.mode & S_IFMT)}, not a regular file`,
        );
      }
      fileKey = `${status.dev}:${status.ino}`;
    } catch (error) {
      libc().symbols.close(fd);
      throw error;
    }
    return new FileLock(filePath, fd, write, fileKey, spin);
  }

  /** The path as given. */
  get path(): string {
    return this.#path;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * Takes the lock if no other handle or process holds a conflicting one.
   *
   * @returns the held lock, or `undefined` when another holds a conflicting one
   * @throws {TypeError} for an exclusive lock on a handle opened with `write: false`
   *
   * @example
   * ```ts
   * import { FileLock } from "@ipckit/ipckit";
   *
   * const path = Deno.makeTempFileSync({ suffix: ".lock" });
   * using lock = FileLock.open(path);
   * const held = lock.tryLock();
   * if (held) held.release();
   * Deno.removeSync(path); // (the lock goes with the handle, not the file)
   * ```
   */
  tryLock(
    options: Pick<LockOptions, "shared" | "start" | "length"> = {},
  ): FileLockHold | undefined {
    checkOptionKeys(options, _RANGE_KEYS, `lock ${this.#what}`);
    const range = this.#range(options);
    const errno = this.#attempt(range);
    if (errno === 0) return this.#hold(range);
    if (errno === ERRNO.EAGAIN) return undefined;
    throw this.#error(errno);
  }

  /**
   * Takes the lock, waiting without blocking the event loop while another
   * handle or process holds a conflicting one.
   *
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   * @throws {Deno.errors.BadResource} when this handle is closed meanwhile
   * @throws the signal's reason when `signal` aborts
   *
   * @example
   * ```ts
   * import { FileLock } from "@ipckit/ipckit";
   *
   * const path = Deno.makeTempFileSync({ suffix: ".lock" });
   * using lock = FileLock.open(path);
   * using _held = await lock.lock({ start: 0, length: 100, timeout: 1000 });
   * Deno.removeSync(path); // (the lock goes with the handle, not the file)
   * ```
   */
  async lock(options: LockOptions = {}): Promise<FileLockHold> {
    checkOptionKeys(options, _LOCK_KEYS, `lock ${this.#what}`);
    const range = this.#range(options);
    const plan = this.#plan(range, options);
    const waiter = this.#group().waiter(
      `${range.type}:${range.start}:${range.length}`,
      plan,
    );
    let errno: number;
    try {
      errno = await retryAsync(plan, waiter.park);
    } finally {
      waiter.end();
    }
    if (errno !== 0) throw this.#error(errno);
    return this.#hold(range);
  }

  /**
   * Takes the lock, blocking the calling thread while a conflicting one is
   * held (`F_OFD_SETLKW`; with a timeout, retries on a backing-off sleep).
   *
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   * @throws {IpcError} with code `EDEADLK` when the kernel sees that waiting would deadlock
   *
   * @example
   * ```ts
   * import { FileLock } from "@ipckit/ipckit";
   *
   * const path = Deno.makeTempFileSync({ suffix: ".lock" });
   * using lock = FileLock.open(path);
   * using _held = lock.lockSync({ timeout: 1000 });
   * Deno.removeSync(path); // (the lock goes with the handle, not the file)
   * ```
   */
  lockSync(
    options: Pick<LockOptions, "shared" | "start" | "length" | "timeout"> = {},
  ): FileLockHold {
    checkOptionKeys(options, _LOCK_SYNC_KEYS, `lock ${this.#what}`);
    const range = this.#range(options);
    const plan = this.#plan(range, options);
    const errno = retrySync(plan, this.#blocker(plan.deadline, range));
    if (errno !== 0) throw this.#error(errno);
    return this.#hold(range);
  }

  /**
   * Who holds a lock that would conflict with `options` (`F_OFD_GETLK`),
   * or `undefined` when it could be taken now. Locks of this handle never
   * conflict with it.
   *
   * @example
   * ```ts
   * import { FileLock } from "@ipckit/ipckit";
   *
   * const path = Deno.makeTempFileSync({ suffix: ".lock" });
   * using mine = FileLock.open(path);
   * using other = FileLock.open(path);
   * using _held = mine.lockSync({ timeout: 1000 });
   * console.log(other.holder()); // { shared: false, start: 0, length: 0, pid: -1 }
   * Deno.removeSync(path); // (the lock goes with the handle, not the file)
   * ```
   */
  holder(
    options: Pick<LockOptions, "shared" | "start" | "length"> = {},
  ): LockHolder | undefined {
    checkOptionKeys(options, _RANGE_KEYS, `find the holder of ${this.#what}`);
    const range = this.#range(options, false);
    const found = getLock(this.#handle.fd, range.type, range);
    if (typeof found === "number") throw this.#error(-found);
    if (found === undefined) return undefined;
    return {
      shared: found.type === OFD.F_RDLCK,
      start: found.start,
      length: found.length,
      pid: found.pid,
    };
  }

  /**
   * Closes the file, which releases every lock this handle holds;
   * idempotent. Pending `lock()` calls reject with `BadResource`.
   *
   * @example
   * ```ts
   * import { FileLock } from "@ipckit/ipckit";
   *
   * const path = Deno.makeTempFileSync({ suffix: ".lock" });
   * const lock = FileLock.open(path);
   * lock.close();
   * lock.close(); // no-op
   * Deno.removeSync(path); // (the lock goes with the handle, not the file)
   * ```
   */
  close(): void {
    this.#life.close(() => {
      this.#closing.abort(this.#life.closedError());
      libc().symbols.close(this.#handle.fd);
      this.#handle.fd = -1;
      this.#group().poke();
    });
  }

  /** Closes the file; see {@linkcode FileLock.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes the file; see {@linkcode FileLock.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.#life.closeAsync(() => this.close());
  }

  #range(
    options: Pick<LockOptions, "shared" | "start" | "length">,
    needWrite: boolean = true,
  ): _Range {
    this.#life.check("lock");
    const action = `lock ${this.#what}`;
    checkFlag(options.shared, "shared", action);
    const shared = options.shared ?? false;
    const start = options.start ?? 0;
    const length = options.length ?? 0;
    for (const [name, value] of [["start", start], ["length", length]]) {
      if (
        typeof value !== "number" || !Number.isSafeInteger(value) ||
        (value as number) < 0
      ) {
        throw new RangeError(
          `Cannot ${action}: ${name} must be an integer of 0 or more, got ${
            String(value)
          }`,
        );
      }
    }
    if (!shared && !this.#writable && needWrite) {
      throw new TypeError(
        `Cannot ${action}: an exclusive lock needs the file open for writing, and it was opened with write: false`,
      );
    }
    return {
      type: shared ? OFD.F_RDLCK : OFD.F_WRLCK,
      start,
      length,
      shared,
    };
  }

  /** One F_OFD_SETLK: 0 or the errno (EAGAIN: another holds a conflicting lock). */
  #attempt(range: _Range): number {
    this.#life.check("lock");
    return -setLock(this.#handle.fd, OFD.F_SETLK, range.type, range);
  }

  #plan(range: _Range, options: WaitOptions): RetryPlan<number> {
    return {
      attempt: () => this.#attempt(range),
      wouldBlock: (errno) => errno === ERRNO.EAGAIN,
      spinner: this.#spinner,
      deadline: deadlineOf(options),
      signal: untilClosed(options.signal, this.#closing.signal),
      action: `lock ${this.#what}`,
    };
  }

  #blocker(deadline: Deadline, range: _Range): () => number | undefined {
    if (deadline.at !== Infinity) {
      const sleep = backoffSleeper(deadline);
      return () => {
        sleep();
        return undefined;
      };
    }
    return () => {
      for (;;) {
        const result = -setLock(
          this.#handle.fd,
          OFD.F_SETLKW,
          range.type,
          range,
        );
        if (result !== ERRNO.EINTR) return result;
      }
    };
  }

  #hold(range: _Range): FileLockHold {
    // Closing the handle closes its descriptor, which releases the lock.
    return holdOf(this.#life, () => {
      const result = setLock(
        this.#handle.fd,
        OFD.F_SETLK,
        OFD.F_UNLCK,
        range,
      );
      if (result < 0) throw this.#error(-result);
      this.#group().poke();
    }, { shared: range.shared, start: range.start, length: range.length });
  }

  #error(errno: number): Error {
    const action = `lock ${this.#what}`;
    if (errno === ERRNO.EAGAIN) {
      return systemError(
        "fcntl",
        action,
        errno,
        "another handle or process holds a conflicting lock",
      );
    }
    if (errno === ERRNO.EDEADLK) {
      return systemError(
        "fcntl",
        action,
        errno,
        "waiting would deadlock with a process that waits for a lock this one holds",
      );
    }
    return systemError("fcntl", action, errno);
  }
}
