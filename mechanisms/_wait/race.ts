/**
 * Keeping an operation that cannot be cancelled (an accept, a datagram
 * receive) for the next caller when one gives up on it.
 *
 * @module
 */

import { type Deadline, raceDeadline } from "./deadline.ts";

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

  /**
   * Waits until the pending operation, or one made by `start()`, has
   * settled, without taking its outcome: the next {@linkcode KeptOperation.run}
   * gets it at once (its value, or its error).
   */
  async ready(
    start: () => Promise<R>,
    deadline: Deadline,
    signal: AbortSignal | undefined,
    action: string,
  ): Promise<void> {
    this.#pending ??= start();
    // A failure is what the next run() reports; here it only means "settled".
    const settled = this.#pending.then(() => {}, () => {});
    await raceDeadline(settled, deadline, signal, action);
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
