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
 * The budget adapts upwards only. A request/response pair is bistable: once
 * one side sleeps, its answer takes a wake-up (70-100 us on the development
 * VM), longer than the other side's spin, so that side sleeps too, and so on
 * (measured: RPC over two message queues at ~180 us per call instead of
 * ~15 us, once a timer per request had disturbed it). So when a wait that
 * spun in vain ends soon after it went to sleep, the next spin is made long
 * enough to have caught it, up to 10 times the configured budget (500 us by
 * default; 4 times was not enough to escape here); a wait that ends later
 * resets the budget. The price: a receiver whose messages arrive every
 * 50-400 us spins instead of sleeping, which buys latency with CPU; set
 * `spin: 0` where CPU matters more. An earlier version instead paused spinning
 * after fruitless spins, which locked the pair into the slow state for good.
 *
 * The retry loop (retry.ts) is what spins; mechanisms only keep a
 * `Spinner` per direction so that each learns from its own waits.
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

/** How far a spin may grow past the configured budget. */
const _GROWTH_LIMIT = 10;

/** How long one channel direction spins before it sleeps. */
export class Spinner {
  #baseMs: number;
  #budgetMs: number;

  /** @param budgetMicros how long one spin may last; 0 disables spinning */
  constructor(budgetMicros: number) {
    this.#baseMs = budgetMicros / 1000;
    this.#budgetMs = this.#baseMs;
  }

  /** The current spin budget in microseconds (for tests and benchmarks). */
  get budgetMicros(): number {
    return this.#budgetMs * 1000;
  }

  /**
   * Reports a wait that spun in vain and then slept, `waitedMs` from its
   * first attempt to its success: the next spin lasts long enough to have
   * caught it, within the growth limit, or returns to the configured budget.
   */
  slept(waitedMs: number): void {
    if (this.#baseMs === 0) return;
    const limit = this.#baseMs * _GROWTH_LIMIT;
    this.#budgetMs = waitedMs * 1.25 <= limit
      ? Math.max(this.#baseMs, waitedMs * 1.25)
      : this.#baseMs;
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
