/**
 * The C side of semaphores: try, post, read, block the thread, and park an
 * async wait on Deno's thread pool without ever losing or inventing a count.
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
 * ## Parking an async wait (see {@link SemParker})
 *
 * A semaphore has no descriptor to poll and nothing can interrupt a thread
 * inside `sem_clockwait`. An async wait therefore parks with a *bounded*
 * wait on the thread pool: one slice of at most {@link parkSliceMs}
 * milliseconds, then back to the main thread, and again while anyone still
 * waits. That bound is what guarantees:
 *
 * - no pool thread is held longer than one slice after the last waiter left
 *   (timeout, abort or `close()`), and a closed semaphore never keeps the
 *   process alive for longer than that;
 * - the semaphore is released (`sem_close`, or the shared memory unmapped)
 *   only after the slice in flight has returned: the owner passes an
 *   `onIdle` callback to `close()`, as `FdParker.close` does for descriptors;
 * - a count is never lost or taken twice. A slice that returns 0 has taken
 *   one count *on behalf of the parker*. It is handed to the first waiter
 *   that is still waiting; if none is (all were aborted, timed out or
 *   closed meanwhile), it is posted back before any of them is told. An
 *   aborted or timed-out waiter is only rejected when the slice in flight
 *   returns, after that post-back, so once its promise settles the count is
 *   exactly what it would have been had it never waited. This is why abort
 *   latency is up to one slice: the slice length trades cancel latency
 *   against idle wake-ups (measured in bench/semaphore_slice.ts).
 *
 * @module
 */

import { CLOCK, requireSymbol, TIMESPEC_SIZE } from "../../ffi/c.ts";
import { ERRNO, lastErrno, retryEintr } from "../../ffi/errno.ts";
import { libc } from "../../ffi/load.ts";
import {
  closedError,
  systemError,
  timeoutError,
} from "../_common/system_error.ts";
import type { Deadline } from "./fd.ts";

/** The largest value a semaphore can hold on Linux (glibc and musl: INT_MAX). */
export const SEM_VALUE_MAX = 2147483647;

/** Longest slice of a `sem_timedwait` on the realtime clock in a blocking wait. */
export const REALTIME_SLICE_MS = 100;

/** A `sem_t *`. */
export type SemPointer = Deno.PointerObject;

let _parkSliceMs = 4;
let _forceRealtime = false;

/** The longest one parked async wait stays on the thread pool, in ms. */
export function parkSliceMs(): number {
  return _parkSliceMs;
}

/**
 * For benchmarks and tests only: sets the park slice, and whether to use the
 * `sem_timedwait` fallback even where `sem_clockwait` exists.
 */
export function _tuneSemWait(
  options: { parkSliceMs?: number; forceRealtime?: boolean },
): void {
  if (options.parkSliceMs !== undefined) _parkSliceMs = options.parkSliceMs;
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

/** Writes "now + ms" on `clock` into a timespec. */
function _timespecIn(target: BigInt64Array, clock: number, ms: number): void {
  const clockGettime = libc().symbols.clock_gettime;
  clockGettime(clock, new Uint8Array(target.buffer));
  const nanos = target[1] + BigInt(Math.max(0, Math.round(ms * 1e6)));
  target[0] += nanos / 1_000_000_000n;
  target[1] = nanos % 1_000_000_000n;
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
  const timespec = new BigInt64Array(2);
  const bytes = new Uint8Array(timespec.buffer);
  const clockwait = _hasClockwait() ? symbols.sem_clockwait : null;
  for (;;) {
    const remaining = deadline.at - performance.now();
    let result: number;
    if (clockwait) {
      _timespecIn(timespec, CLOCK.MONOTONIC, Math.max(0, remaining));
      result = clockwait(sem, CLOCK.MONOTONIC, bytes);
    } else {
      const timedwait = requireSymbol("sem_timedwait");
      const slice = Math.max(0, Math.min(remaining, REALTIME_SLICE_MS));
      _timespecIn(timespec, CLOCK.REALTIME, slice);
      result = timedwait(sem, bytes);
    }
    if (result === 0) return true;
    const errno = lastErrno();
    if (errno !== ERRNO.EINTR && errno !== ERRNO.ETIMEDOUT) {
      throw systemError(clockwait ? "sem_clockwait" : "sem_timedwait", action);
    }
    if (performance.now() >= deadline.at) return false;
  }
}

interface _Waiter {
  deadline: Deadline;
  action: string;
  /** Set when the caller gave up; it is told at the end of the slice. */
  cancelled?: { reason: unknown };
  resolve(): void;
  reject(error: unknown): void;
}

/**
 * Parks async waits on one `sem_t`, one bounded slice at a time, and hands
 * each count a slice takes to exactly one waiter (see the module doc).
 */
export class SemParker {
  #sem: SemPointer;
  #what: string;
  #queue: _Waiter[] = [];
  #inFlight = false;
  #closed = false;
  #onIdle: (() => void) | undefined;
  // C reads it on the pool thread while a slice is in flight.
  #timespec = new BigInt64Array(2);
  #timespecBytes = new Uint8Array(this.#timespec.buffer, 0, TIMESPEC_SIZE);

  /**
   * @param sem the semaphore; must stay valid until `close()` calls `onIdle`
   * @param what the object, for messages: `semaphore "/lock"`
   */
  constructor(sem: SemPointer, what: string) {
    this.#sem = sem;
    this.#what = what;
  }

  /**
   * Waits for a count, which the caller owns when the promise resolves. The
   * caller has just failed a `sem_trywait`. Rejects with `TimedOut` at the
   * deadline, the signal's reason on abort, `BadResource` on close; in
   * every rejected case no count was taken.
   */
  wait(
    deadline: Deadline,
    signal: AbortSignal | undefined,
    action: string,
  ): Promise<void> {
    if (this.#closed) return Promise.reject(closedError(this.#what));
    if (signal?.aborted) return Promise.reject(signal.reason);
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const onAbort = () => {
      waiter.cancelled ??= { reason: signal!.reason };
    };
    const waiter: _Waiter = {
      deadline,
      action,
      resolve: () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      },
      reject: (error) => {
        signal?.removeEventListener("abort", onAbort);
        reject(error);
      },
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#queue.push(waiter);
    this.#startSlice();
    return promise;
  }

  /**
   * Rejects every waiter with `BadResource` (at the end of the slice in
   * flight, if any) and calls `onIdle` once no slice is in flight: only then
   * may the owner release the `sem_t`.
   */
  close(onIdle: () => void): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#onIdle = onIdle;
    if (!this.#inFlight) this.#settle(false);
  }

  #startSlice(): void {
    if (this.#inFlight || this.#queue.length === 0 || this.#closed) return;
    let nearest = Infinity;
    for (const waiter of this.#queue) {
      nearest = Math.min(nearest, waiter.deadline.at);
    }
    const ms = Math.max(
      0,
      Math.min(_parkSliceMs, nearest - performance.now()),
    );
    const symbols = libc().symbols;
    let slice: Promise<number>;
    if (_hasClockwait() && symbols.sem_clockwait_nonblocking) {
      _timespecIn(this.#timespec, CLOCK.MONOTONIC, ms);
      slice = symbols.sem_clockwait_nonblocking(
        this.#sem,
        CLOCK.MONOTONIC,
        this.#timespecBytes,
      );
    } else {
      const timedwait = requireSymbol("sem_timedwait_nonblocking");
      _timespecIn(this.#timespec, CLOCK.REALTIME, ms);
      slice = timedwait(this.#sem, this.#timespecBytes);
    }
    this.#inFlight = true;
    // The slice's result alone says what happened: 0 means it took a count
    // (errno from the pool thread is unreadable, and is not needed).
    slice.then((result) => this.#afterSlice(result === 0));
  }

  #afterSlice(tookCount: boolean): void {
    this.#inFlight = false;
    this.#settle(tookCount);
    if (!this.#closed) this.#startSlice();
  }

  /** Tells each waiter what happened; `unit`: the slice holds one count. */
  #settle(unit: boolean): void {
    const queue = this.#queue;
    this.#queue = [];
    const resolved: _Waiter[] = [];
    const rejected: [_Waiter, unknown][] = [];
    const now = performance.now();
    for (const waiter of queue) {
      if (this.#closed) rejected.push([waiter, closedError(this.#what)]);
      else if (waiter.cancelled) {
        rejected.push([waiter, waiter.cancelled.reason]);
      } else if (unit) {
        unit = false;
        resolved.push(waiter);
      } else {
        const errno = semTryWait(this.#sem);
        if (errno === 0) resolved.push(waiter);
        else if (errno !== ERRNO.EAGAIN) {
          rejected.push([
            waiter,
            systemError("sem_trywait", waiter.action, errno),
          ]);
        } else if (now >= waiter.deadline.at) {
          rejected.push([
            waiter,
            timeoutError(waiter.action, waiter.deadline.timeout),
          ]);
        } else this.#queue.push(waiter);
      }
    }
    // Nobody took the slice's count: give it back before anyone hears of
    // the outcome. Should other processes have posted it up to
    // SEM_VALUE_MAX meanwhile, this post fails and the value is
    // SEM_VALUE_MAX, the same as if we had never taken the count: only the
    // EOVERFLOW went to us instead of to one of them.
    if (unit) semPost(this.#sem);
    for (const waiter of resolved) waiter.resolve();
    for (const [waiter, error] of rejected) waiter.reject(error);
    if (this.#closed) {
      const onIdle = this.#onIdle;
      this.#onIdle = undefined;
      onIdle?.();
    }
  }
}
