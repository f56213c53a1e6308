/**
 * The single-producer, single-consumer ring of variable-size messages that
 * `ShmChannel` keeps in one shared-memory object: the memory format, and
 * the operations on it that neither wait nor call the kernel. Waiting,
 * waking, liveness and codecs live in `shm_channel.ts`.
 *
 * ## Memory format (native byte order; all offsets from the object's start)
 *
 * | offset | size | field |
 * | --- | --- | --- |
 * | 0 | 128 | identity header (`identity.ts`): kind 1, version 1, capacity = ring bytes, format = the codec's text |
 * | 128 | 16 | producer's side record (`liveness.ts`: pid, start time) |
 * | 144 | 16 | consumer's side record |
 * | 160 | u32 | producer closed its end cleanly (1) or not (0) |
 * | 164 | u32 | consumer closed its end cleanly (1) or not (0) |
 * | 192 | u32 | `head`: bytes ever written, mod 2^32; written only by the producer; the futex word the consumer sleeps on |
 * | 196 | u32 | `consumerParked`: 1 while the consumer sleeps or is about to |
 * | 256 | u32 | `tail`: bytes ever consumed, mod 2^32; written only by the consumer; the futex word the producer sleeps on |
 * | 260 | u32 | `producerParked`: 1 while the producer sleeps or is about to |
 * | 320 | capacity | the ring (capacity is a power of two, 64 to 2^30) |
 *
 * `head` and `tail` sit on cache lines of their own, so the two sides do
 * not take each other's line on every message. Bytes in use are
 * `(head - tail) mod 2^32`; byte `p` of the stream is at ring offset
 * `p & (capacity - 1)`.
 *
 * A message is a record at an 8-byte-aligned ring offset: a u32 length
 * `n`, a u32 that is 0, then `n` bytes, padded to a multiple of 8: it
 * takes `8 + align8(n)` bytes, never split. When a record does not fit
 * before the ring's end, the producer writes a u32 `0xffffffff` (wrap)
 * there and the record starts at offset 0; the skipped bytes count as
 * written. So that any message fits once the consumer has caught up, a
 * message is at most `capacity / 2 - 8` bytes.
 *
 * ## Protocol
 *
 * Producer: wait until `capacity - used` covers the record (and the skip,
 * if any); write the payload and the length with plain stores; then
 * `Atomics.store(head, head + size)`, the release that publishes them;
 * then, only if `consumerParked` is 1, `FUTEX_WAKE` on `head`.
 * Consumer: `Atomics.load(head)` (the acquire); read the record at `tail`;
 * `Atomics.store(tail, tail + size)`; then, only if `producerParked` is 1,
 * `FUTEX_WAKE` on `tail`. To sleep, a side stores 1 in its parked word,
 * reads the other side's position again, and calls `FUTEX_WAIT` on it
 * with the value it read only if that still gives it nothing to do; it
 * stores 0 when it wakes. All of these are sequentially consistent, so
 * either the sleeper sees the new position or the other side sees the
 * parked flag: no wake-up is lost, and no system call is made per
 * message while both sides are busy. A sleeper also wakes every 100 ms to
 * check that its peer still runs (`liveness.ts`).
 *
 * @module
 */

import { IDENTITY_SIZE } from "./identity.ts";
import { SIDE_SIZE } from "./liveness.ts";

/** Where each field is, in bytes from the object's start. */
export const RING = {
  PRODUCER_SIDE: IDENTITY_SIZE,
  CONSUMER_SIDE: IDENTITY_SIZE + SIDE_SIZE,
  PRODUCER_CLOSED: 160,
  CONSUMER_CLOSED: 164,
  HEAD: 192,
  CONSUMER_PARKED: 196,
  TAIL: 256,
  PRODUCER_PARKED: 260,
  DATA: 320,
} as const;

/** The format version of the ring, recorded in the identity header. */
export const RING_VERSION = 1;

/** The smallest and largest ring. */
export const MIN_CAPACITY = 64;
export const MAX_CAPACITY = 2 ** 30;

/** The length that marks "the rest of the ring is skipped". */
export const WRAP = 0xffff_ffff;

/** The bytes before a message's payload. */
export const RECORD_HEADER = 8;

/** The bytes a record of an `n`-byte message takes. */
export function recordSize(n: number): number {
  return RECORD_HEADER + ((n + 7) & ~7);
}

/** The largest message a ring of `capacity` bytes carries. */
export function maxMessage(capacity: number): number {
  return capacity / 2 - RECORD_HEADER;
}

/** Where a message is, once reserved or peeked. */
export interface Slot {
  /** The payload's offset in the ring's bytes ({@linkcode Ring.data}). */
  offset: number;
  /** The payload's length. */
  length: number;
}

/**
 * The ring over one mapping's buffer. It never waits: it answers "no room"
 * and "nothing there", and says when the other side is parked and wants a
 * wake-up. Each side keeps its own position locally and caches the other's
 * until it runs short, so a busy side reads the other's cache line rarely.
 */
export class Ring {
  readonly capacity: number;
  readonly maxMessage: number;
  /** The head word (index 0 of its own view), for futex waits and wakes. */
  readonly headWord: Int32Array<ArrayBuffer>;
  /** The tail word, likewise. */
  readonly tailWord: Int32Array<ArrayBuffer>;
  #words: Int32Array<ArrayBuffer>;
  #data: Uint8Array<ArrayBuffer>;
  #view: DataView<ArrayBuffer>;
  #mask: number;
  #head = 0;
  #tailSeen = 0;
  #tail = 0;
  #headSeen = 0;
  /** The record a reserve() placed, until publish(). */
  #reserved = -1;
  #room = 0;

  constructor(buffer: ArrayBuffer, capacity: number) {
    this.capacity = capacity;
    this.maxMessage = maxMessage(capacity);
    this.#mask = capacity - 1;
    this.#words = new Int32Array(buffer, 0, RING.DATA / 4);
    this.headWord = new Int32Array(buffer, RING.HEAD, 1);
    this.tailWord = new Int32Array(buffer, RING.TAIL, 1);
    this.#data = new Uint8Array(buffer, RING.DATA, capacity);
    this.#view = new DataView(buffer, RING.DATA, capacity);
    this.#head = this.#headSeen = Atomics.load(this.headWord, 0) >>> 0;
    this.#tail = this.#tailSeen = Atomics.load(this.tailWord, 0) >>> 0;
  }

  /** The ring's bytes, where {@linkcode Slot} offsets point. */
  get data(): Uint8Array<ArrayBuffer> {
    return this.#data;
  }

  /** Takes up the positions as they are now, when this handle becomes the producer. */
  startProducing(): void {
    this.#head = Atomics.load(this.headWord, 0) >>> 0;
    this.#tailSeen = Atomics.load(this.tailWord, 0) >>> 0;
  }

  /** Takes up the positions as they are now, when this handle becomes the consumer. */
  startConsuming(): void {
    this.#tail = Atomics.load(this.tailWord, 0) >>> 0;
    this.#headSeen = Atomics.load(this.headWord, 0) >>> 0;
  }

  /** Bytes in use now, as the consumer would see them. */
  used(): number {
    return (Atomics.load(this.headWord, 0) - Atomics.load(this.tailWord, 0)) >>>
      0;
  }

  /**
   * Reserves room for an `n`-byte message (at most `maxMessage`), writing
   * the wrap marker first if the record must start at offset 0. Returns
   * the payload's offset in the ring, or -1 when there is no room yet.
   */
  reserve(n: number): number {
    const size = recordSize(n);
    const at = this.#head & this.#mask;
    const contiguous = this.capacity - at;
    const need = size <= contiguous ? size : contiguous + size;
    if (this.capacity - ((this.#head - this.#tailSeen) >>> 0) < need) {
      this.#tailSeen = Atomics.load(this.tailWord, 0) >>> 0;
      if (this.capacity - ((this.#head - this.#tailSeen) >>> 0) < need) {
        return -1;
      }
    }
    if (size > contiguous) {
      this.#view.setUint32(at, WRAP, true);
      this.#head = (this.#head + contiguous) >>> 0;
      this.#reserved = 0;
      return RECORD_HEADER;
    }
    this.#reserved = at;
    return at + RECORD_HEADER;
  }

  /**
   * Publishes the reserved record with its final length `n` (at most what
   * was reserved). Returns whether the consumer is parked (wake it).
   */
  publish(n: number): boolean {
    const at = this.#reserved;
    this.#reserved = -1;
    this.#view.setUint32(at, n, true);
    this.#view.setUint32(at + 4, 0, true);
    // The wrap skip, if any, was added to #head by reserve().
    this.#head = (this.#head + recordSize(n)) >>> 0;
    Atomics.store(this.headWord, 0, this.#head);
    return Atomics.load(this.#words, RING.CONSUMER_PARKED / 4) !== 0;
  }

  /**
   * Reserves all the room there is before the ring's end (at most
   * `maxMessage`), for a message whose size is known only once written
   * (`Codec.encodeInto`). Returns the payload's offset, with
   * {@linkcode Ring.room} bytes there, or -1 when there is none.
   */
  reserveFree(): number {
    const at = this.#head & this.#mask;
    const limit = Math.min(this.capacity - at - RECORD_HEADER, this.maxMessage);
    let room = Math.min(
      limit,
      this.capacity - ((this.#head - this.#tailSeen) >>> 0) - RECORD_HEADER,
    );
    if (room < limit) {
      this.#tailSeen = Atomics.load(this.tailWord, 0) >>> 0;
      room = Math.min(
        limit,
        this.capacity - ((this.#head - this.#tailSeen) >>> 0) - RECORD_HEADER,
      );
    }
    if (room < 0) return -1;
    this.#reserved = at;
    this.#room = room;
    return at + RECORD_HEADER;
  }

  /** The bytes {@linkcode Ring.reserveFree} found. */
  get room(): number {
    return this.#room;
  }

  /** Forgets a reservation that will not be published. */
  unreserve(): void {
    this.#reserved = -1;
  }

  /**
   * The next message, without taking it, or undefined when there is none.
   * Skips wrap markers.
   *
   * @throws {RangeError} when the ring's bytes are not a valid record
   * (another process wrote garbage): what it found, where
   */
  peek(): Slot | undefined {
    for (;;) {
      if (this.#tail === this.#headSeen) {
        this.#headSeen = Atomics.load(this.headWord, 0) >>> 0;
        if (this.#tail === this.#headSeen) return undefined;
      }
      const available = (this.#headSeen - this.#tail) >>> 0;
      const at = this.#tail & this.#mask;
      if (available > this.capacity || (at & 7) !== 0) {
        throw new RangeError(
          `its positions are corrupt: head ${this.#headSeen}, tail ${this.#tail}, capacity ${this.capacity}`,
        );
      }
      const length = this.#view.getUint32(at, true);
      if (length === WRAP) {
        const skip = this.capacity - at;
        if (skip > available) {
          throw new RangeError(
            `a wrap marker at ring offset ${at} skips ${skip} bytes, and only ${available} are written`,
          );
        }
        this.#tail = (this.#tail + skip) >>> 0;
        continue;
      }
      if (length > this.maxMessage || recordSize(length) > available) {
        throw new RangeError(
          `the record at ring offset ${at} claims ${length} bytes, and ${available} are written (the most a message may have is ${this.maxMessage})`,
        );
      }
      return { offset: at + RECORD_HEADER, length };
    }
  }

  /**
   * Takes the message {@linkcode Ring.peek} returned, giving its room back.
   * Returns whether the producer is parked (wake it).
   */
  consume(slot: Slot): boolean {
    this.#tail = (this.#tail + recordSize(slot.length)) >>> 0;
    Atomics.store(this.tailWord, 0, this.#tail);
    return Atomics.load(this.#words, RING.PRODUCER_PARKED / 4) !== 0;
  }

  /**
   * Marks a side as about to sleep, and says whether it still has nothing
   * to do (then it may sleep on the returned position's word with the
   * returned value; else it must clear the mark and go on).
   */
  parkConsumer(): number | undefined {
    Atomics.store(this.#words, RING.CONSUMER_PARKED / 4, 1);
    const head = Atomics.load(this.headWord, 0);
    if ((head >>> 0) !== this.#tail) {
      this.unparkConsumer();
      return undefined;
    }
    return head;
  }

  /** Clears the consumer's parked mark. */
  unparkConsumer(): void {
    Atomics.store(this.#words, RING.CONSUMER_PARKED / 4, 0);
  }

  /**
   * Marks the producer as about to sleep until `n` bytes fit; returns the
   * tail value to sleep on, or undefined when there is room now.
   */
  parkProducer(n: number): number | undefined {
    Atomics.store(this.#words, RING.PRODUCER_PARKED / 4, 1);
    const tail = Atomics.load(this.tailWord, 0);
    this.#tailSeen = tail >>> 0;
    const size = recordSize(n);
    const at = this.#head & this.#mask;
    const contiguous = this.capacity - at;
    const need = size <= contiguous ? size : contiguous + size;
    if (this.capacity - ((this.#head - this.#tailSeen) >>> 0) >= need) {
      this.unparkProducer();
      return undefined;
    }
    return tail;
  }

  /** Clears the producer's parked mark. */
  unparkProducer(): void {
    Atomics.store(this.#words, RING.PRODUCER_PARKED / 4, 0);
  }

  /** Reads a flag word (`RING.PRODUCER_CLOSED`, …). */
  flag(byteOffset: number): number {
    return Atomics.load(this.#words, byteOffset / 4);
  }

  /** Writes a flag word. */
  setFlag(byteOffset: number, value: number): void {
    Atomics.store(this.#words, byteOffset / 4, value);
  }
}
