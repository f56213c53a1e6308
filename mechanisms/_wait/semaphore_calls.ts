/**
 * The C side of semaphores: try, post, read the value, and block the
 * calling thread (for `waitSync`). Async waits never block a thread here:
 * see `semaphore_park.ts`.
 *
 * ## Clocks
 *
 * Timeouts are measured on the monotonic clock. glibc (>= 2.30) has
 * `sem_clockwait(sem, CLOCK_MONOTONIC, abstime)`, which is used wherever it
 * exists. musl and older glibc only have `sem_timedwait`, whose deadline is
 * on `CLOCK_REALTIME`: there the wait runs in slices of at most
 * {@link REALTIME_SLICE_MS}, each with a deadline of "realtime now + slice",
 * and the real deadline is re-checked on the monotonic clock
 * (`performance.now()`) after every slice. A wall-clock step forward then
 * ends a slice early (harmless: the loop goes on); a step backwards during
 * a slice lengthens that slice on glibc, which waits for the absolute
 * realtime instant. musl turns the absolute time into a relative futex
 * timeout when the call starts, so there a slice lasts its length whatever
 * the wall clock does.
 *
 * @module
 */

import { CLOCK, requireSymbol } from "../../ffi/c.ts";
import { ERRNO, lastErrno, retryEintr } from "../../ffi/errno.ts";
import { libc } from "../../ffi/load.ts";
import { Timespec } from "../../ffi/timespec.ts";
import { systemError } from "../_common/system_error.ts";
import type { Deadline } from "./deadline.ts";

/**
 * The largest value a semaphore can hold on Linux (glibc and musl: INT_MAX).
 *
 * @category Semaphores and mutexes
 */
export const SEM_VALUE_MAX = 2147483647;

/** Longest slice of a `sem_timedwait` on the realtime clock in a blocking wait. */
export const REALTIME_SLICE_MS = 100;

/** A `sem_t *`. */
export type SemPointer = Deno.PointerObject;

let _forceRealtime = false;

/**
 * For tests only: whether `waitSync` uses the `sem_timedwait` fallback even
 * where `sem_clockwait` exists.
 */
export function _tuneSemWait(options: { forceRealtime?: boolean }): void {
  if (options.forceRealtime !== undefined) {
    _forceRealtime = options.forceRealtime;
  }
}

function _hasClockwait(): boolean {
  return !_forceRealtime && libc().symbols.sem_clockwait !== null;
}

/** One non-blocking sem_trywait: 0 when a count was taken, else the errno. */
export function semTryWait(sem: SemPointer): number {
  const trywait = libc().symbols.sem_trywait;
  const result = retryEintr(() => trywait(sem));
  return result < 0 ? -result : 0;
}

/** One sem_post: 0, else the errno (EOVERFLOW at SEM_VALUE_MAX). */
export function semPost(sem: SemPointer): number {
  const post = libc().symbols.sem_post;
  return post(sem) === 0 ? 0 : lastErrno();
}

const _value = new Int32Array(1);

/** sem_getvalue: the count (never negative on Linux). */
export function semValue(sem: SemPointer, what: string): number {
  const getvalue = libc().symbols.sem_getvalue;
  if (getvalue(sem, new Uint8Array(_value.buffer)) !== 0) {
    throw systemError("sem_getvalue", `read the value of ${what}`);
  }
  return _value[0];
}

/**
 * Blocks the calling thread until a count is taken or the deadline passes.
 *
 * @returns true when a count was taken, false on timeout
 */
export function semWaitSync(
  sem: SemPointer,
  deadline: Deadline,
  action: string,
): boolean {
  const symbols = libc().symbols;
  if (deadline.at === Infinity) {
    const result = retryEintr(() => symbols.sem_wait(sem));
    if (result < 0) throw systemError("sem_wait", action, -result);
    return true;
  }
  const timespec = new Timespec();
  const clockwait = _hasClockwait() ? symbols.sem_clockwait : null;
  for (;;) {
    const remaining = deadline.at - performance.now();
    let result: number;
    if (clockwait) {
      timespec.setAfter(CLOCK.MONOTONIC, Math.max(0, remaining));
      result = clockwait(sem, CLOCK.MONOTONIC, timespec.bytes);
    } else {
      const timedwait = requireSymbol("sem_timedwait");
      const slice = Math.max(0, Math.min(remaining, REALTIME_SLICE_MS));
      timespec.setAfter(CLOCK.REALTIME, slice);
      result = timedwait(sem, timespec.bytes);
    }
    if (result === 0) return true;
    const errno = lastErrno();
    if (errno !== ERRNO.EINTR && errno !== ERRNO.ETIMEDOUT) {
      throw systemError(clockwait ? "sem_clockwait" : "sem_timedwait", action);
    }
    if (performance.now() >= deadline.at) return false;
  }
}
