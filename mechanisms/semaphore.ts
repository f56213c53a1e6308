/**
 * POSIX semaphores: named ones (`sem_open`) that unrelated processes find by
 * name, and unnamed process-shared ones (`sem_init` with `pshared = 1`) that
 * live inside a {@linkcode SharedMemory} region next to the data they guard.
 *
 * Permissions: a named semaphore `/lock` is the file `/dev/shm/sem.lock` on
 * Linux. Opening or creating it needs `--allow-read` and `--allow-write` on
 * that path (waiting changes it), unlinking needs `--allow-write` (both
 * suggested as `=/dev/shm`); every call needs `--allow-ffi`. A semaphore in
 * shared memory needs no more than the region already needed.
 *
 * Waiting comes in three forms: `wait()` returns a Promise and never blocks
 * the event loop, `tryWait()` never waits, `waitSync()` blocks the thread
 * like C. How `wait()` parks, why its cancellation never loses or takes a
 * count, and which clock the timeouts use on glibc and musl is explained in
 * `mechanisms/_wait/semaphore_parker.ts`.
 *
 * @example Take turns with another process
 * ```ts ignore
 * import { Semaphore } from "@ipckit/ipckit/semaphore";
 *
 * using turn = Semaphore.open("/turn", { create: true, initial: 1 });
 * await turn.wait({ timeout: 5000 });
 * try {
 *   // … only one process at a time gets here …
 * } finally {
 *   turn.post();
 * }
 * ```
 *
 * @module
 */

import { cString, O, SEM_T } from "../ffi/c.ts";
import { ERRNO, lastErrno, retryEintr } from "../ffi/errno.ts";
import { libc } from "../ffi/load.ts";
import type { WaitOptions } from "./channel.ts";
import {
  closedError,
  systemError,
  timeoutError,
} from "./_common/system_error.ts";
import { checkFlag, checkMode } from "./_common/checks.ts";
import { type Mapping, mappingOf } from "./_memory/mapping.ts";
import { NAME_MAX, validateIpcName } from "./_kernel/names.ts";
import { objectPath, SEM_DIR } from "./_kernel/objects.ts";
import { requirePermissions } from "./_kernel/permissions.ts";
import {
  SEM_VALUE_MAX,
  SemParker,
  type SemPointer,
  semPost,
  semTryWait,
  semValue,
  semWaitSync,
} from "./_wait/semaphore_parker.ts";
import { type Deadline, deadlineOf } from "./_wait/fd.ts";
import { checkSpinMicros, Spinner } from "./_wait/spin.ts";
import type { SharedMemory } from "./shared_memory.ts";

export { SEM_VALUE_MAX } from "./_wait/semaphore_parker.ts";

export { SEM_DIR };

/** Bytes of a `sem_t` and its alignment, for placing one in shared memory (LP64 glibc and musl). */
export const SEMAPHORE_SIZE: number = SEM_T.SIZE_OF;

/** Required alignment of a `sem_t` in shared memory. */
export const SEMAPHORE_ALIGN: number = SEM_T.ALIGN;

/**
 * How to open a named semaphore.
 *
 * @example
 * ```ts
 * import type { SemaphoreOptions } from "@ipckit/ipckit";
 *
 * const licences: SemaphoreOptions = { create: true, initial: 4, unlinkOnClose: true };
 * ```
 */
export interface SemaphoreOptions {
  /** Create the semaphore if it does not exist. Default `false`. */
  create?: boolean;
  /** With `create`: fail with `AlreadyExists` if it exists. Default `false`. */
  exclusive?: boolean;
  /**
   * The value of a created semaphore, 0 to `SEM_VALUE_MAX`. Default 0.
   * Ignored when `create` finds an existing one (POSIX keeps its value).
   * Needs `create`.
   */
  initial?: number;
  /** Permission bits of a created semaphore. Default `0o600`. */
  mode?: number;
  /** Remove the name when this handle closes. Default `false`. */
  unlinkOnClose?: boolean;
  /**
   * Microseconds that `wait()`/`waitSync()` retry `sem_trywait` before they
   * sleep, 0 to 1000. Default 50. Saves the wake-ups of a sleep when the
   * count is posted soon (ping-pong between processes), at the price of up
   * to that much CPU once per wait (up to 10 times that when recent sleeps
   * ended soon after the spin gave up); `wait()` yields a microtask between
   * attempts, so promise continuations keep running, but timers and I/O
   * callbacks wait up to that long. 0 never spins.
   */
  spin?: number;
}

/**
 * How to place a semaphore in shared memory.
 *
 * @example
 * ```ts
 * import type { InMemorySemaphoreOptions } from "@ipckit/ipckit";
 *
 * const creator: InMemorySemaphoreOptions = { initial: 1 }; // sem_init
 * const user: InMemorySemaphoreOptions = {}; // attach to it
 * ```
 */
export interface InMemorySemaphoreOptions {
  /**
   * Initialize the semaphore with this value (`sem_init`, process-shared).
   * Leave it out to attach to a semaphore another handle or process
   * initialized.
   */
  initial?: number;
  /**
   * Microseconds that `wait()`/`waitSync()` retry `sem_trywait` before they
   * sleep, 0 to 1000. Default 50. Saves the wake-ups of a sleep when the
   * count is posted soon (ping-pong between processes), at the price of up
   * to that much CPU once per wait (up to 10 times that when recent sleeps
   * ended soon after the spin gave up); `wait()` yields a microtask between
   * attempts, so promise continuations keep running, but timers and I/O
   * callbacks wait up to that long. 0 never spins.
   */
  spin?: number;
}

interface _Named {
  sem: SemPointer | null;
}

// A safety net for named semaphores dropped without close().
const _leaked = new FinalizationRegistry<_Named>((named) => {
  if (named.sem) libc().symbols.sem_close(named.sem);
});

function _checkInitial(value: unknown, action: string): number {
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot ${action}: initial must be a number, got ${typeof value}`,
    );
  }
  if (!Number.isInteger(value) || value < 0 || value > SEM_VALUE_MAX) {
    throw new RangeError(
      `Cannot ${action}: initial must be an integer from 0 to ${SEM_VALUE_MAX} (SEM_VALUE_MAX), got ${value}`,
    );
  }
  return value;
}

function _pathOf(base: string): string {
  return objectPath("sem", base);
}

/** `SEM_FAILED` is `(sem_t *)0` on glibc and musl and `(sem_t *)-1` on macOS. */
function _failed(pointer: Deno.PointerValue): boolean {
  if (pointer === null) return true;
  const value = Deno.UnsafePointer.value(pointer);
  return value === 0n || value === 0xffff_ffff_ffff_ffffn;
}

/** What the async spin returns when its caller aborted or closed the handle. */
const _STOPPED = -1;

/**
 * A POSIX semaphore: a count that processes take (`wait`) and give
 * (`post`), waiting while it is 0.
 *
 * @example A pool of 4 licences shared by any number of processes
 * ```ts ignore
 * import { Semaphore } from "@ipckit/ipckit";
 *
 * using licences = Semaphore.open("/licences", { create: true, initial: 4 });
 * await licences.wait();
 * try {
 *   console.log("working, licences left:", licences.value);
 * } finally {
 *   licences.post();
 * }
 * ```
 */
export class Semaphore implements Disposable, AsyncDisposable {
  #name: string | undefined;
  #what: string;
  #sem: SemPointer;
  #parker: SemParker;
  #closed = false;
  #release: () => void;
  #unlinkOnClose: boolean;
  #released: Promise<void>;
  #markReleased!: () => void;
  #stopWatchingRegion: (() => void) | undefined;
  #spinner: Spinner;

  private constructor(
    sem: SemPointer,
    what: string,
    name: string | undefined,
    release: () => void,
    unlinkOnClose: boolean,
    spinMicros: number,
  ) {
    this.#spinner = new Spinner(spinMicros);
    this.#sem = sem;
    this.#what = what;
    this.#name = name;
    this.#release = release;
    this.#unlinkOnClose = unlinkOnClose;
    this.#parker = new SemParker(sem, what);
    this.#released = new Promise((resolve) => (this.#markReleased = resolve));
  }

  /**
   * Opens (or with `create`, creates) the named semaphore `name`, e.g.
   * `"/lock"`, which Linux keeps as `/dev/shm/sem.lock`.
   *
   * @throws {TypeError} for an invalid name or option, before any system call
   * @throws {RangeError} for `initial` outside 0 to `SEM_VALUE_MAX`, or a name over 251 bytes
   * @throws {Deno.errors.NotCapable} without read and write permission on `/dev/shm/sem.<name>`
   * @throws {Deno.errors.NotFound} when it does not exist and `create` is not set
   * @throws {Deno.errors.AlreadyExists} with `create` and `exclusive` when it exists
   *
   * @example
   * ```ts ignore
   * import { Semaphore } from "@ipckit/ipckit";
   *
   * using ready = Semaphore.open("/ready", { create: true, exclusive: true });
   * console.log(ready.value); // 0
   * ```
   */
  static open(name: string, options: SemaphoreOptions = {}): Semaphore {
    // Linux names the file "sem." + name, which must fit in NAME_MAX.
    const base = validateIpcName(name, "semaphore", NAME_MAX - 4);
    const action = `open semaphore "${name}"`;
    const { create, exclusive, unlinkOnClose } = options;
    checkFlag(create, "create", action);
    checkFlag(exclusive, "exclusive", action);
    checkFlag(unlinkOnClose, "unlinkOnClose", action);
    if (exclusive && !create) {
      throw new TypeError(`Cannot ${action}: exclusive needs create`);
    }
    if (options.initial !== undefined && !create) {
      throw new TypeError(
        `Cannot ${action}: initial needs create (an existing semaphore keeps its value)`,
      );
    }
    const initial = _checkInitial(options.initial ?? 0, action);
    const mode = checkMode(options.mode ?? 0o600, action);
    const spin = checkSpinMicros(options.spin, action);
    requirePermissions(["read", "write"], _pathOf(base), SEM_DIR);

    const flags = create ? O.CREAT | (exclusive ? O.EXCL : 0) : 0;
    const cName = cString(name);
    const semOpen = libc().symbols.sem_open;
    let sem: Deno.PointerValue;
    for (;;) {
      sem = semOpen(cName, flags, mode, initial);
      if (!_failed(sem)) break;
      const errno = lastErrno();
      if (errno !== ERRNO.EINTR) throw systemError("sem_open", action, errno);
    }
    const named: _Named = { sem };
    const handle = new Semaphore(
      sem!,
      `semaphore "${name}"`,
      name,
      () => {
        libc().symbols.sem_close(named.sem);
        named.sem = null;
      },
      unlinkOnClose ?? false,
      spin,
    );
    _leaked.register(handle, named, handle);
    return handle;
  }

  /**
   * A process-shared semaphore of {@linkcode SEMAPHORE_SIZE} bytes at
   * `byteOffset` (a multiple of {@linkcode SEMAPHORE_ALIGN}) of a shared
   * memory region.
   *
   * Who initializes: the handle made with `initial` runs `sem_init` there
   * (do it once, before other processes use it, e.g. by the process that
   * created the region); handles made without `initial` attach to what is
   * already there. ipckit cannot tell an initialized `sem_t` from other
   * bytes, so attaching before initialization is the caller's bug to avoid
   * (`Mutex` solves this with a state word).
   *
   * Who destroys: nobody needs to. ipckit never calls `sem_destroy`: on
   * Linux it frees nothing (glibc and musl keep all of a semaphore in its
   * 32 bytes), and POSIX leaves destroying one that another process may be
   * waiting on undefined. The semaphore lives as long as the memory; to
   * reset it, initialize again while no process uses it.
   *
   * Closing the region closes this semaphore too. The region is unmapped
   * only after a parked `wait()` has returned from the thread pool.
   *
   * @throws {TypeError} when `memory` is not an open, writable `SharedMemory`
   * @throws {RangeError} for an offset that is unaligned or leaves no room for a `sem_t`
   *
   * @example A semaphore and the data it guards in one region
   * ```ts ignore
   * import { Semaphore, SEMAPHORE_SIZE, SharedMemory } from "@ipckit/ipckit";
   *
   * using memory = SharedMemory.open("/jobs", { create: true, size: 4096 });
   * using ready = Semaphore.inMemory(memory, 0, { initial: 0 });
   * const data = memory.view(Uint8Array, SEMAPHORE_SIZE);
   * data[0] = 42;
   * ready.post(); // another process: await ready.wait(); read data[0]
   * ```
   */
  static inMemory(
    memory: SharedMemory,
    byteOffset: number,
    options: InMemorySemaphoreOptions = {},
  ): Semaphore {
    const action = "place a semaphore in shared memory";
    const mapping = mappingOf(memory);
    if (mapping === undefined) {
      throw new TypeError(`Cannot ${action}: expected a SharedMemory`);
    }
    if (mapping.closed) throw closedError(`shared memory "${memory.name}"`);
    if (!mapping.shared) {
      throw new TypeError(
        `Cannot ${action}: shared memory "${memory.name}" is open readOnly (a private copy), so other processes would never see the semaphore`,
      );
    }
    _checkOffset(mapping, byteOffset, action);
    const spin = checkSpinMicros(options.spin, action);
    const initial = options.initial === undefined
      ? undefined
      : _checkInitial(options.initial, action);
    const sem = mapping.address(byteOffset);
    const what =
      `semaphore at byte ${byteOffset} of shared memory "${memory.name}"`;
    if (initial !== undefined) {
      const result = libc().symbols.sem_init(sem, 1, initial);
      if (result !== 0) {
        throw systemError("sem_init", `initialize ${what}`, lastErrno());
      }
    }
    // Keep the memory mapped until this semaphore is released: a parked
    // slice on the thread pool may still be inside sem_clockwait on it.
    const letGo = mapping.retain();
    const handle = new Semaphore(sem, what, undefined, letGo, false, spin);
    handle.#stopWatchingRegion = mapping.onClose(() => handle.close());
    return handle;
  }

  /**
   * Removes a named semaphore's name. Processes that have it open keep using
   * it; it is freed when the last one closes it.
   *
   * @throws {Deno.errors.NotFound} when no semaphore has that name
   * @throws {Deno.errors.NotCapable} without `--allow-write` on `/dev/shm/sem.<name>`
   *
   * @example
   * ```ts ignore
   * import { Semaphore } from "@ipckit/ipckit";
   *
   * Semaphore.unlink("/lock");
   * ```
   */
  static unlink(name: string): void {
    const base = validateIpcName(name, "semaphore", NAME_MAX - 4);
    requirePermissions(["write"], _pathOf(base), SEM_DIR);
    const cName = cString(name);
    const semUnlink = libc().symbols.sem_unlink;
    const result = retryEintr(() => semUnlink(cName));
    if (result < 0) {
      throw systemError("sem_unlink", `unlink semaphore "${name}"`, -result);
    }
  }

  /** The name of a named semaphore; `undefined` for one in shared memory. */
  get name(): string | undefined {
    return this.#name;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The current count (`sem_getvalue`). Other processes may change it at
   * any moment, so it is a hint, not something to decide on.
   *
   * @example
   * ```ts ignore
   * import { Semaphore } from "@ipckit/ipckit";
   *
   * using licences = Semaphore.open("/licences");
   * console.log(`${licences.value} licences free`);
   * ```
   */
  get value(): number {
    this.#checkOpen("read the value of");
    return semValue(this.#sem, this.#what);
  }

  /**
   * Adds one to the count, waking one waiter.
   *
   * @throws {IpcError} with code `EOVERFLOW` when the count is already `SEM_VALUE_MAX`
   * @throws {Deno.errors.BadResource} after `close()`
   *
   * @example
   * ```ts ignore
   * import { Semaphore } from "@ipckit/ipckit";
   *
   * using ready = Semaphore.open("/ready");
   * ready.post();
   * ```
   */
  post(): void {
    this.#checkOpen("post");
    const errno = semPost(this.#sem);
    if (errno === 0) return;
    throw systemError(
      "sem_post",
      `post ${this.#what}`,
      errno,
      errno === ERRNO.EOVERFLOW
        ? `its value is already SEM_VALUE_MAX (${SEM_VALUE_MAX})`
        : undefined,
    );
  }

  /**
   * Takes one from the count if it is above 0, without waiting.
   *
   * @returns whether a count was taken
   *
   * @example
   * ```ts ignore
   * import { Semaphore } from "@ipckit/ipckit";
   *
   * using licences = Semaphore.open("/licences");
   * if (licences.tryWait()) {
   *   try { console.log("got one"); } finally { licences.post(); }
   * }
   * ```
   */
  tryWait(): boolean {
    this.#checkOpen("wait on");
    const errno = semTryWait(this.#sem);
    if (errno === 0) return true;
    if (errno === ERRNO.EAGAIN) return false;
    throw systemError("sem_trywait", `wait on ${this.#what}`, errno);
  }

  /**
   * Takes one from the count, waiting without blocking the event loop while
   * it is 0. When the promise rejects (timeout, abort, close) no count was
   * taken, and an abort or close is noticed within one park slice (4 ms).
   *
   * @throws {Deno.errors.TimedOut} when `timeout` (ms, monotonic) passes first
   * @throws {Deno.errors.BadResource} when the semaphore is closed before or meanwhile
   * @throws the signal's reason when `signal` aborts
   *
   * @example
   * ```ts ignore
   * import { Semaphore } from "@ipckit/ipckit";
   *
   * using ready = Semaphore.open("/ready");
   * await ready.wait({ timeout: 1000, signal: AbortSignal.timeout(5000) });
   * ```
   */
  wait(options: WaitOptions = {}): Promise<void> {
    let deadline;
    try {
      deadline = deadlineOf(options);
      this.#checkOpen("wait on");
    } catch (error) {
      return Promise.reject(error);
    }
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const action = `wait on ${this.#what}`;
    const errno = semTryWait(this.#sem);
    if (errno === 0) return Promise.resolve();
    if (errno !== ERRNO.EAGAIN) {
      return Promise.reject(systemError("sem_trywait", action, errno));
    }
    if (performance.now() >= deadline.at) {
      return Promise.reject(timeoutError(action, deadline.timeout));
    }
    return this.#spinThenPark(deadline, signal, action);
  }

  /**
   * The slow path of `wait()`: spin (yielding microtasks), then park. The
   * spin stops at once when the caller aborts or the handle closes, so a
   * cancelled wait never takes a count.
   */
  async #spinThenPark(
    deadline: Deadline,
    signal: AbortSignal | undefined,
    action: string,
  ): Promise<void> {
    const started = performance.now();
    const errno = await this.#spinner.spinAsync(
      ERRNO.EAGAIN,
      () => signal?.aborted || this.#closed ? _STOPPED : semTryWait(this.#sem),
      (result) => result !== ERRNO.EAGAIN,
    );
    if (errno === 0) return;
    if (signal?.aborted) throw signal.reason;
    this.#checkOpen("wait on");
    if (errno !== ERRNO.EAGAIN) throw systemError("sem_trywait", action, errno);
    if (performance.now() >= deadline.at) {
      throw timeoutError(action, deadline.timeout);
    }
    await this.#parker.wait(deadline, signal, action);
    this.#spinner.slept(performance.now() - started);
  }

  /**
   * Takes one from the count, blocking the calling thread while it is 0.
   * Meant for Workers and scripts: it stops the event loop while it waits.
   *
   * @throws {Deno.errors.TimedOut} when `timeout` (ms, monotonic) passes first
   *
   * @example
   * ```ts ignore
   * import { Semaphore } from "@ipckit/ipckit";
   *
   * using ready = Semaphore.open("/ready");
   * ready.waitSync({ timeout: 1000 });
   * ```
   */
  waitSync(options: { timeout?: number } = {}): void {
    const deadline = deadlineOf(options);
    this.#checkOpen("wait on");
    const action = `wait on ${this.#what}`;
    const started = performance.now();
    const errno = this.#tryWaitSpinning(deadline);
    if (errno === 0) return;
    if (errno !== ERRNO.EAGAIN) throw systemError("sem_trywait", action, errno);
    if (!semWaitSync(this.#sem, deadline, action)) {
      throw timeoutError(action, deadline.timeout);
    }
    this.#spinner.slept(performance.now() - started);
  }

  /**
   * Removes this semaphore's name (see the static {@linkcode Semaphore.unlink}).
   *
   * @throws {TypeError} for a semaphore in shared memory, which has no name
   *
   * @example
   * ```ts ignore
   * import { Semaphore } from "@ipckit/ipckit";
   *
   * using lock = Semaphore.open("/lock", { create: true });
   * lock.unlink();
   * ```
   */
  unlink(): void {
    if (this.#name === undefined) {
      throw new TypeError(`Cannot unlink ${this.#what}: it has no name`);
    }
    Semaphore.unlink(this.#name);
  }

  /**
   * Closes the handle; idempotent. Pending `wait()` calls reject with
   * `BadResource` within one park slice, without taking a count. The
   * `sem_t` is released (`sem_close`, or the region let go) once no parked
   * wait is on the thread pool. With `unlinkOnClose` the name is removed.
   *
   * @example
   * ```ts ignore
   * import { Semaphore } from "@ipckit/ipckit";
   *
   * const lock = Semaphore.open("/lock");
   * lock.close();
   * lock.close(); // no-op
   * ```
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    _leaked.unregister(this);
    this.#stopWatchingRegion?.();
    this.#parker.close(() => {
      this.#release();
      this.#markReleased();
    });
    if (this.#unlinkOnClose && this.#name !== undefined) {
      try {
        Semaphore.unlink(this.#name);
      } catch (error) {
        // Somebody else removed it first: the goal is reached.
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
    }
  }

  /** Closes the handle; see {@linkcode Semaphore.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes the handle and waits until no parked wait uses the `sem_t`. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.#released;
  }

  /** For waitSync(): sem_trywait, then a bounded spin while the count is 0 (see `spin`). */
  #tryWaitSpinning(deadline: Deadline): number {
    const errno = semTryWait(this.#sem);
    if (errno !== ERRNO.EAGAIN || deadline.timeout === 0) return errno;
    return this.#spinner.spin(
      errno,
      () => semTryWait(this.#sem),
      (result) => result !== ERRNO.EAGAIN,
    );
  }

  #checkOpen(verb: string): void {
    if (this.#closed) {
      throw new Deno.errors.BadResource(
        `Cannot ${verb} ${this.#what}: it is closed`,
      );
    }
  }
}

function _checkOffset(
  mapping: Mapping,
  byteOffset: unknown,
  action: string,
): void {
  if (
    typeof byteOffset !== "number" || !Number.isSafeInteger(byteOffset) ||
    byteOffset < 0
  ) {
    throw new RangeError(
      `Cannot ${action}: byteOffset must be an integer of 0 or more, got ${
        String(byteOffset)
      }`,
    );
  }
  if (byteOffset % SEM_T.ALIGN !== 0) {
    throw new RangeError(
      `Cannot ${action}: byteOffset ${byteOffset} is not a multiple of ${SEM_T.ALIGN}, the alignment of sem_t`,
    );
  }
  if (byteOffset + SEM_T.SIZE_OF > mapping.size) {
    throw new RangeError(
      `Cannot ${action}: a sem_t is ${SEM_T.SIZE_OF} bytes, which do not fit at byteOffset ${byteOffset} of its ${mapping.size} bytes`,
    );
  }
}
