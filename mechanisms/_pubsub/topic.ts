/**
 * A topic's shared memory, as publishers and subscribers use it: binding
 * and checking the header, the publishers' lock, writing and reading
 * message slots, the subscriber slots and their reclaiming. The format and
 * the protocol are documented in `format.ts`; this file follows it.
 *
 * Nothing here waits on the event loop except {@linkcode Topic.waitForData}
 * and {@linkcode Topic.waitForRoom}, which park on the futex lanes
 * (`_wait/futex.ts`), so an idle subscriber costs no CPU.
 *
 * @module
 */

import type { SharedMemory } from "../shared_memory.ts";
import { KIND, readIdentity, setUpIdentity } from "../_ring/identity.ts";
import { ownStartTime } from "../_ring/liveness.ts";
import { sameProcessAlive } from "../_kernel/process_state.ts";
import { type Deadline, expired } from "../_wait/deadline.ts";
import { waitWord, wakeWord } from "../_wait/futex.ts";
import { timeoutError } from "../_common/system_error.ts";
import {
  HEADER,
  OVERFLOW_CODES,
  ringOffset,
  SLOT,
  slotStride,
  SUBSCRIBER,
  TOPIC_VERSION,
  topicSize,
} from "./format.ts";

/** What happens when a subscriber falls a whole ring behind. */
export type Overflow = keyof typeof OVERFLOW_CODES;

/** A topic's parameters, as its header records them. */
export interface TopicParams {
  capacity: number;
  maxMessageSize: number;
  maxSubscribers: number;
  overflow: Overflow;
}

/** How a handle binds a topic's memory. */
export interface BindOptions {
  /** The parameters a creator writes. */
  params: TopicParams;
  /** The parameters the caller set explicitly, checked against the header. */
  asked: Partial<TopicParams>;
  /** Whether this handle created the memory, and so sets it up. */
  created: boolean;
  /** The codec's format text (`codecFormat`), recorded and checked. */
  format: string;
}

/** How long a blocked publisher sleeps between checks of the subscribers it waits for. */
export const BLOCKED_CHECK_MS = 100;

/**
 * How long a publisher waits for the publishers' lock held by a live
 * process before it fails: the lock is held for one copy, microseconds, so
 * only a stopped process holds it that long.
 */
export const LOCK_TIMEOUT_MS = 1000;

const _WAKE_ALL = 0x7fffffff;

// A private word: an atomic read-modify-write on it is a full barrier on
// aarch64 (an acquire and a release), which orders the plain copy of a
// slot's bytes before the second load of its stamp. x86_64 keeps loads in
// order anyway.
const _fence = new Int32Array(1);

// A word nobody changes, to sleep on for a few microseconds while another
// publisher holds the lock.
const _pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * What one look into the ring found, filled in by {@linkcode Topic.read}
 * (one object per reader, reused: nothing is allocated per message).
 */
export interface ReadState {
  /** The message's sequence number; the cursor moves past it. */
  sequence: number;
  /** Its length, copied into the reader's buffer; -1 when only losses were found. */
  length: number;
  /** How many messages were lost just before it (overwritten unread). */
  missed: number;
  /** Its length field was larger than a slot: the buffer holds the whole slot. */
  corrupt: boolean;
}

/** A topic mapped into this process. */
export class Topic {
  readonly what: string;
  readonly params: TopicParams;
  #i32: Int32Array<ArrayBuffer>;
  #i64: BigInt64Array<ArrayBuffer>;
  #u8: Uint8Array<ArrayBuffer>;
  #notify: Int32Array<ArrayBuffer>;
  #freed: Int32Array<ArrayBuffer>;
  #ring: number;
  #stride: number;
  #wakeStep: number;

  private constructor(
    memory: SharedMemory,
    what: string,
    params: TopicParams,
  ) {
    this.what = what;
    this.params = params;
    this.#i32 = memory.view(Int32Array);
    this.#i64 = memory.view(BigInt64Array);
    this.#u8 = memory.bytes();
    this.#notify = memory.view(Int32Array, HEADER.NOTIFY, 1);
    this.#freed = memory.view(Int32Array, HEADER.FREED, 1);
    this.#ring = ringOffset(params);
    this.#stride = slotStride(params);
    this.#wakeStep = Math.max(1, Math.floor(params.capacity / 4));
  }

  /**
   * Binds `memory` as a topic: sets fresh memory up (when this handle
   * created it), or checks the identity and header of an existing topic
   * against what was asked.
   *
   * @throws {TypeError} when the bytes hold no topic, or one of another format version, codec or capacity
   * @throws {RangeError} when the topic's message size, subscriber slots or overflow differ from those asked
   */
  static bind(memory: SharedMemory, what: string, options: BindOptions): Topic {
    if (memory.size < HEADER.SIZE) {
      throw new TypeError(
        `Cannot open ${what}: its ${memory.size} bytes do not hold a topic (a topic has a ${HEADER.SIZE}-byte header)`,
      );
    }
    const { params, created } = options;
    // A creator records its capacity; anyone else checks only the one it
    // asked for (0: whatever the topic has).
    const capacity = created ? params.capacity : options.asked.capacity ?? 0;
    setUpIdentity(
      memory.buffer,
      0,
      {
        kind: KIND.topic,
        version: TOPIC_VERSION,
        capacity,
        format: options.format,
      },
      what,
      created,
      () => {
        if (!created) {
          // Taken over from a creator that died before writing it: the
          // shape is not known here.
          throw new TypeError(
            `Cannot open ${what}: its creator died while setting it up; remove it and create it again`,
          );
        }
        const size = topicSize(params);
        if (memory.size !== size) {
          throw new RangeError(
            `Cannot open ${what}: it is ${memory.size} bytes, and a fresh topic of this shape needs ${size}`,
          );
        }
        const view = new DataView(memory.buffer);
        view.setUint32(HEADER.MAX_MESSAGE, params.maxMessageSize, true);
        view.setUint32(HEADER.SUBSCRIBERS, params.maxSubscribers, true);
        view.setUint32(HEADER.OVERFLOW, OVERFLOW_CODES[params.overflow], true);
      },
    );
    return new Topic(memory, what, _checkHeader(memory, what, options.asked));
  }

  /** Messages published so far: the sequence number of the next one. */
  head(): number {
    return Number(Atomics.load(this.#i64, HEADER.HEAD / 8));
  }

  /**
   * Writes one encoded message as the next sequence number, under the
   * publishers' lock, and wakes sleeping subscribers. Returns `false`
   * without writing when the topic blocks and a live subscriber is a
   * whole ring behind.
   */
  publish(bytes: Uint8Array): boolean {
    const i32 = this.#i32;
    const i64 = this.#i64;
    this.#lock();
    let head: number;
    try {
      head = Number(Atomics.load(i64, HEADER.HEAD / 8));
      if (!Number.isSafeInteger(head) || head < 0) {
        // Only crafted bytes do this: writing on would leave the ring.
        throw new TypeError(
          `Cannot publish to ${this.what}: its header is damaged (head ${head})`,
        );
      }
      if (this.params.overflow === "block" && !this.#roomAt(head)) {
        return false;
      }
      const at = this.#ring + (head % this.params.capacity) * this.#stride;
      // An exchange, not a store: its acquire half keeps the bytes written
      // below from becoming visible before the stamp says "being written".
      Atomics.exchange(i64, at / 8, BigInt(2 * head + 1));
      Atomics.store(i32, (at + SLOT.LENGTH) / 4, bytes.byteLength);
      this.#u8.set(bytes, at + SLOT.DATA);
      Atomics.store(i64, at / 8, BigInt(2 * head + 2));
      Atomics.store(i64, HEADER.HEAD / 8, BigInt(head + 1));
    } finally {
      this.#unlock();
    }
    Atomics.add(i32, HEADER.NOTIFY / 4, 1);
    // One wake per episode of sleep, not per message: whoever swaps the
    // flag back to 0 wakes every sleeper; a subscriber that goes to sleep
    // later sets it again (see format.ts for why none is missed).
    if (
      Atomics.load(i32, HEADER.SLEEPERS / 4) !== 0 &&
      Atomics.exchange(i32, HEADER.SLEEPERS / 4, 0) !== 0
    ) {
      wakeWord(this.#notify, _WAKE_ALL);
    }
    return true;
  }

  /**
   * Copies the message at `cursor` into `into` (at least `maxMessageSize`
   * bytes) and describes it in `state`; returns `false` when there is none
   * yet. Messages overwritten before they were read are skipped and
   * counted in `state.missed`; when nothing newer is there, `state.length`
   * is -1 and `state.sequence` the last one skipped.
   */
  read(cursor: number, into: Uint8Array, state: ReadState): boolean {
    const i32 = this.#i32;
    const i64 = this.#i64;
    const { capacity, maxMessageSize } = this.params;
    let missed = 0;
    for (;;) {
      const head = Number(Atomics.load(i64, HEADER.HEAD / 8));
      if (cursor >= head) {
        if (missed === 0) return false;
        // Everything skipped was lost: the caller counts it and moves on.
        state.sequence = cursor - 1;
        state.length = -1;
        state.missed = missed;
        state.corrupt = false;
        return true;
      }
      if (head - cursor > capacity) {
        missed += head - capacity - cursor;
        cursor = head - capacity;
      }
      const at = this.#ring + (cursor % capacity) * this.#stride;
      const stamp = BigInt(2 * cursor + 2);
      if (Atomics.load(i64, at / 8) !== stamp) {
        missed++;
        cursor++;
        continue;
      }
      const claimed = Atomics.load(i32, (at + SLOT.LENGTH) / 4) >>> 0;
      const corrupt = claimed > maxMessageSize;
      const length = corrupt ? maxMessageSize : claimed;
      into.set(this.#u8.subarray(at + SLOT.DATA, at + SLOT.DATA + length));
      Atomics.add(_fence, 0, 0);
      if (Atomics.load(i64, at / 8) !== stamp) {
        missed++;
        cursor++;
        continue;
      }
      state.sequence = cursor;
      state.length = length;
      state.missed = missed;
      state.corrupt = corrupt;
      return true;
    }
  }

  /**
   * Claims a free subscriber slot for this process (reclaiming dead ones
   * when none is free) and returns its index and the first sequence number
   * to read: the next one published, or up to `history` before it.
   *
   * @throws {RangeError} when every slot belongs to a live subscriber
   */
  join(history: number): { index: number; cursor: number } {
    const i32 = this.#i32;
    const i64 = this.#i64;
    for (let pass = 0; pass < 2; pass++) {
      for (let index = 0; index < this.params.maxSubscribers; index++) {
        const base = HEADER.SIZE + index * SUBSCRIBER.SIZE;
        if (
          Atomics.compareExchange(
            i32,
            (base + SUBSCRIBER.PID) / 4,
            0,
            -Deno.pid,
          ) !== 0
        ) {
          continue;
        }
        Atomics.store(i64, (base + SUBSCRIBER.START) / 8, ownStartTime());
        // The cursor is published before the head is read again, so a
        // blocking publisher that missed this slot has not yet written past
        // what this subscriber then starts from (see format.ts).
        const kept = Math.min(history, this.params.capacity - 1);
        const before = Math.max(0, this.head() - kept);
        Atomics.store(i64, (base + SUBSCRIBER.CURSOR) / 8, BigInt(before));
        Atomics.store(i32, (base + SUBSCRIBER.PID) / 4, Deno.pid);
        const cursor = Math.max(before, this.head() - kept);
        Atomics.store(i64, (base + SUBSCRIBER.CURSOR) / 8, BigInt(cursor));
        return { index, cursor };
      }
      if (pass === 0 && this.sweep() === 0) break;
    }
    throw new RangeError(
      `Cannot subscribe to ${this.what}: all ${this.params.maxSubscribers} subscriber slots belong to live subscribers (see maxSubscribers)`,
    );
  }

  /** Gives subscriber slot `index` back. */
  leave(index: number): void {
    const base = HEADER.SIZE + index * SUBSCRIBER.SIZE;
    Atomics.store(this.#i64, (base + SUBSCRIBER.START) / 8, 0n);
    Atomics.store(this.#i32, (base + SUBSCRIBER.PID) / 4, 0);
    this.#freedSomething();
  }

  /**
   * Records that subscriber `index` has read everything before `cursor`
   * (overflow "block"). A blocked publisher is woken only each time the
   * cursor reaches a multiple of a quarter of the ring, so that it then
   * publishes a batch instead of one message per wake-up: the subscriber
   * it waits for is a whole ring behind, so it reaches such a multiple
   * within a quarter ring of reading.
   */
  advance(index: number, cursor: number): void {
    const base = HEADER.SIZE + index * SUBSCRIBER.SIZE;
    Atomics.store(this.#i64, (base + SUBSCRIBER.CURSOR) / 8, BigInt(cursor));
    if (cursor % this.#wakeStep === 0) this.#freedSomething();
  }

  /**
   * Waits until a message at `cursor` may be there: resolves at once if
   * it is, else sleeps on `notify` until a publisher wakes it.
   */
  waitForData(
    cursor: number,
    deadline: Deadline,
    signal: AbortSignal | undefined,
    action: string,
  ): Promise<void> {
    // The flag first, then the word, then the head: a publish that misses
    // the flag is seen by one of the two loads after it.
    Atomics.store(this.#i32, HEADER.SLEEPERS / 4, 1);
    const seen = Atomics.load(this.#notify, 0);
    if (this.head() > cursor) return Promise.resolve();
    return waitWord(this.#notify, seen, deadline, signal, action);
  }

  /**
   * Waits until a blocked publisher may have room: a subscriber moved on,
   * or left, or `BLOCKED_CHECK_MS` passed, after which the subscribers it
   * waits for are checked for life and dead ones reclaimed.
   */
  async waitForRoom(
    deadline: Deadline,
    signal: AbortSignal | undefined,
    action: string,
  ): Promise<void> {
    // The same protocol as subscribers' sleep on `notify`.
    Atomics.store(this.#i32, HEADER.BLOCKED / 4, 1);
    const seen = Atomics.load(this.#freed, 0);
    if (this.#roomAt(this.head())) return;
    const check = performance.now() + BLOCKED_CHECK_MS;
    const until: Deadline = deadline.at <= check
      ? deadline
      : { at: check, timeout: BLOCKED_CHECK_MS };
    try {
      await waitWord(this.#freed, seen, until, signal, action);
    } catch (error) {
      if (until === deadline || !(error instanceof Deno.errors.TimedOut)) {
        throw error;
      }
      this.sweep();
    }
    if (expired(deadline)) throw timeoutError(action, deadline.timeout);
  }

  /**
   * Reclaims the slots of subscribers whose process died (killed before it
   * could leave).
   * Returns how many it reclaimed.
   */
  sweep(): number {
    const i32 = this.#i32;
    const i64 = this.#i64;
    let reclaimed = 0;
    for (let index = 0; index < this.params.maxSubscribers; index++) {
      const base = HEADER.SIZE + index * SUBSCRIBER.SIZE;
      const at = (base + SUBSCRIBER.PID) / 4;
      const pid = Atomics.load(i32, at);
      if (pid === 0) continue;
      // A joining slot has no start time yet: its pid alone is checked.
      const alive = pid < 0 ? sameProcessAlive(-pid, 0n) : sameProcessAlive(
        pid,
        Atomics.load(i64, (base + SUBSCRIBER.START) / 8),
      );
      if (alive) continue;
      // Its start time stays: the next subscriber writes its own before
      // it shows its pid.
      if (Atomics.compareExchange(i32, at, pid, 0) === pid) reclaimed++;
    }
    if (reclaimed > 0) this.#freedSomething();
    return reclaimed;
  }

  /** The live subscriber slots (for tests and the example). */
  subscribers(): number {
    let count = 0;
    for (let index = 0; index < this.params.maxSubscribers; index++) {
      const pid = Atomics.load(
        this.#i32,
        (HEADER.SIZE + index * SUBSCRIBER.SIZE + SUBSCRIBER.PID) / 4,
      );
      if (pid !== 0) count++;
    }
    return count;
  }

  /** Whether sequence `head` can be written without overtaking a live subscriber. */
  #roomAt(head: number): boolean {
    const i32 = this.#i32;
    const i64 = this.#i64;
    for (let index = 0; index < this.params.maxSubscribers; index++) {
      const base = HEADER.SIZE + index * SUBSCRIBER.SIZE;
      const pid = Atomics.load(i32, (base + SUBSCRIBER.PID) / 4);
      if (pid === 0) continue;
      const cursor = Number(Atomics.load(i64, (base + SUBSCRIBER.CURSOR) / 8));
      if (head - cursor >= this.params.capacity) return false;
    }
    return true;
  }

  /** Wakes publishers blocked for room, if there are any. */
  #freedSomething(): void {
    const i32 = this.#i32;
    if (
      Atomics.load(i32, HEADER.BLOCKED / 4) === 0 ||
      Atomics.exchange(i32, HEADER.BLOCKED / 4, 0) === 0
    ) {
      return;
    }
    Atomics.add(this.#freed, 0, 1);
    wakeWord(this.#freed, _WAKE_ALL);
  }

  /**
   * Takes the publishers' lock. It is held only while one message is
   * copied (never across an await), so waiting for it spins, then sleeps
   * a few microseconds at a time; a holder found dead is replaced.
   */
  #lock(): void {
    const i32 = this.#i32;
    const at = HEADER.LOCK / 4;
    let until = 0;
    for (let round = 0;; round++) {
      const holder = Atomics.compareExchange(i32, at, 0, Deno.pid);
      if (holder === 0) break;
      if (round < 64) continue;
      if (round % 256 === 64) {
        // A live holder stopped (SIGSTOP, a debugger) must not hang every
        // other publisher: give up after a while, as an error.
        const now = performance.now();
        if (until === 0) until = now + LOCK_TIMEOUT_MS;
        else if (now > until) {
          throw timeoutError(
            `publish to ${this.what}: process ${holder} holds the publishers' lock`,
            LOCK_TIMEOUT_MS,
          );
        }
        const start = Atomics.load(this.#i64, HEADER.LOCK_START / 8);
        // The holder is the pid in the word; a start time of 0 means it
        // is between taking the lock and recording it (or releasing it).
        // Only a pid is a holder: anything else is crafted, and dead.
        if (
          holder !== Deno.pid &&
          (holder < 0 || !sameProcessAlive(holder, start)) &&
          Atomics.compareExchange(i32, at, holder, Deno.pid) === holder
        ) {
          break;
        }
      }
      Atomics.wait(_pause, 0, 0, 0.02);
    }
    Atomics.store(this.#i64, HEADER.LOCK_START / 8, ownStartTime());
  }

  #unlock(): void {
    Atomics.store(this.#i64, HEADER.LOCK_START / 8, 0n);
    Atomics.store(this.#i32, HEADER.LOCK / 4, 0);
  }
}

/** Checks an existing topic's header; returns its parameters. */
function _checkHeader(
  memory: SharedMemory,
  what: string,
  asked: Partial<TopicParams>,
): TopicParams {
  const view = new DataView(memory.buffer);
  const overflowCode = view.getUint32(HEADER.OVERFLOW, true);
  const overflow = (Object.keys(OVERFLOW_CODES) as Overflow[]).find((key) =>
    OVERFLOW_CODES[key] === overflowCode
  );
  const params = {
    capacity: readIdentity(view).capacity,
    maxMessageSize: view.getUint32(HEADER.MAX_MESSAGE, true),
    maxSubscribers: view.getUint32(HEADER.SUBSCRIBERS, true),
    overflow: overflow!,
  };
  if (
    overflow === undefined || params.capacity < 1 ||
    params.maxMessageSize < 1 || params.maxSubscribers < 1 ||
    topicSize(params) > memory.size
  ) {
    throw new TypeError(
      `Cannot open ${what}: its header is damaged (capacity ${params.capacity}, maxMessageSize ${params.maxMessageSize}, maxSubscribers ${params.maxSubscribers}, overflow code ${overflowCode}, in ${memory.size} bytes)`,
    );
  }
  for (const key of Object.keys(asked) as (keyof TopicParams)[]) {
    const value = asked[key];
    if (value !== undefined && value !== params[key]) {
      throw new RangeError(
        `Cannot open ${what}: it was created with ${key} ${
          JSON.stringify(params[key])
        }, and ${JSON.stringify(value)} was asked`,
      );
    }
  }
  return params;
}
