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

/** How an operation ended: its value, or what it threw. */
type _Outcome<R> = { ok: true; value: R } | { ok: false; error: unknown };

/** A caller waiting for the next outcome. */
interface _Taker<R> {
  take(outcome: _Outcome<R>): void;
  fail(error: unknown): void;
}

/**
 * Operations that cannot be cancelled (an accept, a datagram receive, a
 * stream read), run one at a time on behalf of callers that queue for
 * them, so that each outcome goes to exactly one caller:
 *
 * - Concurrent callers queue in call order; each outcome settles the
 *   oldest caller still waiting, and the next operation starts only then.
 *   So two callers never share one result (two accepts would otherwise
 *   get the same connection, two datagram receives the same datagram).
 * - A caller that gives up (its deadline passed, its signal aborted)
 *   leaves the queue at once and keeps nothing alive: the operation holds
 *   one handler, this object's, never one per caller, so a server whose
 *   waits time out again and again stays flat.
 * - An outcome that arrives when every caller has given up is kept, and
 *   the next caller takes it instead of starting another operation: what
 *   the operation brought (a connection, a datagram) is not lost.
 *
 * `start` runs on the main thread, and its promise's value is handed on in
 * the same microtask it settles in, before the next operation starts: a
 * result decoded inside `start`'s own `then` may use a buffer the next
 * operation reuses.
 */
export class KeptOperation<R> {
  #inFlight = false;
  #takers = new Set<_Taker<R>>();
  #kept: _Outcome<R> | undefined;
  #start: (() => Promise<R>) | undefined;
  #closed: { reason: unknown; discard?: (value: R) => void } | undefined;

  /** Whether an operation is running right now. */
  get inFlight(): boolean {
    return this.#inFlight;
  }

  /**
   * The next outcome: a kept one, or that of the operation in progress or
   * of one made by `start()`, once every caller queued before has had its
   * own. Rejects at the deadline or on abort, leaving the queue.
   */
  run(
    start: () => Promise<R>,
    deadline: Deadline,
    signal: AbortSignal | undefined,
    action: string,
  ): Promise<R> {
    if (this.#closed) return Promise.reject(this.#closed.reason);
    this.#start = start;
    if (this.#kept) {
      const outcome = this.#kept;
      this.#kept = undefined;
      return outcome.ok
        ? Promise.resolve(outcome.value)
        : Promise.reject(outcome.error);
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    const { promise, resolve, reject } = Promise.withResolvers<R>();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const leave = () => {
      this.#takers.delete(taker);
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    const taker: _Taker<R> = {
      take: (outcome) => {
        leave();
        if (outcome.ok) resolve(outcome.value);
        else reject(outcome.error);
      },
      fail: (error) => {
        leave();
        reject(error);
      },
    };
    const onAbort = () => taker.fail(signal!.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    if (deadline.at !== Infinity) {
      timer = setTimeout(
        () => taker.fail(timeoutError(action, deadline.timeout)),
        Math.max(0, deadline.at - performance.now()),
      );
    }
    this.#takers.add(taker);
    this.#startIfNeeded();
    return promise;
  }

  /**
   * Rejects every waiting caller (and every later one) with `reason`. An
   * outcome kept or still to come is handed to `discard` (to close a
   * connection nobody will take) or dropped.
   */
  close(reason: unknown, discard?: (value: R) => void): void {
    if (this.#closed) return;
    this.#closed = { reason, discard };
    for (const taker of [...this.#takers]) taker.fail(reason);
    const kept = this.#kept;
    this.#kept = undefined;
    if (kept?.ok) discard?.(kept.value);
  }

  #startIfNeeded(): void {
    if (this.#inFlight || this.#takers.size === 0 || this.#closed) return;
    this.#inFlight = true;
    let operation: Promise<R>;
    try {
      operation = this.#start!();
    } catch (error) {
      operation = Promise.reject(error);
    }
    operation.then(
      (value) => this.#settle({ ok: true, value }),
      (error) => this.#settle({ ok: false, error }),
    );
  }

  #settle(outcome: _Outcome<R>): void {
    this.#inFlight = false;
    if (this.#closed) {
      if (outcome.ok) this.#closed.discard?.(outcome.value);
      return;
    }
    const [first] = this.#takers;
    if (first) first.take(outcome);
    else this.#kept = outcome;
    this.#startIfNeeded();
  }
}
