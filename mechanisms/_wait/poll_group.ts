/**
 * Where an async wait sleeps when the kernel gives nothing to wait on: a
 * System V message queue (`msgrcv` has no descriptor), a System V
 * semaphore set (`semop` blocks a thread and takes the count when it
 * returns), an open-file-description lock (`F_OFD_SETLKW` cannot be
 * interrupted from JavaScript). The attempt itself (`IPC_NOWAIT`,
 * `F_OFD_SETLK`) runs on the main thread through the one retry loop
 * (retry.ts); this module only decides when to try again. No thread is
 * used, and nothing C keeps is in flight, so cancelling a wait is exact:
 * a wait that timed out or was aborted took nothing.
 *
 * ## How
 *
 * All the waits of one kernel object in this process form a
 * {@linkcode PollGroup}, and within it one queue per *class* of wait: waits
 * that would all fail or succeed together (receives of one message type,
 * locks of one range) share a class. The group retries on a timer that
 * starts at {@linkcode POLL_FIRST_MS} after activity and doubles while
 * nothing changes, up to {@linkcode POLL_MAX_MS}. A tick wakes only the
 * oldest wait of each class. If its attempt fails, it parks again at the
 * head of its class and the others need not try; if it succeeds (or ends
 * any other way) it passes the turn to the next wait of its class at once,
 * and the timer restarts at its first delay. So an idle object costs one
 * attempt per class per tick, however many waits it has, and a burst of
 * messages is taken at the speed of the attempts. Groups tick together:
 * every tick falls on a multiple of its delay on one clock, and one timer
 * serves every group of the process.
 *
 * Something this process does that can end a wait (a send to the queue, a
 * semaphore raised, a lock released) {@linkcode PollGroup.poke}s the group:
 * every class tries again at once. Changes made by other processes are
 * seen at the next tick: within {@linkcode POLL_MAX_MS} once the object has
 * been idle a while, sooner after activity.
 *
 * @module
 */

import { bounded, type Settle } from "./deadline.ts";
import type { ParkBounds } from "./retry.ts";

/** The first retry delay after activity, in milliseconds. */
export const POLL_FIRST_MS = 1;

/** The longest retry delay of an idle object, in milliseconds. */
export const POLL_MAX_MS = 32;

interface _Waiter {
  settle: Settle<void> | undefined;
  /** Woken by a tick or a turn, and not parked again yet. */
  holding: boolean;
  classKey: string;
}

/** The parked waits of one kernel object in this process. */
export class PollGroup {
  #key: string;
  #classes = new Map<string, _Waiter[]>();
  #delay = POLL_FIRST_MS;
  #holders = 0;
  /** Waits between `waiter()` and their `end()`, parked or not. */
  #active = 0;

  /** @param key what the group is for, unique per object: `msg:32768` */
  constructor(key: string) {
    this.#key = key;
  }

  /** The current retry delay in milliseconds (for tests and benchmarks). */
  get delayMs(): number {
    return this.#delay;
  }

  /** Waits parked now, of every class (for tests). */
  get parked(): number {
    let count = 0;
    for (const queue of this.#classes.values()) count += queue.length;
    return count;
  }

  /**
   * The park of one wait of class `classKey`: give `park` to `retryAsync`
   * with the wait's plan, and call `end` once the wait is over, however it
   * ended (in a `finally`).
   */
  waiter(
    classKey: string,
    plan: ParkBounds,
  ): { park: () => Promise<void>; end: () => void } {
    const waiter: _Waiter = { settle: undefined, holding: false, classKey };
    this.#active++;
    let ended = false;
    return {
      park: () => {
        // A wait that was woken and parks again failed its attempt: the
        // others of its class would fail too, so it keeps its place at the
        // head and the turn stops here until the next tick.
        const first = waiter.holding;
        this.#release(waiter);
        return bounded<void>(
          plan.deadline,
          plan.signal,
          plan.action,
          (settle) => {
            waiter.settle = settle;
            const queue = this.#queue(classKey);
            if (first) queue.unshift(waiter);
            else queue.push(waiter);
            _ticker.schedule(this, this.#delay);
            return () => {
              waiter.settle = undefined;
              this.#remove(waiter);
            };
          },
        );
      },
      end: () => {
        if (ended) return;
        ended = true;
        this.#active--;
        if (waiter.holding) {
          // Woken, and done without parking again: it got what it waited
          // for (or failed for good). Activity: the next of its class
          // tries at once, and the timer starts over.
          this.#release(waiter);
          this.#delay = POLL_FIRST_MS;
          this.#wakeHead(classKey);
        }
        this.#forgetIfIdle();
      },
    };
  }

  /**
   * Wakes the oldest wait of every class now and restarts the timer at its
   * first delay: something this process did may let them go on.
   */
  poke(): void {
    this.#delay = POLL_FIRST_MS;
    for (const classKey of [...this.#classes.keys()]) this.#wakeHead(classKey);
    this.#forgetIfIdle();
  }

  /** The timer's turn: every class tries once, and the delay doubles. */
  tick(): boolean {
    for (const classKey of [...this.#classes.keys()]) this.#wakeHead(classKey);
    this.#delay = Math.min(this.#delay * 2, POLL_MAX_MS);
    return this.#classes.size > 0 || this.#holders > 0;
  }

  /** The delay the ticker should use next. */
  nextDelay(): number {
    return this.#delay;
  }

  #queue(classKey: string): _Waiter[] {
    let queue = this.#classes.get(classKey);
    if (!queue) {
      queue = [];
      this.#classes.set(classKey, queue);
    }
    return queue;
  }

  #wakeHead(classKey: string): void {
    const queue = this.#classes.get(classKey);
    const head = queue?.shift();
    if (!head) return;
    if (queue!.length === 0) this.#classes.delete(classKey);
    head.holding = true;
    this.#holders++;
    const settle = head.settle;
    head.settle = undefined;
    settle?.resolve();
    this.#forgetIfIdle();
  }

  #release(waiter: _Waiter): void {
    if (!waiter.holding) return;
    waiter.holding = false;
    this.#holders--;
    this.#forgetIfIdle();
  }

  #remove(waiter: _Waiter): void {
    const queue = this.#classes.get(waiter.classKey);
    if (!queue) return;
    const index = queue.indexOf(waiter);
    if (index >= 0) queue.splice(index, 1);
    if (queue.length === 0) this.#classes.delete(waiter.classKey);
    this.#forgetIfIdle();
  }

  #forgetIfIdle(): void {
    if (
      this.#classes.size === 0 && this.#holders === 0 && this.#active === 0
    ) {
      if (_groups.get(this.#key) === this) _groups.delete(this.#key);
      _ticker.cancel(this);
    }
  }
}

/** The groups that have waits, by key, so that every handle of one object shares one. */
const _groups = new Map<string, PollGroup>();

/**
 * The group of the object `key` (`msg:32768`), shared by every handle of
 * that object in this process.
 */
export function pollGroup(key: string): PollGroup {
  let group = _groups.get(key);
  if (!group) {
    // Registered at once: waits that start together, before any of them
    // parks, must all join this one group.
    group = new PollGroup(key);
    _groups.set(key, group);
  }
  return group;
}

/** How many objects have a group now (for tests: idle groups are forgotten). */
export function pollGroupCount(): number {
  return _groups.size;
}

/**
 * One timer for every group: each group's next tick falls on a multiple of
 * its delay, so groups with the same delay tick together.
 */
class _Ticker {
  #due = new Map<PollGroup, number>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;

  /** Makes `group` tick within `delay` ms, or sooner if it is due sooner already. */
  schedule(group: PollGroup, delay: number): void {
    const now = performance.now();
    const at = (Math.floor(now / delay) + 1) * delay;
    const due = this.#due.get(group);
    if (due !== undefined && due <= at) return;
    this.#due.set(group, at);
    this.#arm(at);
  }

  cancel(group: PollGroup): void {
    this.#due.delete(group);
    if (this.#due.size === 0 && this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#timerAt = Infinity;
    }
  }

  #arm(at: number): void {
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(
      () => this.#fire(),
      Math.max(0, at - performance.now()),
    );
  }

  #fire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = performance.now();
    const due: PollGroup[] = [];
    for (const [group, at] of this.#due) if (at <= now + 0.5) due.push(group);
    for (const group of due) this.#due.delete(group);
    for (const group of due) {
      if (group.tick()) this.schedule(group, group.nextDelay());
    }
    let next = Infinity;
    for (const at of this.#due.values()) next = Math.min(next, at);
    if (next !== Infinity) this.#arm(next);
  }
}

const _ticker = new _Ticker();

/** A word nobody changes, to sleep the thread on. */
const _pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * The blocking form's wait where the blocking call cannot time out
 * (msgrcv, F_OFD_SETLKW): sleeps the calling thread for the next delay of
 * the same backoff, from {@linkcode POLL_FIRST_MS} doubling up to
 * {@linkcode POLL_MAX_MS}, never past `deadline`; the caller then tries
 * again. For `*Sync` calls with a timeout only.
 */
export function backoffSleeper(
  deadline: { at: number },
): () => void {
  let delay = POLL_FIRST_MS;
  return () => {
    const left = deadline.at - performance.now();
    Atomics.wait(_pause, 0, 0, Math.max(0, Math.min(delay, left)));
    delay = Math.min(delay * 2, POLL_MAX_MS);
  };
}
