/**
 * Where messages that NATS pushes to a subscription wait for `receive()`:
 * a bounded FIFO, and a FIFO of callers waiting for it, so that concurrent
 * `receive()` calls each get their own message, in arrival order; `ready()`
 * callers only learn that one is there.
 *
 * @module
 */

import { bounded, type Deadline, type Settle } from "../_wait/deadline.ts";

/** A bounded queue of items that callers take, waiting when it is empty. */
export class Mailbox<M> {
  #items: M[] = [];
  #head = 0;
  #waiters = new Set<Settle<M>>();
  #watchers = new Set<Settle<void>>();
  #limit: number;
  #closedWith: (() => unknown) | undefined;
  #dropped = 0;

  /** Holds at most `limit` items that nobody has taken yet. */
  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Items waiting to be taken. */
  get size(): number {
    return this.#items.length - this.#head;
  }

  /** Items refused because the mailbox was full. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closedWith !== undefined;
  }

  /**
   * Hands `item` to the longest waiting caller, or keeps it. Returns false,
   * and counts it, when the mailbox is full or closed.
   */
  push(item: M): boolean {
    if (this.#closedWith) return false;
    const waiter = this.#waiters.values().next().value;
    if (waiter) {
      this.#waiters.delete(waiter);
      waiter.resolve(item);
      return true;
    }
    if (this.size >= this.#limit) {
      this.#dropped++;
      return false;
    }
    this.#items.push(item);
    const watchers = [...this.#watchers];
    this.#watchers.clear();
    for (const watcher of watchers) watcher.resolve();
    return true;
  }

  /** Takes the oldest item at once, or `undefined` when there is none. */
  tryTake(): M | undefined {
    if (this.size === 0) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined as M;
    // Compact now and then instead of shifting on every take.
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  /**
   * Takes the oldest item, waiting for one until the deadline or the signal.
   * Rejects with what `close()` was given once the mailbox is closed and
   * empty.
   */
  take(
    deadline: Deadline,
    signal: AbortSignal | undefined,
    action: string,
  ): Promise<M> {
    if (this.size > 0) return Promise.resolve(this.tryTake()!);
    if (this.#closedWith) return Promise.reject(this.#closedWith());
    // push() and close() remove the waiter before they settle it; a timeout
    // or an abort removes it in the clean-up, so exactly one settles it.
    return bounded<M>(deadline, signal, action, (settle) => {
      this.#waiters.add(settle);
      return () => this.#waiters.delete(settle);
    });
  }

  /**
   * Resolves once an item is there to take, without taking it: what a
   * channel's `ready()` waits for. Rejects like `take()` once the mailbox is
   * closed and empty.
   */
  ready(
    deadline: Deadline,
    signal: AbortSignal | undefined,
    action: string,
  ): Promise<void> {
    if (this.size > 0) return Promise.resolve();
    if (this.#closedWith) return Promise.reject(this.#closedWith());
    return bounded<void>(deadline, signal, action, (settle) => {
      this.#watchers.add(settle);
      return () => this.#watchers.delete(settle);
    });
  }

  /**
   * Refuses new items and rejects every waiting caller with `error()`;
   * `take()` rejects with it from now on. The items already kept are
   * dropped (take them first with `takeAll()` to hand them back), or with
   * `keep`, still taken one by one until none is left.
   */
  close(error: () => unknown, keep = false): void {
    if (this.#closedWith) return;
    this.#closedWith = error;
    if (!keep) {
      this.#items = [];
      this.#head = 0;
    }
    const waiters = [...this.#waiters, ...this.#watchers];
    this.#waiters.clear();
    this.#watchers.clear();
    for (const waiter of waiters) waiter.reject(error());
  }

  /** Removes and returns every item kept, for a caller that hands them back. */
  takeAll(): M[] {
    const items = this.#items.slice(this.#head);
    this.#items = [];
    this.#head = 0;
    return items;
  }
}
