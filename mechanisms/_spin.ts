/**
 * Spinning briefly before parking.
 *
 * An async wait that parks costs two cross-thread wake-ups: the kernel wakes
 * a thread-pool thread blocked in `poll()`, which then wakes the event loop.
 * When the peer answers within a few tens of microseconds (a request/response
 * partner on another core) it is cheaper to retry the non-blocking call for
 * that long on the main thread. The spin is bounded, so the event loop is
 * held for at most `budgetMicros`, and adaptive: after a run of spins that
 * found nothing it stops spinning for a while, so an idle channel costs one
 * short spin now and then rather than one per wait.
 *
 * @module
 */

/** The default spin before parking, in microseconds. */
export const DEFAULT_SPIN_MICROS = 50;

/** Consecutive fruitless spins after which spinning pauses. */
const _FAILURES_BEFORE_PAUSE = 4;
/** Waits that park without spinning during a pause. */
const _PAUSE_WAITS = 32;

/** Checks a `spin` option: microseconds from 0 (never spin) to 1000. */
export function checkSpinMicros(value: unknown, action: string): number {
  if (value === undefined) return DEFAULT_SPIN_MICROS;
  if (
    typeof value !== "number" || !Number.isFinite(value) || value < 0 ||
    value > 1000
  ) {
    throw new RangeError(
      `Cannot ${action}: spin must be 0 to 1000 microseconds, got ${
        String(value)
      }`,
    );
  }
  return value;
}

/** Decides, per channel direction, whether and how long to spin. */
export class Spinner {
  #budgetMs: number;
  #failures = 0;
  #pausedWaits = 0;

  /** @param budgetMicros how long one spin may last; 0 disables spinning */
  constructor(budgetMicros: number) {
    this.#budgetMs = budgetMicros / 1000;
  }

  /**
   * Retries `attempt` until `done(result)` or the budget runs out, and
   * returns the last result. Returns `first` untouched when spinning is off
   * or paused.
   */
  spin<R>(first: R, attempt: () => R, done: (result: R) => boolean): R {
    if (this.#budgetMs === 0) return first;
    if (this.#pausedWaits > 0) {
      this.#pausedWaits--;
      return first;
    }
    const until = performance.now() + this.#budgetMs;
    let result = first;
    do {
      result = attempt();
      if (done(result)) {
        this.#failures = 0;
        return result;
      }
    } while (performance.now() < until);
    if (++this.#failures >= _FAILURES_BEFORE_PAUSE) {
      this.#failures = 0;
      this.#pausedWaits = _PAUSE_WAITS;
    }
    return result;
  }
}
