/**
 * Giving up on a promise that cannot be cancelled (an accept, a connect, a
 * datagram receive) when a deadline passes or a signal aborts.
 *
 * @module
 */

import { timeoutError } from "../_common/system_error.ts";
import type { Deadline } from "./fd.ts";

/**
 * Settles with `operation`, or rejects when the deadline passes or `signal`
 * aborts. The operation keeps running: `onLate` receives its value if it
 * arrives after the caller gave up (to close a connection nobody will use).
 */
export function raceDeadline<R>(
  operation: Promise<R>,
  deadline: Deadline,
  signal: AbortSignal | undefined,
  action: string,
  onLate?: (value: R) => void,
): Promise<R> {
  if (deadline.at === Infinity && !signal) return operation;
  if (signal?.aborted) {
    if (onLate) operation.then(onLate, () => {});
    return Promise.reject(signal.reason);
  }
  const { promise, resolve, reject } = Promise.withResolvers<R>();
  let gaveUp = false;
  const giveUp = (reason: unknown) => {
    gaveUp = true;
    reject(reason);
  };
  const timer = deadline.at === Infinity ? undefined : setTimeout(
    () => giveUp(timeoutError(action, deadline.timeout)),
    Math.max(0, deadline.at - performance.now()),
  );
  const onAbort = () => giveUp(signal!.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  operation.then(
    (value) => {
      if (gaveUp) onLate?.(value);
      else resolve(value);
    },
    reject,
  ).finally(() => {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  });
  return promise;
}

/**
 * One operation that cannot be cancelled (an accept, a datagram receive),
 * kept across callers: a caller that gives up on it (its deadline passed or
 * its signal aborted) leaves it pending, and the next call awaits that same
 * operation instead of starting another, so what it brings is not lost.
 * Once it settles, or fails for any other reason, the next call starts anew.
 */
export class KeptOperation<R> {
  #pending: Promise<R> | undefined;

  /** The operation in progress, if one is. */
  get pending(): Promise<R> | undefined {
    return this.#pending;
  }

  /** Awaits the pending operation, or one made by `start()`, until the deadline. */
  async run(
    start: () => Promise<R>,
    deadline: Deadline,
    signal: AbortSignal | undefined,
    action: string,
  ): Promise<R> {
    this.#pending ??= start();
    let value: R;
    try {
      value = await raceDeadline(this.#pending, deadline, signal, action);
    } catch (error) {
      if (
        !(error instanceof Deno.errors.TimedOut) && error !== signal?.reason
      ) {
        this.#pending = undefined;
      }
      throw error;
    }
    this.#pending = undefined;
    return value;
  }
}
