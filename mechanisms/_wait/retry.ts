/**
 * The one loop behind every wait: try the operation without blocking, spin
 * briefly, then park until it may succeed, and try again.
 *
 * A mechanism describes its operation as a {@linkcode RetryPlan} (one
 * non-blocking attempt and how to tell "would block" from a result) and
 * says how to park: on the reactor for a descriptor
 * (`reactor.ts`), on the futex lanes for a word in shared memory
 * (`futex.ts`), or on a backing-off timer ({@linkcode backoffPark}) where
 * nothing can be waited on. The attempts run on the calling thread, so
 * errno is exact; parking only says "try again now".
 *
 * The async loop checks the signal and the deadline before every park, so
 * a wait whose deadline has passed (`timeout: 0`) or whose signal aborted
 * never registers anywhere; the parks bound themselves by both as well.
 *
 * @module
 */

import { timeoutError } from "../_common/system_error.ts";
import { type Deadline, expired, sleep } from "./deadline.ts";
import type { Spinner } from "./spin.ts";

/** One waiting operation, as the retry loop sees it. */
export interface RetryPlan<R> {
  /** One non-blocking attempt; it throws for a closed handle. */
  attempt: () => R;
  /** Whether a result means "would block, try again later". */
  wouldBlock: (result: R) => boolean;
  /** Spins before the first park, and learns how long parks lasted; none: no spin. */
  spinner?: Spinner;
  /** When to give up with `TimedOut`. */
  deadline: Deadline;
  /** Aborting gives up with the signal's reason (async form only). */
  signal?: AbortSignal;
  /** What is being done, for the timeout message: `receive from message queue "/jobs"`. */
  action: string;
}

/** What bounds a park: the plan's deadline, signal and action. */
export type ParkBounds = Pick<
  RetryPlan<unknown>,
  "deadline" | "signal" | "action"
>;

/**
 * Attempts until the result is final: once, then a spin (unless the
 * caller allows no waiting), then `park` between attempts. Returns the
 * final result (a success or an error code for the caller to throw), or
 * throws the timeout, the signal's reason, or whatever `park` throws
 * (`BadResource` on close).
 */
export async function retryAsync<R>(
  plan: RetryPlan<R>,
  park: () => Promise<void>,
): Promise<R> {
  const { deadline, signal } = plan;
  if (signal?.aborted) throw signal.reason;
  const done = (value: R) => !plan.wouldBlock(value);
  let result = plan.attempt();
  if (done(result)) return result;
  const started = performance.now();
  if (plan.spinner && deadline.timeout !== 0) {
    // An abort while spinning stops the spin before another attempt, so a
    // cancelled wait takes nothing (a count, a message).
    result = await plan.spinner.spinAsync(
      result,
      () => signal?.aborted ? result : plan.attempt(),
      (value) => signal?.aborted === true || done(value),
    );
    if (done(result)) return result;
  }
  for (;;) {
    if (signal?.aborted) throw signal.reason;
    if (expired(deadline)) throw timeoutError(plan.action, deadline.timeout);
    await park();
    result = plan.attempt();
    if (done(result)) {
      plan.spinner?.slept(performance.now() - started);
      return result;
    }
  }
}

/**
 * The blocking form of {@linkcode retryAsync}. `block` sleeps the calling
 * thread until the operation may succeed, and throws the timeout itself;
 * where the blocking call performs the operation (`sem_clockwait` takes the
 * count) it returns that final result instead of `undefined`.
 */
export function retrySync<R>(
  plan: RetryPlan<R>,
  block: () => R | undefined,
): R {
  const done = (value: R) => !plan.wouldBlock(value);
  let result = plan.attempt();
  if (done(result)) return result;
  const started = performance.now();
  if (plan.spinner && plan.deadline.timeout !== 0) {
    result = plan.spinner.spin(result, plan.attempt, done);
    if (done(result)) return result;
  }
  for (;;) {
    if (expired(plan.deadline)) {
      throw timeoutError(plan.action, plan.deadline.timeout);
    }
    const blocked = block();
    result = blocked === undefined ? plan.attempt() : blocked;
    if (done(result)) {
      plan.spinner?.slept(performance.now() - started);
      return result;
    }
  }
}

/**
 * A park for what nothing can be waited on (a FIFO without a reader, a
 * path that does not exist yet, a semaphore outside glibc): sleeps on a
 * timer, `firstMs` at first and twice as long each time after, up to
 * `maxMs`, bounded by the plan's deadline and signal. Costs no thread and
 * a timer per sleep; answers within `maxMs` of the change it waits for.
 */
export function backoffPark(
  firstMs: number,
  maxMs: number,
  plan: ParkBounds,
): () => Promise<void> {
  let delay = firstMs;
  return () => {
    const ms = delay;
    delay = Math.min(delay * 2, maxMs);
    return sleep(ms, plan.deadline, plan.signal, plan.action);
  };
}
