/**
 * Giving up on a promise that cannot be cancelled (an accept, a connect, a
 * datagram receive) when a deadline passes or a signal aborts.
 *
 * @module
 */

import { timeoutError } from "./_errors.ts";
import type { Deadline } from "./_wait.ts";

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
