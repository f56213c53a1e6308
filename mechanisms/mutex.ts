/**
 * A mutex for processes, in shared memory, that survives its holder being
 * killed: `using _ = await mutex.lock();`.
 *
 * ## How it works
 *
 * The mutex is {@linkcode MUTEX_SIZE} bytes of shared memory: a
 * process-shared semaphore followed by an owner word. The owner word *is*
 * the lock: it holds the holder's pid (0 when free), set with one atomic
 * compare-and-swap, so there is no moment where the lock is taken but its
 * holder unknown. A bit in the word says that somebody may be sleeping; the
 * semaphore is only the sleeping place: a waiter sets the bit and waits on
 * the semaphore, and an unlock that finds the bit set posts it once. A post
 * that finds nobody asleep leaves a spare count, which costs a later waiter
 * one extra look at the word, never a wrong result. Waiters do not queue:
 * whoever finds the word free first takes it.
 *
 * The plain reads and writes made while holding the lock are ordered by
 * the sequentially consistent `Atomics` operations on the owner word (see
 * the memory ordering notes of `SharedMemory`).
 *
 * ## When the holder dies
 *
 * A process killed (SIGKILL, a crash) while holding a plain semaphore
 * leaves it taken forever. Here a waiter checks the owner's pid with
 * `kill(pid, 0)` before it sleeps and at least every 50 ms while asleep;
 * when the kernel answers ESRCH
 * (no such process) the waiter takes the lock over with a compare-and-swap
 * (exactly one waiter wins) and gets a guard whose `recovered` is `true`:
 * the data the lock guards may be half-updated and should be checked or
 * rebuilt.
 *
 * What is guaranteed, and what is not:
 * - A holder that dies is noticed by a waiter within about 50 ms, and by
 *   a new `lock()` call at once.
 * - Ownership is per process: the pid is what is recorded, so two handles
 *   (or Workers) of one process are one owner for recovery purposes. The
 *   guard API still keeps each lock paired with its own release.
 * - pid reuse: if the dead holder's pid is given to a new process before a
 *   waiter looks, the holder looks alive and the lock stays taken (no false
 *   recovery, but no recovery either). Linux hands pids out in increasing
 *   order up to `pid_max` (4,194,304 by default on 64-bit), so this needs
 *   the pid space to wrap meanwhile. The same holds when the new process
 *   with that pid is the one calling `lock()`: it cannot tell the stale
 *   lock from one its own other code holds, and waits until its timeout.
 * - pid namespaces: every process using one mutex must see the same pids.
 *   Processes in different containers sharing `/dev/shm` do not, and the
 *   dead-holder check would be wrong there: do not share a mutex across pid
 *   namespaces.
 * - `kill(pid, 0)` answering EPERM (another user's live process) counts as
 *   alive.
 * - A holder that died but is still a zombie (its parent has not reaped
 *   it) is dead: its state in `/proc/<pid>/stat` says `Z`. That file is
 *   read where `--allow-read` grants `/proc`; without that grant a zombie
 *   holder counts as alive until its parent reaps it.
 * - A process killed while sleeping leaves only the "somebody may be
 *   sleeping" bit behind, which the next unlock clears.
 * - Initialization: the first process to open the mutex runs `sem_init`
 *   and marks it ready; others wait up to a second for that, and take
 *   initialization over if the initializer died first (the init-once
 *   protocol of `mechanisms/_memory/init_once.ts`).
 *
 * @example Two processes take turns on a counter
 * ```ts
 * import { Mutex, MUTEX_SIZE, SharedMemory } from "@ipckit/ipckit";
 *
 * using memory = SharedMemory.open(`/counter-${Deno.pid}`, {
 *   create: true,
 *   size: MUTEX_SIZE + 8,
 *   unlinkOnClose: true,
 * });
 * using mutex = Mutex.inMemory(memory, 0);
 * const counter = memory.view(Float64Array, MUTEX_SIZE, 1);
 * using guard = await mutex.lock({ timeout: 1000 });
 * if (guard.recovered) console.warn("the last holder died while holding the lock");
 * counter[0] += 1;
 * ```
 *
 * @module
 */

import { processAlive } from "./_kernel/process_state.ts";
import type { WaitOptions } from "./channel.ts";
import { Lifecycle } from "./_common/lifecycle.ts";
import { checkOptionKeys, optionKeys } from "./_common/checks.ts";
import { initOnce } from "./_memory/init_once.ts";
import { placeIn } from "./_memory/placement.ts";
import {
  type Deadline,
  deadlineOf,
  expired,
  remainingMs,
  SYNC_WAIT_KEYS,
  WAIT_KEYS,
} from "./_wait/deadline.ts";
import { retryAsync, type RetryPlan, retrySync } from "./_wait/retry.ts";
import { Semaphore, SEMAPHORE_SIZE } from "./semaphore.ts";
import { SharedMemory, type SharedMemoryOptions } from "./shared_memory.ts";

/**
 * Bytes a mutex takes in shared memory.
 *
 * @category Semaphores and mutexes
 */
export const MUTEX_SIZE = 64;

/**
 * Required alignment of a mutex in shared memory.
 *
 * @category Semaphores and mutexes
 */
export const MUTEX_ALIGN = 8;

// How often a sleeping waiter looks whether the holder is still alive, in
// ms: how long a dead holder may keep the others waiting, against the cost
// of one kill(pid, 0) per waiter per look.
const _OWNER_CHECK_MS = 50;

// Layout: sem_t at 0, then 32-bit words.
const _STATE = SEMAPHORE_SIZE / 4; // the init-once state word (init_once.ts)
const _OWNER = _STATE + 1; // holder pid | _SLEEPERS, 0 when free
const _RECOVERIES = _STATE + 2; // how many times a dead holder was replaced
// Linux pids are below 2^22 (PID_MAX_LIMIT), so bit 30 is free for a flag.
const _SLEEPERS = 0x4000_0000;
const _PID_MASK = _SLEEPERS - 1;

/**
 * How to open a named mutex: the shared memory options that make sense for
 * it (its size is fixed).
 *
 * @example A named mutex removed when its handle closes
 * ```ts
 * import type { MutexOptions } from "@ipckit/ipckit";
 *
 * const options: MutexOptions = { create: true, unlinkOnClose: true };
 * ```
 *
 * @category Semaphores and mutexes
 */
export type MutexOptions = Pick<
  SharedMemoryOptions,
  "create" | "exclusive" | "adopt" | "mode" | "unlinkOnClose"
>;

const _OPEN_KEYS = optionKeys<MutexOptions>({
  create: true,
  exclusive: true,
  adopt: true,
  mode: true,
  unlinkOnClose: true,
});

/**
 * Proof of holding a {@linkcode Mutex}; releasing it (or leaving its `using`
 * scope, also by an exception) unlocks the mutex.
 *
 * @example A guard unlocks at the end of its block
 * ```ts
 * import { Mutex } from "@ipckit/ipckit";
 *
 * using mutex = Mutex.open(`/lock-${Deno.pid}`, { create: true, unlinkOnClose: true });
 * {
 *   using guard = await mutex.lock();
 *   console.log(guard.recovered); // false unless the last holder died
 * } // unlocked here
 * ```
 *
 * @category Semaphores and mutexes
 */
export class MutexGuard implements Disposable, AsyncDisposable {
  #release: (() => void) | undefined;
  #recovered: boolean;

  /** @internal Made by `Mutex.lock()`; not constructed by users. */
  constructor(release: () => void, recovered: boolean) {
    this.#release = release;
    this.#recovered = recovered;
  }

  /**
   * Whether the lock was taken over from a holder that died while holding
   * it: the data it guards may be half-updated.
   */
  get recovered(): boolean {
    return this.#recovered;
  }

  /** Whether this guard still holds the lock. */
  get held(): boolean {
    return this.#release !== undefined;
  }

  /**
   * Unlocks the mutex; idempotent.
   *
   * @example Unlock by hand
   * ```ts
   * import { Mutex } from "@ipckit/ipckit";
   *
   * using mutex = Mutex.open(`/lock-${Deno.pid}`, { create: true, unlinkOnClose: true });
   * const guard = mutex.lockSync();
   * guard.release();
   * console.log(guard.held); // false
   * ```
   */
  release(): void {
    const release = this.#release;
    this.#release = undefined;
    release?.();
  }

  /** Unlocks the mutex; the same as {@linkcode MutexGuard.release}. */
  close(): void {
    this.release();
  }

  /** Unlocks the mutex; see {@linkcode MutexGuard.release}. */
  [Symbol.dispose](): void {
    this.release();
  }

  /** Unlocks the mutex; see {@linkcode MutexGuard.release}. */
  [Symbol.asyncDispose](): Promise<void> {
    try {
      this.release();
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }
}

/**
 * A mutual exclusion lock shared by processes, which recovers when its
 * holder dies. See the module documentation for how it works and what is
 * guaranteed.
 *
 * @example Named: any process that opens the name shares it
 * ```ts
 * import { Mutex } from "@ipckit/ipckit";
 *
 * using mutex = Mutex.open(`/lock-${Deno.pid}`, { create: true, unlinkOnClose: true });
 * await mutex.withLock(() => {
 *   // … one process at a time …
 * });
 * ```
 *
 * @category Semaphores and mutexes
 */
export class Mutex implements Disposable, AsyncDisposable {
  #what: string;
  #words: Int32Array<ArrayBuffer>;
  #wake: Semaphore;
  #memory: SharedMemory | undefined;
  // The guards of locks held through this handle are its children: closing
  // the mutex releases them first, so other processes are not left waiting.
  #life: Lifecycle;
  #forgetRegion: () => void = () => {};

  private constructor(
    what: string,
    words: Int32Array<ArrayBuffer>,
    wake: Semaphore,
    memory: SharedMemory | undefined,
  ) {
    this.#what = what;
    this.#life = new Lifecycle(what);
    this.#words = words;
    this.#wake = wake;
    this.#memory = memory;
  }

  /**
   * Opens (or with `create`, creates) a mutex in its own shared memory
   * object `name`, e.g. `"/lock"` (the file `/dev/shm/lock`).
   *
   * Cleanup: the mutex stays after its handles close, for other
   * processes, unless this handle is opened with `unlinkOnClose: true`
   * (the one rule of every named object; see the README's "Cleaning up").
   *
   * @throws {Deno.errors.NotCapable} without read and write permission on `/dev/shm/<name>`
   * @throws {Deno.errors.NotFound} when it does not exist and `create` is not set
   * @throws {Deno.errors.PermissionDenied} with `create` when an existing
   * object belongs to another user or has a wider mode (see
   * `SharedMemoryOptions.adopt`)
   *
   * @example Open or create a named mutex
   * ```ts
   * import { Mutex } from "@ipckit/ipckit";
   *
   * using mutex = Mutex.open(`/lock-${Deno.pid}`, { create: true, unlinkOnClose: true });
   * console.log(mutex.locked); // false
   * ```
   */
  static open(name: string, options: MutexOptions = {}): Mutex {
    checkOptionKeys(options, _OPEN_KEYS, `open mutex "${name}"`);
    const memory = SharedMemory.open(name, {
      create: options.create,
      exclusive: options.exclusive,
      adopt: options.adopt,
      mode: options.mode,
      unlinkOnClose: options.unlinkOnClose,
      size: MUTEX_SIZE,
    });
    try {
      return Mutex.#bind(memory, 0, name, memory);
    } catch (error) {
      memory.close();
      throw error;
    }
  }

  /**
   * A mutex of {@linkcode MUTEX_SIZE} bytes at `byteOffset` (a multiple of
   * {@linkcode MUTEX_ALIGN}) of a shared memory region. The bytes must be
   * zero before its first use (fresh shared memory is); the first process
   * to bind it initializes it. Closing the region closes the mutex.
   *
   * @throws {TypeError} when `memory` is not an open, writable `SharedMemory`
   * @throws {RangeError} for an unaligned offset or one without room for the mutex
   * @throws {Deno.errors.TimedOut} when another process started initializing it and never finished
   *
   * @example A mutex at the start of a region, data after it
   * ```ts
   * import { Mutex, MUTEX_SIZE, SharedMemory } from "@ipckit/ipckit";
   *
   * using memory = SharedMemory.open(`/state-${Deno.pid}`, {
   *   create: true,
   *   size: MUTEX_SIZE + 1024,
   *   unlinkOnClose: true,
   * });
   * using mutex = Mutex.inMemory(memory, 0);
   * const data = memory.view(Uint8Array, MUTEX_SIZE);
   * await mutex.withLock(() => data.fill(1));
   * ```
   */
  static inMemory(memory: SharedMemory, byteOffset: number): Mutex {
    return Mutex.#bind(memory, byteOffset, undefined, undefined);
  }

  /**
   * Binds the mutex at `byteOffset` of `memory`, initializing it once across
   * processes. `owned`: the memory of `Mutex.open`, which this mutex closes.
   */
  static #bind(
    memory: SharedMemory,
    byteOffset: unknown,
    name: string | undefined,
    owned: SharedMemory | undefined,
  ): Mutex {
    const placement = placeIn(memory, byteOffset, {
      size: MUTEX_SIZE,
      align: MUTEX_ALIGN,
      typeName: "a mutex",
    }, "place a mutex in shared memory");
    const offset = placement.byteOffset;
    const what = name === undefined
      ? `mutex at byte ${offset} of ${placement.what}`
      : `mutex "${name}"`;
    const words = memory.view(Int32Array, offset, MUTEX_SIZE / 4);
    const wake = initOnce(words, _STATE, {
      initialize: () => Semaphore.inMemory(memory, offset, { initial: 0 }),
      attach: () => Semaphore.inMemory(memory, offset),
      what,
      kind: "a mutex",
    });
    const mutex = new Mutex(what, words, wake, owned);
    // Closing the region closes the mutex first, while the memory is still
    // mapped, so locks held through it are released, not left taken.
    mutex.#forgetRegion = placement.own(mutex);
    return mutex;
  }

  /** Whether some process holds the lock right now (a hint: it may change at once). */
  get locked(): boolean {
    this.#checkOpen("read");
    return (Atomics.load(this.#words, _OWNER) & _PID_MASK) !== 0;
  }

  /** The pid of the process holding the lock, or `undefined` when it is free (a hint). */
  get owner(): number | undefined {
    this.#checkOpen("read");
    const pid = Atomics.load(this.#words, _OWNER) & _PID_MASK;
    return pid === 0 ? undefined : pid;
  }

  /** How many times, over the mutex's life, a waiter took over from a dead holder. */
  get recoveries(): number {
    this.#checkOpen("read");
    return Atomics.load(this.#words, _RECOVERIES);
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * Takes the lock if it is free (or its holder is dead), without waiting.
   *
   * @returns the guard, or `undefined` when another live process holds it
   *
   * @example Lock only if nobody holds it
   * ```ts
   * import { Mutex } from "@ipckit/ipckit";
   *
   * using mutex = Mutex.open(`/lock-${Deno.pid}`, { create: true, unlinkOnClose: true });
   * const guard = mutex.tryLock();
   * if (guard) {
   *   using _ = guard;
   *   console.log("got it");
   * }
   * ```
   */
  tryLock(): MutexGuard | undefined {
    this.#checkOpen("lock");
    if (Atomics.compareExchange(this.#words, _OWNER, 0, Deno.pid) === 0) {
      return this.#guard(false);
    }
    const word = Atomics.load(this.#words, _OWNER);
    if (word !== 0 && this.#takeOverFromDead(word)) {
      return this.#guard(true);
    }
    return undefined;
  }

  /**
   * Takes the lock, waiting without blocking the event loop. Resolves to a
   * guard: `using _ = await mutex.lock();` unlocks at the end of the scope.
   *
   * @throws {Deno.errors.TimedOut} when `timeout` (ms) passes first
   * @throws {Deno.errors.BadResource} when the mutex is closed meanwhile
   * @throws the signal's reason when `signal` aborts
   *
   * @example Wait at most a second for the lock
   * ```ts
   * import { Mutex } from "@ipckit/ipckit";
   *
   * using mutex = Mutex.open(`/lock-${Deno.pid}`, { create: true, unlinkOnClose: true });
   * using guard = await mutex.lock({ timeout: 1000 });
   * console.log(guard.held); // true
   * ```
   */
  async lock(options: WaitOptions = {}): Promise<MutexGuard> {
    checkOptionKeys(options, WAIT_KEYS, `lock ${this.#what}`);
    const plan = this.#lockPlan(options);
    const outcome = await retryAsync(plan, async () => {
      try {
        await this.#wake.wait({
          signal: plan.signal,
          timeout: this.#ownerCheckIn(plan.deadline),
        });
      } catch (error) {
        // The owner check is due (or the deadline, which the loop reports).
        if (!(error instanceof Deno.errors.TimedOut)) throw error;
      }
    });
    return this.#guard(outcome === "recovered");
  }

  /**
   * Takes the lock, blocking the calling thread while another process holds
   * it. Meant for Workers and scripts.
   *
   * @throws {Deno.errors.TimedOut} when `timeout` (ms) passes first
   *
   * @example Lock in a Worker or a script, blocking the thread
   * ```ts
   * import { Mutex } from "@ipckit/ipckit";
   *
   * using mutex = Mutex.open(`/lock-${Deno.pid}`, { create: true, unlinkOnClose: true });
   * using guard = mutex.lockSync({ timeout: 1000 });
   * console.log(mutex.owner === Deno.pid); // true
   * ```
   */
  lockSync(options: { timeout?: number } = {}): MutexGuard {
    checkOptionKeys(options, SYNC_WAIT_KEYS, `lock ${this.#what}`);
    const plan = this.#lockPlan(options);
    const outcome = retrySync(plan, () => {
      try {
        this.#wake.waitSync({ timeout: this.#ownerCheckIn(plan.deadline) });
      } catch (error) {
        if (!(error instanceof Deno.errors.TimedOut)) throw error;
      }
      return undefined;
    });
    return this.#guard(outcome === "recovered");
  }

  /**
   * How a lock retries: take the word if it is free or its holder is dead,
   * else make sure the holder posts the wake semaphore when it unlocks.
   */
  #lockPlan(
    options: WaitOptions,
  ): RetryPlan<"acquired" | "recovered" | undefined> {
    const deadline = deadlineOf(options, `lock ${this.#what}`);
    this.#checkOpen("lock");
    let first = true;
    return {
      attempt: () => {
        this.#checkOpen("lock");
        // Only before this lock has contended may it take a free word
        // without the sleepers flag: afterwards others may sleep too, and
        // the unlock must post for them (#contend sets the flag).
        if (
          first &&
          Atomics.compareExchange(this.#words, _OWNER, 0, Deno.pid) === 0
        ) {
          return "acquired";
        }
        first = false;
        return this.#contend();
      },
      wouldBlock: (outcome) => outcome === undefined,
      deadline,
      signal: options.signal,
      action: `lock ${this.#what}`,
    };
  }

  /**
   * How long one sleep on the wake semaphore may last: until the next look
   * at whether the holder is alive, or the deadline if that comes first.
   */
  #ownerCheckIn(deadline: Deadline): number {
    if (expired(deadline)) return 0;
    const left = remainingMs(deadline);
    return left < 0 ? _OWNER_CHECK_MS : Math.min(left, _OWNER_CHECK_MS);
  }

  /**
   * Runs `fn` holding the lock and unlocks afterwards, also when it throws.
   *
   * @example Run a function holding the lock
   * ```ts
   * import { Mutex } from "@ipckit/ipckit";
   *
   * using mutex = Mutex.open(`/lock-${Deno.pid}`, { create: true, unlinkOnClose: true });
   * const total = await mutex.withLock((guard) => {
   *   if (guard.recovered) console.warn("repairing after a crash");
   *   return 42;
   * });
   * console.log(total); // 42
   * ```
   */
  async withLock<T>(
    fn: (guard: MutexGuard) => T | Promise<T>,
    options: WaitOptions = {},
  ): Promise<T> {
    if (typeof fn !== "function") {
      throw new TypeError(`Cannot lock ${this.#what}: fn must be a function`);
    }
    using guard = await this.lock(options);
    return await fn(guard);
  }

  /**
   * Closes the handle; idempotent. Locks held through this handle are
   * released first, so other processes are not left waiting; pending
   * `lock()` calls reject with `BadResource`. A mutex from `open()` also
   * closes its shared memory (and with `unlinkOnClose` removes the name).
   *
   * @example Close a mutex: locks held through it are released
   * ```ts
   * import { Mutex } from "@ipckit/ipckit";
   *
   * const mutex = Mutex.open(`/lock-${Deno.pid}`, { create: true, unlinkOnClose: true });
   * mutex.lockSync();
   * mutex.close(); // unlocks first, so no other process is left waiting
   * ```
   */
  close(): void {
    this.#life.close(() => {
      this.#forgetRegion();
      this.#wake.close();
      this.#memory?.close();
    });
  }

  /** Closes the handle; see {@linkcode Mutex.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes the handle; see {@linkcode Mutex.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.#life.closeAsync(() => this.close());
  }

  /**
   * One attempt before sleeping: takes the lock if it is free or its holder
   * is dead, else makes sure the holder will post the semaphore on unlock.
   *
   * @returns "acquired", "recovered", or undefined: sleep and try again
   */
  #contend(): "acquired" | "recovered" | undefined {
    const words = this.#words;
    const me = Deno.pid;
    for (;;) {
      const word = Atomics.load(words, _OWNER);
      if (word === 0) {
        // Taken with the flag set: we cannot know whether others sleep.
        if (Atomics.compareExchange(words, _OWNER, 0, me | _SLEEPERS) === 0) {
          return "acquired";
        }
        continue;
      }
      if (this.#takeOverFromDead(word)) return "recovered";
      if (word & _SLEEPERS) return undefined;
      if (
        Atomics.compareExchange(words, _OWNER, word, word | _SLEEPERS) === word
      ) {
        return undefined;
      }
    }
  }

  /**
   * Replaces a dead holder's `word` by ours, keeping its sleepers flag;
   * true if we won the swap.
   */
  #takeOverFromDead(word: number): boolean {
    const holder = word & _PID_MASK;
    if (holder === 0 || processAlive(holder)) return false;
    const words = this.#words;
    const mine = Deno.pid | (word & _SLEEPERS);
    if (Atomics.compareExchange(words, _OWNER, word, mine) !== word) {
      return false;
    }
    Atomics.add(words, _RECOVERIES, 1);
    return true;
  }

  #guard(recovered: boolean): MutexGuard {
    let forget = () => {};
    const guard: MutexGuard = new MutexGuard(() => {
      forget();
      this.#unlock();
    }, recovered);
    forget = this.#life.own(guard);
    return guard;
  }

  #unlock(): void {
    // A guard released after close() (its mutex released it then).
    if (this.#life.state === "closed") return;
    const words = this.#words;
    for (;;) {
      const word = Atomics.load(words, _OWNER);
      if ((word & _PID_MASK) !== Deno.pid) {
        // Only possible if another process decided we were dead (pid
        // namespaces differ) and took the lock: say so, loudly.
        throw new Deno.errors.BadResource(
          `Cannot unlock ${this.#what}: process ${
            word & _PID_MASK
          } holds it now`,
        );
      }
      if (Atomics.compareExchange(words, _OWNER, word, 0) !== word) continue;
      if (word & _SLEEPERS) {
        try {
          this.#wake.post();
        } catch (error) {
          // At SEM_VALUE_MAX there are plenty of wake-ups pending already.
          if ((error as { code?: string }).code !== "EOVERFLOW") throw error;
        }
      }
      return;
    }
  }

  #checkOpen(verb: string): void {
    this.#life.check(verb);
  }
}
