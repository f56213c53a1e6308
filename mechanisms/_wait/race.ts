/**
 * Operations that cannot be cancelled (an accept, a datagram receive, a
 * stream read), run one at a time for the callers that queue for them.
 *
 * @module
 */

import { bounded, type Deadline, type Settle } from "./deadline.ts";

/** How an operation ended: its value, or what it threw. */
type _Outcome<R> = { ok: true; value: R } | { ok: false; error: unknown };

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
  #takers = new Set<Settle<R>>();
  #watchers = new Set<Settle<void>>();
  #kept: _Outcome<R> | undefined;
  #start: (() => Promise<R>) | undefined;
  #closed: { reason: unknown; discard?: (value: R) => void } | undefined;

  /** Whether an operation is running right now. */
  get inFlight(): boolean {
    return this.#inFlight;
  }

  /**
   * Whether nothing is running, kept or waited for: a caller may then do
   * the operation's work itself, synchronously, without losing the order.
   */
  get idle(): boolean {
    return !this.#inFlight && !this.#kept && this.#takers.size === 0 &&
      this.#watchers.size === 0 && !this.#closed;
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
    return bounded<R>(deadline, signal, action, (settle) => {
      this.#takers.add(settle);
      this.#startIfNeeded();
      return () => this.#takers.delete(settle);
    });
  }

  /**
   * Resolves once an outcome is kept for the next {@linkcode KeptOperation.run}
   * (its value or its error), starting an operation made by `start()` if
   * none is running: what a channel's `ready()` waits for. Takes nothing.
   */
  ready(
    start: () => Promise<R>,
    deadline: Deadline,
    signal: AbortSignal | undefined,
    action: string,
  ): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closed.reason);
    this.#start = start;
    if (this.#kept) return Promise.resolve();
    return bounded<void>(deadline, signal, action, (settle) => {
      this.#watchers.add(settle);
      this.#startIfNeeded();
      return () => this.#watchers.delete(settle);
    });
  }

  /**
   * Rejects every waiting caller (and every later one) with `reason`. An
   * outcome kept or still to come is handed to `discard` (to close a
   * connection nobody will take) or dropped.
   */
  close(reason: unknown, discard?: (value: R) => void): void {
    if (this.#closed) return;
    this.#closed = { reason, discard };
    for (const waiter of [...this.#takers, ...this.#watchers]) {
      waiter.reject(reason);
    }
    const kept = this.#kept;
    this.#kept = undefined;
    if (kept?.ok) discard?.(kept.value);
  }

  #startIfNeeded(): void {
    if (this.#inFlight || this.#closed || this.#kept) return;
    if (this.#takers.size === 0 && this.#watchers.size === 0) return;
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
    if (first) {
      if (outcome.ok) first.resolve(outcome.value);
      else first.reject(outcome.error);
    } else {
      this.#kept = outcome;
      const watchers = [...this.#watchers];
      this.#watchers.clear();
      for (const watcher of watchers) watcher.resolve();
    }
    this.#startIfNeeded();
  }
}
