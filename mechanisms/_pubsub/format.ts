/**
 * The memory format of a topic: one POSIX shared memory object that holds a
 * header, a table of subscriber slots and a ring of fixed-size message
 * slots. Every field is little-endian (the byte order of x86_64 and
 * aarch64, the targets) and naturally aligned, so a C or Python program can
 * take part with plain 32- and 64-bit atomics and `futex(2)`.
 *
 * ```
 * identity, 128 bytes (mechanisms/_ring/identity.ts)
 *   0  u32  magic 0x6b637069, 4 i32 init state (0, -pid, 1), 8 u16 version
 *           (TOPIC_VERSION), 10 u16 kind 2 (topic), 12 u32 128,
 *  16  u64  capacity: message slots in the ring
 *  24  u64  FNV-1a 64 of the codec's format text, 32 the text itself
 * topic header, 128 bytes from byte 128
 * 128  u32  largest message, in bytes
 * 132  u32  subscriber slots
 * 136  u32  overflow: 0 drop-oldest, 1 block
 * 144  i64  head: messages published so far, the next sequence number
 * 152  i32  notify: futex word, incremented after every publish
 * 156  i32  sleepers: 1 when a subscriber may be asleep on `notify`
 * 160  i32  lock: pid of the publisher writing a message, 0 when free
 * 164  i32  freed: futex word, incremented when a subscriber moves on
 *           while a publisher waits for room (overflow "block")
 * 168  i32  blocked: 1 when a publisher may be asleep on `freed`
 * 176  i64  start time of the lock's holder (clock ticks since boot), 0 unknown
 * subscriber slots, 32 bytes each, from byte 256 (the first 16 bytes are
 * laid out as a liveness record of mechanisms/_ring/liveness.ts)
 *   0  i32  pid: 0 free, -pid joining, pid
 *   4  i32  reserved, 0
 *   8  i64  start time of the subscriber's process (clock ticks since boot)
 *  16  i64  cursor: the next sequence number it reads (kept in "block" mode)
 * message slots, from the first multiple of 64 after the subscriber table,
 * each 16 bytes plus the largest message rounded up to 8
 *   0  i64  stamp: 0 never written, 2s+1 while sequence s is written,
 *           2s+2 once it holds sequence s
 *   8  u32  length of the message in bytes
 *  16  ...  the encoded message
 * ```
 *
 * ## Publishing (under the lock)
 *
 * A publisher takes `lock` with a compare-and-swap from 0 to its pid, then
 * stores its start time. With `h = head` it writes sequence `h` into slot
 * `h % capacity`: stamp `2h+1` (an atomic exchange), length and bytes, stamp
 * `2h+2`, then `head = h+1`. It stores 0 as the holder's start time and 0
 * in `lock`, and adds 1 to `notify`. If `sleepers` is 1, it swaps it to 0
 * and, if that swap found 1, wakes every waiter of `notify` (`FUTEX_WAKE`,
 * INT_MAX): one system call per episode of sleep, none per message while
 * subscribers keep up. A lock whose holder is dead (the pid is gone or a zombie, or
 * its start time differs, so a reused pid is not mistaken for it) is taken
 * over with a compare-and-swap; the half-written slot is simply written
 * again, because `head` only moves once a slot is complete.
 *
 * With overflow "block", the publisher first makes sure that no live
 * subscriber's cursor is `capacity` or more behind `head`; if one is, it
 * releases the lock, stores 1 in `blocked`, loads `freed`, checks for
 * room again and sleeps on `freed` while it holds the loaded value
 * (checking every 100 ms whether the subscriber it waits for died, whose
 * slot it then reclaims). A subscriber of a "block" topic stores its
 * cursor after every message; each time the cursor reaches a multiple of
 * a quarter of the capacity (and when it leaves), it swaps `blocked` to
 * 0 and, if that found 1, adds 1 to `freed` and wakes its waiters. The
 * subscriber a publisher waits for is a whole ring behind, so it reaches
 * such a multiple within a quarter ring of reading; the publisher then
 * has room for a batch, not one message per wake-up.
 *
 * ## Reading (no lock)
 *
 * A subscriber keeps its cursor `c`. While `c < head`: if `head - c` exceeds
 * the capacity, the oldest messages are gone and it moves to
 * `head - capacity`, counting the skipped ones as missed. It loads the
 * slot's stamp; anything but `2c+2` means the slot was overwritten (missed,
 * `c+1`). Otherwise it copies the length and bytes out and loads the stamp
 * again: if it changed meanwhile the copy may be torn and is dropped as
 * missed. So no message is lost silently: each received message carries
 * how many were missed just before it.
 *
 * To sleep, a subscriber stores 1 in `sleepers`, loads `notify`, checks
 * `head` once more, and waits on `notify` (`FUTEX_WAIT` or `futex_waitv`)
 * while it still holds the loaded value. No wake-up is lost, with every
 * access sequentially consistent: a publisher stores `head`, adds to
 * `notify`, then reads `sleepers`. If its read misses the subscriber's
 * store, the subscriber's later loads see the new `notify` and `head`, so
 * it does not sleep; if the publisher's swap clears a flag that a second
 * subscriber is about to sleep under, that subscriber either loaded
 * `notify` before the add (the kernel then refuses to sleep on a changed
 * word) or after it (and then sees the new `head`). A subscriber killed
 * asleep leaves at most one spare wake-up behind.
 *
 * ## Taking part from another language
 *
 * A subscriber takes a slot with a compare-and-swap of its `pid` from 0
 * to `-pid`, writes its start time and cursor, then stores its pid; it
 * leaves by storing 0. In a "drop-oldest" topic the slot only counts it
 * (and its liveness): a reader that takes none reads correctly too, as
 * `tests/fixtures/pubsub_reader.py` does, in plain Python. In a "block"
 * topic a reader must hold a slot and keep its cursor, or publishers will
 * overwrite what it has not read. A publisher needs the compare-and-swap
 * on `lock`.
 *
 * @module
 */

/** The version of this format; a topic of another version is refused. */
export const TOPIC_VERSION = 1;

/** Byte offsets of the topic header's fields, after the identity header. */
export const HEADER = {
  MAX_MESSAGE: 128,
  SUBSCRIBERS: 132,
  OVERFLOW: 136,
  HEAD: 144,
  NOTIFY: 152,
  SLEEPERS: 156,
  LOCK: 160,
  FREED: 164,
  BLOCKED: 168,
  LOCK_START: 176,
  SIZE: 256,
} as const;

/** Byte offsets inside one subscriber slot. */
export const SUBSCRIBER = {
  PID: 0,
  START: 8,
  CURSOR: 16,
  SIZE: 32,
} as const;

/** Byte offsets inside one message slot. */
export const SLOT = {
  STAMP: 0,
  LENGTH: 8,
  DATA: 16,
} as const;

/** The overflow policies, as stored in the header. */
export const OVERFLOW_CODES = { "drop-oldest": 0, "block": 1 } as const;

/** What a topic's shape is: the header fields its size follows from. */
export interface TopicShape {
  /** Message slots in the ring. */
  capacity: number;
  /** The largest message, in bytes. */
  maxMessageSize: number;
  /** Subscriber slots. */
  maxSubscribers: number;
}

/** The byte offset of the ring of message slots. */
export function ringOffset(shape: TopicShape): number {
  const end = HEADER.SIZE + shape.maxSubscribers * SUBSCRIBER.SIZE;
  return Math.ceil(end / 64) * 64;
}

/** Bytes from one message slot to the next. */
export function slotStride(shape: TopicShape): number {
  return SLOT.DATA + Math.ceil(shape.maxMessageSize / 8) * 8;
}

/** The size of the shared memory object of a topic of this shape. */
export function topicSize(shape: TopicShape): number {
  return ringOffset(shape) + shape.capacity * slotStride(shape);
}
