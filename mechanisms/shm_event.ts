/**
 * An event in shared memory: notifiers in any process say "event `id`
 * happened", and listeners sleep until one did, on a futex, with no
 * descriptor and no thread per listener.
 *
 * Edge-triggered: a listener hears of each id that was notified since it
 * last looked (or since it started listening), once; several
 * notifications of the same id in between are counted as one wake-up,
 * and their number is given. Any number of notifiers and listeners may
 * share one event, in any process: nothing is consumed, so every
 * listener hears every id.
 *
 * ## Memory format (for C and other languages)
 *
 * `ShmEvent.size(ids)` bytes at a 4-byte-aligned offset, zero when fresh
 * (as new shared memory is), native byte order:
 *
 * | offset | type | field |
 * | --- | --- | --- |
 * | 0 | u32 | `seq`: bumped after every notification; the futex word listeners sleep on |
 * | 4 | u32 | `sleepers`: listeners about to sleep or sleeping (a hint, see below) |
 * | 8 + 4·id | u32 | `count[id]`: notifications of `id` so far, wrapping |
 *
 * A notifier: `count[id] += 1`, `seq += 1` (atomic adds), then, only if
 * `sleepers != 0`, `FUTEX_WAKE` all on `seq`. A listener keeps the counts
 * it saw; to wait it reads `seq`, adds 1 to `sleepers`, compares the
 * counts with its own, and sleeps on `seq` only when none changed, then
 * subtracts 1 from `sleepers`. All accesses are sequentially consistent,
 * so either the listener sees the new count or the notifier sees the
 * sleeper: no wake-up is lost and a notifier makes no system call while
 * nobody sleeps. A listener that dies while asleep leaves `sleepers` too
 * high, which costs notifiers a useless `FUTEX_WAKE`, nothing more.
 *
 * @example Wake a listener
 * ```ts
 * import { SharedMemory, ShmEvent } from "@ipckit/ipckit";
 *
 * using memory = SharedMemory.open(`/events-${Deno.pid}`, {
 *   create: true,
 *   size: ShmEvent.size(4),
 *   unlinkOnClose: true,
 * });
 * using event = ShmEvent.at(memory, 0, { ids: 4 });
 * const listener = event.listen();
 * setTimeout(() => event.notify(2), 10); // another process would do this
 * console.log(await listener.wait({ timeout: 1000 })); // [ 2 ]
 * ```
 *
 * @module
 */

import type { WaitOptions } from "./channel.ts";
import type { MappedFile } from "./mapped_file.ts";
import type { SharedMemory } from "./shared_memory.ts";
import { checkOptionKeys, optionKeys } from "./_common/checks.ts";
import { Lifecycle, untilClosed } from "./_common/lifecycle.ts";
import { closedError } from "./_common/system_error.ts";
import type { Mapping } from "./_memory/mapping.ts";
import {
  placeIn,
  PLACEMENT,
  type PlacementRegion,
} from "./_memory/placement.ts";
import {
  deadlineOf,
  expired,
  SYNC_WAIT_KEYS,
  WAIT_KEYS,
} from "./_wait/deadline.ts";
import { timeoutError } from "./_common/system_error.ts";
import { waitWord, waitWordSync, wakeWord } from "./_wait/futex.ts";

/** The most event ids one event can carry. */
export const SHM_EVENT_MAX_IDS = 4096;

const _SEQ = 0;
const _SLEEPERS = 1;
const _COUNTS = 2;

/**
 * How {@linkcode ShmEvent.at} reads an event.
 *
 * @example
 * ```ts
 * import type { ShmEventOptions } from "@ipckit/ipckit";
 *
 * const options: ShmEventOptions = { ids: 8 };
 * ```
 *
 * @category Shared memory
 */
export interface ShmEventOptions {
  /**
   * How many event ids (0 to `ids - 1`) it carries; every process must
   * use the same number. Default 1.
   */
  ids?: number;
}

const _KEYS = optionKeys<ShmEventOptions>({ ids: true });

/**
 * An event in shared memory; see the module documentation for what it
 * promises and its memory format. It closes with its memory, first.
 *
 * @example One notifier, one listener, two ids
 * ```ts
 * import { SharedMemory, ShmEvent } from "@ipckit/ipckit";
 *
 * using memory = SharedMemory.open(`/jobs-${Deno.pid}`, { create: true, size: 64, unlinkOnClose: true });
 * using event = ShmEvent.at(memory, 0, { ids: 2 });
 * const listener = event.listen();
 * event.notify(0);
 * event.notify(1);
 * event.notify(1);
 * console.log(listener.tryWait()); // [ 0, 1 ]
 * console.log(listener.counts(), listener.tryWait()); // Map(2) { 0 => 1, 1 => 2 } []
 * ```
 *
 * @category Shared memory
 */
export class ShmEvent implements Disposable, AsyncDisposable {
  #mapping: Mapping;
  #byteOffset: number;
  #ids: number;
  #words: Int32Array<ArrayBuffer>;
  #what: string;
  #life: Lifecycle;
  #closing = new AbortController();
  #forget: () => void = () => {};

  private constructor(
    mapping: Mapping,
    byteOffset: number,
    ids: number,
    what: string,
  ) {
    this.#mapping = mapping;
    this.#byteOffset = byteOffset;
    this.#ids = ids;
    this.#words = mapping.view(Int32Array, byteOffset, _COUNTS + ids);
    this.#what = what;
    this.#life = new Lifecycle(what);
  }

  /**
   * The bytes an event of `ids` ids takes.
   *
   * @throws {RangeError} for an id count outside 1 to {@linkcode SHM_EVENT_MAX_IDS}
   *
   * @example
   * ```ts
   * import { ShmEvent } from "@ipckit/ipckit";
   *
   * console.log(ShmEvent.size(1), ShmEvent.size(8)); // 12 40
   * ```
   */
  static size(ids: number = 1): number {
    return (_COUNTS + _checkIds(ids, "size an event")) * 4;
  }

  /**
   * The event at `byteOffset` (a multiple of 4) of `memory`. Fresh (zero)
   * memory is a valid event; nothing is written.
   *
   * @throws {TypeError} for a region that is not shared memory or a shared
   * mapped file, or an unknown option
   * @throws {RangeError} for a misaligned offset, no room, or a bad id count
   * @throws {Deno.errors.BadResource} when `memory` is closed
   *
   * @example
   * ```ts
   * import { SharedMemory, ShmEvent } from "@ipckit/ipckit";
   *
   * using memory = SharedMemory.open(`/event-${Deno.pid}`, { create: true, size: 64, unlinkOnClose: true });
   * using event = ShmEvent.at(memory, 16);
   * console.log(event.ids); // 1
   * ```
   */
  static at(
    memory: SharedMemory | MappedFile,
    byteOffset: number,
    options: ShmEventOptions = {},
  ): ShmEvent {
    const action = "place an event in shared memory";
    checkOptionKeys(options, _KEYS, action);
    const ids = _checkIds(options.ids ?? 1, action);
    if (
      typeof (memory as Partial<PlacementRegion> | null)?.[PLACEMENT] !==
        "function"
    ) {
      throw new TypeError(
        `Cannot ${action}: expected a SharedMemory or a MappedFile`,
      );
    }
    const placement = placeIn(memory, byteOffset, {
      size: (_COUNTS + ids) * 4,
      align: 4,
      typeName: `an event of ${ids} ids`,
    }, action);
    const event = new ShmEvent(
      placement.mapping,
      placement.byteOffset,
      ids,
      `event at byte ${placement.byteOffset} of ${placement.what}`,
    );
    event.#forget = placement.own(event);
    return event;
  }

  /** How many ids the event carries. */
  get ids(): number {
    return this.#ids;
  }

  /** Where the event starts in its memory, in bytes. */
  get byteOffset(): number {
    return this.#byteOffset;
  }

  /** Whether `close()` has been called (directly or by closing the memory). */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * Says that event `id` happened: every listener, in any process, hears
   * of it. Makes a system call only when a listener sleeps.
   *
   * @throws {RangeError} for an id outside 0 to `ids - 1`
   *
   * @example
   * ```ts
   * import { SharedMemory, ShmEvent } from "@ipckit/ipckit";
   *
   * using memory = SharedMemory.open(`/notify-${Deno.pid}`, { create: true, size: 64, unlinkOnClose: true });
   * using event = ShmEvent.at(memory, 0);
   * event.notify();
   * ```
   */
  notify(id: number = 0): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.#ids) {
      throw new RangeError(
        `Cannot notify ${this.#what}: id must be an integer from 0 to ${
          this.#ids - 1
        }, got ${String(id)}`,
      );
    }
    const words = this.#live("notify");
    Atomics.add(words, _COUNTS + id, 1);
    Atomics.add(words, _SEQ, 1);
    if (Atomics.load(words, _SLEEPERS) !== 0) {
      wakeWord(words.subarray(_SEQ, _SEQ + 1), 0x7fff_ffff);
    }
  }

  /**
   * A listener that hears of every notification from now on.
   *
   * @example
   * ```ts
   * import { SharedMemory, ShmEvent } from "@ipckit/ipckit";
   *
   * using memory = SharedMemory.open(`/listen-${Deno.pid}`, { create: true, size: 64, unlinkOnClose: true });
   * using event = ShmEvent.at(memory, 0);
   * event.notify(); // before listening: not heard
   * const listener = event.listen();
   * console.log(listener.tryWait()); // []
   * ```
   */
  listen(): ShmEventListener {
    const words = this.#live("listen to");
    const seen = new Int32Array(this.#ids);
    for (let id = 0; id < this.#ids; id++) {
      seen[id] = Atomics.load(words, _COUNTS + id);
    }
    return new _Listener({
      words: (verb) => this.#live(verb),
      what: this.#what,
      closing: this.#closing.signal,
      mapping: this.#mapping,
    }, seen);
  }

  /**
   * Ends every pending wait of its listeners with `BadResource`;
   * idempotent. The memory is left as it is.
   *
   * @example
   * ```ts
   * import { SharedMemory, ShmEvent } from "@ipckit/ipckit";
   *
   * using memory = SharedMemory.open(`/closed-${Deno.pid}`, { create: true, size: 64, unlinkOnClose: true });
   * const event = ShmEvent.at(memory, 0);
   * event.close();
   * console.log(event.closed); // true
   * ```
   */
  close(): void {
    this.#life.close(() => {
      this.#forget();
      this.#closing.abort(closedError(this.#what, "wait on"));
    });
  }

  /** Closes the event; see {@linkcode ShmEvent.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes the event; see {@linkcode ShmEvent.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.#life.closeAsync(() => this.close());
  }

  #live(verb: string): Int32Array<ArrayBuffer> {
    this.#life.check(verb);
    if (this.#mapping.closed) throw closedError(this.#what, verb);
    if (this.#words.length === 0) {
      this.#words = this.#mapping.view(
        Int32Array,
        this.#byteOffset,
        _COUNTS + this.#ids,
      );
    }
    return this.#words;
  }
}

/**
 * One listener of a {@linkcode ShmEvent}: it remembers which notifications
 * it has heard of. Made by {@linkcode ShmEvent.listen}; it needs no closing
 * (closing its event ends its waits).
 *
 * @example Wait for any id
 * ```ts
 * import { SharedMemory, ShmEvent } from "@ipckit/ipckit";
 *
 * using memory = SharedMemory.open(`/listener-${Deno.pid}`, { create: true, size: 64, unlinkOnClose: true });
 * using event = ShmEvent.at(memory, 0, { ids: 3 });
 * const listener = event.listen();
 * event.notify(1);
 * console.log(await listener.wait()); // [ 1 ]
 * ```
 *
 * @category Shared memory
 */
export interface ShmEventListener {
  /**
   * The ids notified since this listener last looked, in order, without
   * waiting (`[]` when none).
   *
   * @example
   * ```ts
   * import { SharedMemory, ShmEvent } from "@ipckit/ipckit";
   *
   * using memory = SharedMemory.open(`/try-${Deno.pid}`, { create: true, size: 64, unlinkOnClose: true });
   * using event = ShmEvent.at(memory, 0);
   * const listener = event.listen();
   * console.log(listener.tryWait()); // []
   * ```
   */
  tryWait(): number[];
  /**
   * How many notifications of each id the last `wait`/`tryWait` that
   * returned it gathered (ids it did not return are absent).
   *
   * @example
   * ```ts
   * import { SharedMemory, ShmEvent } from "@ipckit/ipckit";
   *
   * using memory = SharedMemory.open(`/counts-${Deno.pid}`, { create: true, size: 64, unlinkOnClose: true });
   * using event = ShmEvent.at(memory, 0);
   * const listener = event.listen();
   * event.notify();
   * event.notify();
   * listener.tryWait();
   * console.log(listener.counts().get(0)); // 2
   * ```
   */
  counts(): ReadonlyMap<number, number>;
  /**
   * Waits until some id was notified since this listener last looked, and
   * returns those ids (at once when there are some already).
   *
   * @throws {Deno.errors.TimedOut} when `timeout` ms pass first
   * @throws {Deno.errors.BadResource} when the event or its memory is closed, also while waiting
   *
   * @example
   * ```ts
   * import { SharedMemory, ShmEvent } from "@ipckit/ipckit";
   *
   * using memory = SharedMemory.open(`/await-${Deno.pid}`, { create: true, size: 64, unlinkOnClose: true });
   * using event = ShmEvent.at(memory, 0);
   * const listener = event.listen();
   * queueMicrotask(() => event.notify());
   * console.log(await listener.wait({ timeout: 1000 })); // [ 0 ]
   * ```
   */
  wait(options?: WaitOptions): Promise<number[]>;
  /**
   * Blocks the calling thread until some id was notified since this
   * listener last looked, and returns those ids; see {@linkcode ShmEventListener.wait}.
   *
   * @throws {Deno.errors.TimedOut} when `timeout` ms pass first
   *
   * @example
   * ```ts
   * import { SharedMemory, ShmEvent } from "@ipckit/ipckit";
   *
   * using memory = SharedMemory.open(`/block-${Deno.pid}`, { create: true, size: 64, unlinkOnClose: true });
   * using event = ShmEvent.at(memory, 0);
   * const listener = event.listen();
   * event.notify();
   * console.log(listener.waitSync({ timeout: 100 })); // [ 0 ]
   * ```
   */
  waitSync(options?: Pick<WaitOptions, "timeout">): number[];
}

/** What a listener needs of its event. */
interface _Source {
  words(verb: string): Int32Array<ArrayBuffer>;
  what: string;
  closing: AbortSignal;
  mapping: Mapping;
}

class _Listener implements ShmEventListener {
  #event: _Source;
  #seen: Int32Array;
  #last = new Map<number, number>();

  constructor(event: _Source, seen: Int32Array) {
    this.#event = event;
    this.#seen = seen;
  }

  tryWait(): number[] {
    return this.#collect(this.#event.words("wait on"));
  }

  counts(): ReadonlyMap<number, number> {
    return this.#last;
  }

  async wait(options: WaitOptions = {}): Promise<number[]> {
    const event = this.#event;
    const action = `wait on ${event.what}`;
    checkOptionKeys(options, WAIT_KEYS, action);
    const deadline = deadlineOf(options, action);
    using link = untilClosed(options.signal, event.closing);
    const signal = link.signal;
    for (;;) {
      const words = event.words("wait on");
      const seq = Atomics.load(words, _SEQ);
      Atomics.add(words, _SLEEPERS, 1);
      let fired: number[];
      try {
        fired = this.#collect(words);
        if (fired.length > 0) return fired;
        if (signal.aborted) throw signal.reason;
        if (expired(deadline)) throw timeoutError(action, deadline.timeout);
        const letGo = event.mapping.retain();
        try {
          await waitWord(
            words.subarray(_SEQ, _SEQ + 1),
            seq,
            deadline,
            signal,
            action,
          );
        } finally {
          letGo();
        }
      } finally {
        if (!event.mapping.closed) Atomics.sub(words, _SLEEPERS, 1);
      }
    }
  }

  waitSync(options: Pick<WaitOptions, "timeout"> = {}): number[] {
    const event = this.#event;
    const action = `wait on ${event.what}`;
    checkOptionKeys(options, SYNC_WAIT_KEYS, action);
    const deadline = deadlineOf(options, action);
    for (;;) {
      const words = event.words("wait on");
      const seq = Atomics.load(words, _SEQ);
      Atomics.add(words, _SLEEPERS, 1);
      try {
        const fired = this.#collect(words);
        if (fired.length > 0) return fired;
        waitWordSync(words.subarray(_SEQ, _SEQ + 1), seq, deadline, action);
      } finally {
        Atomics.sub(words, _SLEEPERS, 1);
      }
    }
  }

  #collect(words: Int32Array): number[] {
    const fired: number[] = [];
    const seen = this.#seen;
    let last: Map<number, number> | undefined;
    for (let id = 0; id < seen.length; id++) {
      const now = Atomics.load(words, _COUNTS + id);
      if (now !== seen[id]) {
        fired.push(id);
        (last ??= new Map()).set(id, (now - seen[id]) >>> 0);
        seen[id] = now;
      }
    }
    if (last) this.#last = last;
    return fired;
  }
}

function _checkIds(ids: unknown, action: string): number {
  if (
    typeof ids !== "number" || !Number.isInteger(ids) || ids < 1 ||
    ids > SHM_EVENT_MAX_IDS
  ) {
    throw new RangeError(
      `Cannot ${action}: ids must be an integer from 1 to ${SHM_EVENT_MAX_IDS}, got ${
        String(ids)
      }`,
    );
  }
  return ids;
}
