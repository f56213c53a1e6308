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
 * like C. How `wait()` sleeps (on the semaphore's own futex word, with no
 * thread of its own, on glibc) and why its cancellation never takes a count
 * is explained in `mechanisms/_wait/semaphore_park.ts`; which clock the
 * timeouts use on glibc and musl in `mechanisms/_wait/semaphore_calls.ts`.
 *
 * @example Take turns with another process
 * ```ts
 * import { Semaphore } from "@ipckit/ipckit/semaphore";
 *
 * using turn = Semaphore.open(`/turn-${Deno.pid}`, {
 *   create: true,
 *   initial: 1,
 *   unlinkOnClose: true,
 * });
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
import { mappingBackedBy } from "../ffi/maps.ts";
import { type FileStatus, statPath } from "../ffi/stat.ts";
import type { WaitOptions } from "./channel.ts";
import { systemError, timeoutError } from "./_common/system_error.ts";
import {
  checkCreateFlags,
  checkMode,
  checkOptionKeys,
  optionKeys,
} from "./_common/checks.ts";
import { Lifecycle, unlinkQuietly, untilClosed } from "./_common/lifecycle.ts";
import { placeIn } from "./_memory/placement.ts";
import {
  type AdoptPolicy,
  checkAdoptOption,
  requireAdoptable,
} from "./_kernel/adoption.ts";
import { NAME_MAX, validateIpcName } from "./_kernel/names.ts";
import { objectPath, SEM_DIR } from "./_kernel/objects.ts";
import { requirePermissions } from "./_kernel/permissions.ts";
import {
  SEM_VALUE_MAX,
  type SemPointer,
  semPost,
  semTryWait,
  semValue,
  semWaitSync,
} from "./_wait/semaphore_calls.ts";
import { SemaphorePark } from "./_wait/semaphore_park.ts";
import { deadlineOf, SYNC_WAIT_KEYS, WAIT_KEYS } from "./_wait/deadline.ts";
import { retryAsync, type RetryPlan, retrySync } from "./_wait/retry.ts";
import { checkSpinMicros, Spinner } from "./_wait/spin.ts";
import type { SharedMemory } from "./shared_memory.ts";

export { SEM_VALUE_MAX } from "./_wait/semaphore_calls.ts";

/**
 * Bytes of a `sem_t` and its alignment, for placing one in shared memory (LP64 glibc and musl).
 *
 * @category Semaphores and mutexes
 */
export const SEMAPHORE_SIZE: number = SEM_T.SIZE_OF;

/**
 * Required alignment of a `sem_t` in shared memory.
 *
 * @category Semaphores and mutexes
 */
export const SEMAPHORE_ALIGN: number = SEM_T.ALIGN;

/**
 * How to open a named semaphore.
 *
 * @example Four licences, gone with the last handle that asked
 * ```ts
 * import type { SemaphoreOptions } from "@ipckit/ipckit";
 *
 * const licences: SemaphoreOptions = { create: true, initial: 4, unlinkOnClose: true };
 * ```
 *
 * @category Semaphores and mutexes
 */
export interface SemaphoreOptions {
  /** Create the semaphore if it does not exist. Default `false`. */
  create?: boolean;
  /** With `create`: fail with `AlreadyExists` if it exists. Default `false`. */
  exclusive?: boolean;
  /**
   * With `create`, which existing semaphore to use. `"owned"` (default):
   * only one whose file is owned by this process's effective uid, whose
   * mode grants nothing beyond `mode` and which has no other hard link; any
   * other fails with `PermissionDenied` naming its owner and mode.
   * `"any-owner"`: any semaphore this process may open. Cannot be combined
   * with `exclusive`.
   */
  adopt?: "owned" | "any-owner";
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
 * @example The creator initializes, every other handle attaches
 * ```ts
 * import type { InMemorySemaphoreOptions } from "@ipckit/ipckit";
 *
 * const creator: InMemorySemaphoreOptions = { initial: 1 }; // sem_init
 * const user: InMemorySemaphoreOptions = {}; // attach to it
 * ```
 *
 * @category Semaphores and mutexes
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

const _OPEN_KEYS = optionKeys<SemaphoreOptions>({
  create: true,
  exclusive: true,
  adopt: true,
  initial: true,
  mode: true,
  unlinkOnClose: true,
  spin: true,
});
const _IN_MEMORY_KEYS = optionKeys<InMemorySemaphoreOptions>({
  initial: true,
  spin: true,
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

/** sem_open, retrying EINTR; returns the semaphore or throws for its errno. */
function _semOpen(
  name: string,
  flags: number,
  mode: number,
  initial: number,
  action: string,
): SemPointer {
  const cName = cString(name);
  const semOpen = libc().symbols.sem_open;
  for (;;) {
    const sem = semOpen(cName, flags, mode, initial);
    if (!_failed(sem)) return sem!;
    const errno = lastErrno();
    if (errno !== ERRNO.EINTR) throw systemError("sem_open", action, errno);
  }
}

/**
 * `create: true`: creates the semaphore exclusively, or opens the existing
 * one and adopts it only as `adopt` allows. sem_open keeps no descriptor, so
 * the file it mapped is found through the mapping itself (its device and
 * inode in /proc/self/maps) and compared with the file at the name, whose
 * owner and mode are then checked: exactly the object that was opened.
 */
function _createOrAdopt(
  name: string,
  base: string,
  mode: number,
  initial: number,
  exclusive: boolean,
  adopt: AdoptPolicy,
): SemPointer {
  const action = `open semaphore "${name}"`;
  // A few rounds cover a semaphore removed between our two attempts.
  for (let round = 0; round < 8; round++) {
    try {
      return _semOpen(name, O.CREAT | O.EXCL, mode, initial, action);
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists) || exclusive) {
        throw error;
      }
    }
    let sem: SemPointer;
    try {
      sem = _semOpen(name, 0, mode, initial, action);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      throw error;
    }
    try {
      requireAdoptable(
        _adoptedFile(sem, base, action),
        mode,
        adopt,
        "sem_open",
        action,
      );
      return sem;
    } catch (error) {
      libc().symbols.sem_close(sem);
      throw error;
    }
  }
  throw systemError(
    "sem_open",
    action,
    ERRNO.EEXIST,
    "it kept appearing and disappearing while opening it",
  );
}

/**
 * The status of the file sem_open mapped at `sem`. glibc creates a
 * semaphore as a temporary file that it links to the name and then
 * unlinks, so for a moment a fresh one has two links: that moment is waited
 * out (briefly) rather than taken for a planted hard link.
 */
function _adoptedFile(
  sem: SemPointer,
  base: string,
  action: string,
): FileStatus {
  const address = BigInt(Deno.UnsafePointer.value(sem));
  const changed = () =>
    systemError(
      "sem_open",
      action,
      ERRNO.ENOENT,
      "it was replaced while it was being opened",
    );
  for (let attempt = 0;; attempt++) {
    const status = statPath(_pathOf(base), false);
    if (typeof status === "number") throw changed();
    const backed = mappingBackedBy(address, status);
    if (backed === undefined) {
      throw systemError(
        "sem_open",
        action,
        ERRNO.ENOENT,
        "ipckit checks who owns an existing semaphore through /proc/self/maps, and /proc is not mounted",
      );
    }
    if (!backed) throw changed();
    if (status.nlink <= 1 || attempt >= 20) return status;
    Atomics.wait(_pause, 0, 0, 1);
  }
}

/** A word nobody changes, to sleep on for a millisecond. */
const _pause = new Int32Array(new SharedArrayBuffer(4));

/** Whether an errno result means "the count is 0, wait". */
function _isAgain(errno: number): boolean {
  return errno === ERRNO.EAGAIN;
}

/**
 * A POSIX semaphore: a count that processes take (`wait`) and give
 * (`post`), waiting while it is 0.
 *
 * @example A pool of 4 licences shared by any number of processes
 * ```ts
 * import { Semaphore } from "@ipckit/ipckit";
 *
 * using licences = Semaphore.open(`/licences-${Deno.pid}`, {
 *   create: true,
 *   initial: 4,
 *   unlinkOnClose: true,
 * });
 * await licences.wait();
 * try {
 *   console.log("working, licences left:", licences.value); // 3
 * } finally {
 *   licences.post();
 * }
 * ```
 *
 * @category Semaphores and mutexes
 */
export class Semaphore implements Disposable, AsyncDisposable {
  #name: string | undefined;
  #what: string;
  #sem: SemPointer;
  #park: SemaphorePark;
  // Aborted by close(): every parked wait() rejects with "it is closed".
  #closing = new AbortController();
  #life: Lifecycle;
  #release: () => void;
  #unlinkOnClose: boolean;
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
    this.#life = new Lifecycle(what);
    this.#name = name;
    this.#release = release;
    this.#unlinkOnClose = unlinkOnClose;
    this.#park = new SemaphorePark(sem);
  }

  /**
   * Opens (or with `create`, creates) the named semaphore `name`, e.g.
   * `"/lock"`, which Linux keeps as `/dev/shm/sem.lock`.
   *
   * Cleanup: the semaphore stays after its handles close, for other
   * processes, unless this handle is opened with `unlinkOnClose: true`
   * (the one rule of every named object; see the README's "Cleaning up").
   *
   * @throws {TypeError} for an invalid name or option, before any system call
   * @throws {RangeError} for `initial` outside 0 to `SEM_VALUE_MAX`, or a name over 251 bytes
   * @throws {Deno.errors.NotCapable} without read and write permission on `/dev/shm/sem.<name>`
   * @throws {Deno.errors.NotFound} when it does not exist and `create` is not set
   * @throws {Deno.errors.AlreadyExists} with `create` and `exclusive` when it exists
   * @throws {Deno.errors.PermissionDenied} with `create` when an existing
   * semaphore belongs to another user or has a wider mode (see `adopt`)
   *
   * @example Create a semaphore that must not exist yet
   * ```ts
   * import { Semaphore } from "@ipckit/ipckit";
   *
   * using ready = Semaphore.open(`/ready-${Deno.pid}`, {
   *   create: true,
   *   exclusive: true,
   *   unlinkOnClose: true,
   * });
   * console.log(ready.value); // 0
   * ```
   */
  static open(name: string, options: SemaphoreOptions = {}): Semaphore {
    const action = `open semaphore "${name}"`;
    checkOptionKeys(options, _OPEN_KEYS, action);
    // Linux names the file "sem." + name, which must fit in NAME_MAX.
    const base = validateIpcName(name, "semaphore", NAME_MAX - 4);
    checkCreateFlags(options, action);
    const { create, exclusive, unlinkOnClose } = options;
    if (options.initial !== undefined && !create) {
      throw new TypeError(
        `Cannot ${action}: initial needs create (an existing semaphore keeps its value)`,
      );
    }
    const initial = _checkInitial(options.initial ?? 0, action);
    const mode = checkMode(options.mode ?? 0o600, action);
    const spin = checkSpinMicros(options.spin, action);
    const adopt = checkAdoptOption(options.adopt, create, exclusive, action);
    requirePermissions(["read", "write"], _pathOf(base), SEM_DIR);

    const sem = create
      ? _createOrAdopt(name, base, mode, initial, exclusive ?? false, adopt)
      : _semOpen(name, 0, mode, initial, action);
    const handle = new Semaphore(
      sem,
      `semaphore "${name}"`,
      name,
      () => libc().symbols.sem_close(sem),
      unlinkOnClose ?? false,
      spin,
    );
    // The safety net for a semaphore dropped without close().
    handle.#life.guard(handle, () => libc().symbols.sem_close(sem));
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
   * Closing the region closes this semaphore too, and rejects its parked
   * `wait()` calls first.
   *
   * @throws {TypeError} when `memory` is not an open, writable `SharedMemory`
   * @throws {RangeError} for an offset that is unaligned or leaves no room for a `sem_t`
   *
   * @example A semaphore and the data it guards in one region
   * ```ts
   * import { Semaphore, SEMAPHORE_SIZE, SharedMemory } from "@ipckit/ipckit";
   *
   * using memory = SharedMemory.open(`/jobs-${Deno.pid}`, {
   *   create: true,
   *   size: 4096,
   *   unlinkOnClose: true,
   * });
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
    checkOptionKeys(options, _IN_MEMORY_KEYS, action);
    const placement = placeIn(memory, byteOffset, {
      size: SEM_T.SIZE_OF,
      align: SEM_T.ALIGN,
      typeName: "sem_t",
    }, action);
    const spin = checkSpinMicros(options.spin, action);
    const initial = options.initial === undefined
      ? undefined
      : _checkInitial(options.initial, action);
    const { mapping } = placement;
    const sem = mapping.address(placement.byteOffset);
    const what =
      `semaphore at byte ${placement.byteOffset} of ${placement.what}`;
    if (initial !== undefined) {
      const result = libc().symbols.sem_init(sem, 1, initial);
      if (result !== 0) {
        throw systemError("sem_init", `initialize ${what}`, lastErrno());
      }
    }
    // Keep the memory mapped until this semaphore is closed: its waits
    // read the sem_t until then. Closing the region closes it first.
    const letGo = mapping.retain();
    let forget = () => {};
    const handle = new Semaphore(
      sem,
      what,
      undefined,
      () => {
        forget();
        letGo();
      },
      false,
      spin,
    );
    forget = placement.own(handle);
    return handle;
  }

  /**
   * Removes a named semaphore's name. Processes that have it open keep using
   * it; it is freed when the last one closes it.
   *
   * @throws {Deno.errors.NotFound} when no semaphore has that name
   * @throws {Deno.errors.NotCapable} without `--allow-write` on `/dev/shm/sem.<name>`
   *
   * @example Remove a name that outlived its handles
   * ```ts
   * import { Semaphore } from "@ipckit/ipckit";
   *
   * const name = `/lock-${Deno.pid}`;
   * Semaphore.open(name, { create: true }).close(); // the name stays
   * Semaphore.unlink(name); // now it is gone
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
    return this.#life.closed;
  }

  /**
   * The current count (`sem_getvalue`). Other processes may change it at
   * any moment, so it is a hint, not something to decide on.
   *
   * @example How many licences are free, as a hint
   * ```ts
   * import { Semaphore } from "@ipckit/ipckit";
   *
   * using licences = Semaphore.open(`/licences-${Deno.pid}`, {
   *   create: true,
   *   initial: 4,
   *   unlinkOnClose: true,
   * });
   * console.log(`${licences.value} licences free`); // 4 licences free
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
   * @example Signal that something is ready
   * ```ts
   * import { Semaphore } from "@ipckit/ipckit";
   *
   * using ready = Semaphore.open(`/ready-${Deno.pid}`, {
   *   create: true,
   *   unlinkOnClose: true,
   * });
   * ready.post();
   * console.log(ready.value); // 1
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
   * @example Work only if a licence is free now
   * ```ts
   * import { Semaphore } from "@ipckit/ipckit";
   *
   * using licences = Semaphore.open(`/licences-${Deno.pid}`, {
   *   create: true,
   *   initial: 1,
   *   unlinkOnClose: true,
   * });
   * if (licences.tryWait()) {
   *   try {
   *     console.log("got one");
   *   } finally {
   *     licences.post();
   *   }
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
   * taken. Spins briefly first (the `spin` option), then sleeps without a
   * thread of its own (see the module doc).
   *
   * @throws {Deno.errors.TimedOut} when `timeout` (ms, monotonic) passes first
   * @throws {Deno.errors.BadResource} when the semaphore is closed before or meanwhile
   * @throws the signal's reason when `signal` aborts
   *
   * @example Wait at most a second, or until aborted
   * ```ts
   * import { Semaphore } from "@ipckit/ipckit";
   *
   * using ready = Semaphore.open(`/ready-${Deno.pid}`, {
   *   create: true,
   *   unlinkOnClose: true,
   * });
   * const stop = new AbortController();
   * setTimeout(() => ready.post(), 10);
   * await ready.wait({ timeout: 1000, signal: stop.signal });
   * ```
   */
  async wait(options: WaitOptions = {}): Promise<void> {
    checkOptionKeys(options, WAIT_KEYS, `wait on ${this.#what}`);
    const plan = this.#waitPlan(options);
    plan.signal = untilClosed(options.signal, this.#closing.signal);
    const { park, end } = this.#park.parkFor(plan);
    let errno: number;
    try {
      errno = await retryAsync(plan, park);
    } finally {
      end();
    }
    if (errno !== 0) throw systemError("sem_trywait", plan.action, errno);
  }

  /**
   * Takes one from the count, blocking the calling thread while it is 0.
   * Meant for Workers and scripts: it stops the event loop while it waits.
   *
   * @throws {Deno.errors.TimedOut} when `timeout` (ms, monotonic) passes first
   *
   * @example Wait in a Worker or a script, blocking the thread
   * ```ts
   * import { Semaphore } from "@ipckit/ipckit";
   *
   * using ready = Semaphore.open(`/ready-${Deno.pid}`, {
   *   create: true,
   *   initial: 1,
   *   unlinkOnClose: true,
   * });
   * ready.waitSync({ timeout: 1000 });
   * ```
   */
  waitSync(options: { timeout?: number } = {}): void {
    checkOptionKeys(options, SYNC_WAIT_KEYS, `wait on ${this.#what}`);
    const plan = this.#waitPlan(options);
    // sem_clockwait takes the count itself when it returns in time.
    const errno = retrySync(plan, () => {
      if (semWaitSync(this.#sem, plan.deadline, plan.action)) return 0;
      throw timeoutError(plan.action, plan.deadline.timeout);
    });
    if (errno !== 0) throw systemError("sem_trywait", plan.action, errno);
  }

  /** How a wait retries: sem_trywait until it takes a count. */
  #waitPlan(options: WaitOptions): RetryPlan<number> {
    const deadline = deadlineOf(options, `wait on ${this.#what}`);
    this.#checkOpen("wait on");
    return {
      attempt: () => {
        // Closed while spinning: the sem_t may be gone, never touch it.
        this.#checkOpen("wait on");
        return semTryWait(this.#sem);
      },
      wouldBlock: _isAgain,
      spinner: this.#spinner,
      deadline,
      action: `wait on ${this.#what}`,
    };
  }

  /**
   * Removes this semaphore's name (see the static {@linkcode Semaphore.unlink}).
   *
   * @throws {TypeError} for a semaphore in shared memory, which has no name
   *
   * @example Remove the name while the semaphore stays usable
   * ```ts
   * import { Semaphore } from "@ipckit/ipckit";
   *
   * using lock = Semaphore.open(`/lock-${Deno.pid}`, { create: true });
   * lock.unlink(); // no new process can open it; this handle works on
   * lock.post();
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
   * `BadResource` at once, without taking a count, and the `sem_t` is
   * released (`sem_close`, or the region let go). With `unlinkOnClose` the
   * name is removed.
   *
   * @example Close twice
   * ```ts
   * import { Semaphore } from "@ipckit/ipckit";
   *
   * const lock = Semaphore.open(`/lock-${Deno.pid}`, {
   *   create: true,
   *   unlinkOnClose: true,
   * });
   * lock.close();
   * lock.close(); // no-op
   * ```
   */
  close(): void {
    this.#life.close(() => {
      // Off the waiter count, then every parked wait rejected (which stops
      // it reading the sem_t), then the sem_t released.
      this.#park.close();
      this.#closing.abort(this.#life.closedError("wait on"));
      this.#release();
      if (this.#unlinkOnClose && this.#name !== undefined) {
        const name = this.#name;
        unlinkQuietly(() => Semaphore.unlink(name));
      }
    });
  }

  /** Closes the handle; see {@linkcode Semaphore.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes the handle; see {@linkcode Semaphore.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.#life.closeAsync(() => this.close());
  }

  #checkOpen(verb: string): void {
    this.#life.check(verb);
  }
}
