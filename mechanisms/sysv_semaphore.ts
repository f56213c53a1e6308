/**
 * System V semaphore sets (`semget`, `semop`, `semtimedop`, `semctl`):
 * several counters under one key, changed together atomically, and with
 * `SEM_UNDO`, which makes the kernel revert what a process did when it
 * dies. That is what makes {@linkcode SysvSemaphoreSet.lock} a lock that a
 * crash releases by itself: a holder killed with SIGKILL gives the count
 * back, and the next waiter goes on.
 *
 * Permissions: `/proc/sysvipc/sem` stands for every set: opening needs
 * `--allow-read` and `--allow-write` on it (an operation changes the set;
 * suggested as `=/proc/sysvipc`), removing `--allow-write`; every call
 * `--allow-ffi`. With `--allow-read=/proc/sys/kernel` the set size and the
 * number of operations are checked against `/proc/sys/kernel/sem` first.
 *
 * ## How an async wait waits
 *
 * A blocking `semop` on Deno's thread pool would hold a thread per wait and,
 * worse, take the count after its caller gave up (a timed-out `wait()` that
 * still decrements later loses a count for good). So `wait()` and
 * `operate()` try `semop` with `IPC_NOWAIT` on the main thread, through the
 * one retry loop, and between tries sleep on the timer shared by every wait
 * on the set in this process (1 ms after activity, doubling to 32 ms; see
 * mechanisms/_wait/poll_group.ts and the README's "What waiting costs"). A
 * post from this process wakes its waiters at once; one from another
 * process is seen within 32 ms. `waitSync()` blocks in `semtimedop`, which
 * takes a timeout.
 *
 * @example A lock that survives its holder's crash
 * ```ts
 * import { SysvSemaphoreSet } from "@ipckit/ipckit/sysv-semaphore";
 *
 * using set = SysvSemaphoreSet.open("private", {
 *   create: true,
 *   count: 1,
 *   initial: 1,
 *   unlinkOnClose: true,
 * });
 * {
 *   using _held = await set.lock(0, { timeout: 5000 });
 *   // … if this process is killed here, the kernel gives the count back …
 * }
 * ```
 *
 * @module
 */

import { ERRNO } from "../ffi/errno.ts";
import {
  encodeSemOps,
  IPC,
  semGet,
  semget,
  semGetAll,
  type SemidDs,
  semSetAll,
  semSetValue,
  semStat,
  semtimedop,
} from "../ffi/sysv.ts";
import type { WaitOptions } from "./channel.ts";
import { checkFlag, checkOptionKeys, optionKeys } from "./_common/checks.ts";
import {
  holdOf,
  Lifecycle,
  unlinkQuietly,
  untilClosed,
} from "./_common/lifecycle.ts";
import { systemError, timeoutError } from "./_common/system_error.ts";
import {
  checkSysvOpen,
  describeLimit,
  describeSysv,
  getTracked,
  idError,
  readSysvLimit,
  removeSysvId,
  requireSysvAdoptable,
  requireSysvPermissions,
  resolveKey,
  settleOrRemove,
  SYSV_KIND_FACTS,
  type SysvKey,
} from "./_kernel/sysv.ts";
import {
  deadlineOf,
  remainingMs,
  SYNC_WAIT_KEYS,
  WAIT_KEYS,
} from "./_wait/deadline.ts";
import { type PollGroup, pollGroup } from "./_wait/poll_group.ts";
import { retryAsync, type RetryPlan, retrySync } from "./_wait/retry.ts";
import { checkSpinMicros, Spinner } from "./_wait/spin.ts";

export type { SysvKey } from "./_kernel/sysv.ts";

/**
 * The largest value a System V semaphore holds on Linux (SEMVMX).
 *
 * @example
 * ```ts
 * import { SYSV_SEM_VALUE_MAX } from "@ipckit/ipckit";
 *
 * console.log(SYSV_SEM_VALUE_MAX); // 32767
 * ```
 *
 * @category System V IPC
 */
export const SYSV_SEM_VALUE_MAX = 32767;

/**
 * How to open a System V semaphore set.
 *
 * @example
 * ```ts
 * import type { SysvSemaphoreSetOptions } from "@ipckit/ipckit";
 *
 * const forks: SysvSemaphoreSetOptions = { create: true, count: 5, initial: 1 };
 * ```
 *
 * @category System V IPC
 */
export interface SysvSemaphoreSetOptions {
  /** Create the set if no set has the key. Needs `count`. Default `false`. */
  create?: boolean;
  /** With `create`: fail with `AlreadyExists` if it exists. Default `false`. */
  exclusive?: boolean;
  /**
   * With `create`, which existing set to use: `"owned"` (default) only one
   * whose owner and creator are this process's effective uid and whose mode
   * grants nothing beyond `mode`; `"any-owner"` any this process may use.
   */
  adopt?: "owned" | "any-owner";
  /**
   * How many semaphores a created set has (1 to the kernel's SEMMSL). An
   * existing set with fewer is an error. Unset: the existing set's count.
   */
  count?: number;
  /**
   * The values of a created set: one for all, or one per semaphore, each
   * 0 to 32767. Default 0. Needs `create`; ignored when `create` finds an
   * existing set (it keeps its values).
   */
  initial?: number | readonly number[];
  /** Permission bits of a created set. Default `0o600`. */
  mode?: number;
  /**
   * Remove the set (`IPC_RMID`, as {@linkcode SysvSemaphoreSet.remove})
   * when this handle closes. Unlike unlinking a POSIX name, that ends the
   * set at once: other processes' waits on it fail with `NotFound`.
   * Default `false`: the set stays, as every named object does (the
   * README's "Cleaning up").
   */
  unlinkOnClose?: boolean;
  /** Microseconds a wait retries before it sleeps, 0 to 1000. Default 50. */
  spin?: number;
}

/**
 * One operation of {@linkcode SysvSemaphoreSet.operate}.
 *
 * @example
 * ```ts
 * import type { SysvSemaphoreOp } from "@ipckit/ipckit";
 *
 * // Take one of semaphore 0 and one of semaphore 1, both or neither.
 * const both: SysvSemaphoreOp[] = [{ index: 0, delta: -1 }, { index: 1, delta: -1 }];
 * ```
 *
 * @category System V IPC
 */
export interface SysvSemaphoreOp {
  /** Which semaphore of the set. Default 0. */
  index?: number;
  /**
   * Add this much (positive, never waits), take this much (negative, waits
   * until the value is at least that much), or wait until the value is 0
   * (0). -32767 to 32767.
   */
  delta: number;
  /** `SEM_UNDO`: the kernel reverts this change when the process ends. Default `false`. */
  undo?: boolean;
}

/**
 * Options of {@linkcode SysvSemaphoreSet.wait} and `post`.
 *
 * @example
 * ```ts
 * import type { SysvWaitOptions } from "@ipckit/ipckit";
 *
 * const options: SysvWaitOptions = { count: 2, undo: true, timeout: 100 };
 * ```
 *
 * @category System V IPC
 */
export interface SysvWaitOptions extends WaitOptions {
  /** How much to take (or add). Default 1. */
  count?: number;
  /** `SEM_UNDO`: reverted by the kernel when this process ends. Default `false`. */
  undo?: boolean;
}

/**
 * Who waits on one semaphore, as the kernel counts them.
 *
 * @example
 * ```ts
 * import type { SysvSemaphoreWaiters } from "@ipckit/ipckit";
 *
 * const idle: SysvSemaphoreWaiters = { forIncrease: 0, forZero: 0 };
 * ```
 *
 * @category System V IPC
 */
export interface SysvSemaphoreWaiters {
  /** Processes blocked until the value grows (`GETNCNT`); ipckit's async waits never block, so they are not counted. */
  forIncrease: number;
  /** Processes blocked until the value is 0 (`GETZCNT`). */
  forZero: number;
}

/**
 * A semaphore held by {@linkcode SysvSemaphoreSet.lock}: `release()` or
 * leaving the `using` block gives it back; so does the kernel if the
 * process dies first.
 *
 * @example
 * ```ts
 * import { SysvSemaphoreSet } from "@ipckit/ipckit";
 *
 * using set = SysvSemaphoreSet.open("private", {
 *   create: true,
 *   count: 1,
 *   initial: 1,
 *   unlinkOnClose: true,
 * });
 * const held = await set.lock(0, { timeout: 1000 });
 * held.release();
 * console.log(held.held, set.value(0)); // false 1
 * ```
 *
 * @category System V IPC
 */
export interface SysvSemaphoreLock extends Disposable, AsyncDisposable {
  /** Whether this lock still holds its semaphore. */
  readonly held: boolean;
  /** Gives the semaphore back; idempotent. */
  release(): void;
  /** The same as {@linkcode SysvSemaphoreLock.release}. */
  close(): void;
  /** Releases it; see {@linkcode SysvSemaphoreLock.release}. */
  [Symbol.dispose](): void;
  /** Releases it; see {@linkcode SysvSemaphoreLock.release}. */
  [Symbol.asyncDispose](): Promise<void>;
}

const _OPEN_KEYS = optionKeys<SysvSemaphoreSetOptions>({
  create: true,
  exclusive: true,
  adopt: true,
  count: true,
  initial: true,
  mode: true,
  unlinkOnClose: true,
  spin: true,
});
const _OP_KEYS = optionKeys<SysvSemaphoreOp>({
  index: true,
  delta: true,
  undo: true,
});
const _WAIT_KEYS = optionKeys<SysvWaitOptions>({
  count: true,
  undo: true,
  timeout: true,
  signal: true,
});
const _TRY_WAIT_KEYS = optionKeys<Pick<SysvWaitOptions, "count" | "undo">>({
  count: true,
  undo: true,
});
const _WAIT_SYNC_KEYS = optionKeys<
  Pick<SysvWaitOptions, "count" | "undo" | "timeout">
>({ count: true, undo: true, timeout: true });

/**
 * A System V semaphore set.
 *
 * @example Producer and consumer counts
 * ```ts
 * import { SysvSemaphoreSet } from "@ipckit/ipckit";
 *
 * // 0: free slots, 1: filled slots
 * using slots = SysvSemaphoreSet.open("private", {
 *   create: true,
 *   count: 2,
 *   initial: [8, 0],
 *   unlinkOnClose: true,
 * });
 * await slots.wait(0, { timeout: 1000 });
 * slots.post(1);
 * console.log(slots.values()); // [7, 1]
 * ```
 *
 * @category System V IPC
 */
export class SysvSemaphoreSet implements Disposable, AsyncDisposable {
  #id: number;
  #key: number;
  #count: number;
  #what: string;
  #unlinkOnClose: boolean;
  // No safety net (Lifecycle.guard): a set id is not a resource this
  // process holds, and SEM_UNDO records go with the process, not the handle.
  #life: Lifecycle;
  #closing = new AbortController();
  #spinner: Spinner;
  #group: () => PollGroup;
  /** `/proc/sys/kernel/sem` when it may be read, read once at open. */
  #limits: number[] | undefined;

  private constructor(
    id: number,
    key: number,
    count: number,
    what: string,
    unlinkOnClose: boolean,
    spin: number,
  ) {
    this.#id = id;
    this.#key = key;
    this.#count = count;
    this.#what = what;
    this.#unlinkOnClose = unlinkOnClose;
    this.#life = new Lifecycle(what);
    this.#spinner = new Spinner(spin);
    this.#limits = readSysvLimit("sem");
    const groupKey = `sysv-sem:${id}`;
    this.#group = () => pollGroup(groupKey);
  }

  /**
   * Opens (or with `create`, creates) the set of `key`: a number, ftok's
   * `{ path, id }`, or `"private"`.
   *
   * @throws {TypeError} for an invalid key or option, before any system call
   * @throws {RangeError} for a count above the kernel's SEMMSL (naming
   * `/proc/sys/kernel/sem`), initial values outside 0 to 32767, or an
   * existing set with fewer semaphores than `count`
   * @throws {Deno.errors.NotCapable} without `--allow-read` and `--allow-write` on `/proc/sysvipc/sem`
   * @throws {Deno.errors.NotFound} when no set has the key and `create` is not set
   * @throws {Deno.errors.AlreadyExists} with `create` and `exclusive` when it exists
   * @throws {Deno.errors.PermissionDenied} with `create` when an existing set
   * belongs to another user or has a wider mode (see `adopt`)
   *
   * @example
   * ```ts
   * import { SysvSemaphoreSet } from "@ipckit/ipckit";
   *
   * using set = SysvSemaphoreSet.open("private", {
   *   create: true,
   *   count: 3,
   *   initial: 1,
   *   unlinkOnClose: true,
   * });
   * console.log(set.values()); // [1, 1, 1]
   * ```
   */
  static open(
    key: SysvKey,
    options: SysvSemaphoreSetOptions = {},
  ): SysvSemaphoreSet {
    const request = checkSysvOpen("sysv-sem", key, options, _OPEN_KEYS, {
      name: "count",
      value: options.count,
    });
    const { checked, action, create } = request;
    if (options.initial !== undefined && !create) {
      throw new TypeError(
        `Cannot ${action}: initial needs create (an existing set keeps its values)`,
      );
    }
    const count = options.count === undefined
      ? undefined
      : _checkCount(options.count, action);
    const initial = count === undefined
      ? undefined
      : _checkInitial(options.initial ?? 0, count, action);
    const spin = checkSpinMicros(options.spin, action);

    requireSysvPermissions("sysv-sem", ["read", "write"]);
    const number = resolveKey(checked, SYSV_KIND_FACTS["sysv-sem"].label);
    const opening = `open ${describeSysv("sysv-sem", checked, undefined)}`;
    const got = getTracked(
      (flags) => semget(number, flags & IPC.CREAT ? count! : 0, flags),
      (errno, reason) => systemError("semget", opening, errno, reason),
      request,
    );
    const { id, created } = got;
    const status = settleOrRemove("sysv-sem", got, (): SemidDs => {
      const status = semStat(id);
      if (typeof status === "number") {
        throw idError("semctl", opening, -status);
      }
      if (create && !created) {
        requireSysvAdoptable(status.perm, request, "semget", opening);
      }
      if (count !== undefined && status.nsems < count) {
        throw new RangeError(
          `Cannot ${opening}: it has ${status.nsems} semaphores, fewer than the ${count} requested`,
        );
      }
      if (created && initial!.some((value) => value !== 0)) {
        const result = semSetAll(id, initial!);
        if (result < 0) throw idError("semctl", opening, -result);
      }
      return status;
    });
    return new SysvSemaphoreSet(
      id,
      number,
      status.nsems,
      describeSysv("sysv-sem", checked, id),
      request.unlinkOnClose,
      spin,
    );
  }

  /** The set's id (what `ipcs -s` shows as semid). */
  get id(): number {
    return this.#id;
  }

  /** The set's key; 0 for a private set. */
  get key(): number {
    return this.#key;
  }

  /** How many semaphores the set has. */
  get count(): number {
    return this.#count;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * The value of semaphore `index` (`GETVAL`).
   *
   * @example
   * ```ts
   * import { SysvSemaphoreSet } from "@ipckit/ipckit";
   *
   * using set = SysvSemaphoreSet.open("private", {
   *   create: true,
   *   count: 1,
   *   initial: 1,
   *   unlinkOnClose: true,
   * });
   * console.log(set.value(0)); // 1
   * ```
   */
  value(index: number = 0): number {
    const at = this.#index(index, "read the value of");
    return this.#get(at, IPC.GETVAL, "read the value of");
  }

  /**
   * Every value of the set (`GETALL`).
   *
   * @example
   * ```ts
   * import { SysvSemaphoreSet } from "@ipckit/ipckit";
   *
   * using set = SysvSemaphoreSet.open("private", {
   *   create: true,
   *   count: 2,
   *   initial: [3, 0],
   *   unlinkOnClose: true,
   * });
   * console.log(set.values()); // [3, 0]
   * ```
   */
  values(): number[] {
    this.#checkOpen("read the values of");
    const result = semGetAll(this.#id, this.#count);
    if (typeof result === "number") {
      throw idError("semctl", `read the values of ${this.#what}`, -result);
    }
    return result;
  }

  /**
   * Sets semaphore `index` to `value` (`SETVAL`), which also clears every
   * process's undo record for it; waiters that can now go on are woken.
   *
   * @throws {RangeError} for a value outside 0 to 32767
   *
   * @example
   * ```ts
   * import { SysvSemaphoreSet } from "@ipckit/ipckit";
   *
   * using set = SysvSemaphoreSet.open("private", {
   *   create: true,
   *   count: 1,
   *   initial: 0,
   *   unlinkOnClose: true,
   * });
   * set.setValue(0, 1);
   * console.log(set.value(0)); // 1
   * ```
   */
  setValue(index: number, value: number): void {
    const at = this.#index(index, "set the value of");
    const checked = _checkValue(value, `set the value of ${this.#what}`);
    const result = semSetValue(this.#id, at, checked);
    if (result < 0) {
      throw idError("semctl", `set the value of ${this.#what}`, -result);
    }
    this.#group().poke();
  }

  /**
   * How many processes the kernel has blocked on semaphore `index`
   * (`GETNCNT`, `GETZCNT`): C programs and `waitSync()` callers.
   *
   * @example
   * ```ts
   * import { SysvSemaphoreSet } from "@ipckit/ipckit";
   *
   * using set = SysvSemaphoreSet.open("private", {
   *   create: true,
   *   count: 1,
   *   initial: 1,
   *   unlinkOnClose: true,
   * });
   * console.log(set.waiting(0)); // { forIncrease: 0, forZero: 0 }
   * ```
   */
  waiting(index: number = 0): SysvSemaphoreWaiters {
    const at = this.#index(index, "count the waiters of");
    return {
      forIncrease: this.#get(at, IPC.GETNCNT, "count the waiters of"),
      forZero: this.#get(at, IPC.GETZCNT, "count the waiters of"),
    };
  }

  /**
   * The process that last operated on semaphore `index` (`GETPID`); 0 for
   * none.
   *
   * @example
   * ```ts
   * import { SysvSemaphoreSet } from "@ipckit/ipckit";
   *
   * using set = SysvSemaphoreSet.open("private", {
   *   create: true,
   *   count: 1,
   *   initial: 1,
   *   unlinkOnClose: true,
   * });
   * set.post(0);
   * console.log(set.lastPid(0) === Deno.pid); // true
   * ```
   */
  lastPid(index: number = 0): number {
    const at = this.#index(index, "read the last pid of");
    return this.#get(at, IPC.GETPID, "read the last pid of");
  }

  /**
   * Applies `ops` all at once, atomically, or none of them: waits without
   * blocking the event loop until every one can be applied. When it
   * rejects (timeout, abort, close) nothing was applied.
   *
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   * @throws {Deno.errors.BadResource} when the set is closed meanwhile
   * @throws {Deno.errors.NotFound} when the set is removed meanwhile
   * @throws {RangeError} for an index outside the set, a delta outside
   * -32767 to 32767, more operations than the kernel's SEMOPM, or a value
   * that would exceed 32767
   *
   * @example
   * ```ts
   * import { SysvSemaphoreSet } from "@ipckit/ipckit";
   *
   * // Five forks; a philosopher takes two at once, or neither.
   * using forks = SysvSemaphoreSet.open("private", {
   *   create: true,
   *   count: 5,
   *   initial: 1,
   *   unlinkOnClose: true,
   * });
   * await forks.operate([{ index: 0, delta: -1 }, { index: 1, delta: -1 }], {
   *   timeout: 1000,
   * });
   * console.log(forks.values()); // [0, 0, 1, 1, 1]
   * ```
   */
  async operate(
    ops: readonly SysvSemaphoreOp[],
    options: WaitOptions = {},
  ): Promise<void> {
    checkOptionKeys(options, WAIT_KEYS, `operate on ${this.#what}`);
    const encoded = this.#encode(ops, "operate on");
    const plan = this.#plan(encoded, options);
    const waiter = this.#group().waiter(encoded.classKey, plan);
    let errno: number;
    try {
      errno = await retryAsync(plan, waiter.park);
    } finally {
      waiter.end();
    }
    if (errno !== 0) throw this.#error(errno, plan.action);
  }

  /**
   * Applies `ops` atomically if that can be done now.
   *
   * @returns whether they were applied (false: one would have had to wait)
   *
   * @example
   * ```ts
   * import { SysvSemaphoreSet } from "@ipckit/ipckit";
   *
   * using set = SysvSemaphoreSet.open("private", {
   *   create: true,
   *   count: 1,
   *   initial: 1,
   *   unlinkOnClose: true,
   * });
   * if (set.tryOperate([{ delta: -1 }])) set.post();
   * ```
   */
  tryOperate(ops: readonly SysvSemaphoreOp[]): boolean {
    const encoded = this.#encode(ops, "operate on");
    const errno = this.#attempt(encoded.nowait);
    if (errno === 0) return true;
    if (errno === ERRNO.EAGAIN) return false;
    throw this.#error(errno, `operate on ${this.#what}`);
  }

  /**
   * Applies `ops` atomically, blocking the calling thread until they can
   * be (`semtimedop`, with the timeout).
   *
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   *
   * @example
   * ```ts
   * import { SysvSemaphoreSet } from "@ipckit/ipckit";
   *
   * using set = SysvSemaphoreSet.open("private", {
   *   create: true,
   *   count: 1,
   *   initial: 1,
   *   unlinkOnClose: true,
   * });
   * set.operateSync([{ delta: -1, undo: true }], { timeout: 1000 });
   * ```
   */
  operateSync(
    ops: readonly SysvSemaphoreOp[],
    options: { timeout?: number } = {},
  ): void {
    checkOptionKeys(options, SYNC_WAIT_KEYS, `operate on ${this.#what}`);
    const encoded = this.#encode(ops, "operate on");
    const plan = this.#plan(encoded, options);
    const errno = retrySync(plan, () => {
      this.#checkOpen();
      const deadline = plan.deadline;
      const result = semtimedop(
        this.#id,
        encoded.blocking,
        deadline.at === Infinity ? undefined : remainingMs(deadline),
      );
      if (result === 0) {
        this.#group().poke();
        return 0;
      }
      if (-result === ERRNO.EAGAIN) {
        throw timeoutError(plan.action, deadline.timeout);
      }
      return -result;
    });
    if (errno !== 0) throw this.#error(errno, plan.action);
  }

  /**
   * Takes `count` (default 1) from semaphore `index`, waiting without
   * blocking the event loop while its value is lower.
   *
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   * @throws {Deno.errors.BadResource} when the set is closed meanwhile
   *
   * @example
   * ```ts
   * import { SysvSemaphoreSet } from "@ipckit/ipckit";
   *
   * using set = SysvSemaphoreSet.open("private", {
   *   create: true,
   *   count: 1,
   *   initial: 1,
   *   unlinkOnClose: true,
   * });
   * await set.wait(0, { timeout: 1000 });
   * ```
   */
  wait(index: number = 0, options: SysvWaitOptions = {}): Promise<void> {
    checkOptionKeys(options, _WAIT_KEYS, `wait on ${this.#what}`);
    return this.operate([
      {
        index,
        delta: -_checkAmount(options.count, this.#what),
        undo: options.undo,
      },
    ], { timeout: options.timeout, signal: options.signal });
  }

  /**
   * Takes `count` (default 1) from semaphore `index` if it can now.
   *
   * @returns whether it was taken
   *
   * @example
   * ```ts
   * import { SysvSemaphoreSet } from "@ipckit/ipckit";
   *
   * using set = SysvSemaphoreSet.open("private", {
   *   create: true,
   *   count: 1,
   *   initial: 1,
   *   unlinkOnClose: true,
   * });
   * if (set.tryWait()) set.post();
   * ```
   */
  tryWait(
    index: number = 0,
    options: Pick<SysvWaitOptions, "count" | "undo"> = {},
  ): boolean {
    checkOptionKeys(options, _TRY_WAIT_KEYS, `wait on ${this.#what}`);
    return this.tryOperate([
      {
        index,
        delta: -_checkAmount(options.count, this.#what),
        undo: options.undo,
      },
    ]);
  }

  /**
   * Takes `count` (default 1) from semaphore `index`, blocking the calling
   * thread while its value is lower.
   *
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   *
   * @example
   * ```ts
   * import { SysvSemaphoreSet } from "@ipckit/ipckit";
   *
   * using set = SysvSemaphoreSet.open("private", {
   *   create: true,
   *   count: 1,
   *   initial: 1,
   *   unlinkOnClose: true,
   * });
   * set.waitSync(0, { timeout: 1000 });
   * ```
   */
  waitSync(
    index: number = 0,
    options: Pick<SysvWaitOptions, "count" | "undo" | "timeout"> = {},
  ): void {
    checkOptionKeys(options, _WAIT_SYNC_KEYS, `wait on ${this.#what}`);
    this.operateSync([
      {
        index,
        delta: -_checkAmount(options.count, this.#what),
        undo: options.undo,
      },
    ], { timeout: options.timeout });
  }

  /**
   * Adds `count` (default 1) to semaphore `index`, waking the waiters that
   * can now go on. Never waits.
   *
   * @throws {RangeError} when the value would exceed 32767
   *
   * @example
   * ```ts
   * import { SysvSemaphoreSet } from "@ipckit/ipckit";
   *
   * using set = SysvSemaphoreSet.open("private", {
   *   create: true,
   *   count: 1,
   *   initial: 0,
   *   unlinkOnClose: true,
   * });
   * set.post(0);
   * console.log(set.value(0)); // 1
   * ```
   */
  post(
    index: number = 0,
    options: Pick<SysvWaitOptions, "count" | "undo"> = {},
  ): void {
    checkOptionKeys(options, _TRY_WAIT_KEYS, `post ${this.#what}`);
    const applied = this.tryOperate([
      {
        index,
        delta: _checkAmount(options.count, this.#what),
        undo: options.undo,
      },
    ]);
    // An increase never waits; EAGAIN cannot happen.
    if (!applied) throw new Error(`Cannot post ${this.#what}: it would wait`);
  }

  /**
   * Takes semaphore `index` as a lock (1, with `SEM_UNDO`): the kernel
   * gives it back if this process dies while holding it. Release it with
   * the returned lock's `release()` or by leaving its `using` block.
   *
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   * @throws {Deno.errors.BadResource} when the set is closed meanwhile
   *
   * @example
   * ```ts
   * import { SysvSemaphoreSet } from "@ipckit/ipckit";
   *
   * using set = SysvSemaphoreSet.open("private", {
   *   create: true,
   *   count: 1,
   *   initial: 1,
   *   unlinkOnClose: true,
   * });
   * {
   *   using _held = await set.lock(0, { timeout: 5000 });
   *   // … one process at a time …
   * }
   * ```
   */
  async lock(
    index: number = 0,
    options: WaitOptions = {},
  ): Promise<SysvSemaphoreLock> {
    checkOptionKeys(options, WAIT_KEYS, `lock ${this.#what}`);
    await this.operate([{ index, delta: -1, undo: true }], options);
    // The undo records of the take and the give cancel out. A closed
    // handle cannot give it back: the kernel does when the process ends.
    return holdOf(this.#life, () => this.post(index, { undo: true }), {});
  }

  /**
   * Removes the set (`IPC_RMID`): every waiter, here or in any process,
   * fails with `NotFound`.
   *
   * @throws {Deno.errors.NotCapable} without `--allow-write=/proc/sysvipc`
   * @throws {Deno.errors.NotFound} when it was removed already
   *
   * @example
   * ```ts
   * import { SysvSemaphoreSet } from "@ipckit/ipckit";
   *
   * using set = SysvSemaphoreSet.open("private", { create: true, count: 1 });
   * set.remove(); // gone for every process; their waits fail with NotFound
   * ```
   */
  remove(): void {
    removeSysvId("sysv-sem", this.#id, this.#what);
    this.#group().poke();
  }

  /**
   * Closes the handle; idempotent. Pending waits reject with
   * `Deno.errors.BadResource`, having taken nothing. The set stays unless
   * the handle was opened with `unlinkOnClose: true` (then it is removed,
   * as {@linkcode SysvSemaphoreSet.remove} does; one removed already counts
   * as done). Undo records stay until the process ends.
   *
   * @example
   * ```ts
   * import { SysvSemaphoreSet } from "@ipckit/ipckit";
   *
   * const set = SysvSemaphoreSet.open("private", {
   *   create: true,
   *   count: 1,
   *   unlinkOnClose: true,
   * });
   * set.close();
   * set.close(); // no-op
   * ```
   */
  close(): void {
    this.#life.close(() => {
      this.#closing.abort(this.#life.closedError());
      if (this.#unlinkOnClose) unlinkQuietly(() => this.remove());
    });
  }

  /** Closes the handle; see {@linkcode SysvSemaphoreSet.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes the handle; see {@linkcode SysvSemaphoreSet.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.#life.closeAsync(() => this.close());
  }

  #checkOpen(verb: string = "operate on"): void {
    this.#life.check(verb);
  }

  #index(index: unknown, verb: string): number {
    this.#checkOpen(verb);
    if (
      typeof index !== "number" || !Number.isInteger(index) || index < 0 ||
      index >= this.#count
    ) {
      throw new RangeError(
        `Cannot ${verb} ${this.#what}: index must be an integer from 0 to ${
          this.#count - 1
        }, got ${String(index)}`,
      );
    }
    return index;
  }

  #get(index: number, cmd: number, verb: string): number {
    const result = semGet(this.#id, index, cmd);
    if (result < 0) throw idError("semctl", `${verb} ${this.#what}`, -result);
    return result;
  }

  #encode(
    ops: readonly SysvSemaphoreOp[],
    verb: string,
  ): _EncodedOps {
    this.#checkOpen(verb);
    const action = `${verb} ${this.#what}`;
    if (!Array.isArray(ops) || ops.length === 0) {
      throw new TypeError(`Cannot ${action}: give at least one operation`);
    }
    const semopm = this.#limits?.[2];
    if (semopm !== undefined && ops.length > semopm) {
      throw new RangeError(
        `Cannot ${action}: ${ops.length} operations, above SEMOPM, the third number of ${
          describeLimit("sem", this.#limits!)
        }`,
      );
    }
    const plain = ops.map((op) => {
      if (typeof op !== "object" || op === null) {
        throw new TypeError(
          `Cannot ${action}: each operation is { index, delta, undo }`,
        );
      }
      // A misspelt index would otherwise act on semaphore 0.
      checkOptionKeys(op, _OP_KEYS, action);
      const index = this.#index(op.index ?? 0, verb);
      const delta = op.delta;
      if (
        typeof delta !== "number" || !Number.isInteger(delta) ||
        Math.abs(delta) > SYSV_SEM_VALUE_MAX
      ) {
        throw new RangeError(
          `Cannot ${action}: delta must be an integer from -${SYSV_SEM_VALUE_MAX} to ${SYSV_SEM_VALUE_MAX}, got ${
            String(delta)
          }`,
        );
      }
      checkFlag(op.undo, "undo", action);
      return { index, op: delta, flags: op.undo ? IPC.SEM_UNDO : 0 };
    });
    return {
      blocking: encodeSemOps(plain),
      nowait: encodeSemOps(
        plain.map((op) => ({ ...op, flags: op.flags | IPC.NOWAIT })),
      ),
      classKey: plain.map((op) => `${op.index}:${op.op}`).join(","),
    };
  }

  /** One semop with IPC_NOWAIT: 0 or the errno. */
  #attempt(nowait: Uint8Array<ArrayBuffer>): number {
    this.#checkOpen();
    const result = semtimedop(this.#id, nowait);
    if (result === 0) {
      this.#group().poke();
      return 0;
    }
    return -result;
  }

  #plan(encoded: _EncodedOps, options: WaitOptions): RetryPlan<number> {
    return {
      attempt: () => this.#attempt(encoded.nowait),
      wouldBlock: (errno) => errno === ERRNO.EAGAIN,
      spinner: this.#spinner,
      deadline: deadlineOf(options),
      signal: untilClosed(options.signal, this.#closing.signal),
      action: `operate on ${this.#what}`,
    };
  }

  #error(errno: number, action: string): Error {
    if (errno === ERRNO.ERANGE) {
      return new RangeError(
        `Cannot ${action}: a value would exceed ${SYSV_SEM_VALUE_MAX} (SEMVMX)`,
      );
    }
    if (errno === ERRNO.EAGAIN) {
      return systemError("semop", action, errno, "it would have to wait");
    }
    return idError("semop", action, errno);
  }
}

interface _EncodedOps {
  blocking: Uint8Array<ArrayBuffer>;
  nowait: Uint8Array<ArrayBuffer>;
  /** Waits with the same operations fail or succeed together. */
  classKey: string;
}

function _checkCount(value: unknown, action: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new RangeError(
      `Cannot ${action}: count must be a positive integer, got ${
        String(value)
      }`,
    );
  }
  const sem = readSysvLimit("sem");
  if (sem !== undefined && value > sem[0]) {
    throw new RangeError(
      `Cannot ${action}: count is ${value}, above SEMMSL, the first number of the kernel limit ${
        describeLimit("sem", sem)
      }`,
    );
  }
  return value;
}

function _checkValue(value: unknown, action: string): number {
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < 0 ||
    value > SYSV_SEM_VALUE_MAX
  ) {
    throw new RangeError(
      `Cannot ${action}: a value must be an integer from 0 to ${SYSV_SEM_VALUE_MAX} (SEMVMX), got ${
        String(value)
      }`,
    );
  }
  return value;
}

function _checkInitial(
  initial: unknown,
  count: number,
  action: string,
): number[] {
  if (typeof initial === "number") {
    return new Array(count).fill(_checkValue(initial, action));
  }
  if (!Array.isArray(initial) || initial.length !== count) {
    throw new TypeError(
      `Cannot ${action}: initial must be a number or an array of ${count} numbers`,
    );
  }
  return initial.map((value) => _checkValue(value, action));
}

function _checkAmount(count: unknown, what: string): number {
  if (count === undefined) return 1;
  if (
    typeof count !== "number" || !Number.isInteger(count) || count < 1 ||
    count > SYSV_SEM_VALUE_MAX
  ) {
    throw new RangeError(
      `Cannot operate on ${what}: count must be an integer from 1 to ${SYSV_SEM_VALUE_MAX}, got ${
        String(count)
      }`,
    );
  }
  return count;
}
