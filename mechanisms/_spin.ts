/**
 * Spinning briefly before parking.
 *
 * An async wait that parks costs two cross-thread wake-ups: the kernel wakes
 * a thread-pool thread blocked in `poll()`, which then wakes the event loop.
 * When the peer answers within a few tens of microseconds (a request/response
 * partner on another core) it is cheaper to retry the non-blocking call for
 * that long on the main thread. The spin is bounded: a wait costs at most
 * `budgetMicros` of CPU before it sleeps, once per wait, however long the
 * wait then lasts.
 *
 * It is deliberately not adaptive. An earlier version paused spinning after
 * a few fruitless spins; in a request/response pair that let both sides fall
 * into a steady state where each parked, so each answer took a wake-up
 * longer than the spin, so the other side's spin failed too (measured: RPC
 * over two message queues at ~200 us per call instead of ~17 us).
 *
 * Async callers spin with {@linkcode Spinner.spinAsync}, which yields a
 * microtask between attempts. That matters: a receive loop that runs ahead
 * (an RPC client's reader, a server's accept-and-serve loop) would otherwise
 * hold the thread while the very code that produces the next message waits
 * behind it in the microtask queue. Timers and I/O callbacks still wait for
 * at most the budget.
 *
 * @module
 */

/** The default spin before parking, in microseconds. */
export const DEFAULT_SPIN_MICROS = 50;

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

/** How long one channel direction spins before it sleeps. */
export class Spinner {
  #budgetMs: number;

  /** @param budgetMicros how long one spin may last; 0 disables spinning */
  constructor(budgetMicros: number) {
    this.#budgetMs = budgetMicros / 1000;
  }

  /**
   * Retries `attempt` until `done(result)` or the budget runs out, and
   * returns the last result. Returns `first` untouched when spinning is off.
   */
  spin<R>(first: R, attempt: () => R, done: (result: R) => boolean): R {
    if (this.#budgetMs === 0) return first;
    const until = performance.now() + this.#budgetMs;
    let result = first;
    do {
      result = attempt();
    } while (!done(result) && performance.now() < until);
    return result;
  }

  /**
   * Like {@linkcode Spinner.spin}, but yields a microtask before each
   * attempt, so other promise continuations (often the code that will send
   * what this call waits for) run in between.
   */
  async spinAsync<R>(
    first: R,
    attempt: () => R,
    done: (result: R) => boolean,
  ): Promise<R> {
    if (this.#budgetMs === 0) return first;
    const until = performance.now() + this.#budgetMs;
    let result = first;
    do {
      await undefined;
      result = attempt();
    } while (!done(result) && performance.now() < until);
    return result;
  }
}
