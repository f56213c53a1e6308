/**
 * `ShmChannel<T>`: typed messages from one producer to one consumer through
 * a ring in one shared-memory object, with no system call per message
 * while both sides are busy.
 *
 * `send()` encodes a value and writes it into the ring; `receive()` decodes
 * it straight out of the ring (no copy in between). For no copy at all,
 * `loan(size)` hands out bytes inside the ring to fill, then `commit()`;
 * `receiveView()` hands out a message's bytes in the ring, then
 * `release()`. It is a `Channel<T>`, so `serve`, `client` and `duplex`
 * run over it: a pair of channels, one per direction, makes a two-way link.
 *
 * Waiting: a full ring makes `send()` wait (backpressure) and `trySend()`
 * throw `WouldBlock`; an empty one makes `receive()` wait. A waiting side
 * first spins (`spin` µs, 50 by default), then parks on a futex over the
 * other side's position, and the other side makes the `FUTEX_WAKE` call
 * only when it sees the parked flag: while both are busy, sending and
 * receiving are plain memory operations. A parked side checks every
 * 100 ms that its peer still runs (pid and process start time), so a
 * peer killed at any moment is an error within about that time, never a
 * hang: `ConnectionReset` for a consumer whose producer died, once the
 * messages already in the ring are taken, `BrokenPipe` for a producer
 * whose consumer died. A peer that closes its end cleanly ends the other
 * side's `for await` (`UnexpectedEof` from `receive()`); a producer whose
 * consumer closed gets `BrokenPipe`.
 *
 * Sides: the first `send()`/`loan()` of a handle makes it the producer,
 * the first `receive()`/`receiveView()`/`ready()` the consumer. A channel
 * has one of each at a time; another live process trying to take a side
 * that is held gets `Busy`. A side whose process died is taken over.
 *
 * The object starts with ipckit's identity header (format version, the
 * codec's name and format, the ring's capacity): opening it with another
 * codec (say `codecs.struct` of another layout) or version fails with a
 * `TypeError` naming both. The README's "Shared-memory channels" section
 * documents the memory format and the wake protocol, so a C program can
 * take part; `tests/shm_channel_test.ts` has one do so.
 *
 * Permissions: like `SharedMemory`: `--allow-read` and `--allow-write` on
 * `/dev/shm/<name>`, and `--allow-ffi`.
 *
 * @example A producer and a consumer (here in one process)
 * ```ts
 * import { codecs, ShmChannel } from "@ipckit/ipckit";
 *
 * const name = `/frames-${Deno.pid}`;
 * using producer = ShmChannel.open<string>(name, {
 *   create: true,
 *   capacity: 4096,
 *   codec: codecs.text(),
 *   unlinkOnClose: true,
 * });
 * using consumer = ShmChannel.open<string>(name, { codec: codecs.text() });
 * await producer.send("frame 1");
 * console.log((await consumer.receive({ timeout: 1000 })).value); // frame 1
 * ```
 *
 * @module
 */

import type { Channel, Message, WaitOptions } from "./channel.ts";
import { type Codec, codecs } from "./codec.ts";
import { DecodeError } from "./errors.ts";
import { SharedMemory } from "./shared_memory.ts";
import { checkOptionKeys, optionKeys } from "./_common/checks.ts";
import { receiveUntilEnd } from "./_common/iterate.ts";
import { Lifecycle, unlinkQuietly, untilClosed } from "./_common/lifecycle.ts";
import { closedError, timeoutError } from "./_common/system_error.ts";
import { codecFormat, KIND, setUpIdentity } from "./_ring/identity.ts";
import { LIVENESS_CHECK_MS, Side } from "./_ring/liveness.ts";
import {
  MAX_CAPACITY,
  MIN_CAPACITY,
  RING,
  Ring,
  RING_VERSION,
  type Slot,
} from "./_ring/ring.ts";
import {
  type Deadline,
  deadlineOf,
  expired,
  SYNC_WAIT_KEYS,
  WAIT_KEYS,
} from "./_wait/deadline.ts";
import { waitWord, waitWordSync, wakeWord } from "./_wait/futex.ts";
import { checkSpinMicros, Spinner } from "./_wait/spin.ts";

/** The ring's default size in bytes: 1 MiB. */
export const SHM_CHANNEL_DEFAULT_CAPACITY = 1 << 20;

/**
 * How to open a {@linkcode ShmChannel}.
 *
 * @example A 16 MiB ring of binary records that goes away with its handle
 * ```ts
 * import { codecs, layout, type ShmChannelOptions } from "@ipckit/ipckit";
 *
 * const tick = layout({ seq: "u32", price: "f64" });
 * const options: ShmChannelOptions<{ seq: number; price: number }> = {
 *   create: true,
 *   capacity: 1 << 24,
 *   codec: codecs.struct(tick),
 *   unlinkOnClose: true,
 * };
 * ```
 *
 * @category Shared memory
 */
export interface ShmChannelOptions<T> {
  /** Create the object if it does not exist. Default `false`. */
  create?: boolean;
  /** With `create`: fail with `AlreadyExists` if it exists. Default `false`. */
  exclusive?: boolean;
  /** With `create`, which existing object to use; see `SharedMemoryOptions.adopt`. */
  adopt?: "owned" | "any-owner";
  /** Permission bits of a created object. Default `0o600`. */
  mode?: number;
  /** Remove the name when this handle closes. Default `false`. */
  unlinkOnClose?: boolean;
  /**
   * The ring's size in bytes: a power of two from 64 to 2^30. A message
   * may take at most half of it, less 8 bytes. With `create` the default
   * is 1 MiB; opening an existing channel with another capacity fails.
   */
  capacity?: number;
  /** How values become bytes; both sides must use the same. Default `codecs.json()`. */
  codec?: Codec<T>;
  /** Microseconds to spin before parking, 0 to 1000. Default 50. */
  spin?: number;
}

const _OPEN_KEYS = optionKeys<ShmChannelOptions<unknown>>({
  create: true,
  exclusive: true,
  adopt: true,
  mode: true,
  unlinkOnClose: true,
  capacity: true,
  codec: true,
  spin: true,
});

type _Ended = "closed" | "died";

/**
 * One end of a single-producer, single-consumer ring in shared memory; see
 * the module documentation.
 *
 * @example Stream values and iterate them
 * ```ts
 * import { ShmChannel } from "@ipckit/ipckit";
 *
 * const name = `/numbers-${Deno.pid}`;
 * using consumer = ShmChannel.open<number>(name, { create: true, capacity: 4096, unlinkOnClose: true });
 * {
 *   using producer = ShmChannel.open<number>(name);
 *   for (let i = 0; i < 3; i++) await producer.send(i);
 * } // closing the producer ends the consumer's loop
 * for await (const { value } of consumer) console.log(value); // 0, 1, 2
 * ```
 *
 * @category Shared memory
 */
export class ShmChannel<T> implements Channel<T>, AsyncDisposable {
  #memory: SharedMemory;
  #unlinkOnClose: boolean;
  #ring: Ring;
  #codec: Codec<T>;
  #what: string;
  #life: Lifecycle;
  #closing = new AbortController();
  #producerSide: Side;
  #consumerSide: Side;
  #producing = false;
  #consuming = false;
  #sendSpin: Spinner;
  #receiveSpin: Spinner;
  // Calls in flight on this handle run one after another, per direction.
  #sendQueue: Promise<unknown> | undefined;
  #receiveQueue: Promise<unknown> | undefined;
  #loan: { offset: number; size: number } | undefined;
  #view: Slot | undefined;
  /** A receiveView() is waiting: no other receive may take its message. */
  #viewing = false;

  private constructor(
    memory: SharedMemory,
    capacity: number,
    codec: Codec<T>,
    spin: number,
    unlinkOnClose: boolean,
  ) {
    this.#unlinkOnClose = unlinkOnClose;
    this.#memory = memory;
    this.#codec = codec;
    this.#what = `shared-memory channel "${memory.name}"`;
    this.#life = new Lifecycle(this.#what);
    const buffer = memory.buffer;
    this.#ring = new Ring(buffer, capacity);
    this.#producerSide = new Side(buffer, RING.PRODUCER_SIDE);
    this.#consumerSide = new Side(buffer, RING.CONSUMER_SIDE);
    this.#sendSpin = new Spinner(spin);
    this.#receiveSpin = new Spinner(spin);
  }

  /**
   * Opens (or with `create`, creates) the channel `name`, e.g. `"/frames"`.
   * Cleanup follows the one rule of every named object: the object stays
   * after its handles close unless one was opened with `unlinkOnClose`.
   *
   * @throws {TypeError} for an invalid name, option or codec, or an object
   * made for another codec, format version or capacity (naming both), before
   * the ring is touched
   * @throws {RangeError} for a capacity that is not a power of two from 64 to 2^30
   * @throws {Deno.errors.NotCapable} without read/write permission on `/dev/shm/<name>`
   * @throws {Deno.errors.NotFound} when it does not exist and `create` is not set
   *
   * @example Open the channel another process created
   * ```ts
   * import { ShmChannel } from "@ipckit/ipckit";
   *
   * const name = `/jobs-${Deno.pid}`;
   * using created = ShmChannel.open(name, { create: true, unlinkOnClose: true });
   * using opened = ShmChannel.open(name);
   * console.log(opened.capacity); // 1048576
   * ```
   */
  static open<T = unknown>(
    name: string,
    options: ShmChannelOptions<T> = {},
  ): ShmChannel<T> {
    const action = `open shared-memory channel "${name}"`;
    checkOptionKeys(options, _OPEN_KEYS, action);
    const codec = (options.codec ?? codecs.json()) as Codec<T>;
    if (
      typeof codec !== "object" || codec === null ||
      typeof codec.encode !== "function" ||
      typeof codec.decode !== "function" || typeof codec.name !== "string"
    ) {
      throw new TypeError(
        `Cannot ${action}: codec must have a name, encode() and decode()`,
      );
    }
    const spin = checkSpinMicros(options.spin, action);
    const create = options.create ?? false;
    const unlinkOnClose = options.unlinkOnClose ?? false;
    if (typeof unlinkOnClose !== "boolean") {
      throw new TypeError(
        `Cannot ${action}: unlinkOnClose must be true or false, got ${typeof unlinkOnClose}`,
      );
    }
    let capacity = options.capacity;
    if (capacity !== undefined) _checkCapacity(capacity, action);
    else if (create) capacity = SHM_CHANNEL_DEFAULT_CAPACITY;
    const memory = SharedMemory.open(name, {
      create,
      ...(options.exclusive === undefined
        ? {}
        : { exclusive: options.exclusive }),
      ...(options.adopt === undefined ? {} : { adopt: options.adopt }),
      ...(options.mode === undefined ? {} : { mode: options.mode }),
      // Not unlinkOnClose here: if the object turns out to hold another
      // codec's channel, closing must not remove somebody else's name.
      ...(capacity === undefined ? {} : { size: RING.DATA + capacity }),
    });
    try {
      const size = capacity ?? memory.size - RING.DATA;
      if (capacity === undefined) {
        // Opened as it is: the header says what it holds; check the size
        // before reading it.
        if (memory.size < RING.DATA + MIN_CAPACITY) {
          throw new TypeError(
            `Cannot ${action}: its ${memory.size} bytes are too few for a shared-memory channel`,
          );
        }
      }
      setUpIdentity(
        memory.buffer,
        0,
        {
          kind: KIND.channel,
          version: RING_VERSION,
          capacity: capacity ?? 0,
          format: codecFormat(codec),
        },
        `shared-memory channel "${name}"`,
        create,
        () => {},
      );
      const recorded = Number(
        new DataView(memory.buffer).getBigUint64(16, true),
      );
      if (capacity === undefined) {
        _checkCapacity(recorded, action);
        if (recorded !== size) {
          throw new TypeError(
            `Cannot ${action}: its header records a ring of ${recorded} bytes in an object of ${memory.size}`,
          );
        }
      }
      return new ShmChannel<T>(memory, recorded, codec, spin, unlinkOnClose);
    } catch (error) {
      memory.close();
      throw error;
    }
  }

  /**
   * Removes the channel's name. Processes that have it open keep using
   * it; the memory is freed when the last one closes.
   *
   * @throws {Deno.errors.NotFound} when no object has that name
   * @throws {Deno.errors.NotCapable} without `--allow-write` on `/dev/shm/<name>`
   *
   * @example Remove a name that outlived its handles
   * ```ts
   * import { ShmChannel } from "@ipckit/ipckit";
   *
   * const name = `/left-${Deno.pid}`;
   * ShmChannel.open(name, { create: true, capacity: 4096 }).close(); // the name stays
   * ShmChannel.unlink(name);
   * ```
   */
  static unlink(name: string): void {
    SharedMemory.unlink(name);
  }

  /**
   * Removes this channel's name (see the static {@linkcode ShmChannel.unlink});
   * both ends keep working.
   *
   * @example Drop the name once both ends have it open
   * ```ts
   * import { ShmChannel } from "@ipckit/ipckit";
   *
   * const name = `/private-${Deno.pid}`;
   * using producer = ShmChannel.open<number>(name, { create: true, capacity: 4096 });
   * using consumer = ShmChannel.open<number>(name);
   * producer.unlink(); // nothing is left behind, whatever happens next
   * await producer.send(1);
   * console.log((await consumer.receive()).value); // 1
   * ```
   */
  unlink(): void {
    this.#life.check("unlink");
    SharedMemory.unlink(this.#memory.name);
  }

  /** The object's name, e.g. `"/frames"`. */
  get name(): string {
    return this.#memory.name;
  }

  /** The ring's size in bytes. */
  get capacity(): number {
    return this.#ring.capacity;
  }

  /** The largest message the ring carries, in bytes: half the ring less 8. */
  get maxMessage(): number {
    return this.#ring.maxMessage;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * Sends one value: encodes it and writes it into the ring, waiting while
   * the ring is full. Calls on one handle are sent in call order.
   *
   * @throws {RangeError} for a message larger than {@linkcode ShmChannel.maxMessage}, before anything is written
   * @throws {Deno.errors.BrokenPipe} when the consumer closed its end or died
   * @throws {Deno.errors.Busy} when another live process is the producer
   * @throws {Deno.errors.TimedOut} when the ring stays full for `timeout` ms
   * @throws {Deno.errors.BadResource} when the channel is closed, also while waiting
   *
   * @example Send with a deadline
   * ```ts
   * import { ShmChannel } from "@ipckit/ipckit";
   *
   * using channel = ShmChannel.open(`/send-${Deno.pid}`, { create: true, unlinkOnClose: true });
   * await channel.send({ id: 1 }, { timeout: 1000 });
   * ```
   */
  send(value: T, options: WaitOptions = {}): Promise<void> {
    let bytes: Uint8Array;
    let deadline: Deadline;
    const action = `send to ${this.#what}`;
    try {
      checkOptionKeys(options, WAIT_KEYS, action);
      deadline = deadlineOf(options, action);
      this.#life.check("send to");
      this.#startProducing(action);
      if (this.#sendQueue === undefined && this.#tryEncodeInto(value, action)) {
        return Promise.resolve();
      }
      bytes = this.#encode(value, action);
      if (this.#sendQueue === undefined && this.#tryWrite(bytes, action)) {
        return Promise.resolve();
      }
    } catch (error) {
      return Promise.reject(error);
    }
    const signal = options.signal;
    return this.#queueSend(() =>
      this.#waitToWrite(
        bytes.byteLength,
        deadline,
        signal,
        action,
        () => this.#tryWrite(bytes, action),
      )
    );
  }

  /**
   * Sends one value if the ring has room now, without waiting.
   *
   * @throws {Deno.errors.WouldBlock} when the ring is full (nothing is written)
   * @throws {RangeError} for a message larger than {@linkcode ShmChannel.maxMessage}
   * @throws {Deno.errors.BrokenPipe} when the consumer closed its end
   *
   * @example
   * ```ts
   * import { ShmChannel } from "@ipckit/ipckit";
   *
   * using channel = ShmChannel.open<string>(`/try-${Deno.pid}`, { create: true, capacity: 64, unlinkOnClose: true });
   * try {
   *   for (;;) channel.trySend("x"); // until the 64-byte ring is full
   * } catch (error) {
   *   console.log(error instanceof Deno.errors.WouldBlock); // true
   * }
   * ```
   */
  trySend(value: T): void {
    const action = `send to ${this.#what}`;
    this.#life.check("send to");
    this.#startProducing(action);
    if (this.#sendQueue === undefined && this.#tryEncodeInto(value, action)) {
      return;
    }
    const bytes = this.#encode(value, action);
    if (this.#sendQueue !== undefined || !this.#tryWrite(bytes, action)) {
      throw new Deno.errors.WouldBlock(
        `Cannot ${action}: the ring is full (${this.#ring.used()} of ${this.capacity} bytes in use)`,
      );
    }
  }

  /**
   * Sends one value, blocking the calling thread while the ring is full
   * (for Workers and scripts); see {@linkcode ShmChannel.send}.
   *
   * @example
   * ```ts
   * import { ShmChannel } from "@ipckit/ipckit";
   *
   * using channel = ShmChannel.open<number>(`/sync-${Deno.pid}`, { create: true, unlinkOnClose: true });
   * channel.sendSync(42, { timeout: 1000 });
   * console.log(channel.receiveSync({ timeout: 1000 }).value); // 42
   * ```
   */
  sendSync(value: T, options: Pick<WaitOptions, "timeout"> = {}): void {
    const action = `send to ${this.#what}`;
    checkOptionKeys(options, SYNC_WAIT_KEYS, action);
    const deadline = deadlineOf(options, action);
    const bytes = this.#encode(value, action);
    this.#startProducing(action);
    this.#noAsyncInFlight(this.#sendQueue, action);
    const ring = this.#ring;
    let checked = performance.now();
    while (!this.#tryWrite(bytes, action)) {
      this.#sendSpin.spin(
        false,
        () => this.#tryWrite(bytes, action),
        (done) => done,
      );
      if (this.#tryWrite(bytes, action)) return;
      // Its process is looked up (a read of /proc) once per slice, not per wake.
      if (performance.now() - checked >= LIVENESS_CHECK_MS) {
        checked = performance.now();
        this.#checkConsumer(action);
      }
      const expected = ring.parkProducer(bytes.byteLength);
      if (expected === undefined) continue;
      try {
        this.#sleepSync(ring.tailWord, expected, deadline, action);
      } finally {
        ring.unparkProducer();
      }
    }
  }

  /**
   * Lends `size` bytes inside the ring, to be filled in place and sent with
   * {@linkcode ShmChannel.commit}: no copy at all. Waits while the ring has
   * no room. One loan at a time; `send()` waits for none, so do not mix
   * them in flight. The bytes must not be used after `commit()`.
   *
   * @throws {RangeError} for a size larger than {@linkcode ShmChannel.maxMessage}
   * @throws {TypeError} when a loan is outstanding
   *
   * @example Fill a frame in place
   * ```ts
   * import { codecs, ShmChannel } from "@ipckit/ipckit";
   *
   * using channel = ShmChannel.open<Uint8Array>(`/loan-${Deno.pid}`, {
   *   create: true,
   *   codec: codecs.bytes(),
   *   unlinkOnClose: true,
   * });
   * const frame = await channel.loan(1024);
   * frame.fill(7);
   * channel.commit();
   * const view = await channel.receiveView();
   * console.log(view.length, view[0]); // 1024 7
   * channel.release();
   * ```
   */
  async loan(size: number, options: WaitOptions = {}): Promise<Uint8Array> {
    const action = `lend bytes of ${this.#what}`;
    checkOptionKeys(options, WAIT_KEYS, action);
    const deadline = deadlineOf(options, action);
    this.#checkMessageSize(size, action);
    if (this.#loan) {
      throw new TypeError(
        `Cannot ${action}: a loan is outstanding; commit() it first`,
      );
    }
    this.#startProducing(action);
    let offset = -1;
    const attempt = () => {
      this.#life.check("lend bytes of");
      this.#checkConsumerClosed(action);
      offset = this.#ring.reserve(size);
      return offset >= 0;
    };
    if (this.#sendQueue !== undefined || !attempt()) {
      await this.#queueSend(() =>
        this.#waitToWrite(size, deadline, options.signal, action, attempt)
      );
    }
    this.#loan = { offset, size };
    return this.#ring.data.subarray(offset, offset + size);
  }

  /**
   * Sends what the outstanding loan holds: its first `length` bytes
   * (default: all it lent), as one message.
   *
   * @throws {TypeError} when no loan is outstanding
   * @throws {RangeError} for a length beyond the loan
   *
   * @example See {@linkcode ShmChannel.loan}
   * ```ts
   * import { codecs, ShmChannel } from "@ipckit/ipckit";
   *
   * using channel = ShmChannel.open<Uint8Array>(`/commit-${Deno.pid}`, { create: true, codec: codecs.bytes(), unlinkOnClose: true });
   * const bytes = await channel.loan(16);
   * bytes.set([1, 2, 3]);
   * channel.commit(3); // a 3-byte message
   * ```
   */
  commit(length?: number): void {
    const action = `commit a loan of ${this.#what}`;
    this.#life.check("commit a loan of");
    const loan = this.#loan;
    if (!loan) throw new TypeError(`Cannot ${action}: nothing was lent`);
    const n = length ?? loan.size;
    if (!Number.isInteger(n) || n < 0 || n > loan.size) {
      throw new RangeError(
        `Cannot ${action}: length must be an integer from 0 to ${loan.size}, got ${
          String(n)
        }`,
      );
    }
    this.#loan = undefined;
    if (this.#ring.publish(n)) wakeWord(this.#ring.headWord, 1);
  }

  /**
   * Receives one message: decodes it straight out of the ring, waiting
   * while it is empty. Messages the producer sent before it died or closed
   * are delivered first.
   *
   * @throws {DecodeError} for a message the codec cannot decode, with its bytes (it is taken)
   * @throws {Deno.errors.UnexpectedEof} when the producer closed its end and the ring is empty
   * @throws {Deno.errors.ConnectionReset} when the producer died and the ring is empty
   * @throws {Deno.errors.Busy} when another live process is the consumer
   * @throws {Deno.errors.TimedOut} when nothing arrives within `timeout` ms
   * @throws {Deno.errors.BadResource} when the channel is closed, also while waiting
   *
   * @example
   * ```ts
   * import { ShmChannel } from "@ipckit/ipckit";
   *
   * using channel = ShmChannel.open<string>(`/receive-${Deno.pid}`, { create: true, unlinkOnClose: true });
   * await channel.send("hello");
   * const { value } = await channel.receive({ timeout: 1000 });
   * console.log(value); // hello
   * ```
   */
  receive(options: WaitOptions = {}): Promise<Message<T>> {
    const action = `receive from ${this.#what}`;
    let deadline: Deadline;
    try {
      checkOptionKeys(options, WAIT_KEYS, action);
      deadline = deadlineOf(options, action);
      this.#startConsuming(action);
      if (this.#receiveQueue === undefined) {
        const message = this.#tryRead(action);
        if (message) return Promise.resolve(message);
      }
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#queueReceive(async () => {
      let message: Message<T> | undefined;
      await this.#waitToRead(deadline, options.signal, action, () => {
        message = this.#tryRead(action);
        return message !== undefined;
      }, true);
      return message!;
    });
  }

  /**
   * Receives one message if there is one now, without waiting.
   *
   * @throws {Deno.errors.WouldBlock} when the ring is empty
   *
   * @example
   * ```ts
   * import { ShmChannel } from "@ipckit/ipckit";
   *
   * using channel = ShmChannel.open(`/tryreceive-${Deno.pid}`, { create: true, unlinkOnClose: true });
   * try {
   *   channel.tryReceive();
   * } catch (error) {
   *   console.log(error instanceof Deno.errors.WouldBlock); // true
   * }
   * ```
   */
  tryReceive(): Message<T> {
    const action = `receive from ${this.#what}`;
    this.#startConsuming(action);
    const message = this.#receiveQueue === undefined
      ? this.#tryRead(action)
      : undefined;
    if (message) return message;
    this.#endedError(action, true);
    throw new Deno.errors.WouldBlock(`Cannot ${action}: the ring is empty`);
  }

  /**
   * Receives one message, blocking the calling thread while the ring is
   * empty (for Workers and scripts); see {@linkcode ShmChannel.receive}.
   *
   * @example
   * ```ts
   * import { ShmChannel } from "@ipckit/ipckit";
   *
   * using channel = ShmChannel.open<number>(`/receivesync-${Deno.pid}`, { create: true, unlinkOnClose: true });
   * channel.trySend(1);
   * console.log(channel.receiveSync().value); // 1
   * ```
   */
  receiveSync(options: Pick<WaitOptions, "timeout"> = {}): Message<T> {
    const action = `receive from ${this.#what}`;
    checkOptionKeys(options, SYNC_WAIT_KEYS, action);
    const deadline = deadlineOf(options, action);
    this.#startConsuming(action);
    this.#noAsyncInFlight(this.#receiveQueue, action);
    const ring = this.#ring;
    let checked = performance.now();
    for (;;) {
      const message = this.#tryRead(action) ??
        this.#receiveSpin.spin(
          undefined as Message<T> | undefined,
          () => this.#tryRead(action),
          (found) => found !== undefined,
        );
      if (message) return message;
      // Its process is looked up (a read of /proc) once per slice, not per wake.
      const checkAlive = performance.now() - checked >= LIVENESS_CHECK_MS;
      if (checkAlive) checked = performance.now();
      this.#endedError(action, !checkAlive);
      const expected = ring.parkConsumer();
      if (expected === undefined) continue;
      try {
        this.#sleepSync(ring.headWord, expected, deadline, action);
      } finally {
        ring.unparkConsumer();
      }
    }
  }

  /**
   * Waits for a message and returns its bytes inside the ring, without
   * decoding or copying them; {@linkcode ShmChannel.release} then takes it.
   * The bytes must not be used after `release()`.
   *
   * @throws {TypeError} when a view is outstanding
   *
   * @example Read a message in place
   * ```ts
   * import { codecs, ShmChannel } from "@ipckit/ipckit";
   *
   * using channel = ShmChannel.open<string>(`/view-${Deno.pid}`, { create: true, codec: codecs.text(), unlinkOnClose: true });
   * await channel.send("in place");
   * const bytes = await channel.receiveView({ timeout: 1000 });
   * console.log(new TextDecoder().decode(bytes)); // in place
   * channel.release();
   * ```
   */
  receiveView(options: WaitOptions = {}): Promise<Uint8Array> {
    const action = `receive from ${this.#what}`;
    let deadline: Deadline;
    let slot: Slot | undefined;
    const attempt = () => {
      slot = this.#peek(action);
      return slot !== undefined;
    };
    const lend = () => {
      this.#viewing = false;
      this.#view = slot!;
      return this.#ring.data.subarray(
        slot!.offset,
        slot!.offset + slot!.length,
      );
    };
    try {
      checkOptionKeys(options, WAIT_KEYS, action);
      deadline = deadlineOf(options, action);
      this.#noViewOutstanding(action);
      this.#startConsuming(action);
      this.#viewing = true;
      if (this.#receiveQueue === undefined && attempt()) {
        return Promise.resolve(lend());
      }
    } catch (error) {
      this.#viewing = false;
      return Promise.reject(error);
    }
    return this.#queueReceive(() =>
      this.#waitToRead(deadline, options.signal, action, attempt, true)
    ).then(lend, (error) => {
      this.#viewing = false;
      throw error;
    });
  }

  /**
   * Takes the message {@linkcode ShmChannel.receiveView} lent, giving its
   * room in the ring back to the producer.
   *
   * @throws {TypeError} when no view is outstanding
   *
   * @example See {@linkcode ShmChannel.receiveView}
   * ```ts
   * import { ShmChannel } from "@ipckit/ipckit";
   *
   * using channel = ShmChannel.open(`/release-${Deno.pid}`, { create: true, unlinkOnClose: true });
   * await channel.send(1);
   * await channel.receiveView();
   * channel.release();
   * ```
   */
  release(): void {
    this.#life.check("release a view of");
    const slot = this.#view;
    if (!slot) {
      throw new TypeError(
        `Cannot release a view of ${this.#what}: none is outstanding`,
      );
    }
    this.#view = undefined;
    if (this.#ring.consume(slot)) wakeWord(this.#ring.tailWord, 1);
  }

  /**
   * Resolves once `receive()` would not wait: a message is in the ring, or
   * the producer closed its end or died. Takes nothing.
   *
   * @example
   * ```ts
   * import { ShmChannel } from "@ipckit/ipckit";
   *
   * using channel = ShmChannel.open(`/ready-${Deno.pid}`, { create: true, unlinkOnClose: true });
   * setTimeout(() => channel.trySend("hi"), 10);
   * await channel.ready({ timeout: 1000 });
   * ```
   */
  async ready(options: WaitOptions = {}): Promise<void> {
    const action = `wait for a message from ${this.#what}`;
    checkOptionKeys(options, WAIT_KEYS, action);
    const deadline = deadlineOf(options, action);
    this.#startConsuming(action);
    const attempt = () => this.#peek(action) !== undefined;
    if (attempt()) return;
    await this.#waitToRead(deadline, options.signal, action, attempt, false);
  }

  /**
   * Receives until the channel is closed here, or the producer closed its
   * end and the ring is drained.
   *
   * @example
   * ```ts
   * import { ShmChannel } from "@ipckit/ipckit";
   *
   * const name = `/iterate-${Deno.pid}`;
   * using consumer = ShmChannel.open<string>(name, { create: true, unlinkOnClose: true });
   * const producer = ShmChannel.open<string>(name);
   * await producer.send("a");
   * producer.close();
   * for await (const { value } of consumer) console.log(value); // a
   * ```
   */
  [Symbol.asyncIterator](): AsyncIterator<Message<T>> {
    return receiveUntilEnd(() => this.receive(), () => this.closed, true);
  }

  /**
   * Closes this end: pending calls reject with `BadResource`, a side this
   * handle held is given back and marked closed (the peer's `for await`
   * ends, or its `send()` fails with `BrokenPipe`), and the memory is
   * unmapped; idempotent. With `unlinkOnClose` the name is removed too.
   *
   * @example
   * ```ts
   * import { ShmChannel } from "@ipckit/ipckit";
   *
   * const channel = ShmChannel.open(`/close-${Deno.pid}`, { create: true, unlinkOnClose: true });
   * channel.close();
   * console.log(channel.closed); // true
   * ```
   */
  close(): void {
    this.#life.close(() => {
      // Ends parked waits at once (they stop reading the words), before
      // the memory goes.
      this.#closing.abort(closedError(this.#what));
      const ring = this.#ring;
      try {
        if (this.#producing) {
          ring.setFlag(RING.PRODUCER_CLOSED, 1);
          this.#producerSide.release();
          wakeWord(ring.headWord, 1);
        }
        if (this.#consuming) {
          ring.setFlag(RING.CONSUMER_CLOSED, 1);
          this.#consumerSide.release();
          wakeWord(ring.tailWord, 1);
        }
      } finally {
        this.#memory.close();
        if (this.#unlinkOnClose) {
          unlinkQuietly(() => SharedMemory.unlink(this.#memory.name));
        }
      }
    });
  }

  /** Closes this end; see {@linkcode ShmChannel.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes this end; see {@linkcode ShmChannel.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.#life.closeAsync(() => this.close());
  }

  #encode(value: T, action: string): Uint8Array {
    this.#life.check("send to");
    if (this.#loan) {
      throw new TypeError(
        `Cannot ${action}: a loan is outstanding; commit() it first`,
      );
    }
    const bytes = this.#codec.encode(value);
    this.#checkMessageSize(bytes.byteLength, action);
    return bytes;
  }

  #checkMessageSize(size: unknown, action: string): void {
    if (typeof size !== "number" || !Number.isInteger(size) || size < 0) {
      throw new RangeError(
        `Cannot ${action}: size must be an integer of 0 or more, got ${
          String(size)
        }`,
      );
    }
    if (size > this.#ring.maxMessage) {
      throw new RangeError(
        `Cannot ${action}: a message of ${size} bytes is larger than the ${this.#ring.maxMessage} bytes a ring of ${this.capacity} carries (half the ring, less 8)`,
      );
    }
  }

  #startProducing(action: string): void {
    if (this.#producing) return;
    const holder = this.#producerSide.claim();
    if (holder !== 0) {
      throw new Deno.errors.Busy(
        `Cannot ${action}: process ${holder} is its producer, and a channel has one`,
      );
    }
    this.#producing = true;
    this.#ring.setFlag(RING.PRODUCER_CLOSED, 0);
    this.#ring.startProducing();
  }

  #startConsuming(action: string): void {
    this.#life.check("receive from");
    if (this.#consuming) return;
    const holder = this.#consumerSide.claim();
    if (holder !== 0) {
      throw new Deno.errors.Busy(
        `Cannot ${action}: process ${holder} is its consumer, and a channel has one`,
      );
    }
    this.#consuming = true;
    this.#ring.setFlag(RING.CONSUMER_CLOSED, 0);
    this.#ring.startConsuming();
  }

  /**
   * Encodes `value` straight into the ring's free room, when the codec can
   * (`encodeInto`) and it fits before the ring's end; false otherwise (the
   * caller encodes into a buffer and waits for room, wrapping if need be).
   */
  #tryEncodeInto(value: T, action: string): boolean {
    const codec = this.#codec;
    if (!codec.encodeInto || this.#loan) return false;
    this.#checkConsumerClosed(action);
    const ring = this.#ring;
    const offset = ring.reserveFree();
    if (offset < 0) return false;
    let n: number;
    try {
      n = codec.encodeInto(
        value,
        ring.data.subarray(offset, offset + ring.room),
      );
    } catch (error) {
      ring.unreserve();
      throw error;
    }
    if (!Number.isInteger(n) || n < 0 || n > ring.room) {
      ring.unreserve();
      return false;
    }
    if (ring.publish(n)) wakeWord(ring.headWord, 1);
    return true;
  }

  /** One attempt to write `bytes` into the ring; false when there is no room. */
  #tryWrite(bytes: Uint8Array, action: string): boolean {
    this.#life.check("send to");
    this.#checkConsumerClosed(action);
    const ring = this.#ring;
    const offset = ring.reserve(bytes.byteLength);
    if (offset < 0) return false;
    ring.data.set(bytes, offset);
    if (ring.publish(bytes.byteLength)) wakeWord(ring.headWord, 1);
    return true;
  }

  #peek(action: string): Slot | undefined {
    this.#life.check("receive from");
    try {
      return this.#ring.peek();
    } catch (error) {
      throw new Deno.errors.InvalidData(
        `Cannot ${action}: its ring is corrupt: ${(error as Error).message}`,
      );
    }
  }

  #noViewOutstanding(action: string): void {
    if (this.#view || this.#viewing) {
      throw new TypeError(
        `Cannot ${action}: a view is outstanding or awaited; release() it first`,
      );
    }
  }

  /** One attempt to take and decode a message; undefined when there is none. */
  #tryRead(action: string): Message<T> | undefined {
    this.#noViewOutstanding(action);
    const slot = this.#peek(action);
    if (!slot) return undefined;
    const ring = this.#ring;
    const bytes = ring.data.subarray(slot.offset, slot.offset + slot.length);
    let value: T;
    try {
      value = this.#codec.decode(bytes);
    } catch (error) {
      // DecodeError copies the bytes; the message is taken either way.
      const failure = error instanceof DecodeError ? error : new DecodeError(
        `Cannot decode a ${this.#codec.name} message of ${bytes.byteLength} bytes from ${this.#what}: ${
          (error as Error)?.message ?? String(error)
        }`,
        bytes,
        { cause: error },
      );
      if (ring.consume(slot)) wakeWord(ring.tailWord, 1);
      throw failure;
    }
    if (ring.consume(slot)) wakeWord(ring.tailWord, 1);
    return { value };
  }

  #checkConsumerClosed(action: string): void {
    if (
      this.#ring.flag(RING.CONSUMER_CLOSED) !== 0 &&
      this.#consumerSide.pid === 0
    ) {
      throw new Deno.errors.BrokenPipe(
        `Cannot ${action}: its consumer closed its end`,
      );
    }
  }

  /** Throws when the consumer is gone for good (closed, or died). */
  #checkConsumer(action: string): void {
    this.#checkConsumerClosed(action);
    const side = this.#consumerSide;
    const pid = side.pid;
    if (pid !== 0 && !side.alive()) {
      throw new Deno.errors.BrokenPipe(
        `Cannot ${action}: its consumer, process ${pid}, died`,
      );
    }
  }

  /**
   * How the producer's end stands, for an empty ring; `checkAlive` also
   * asks whether its process runs (a read of /proc: not on every park).
   */
  #producerEnded(checkAlive: boolean): _Ended | undefined {
    const side = this.#producerSide;
    const pid = side.pid;
    if (pid === 0) {
      return this.#ring.flag(RING.PRODUCER_CLOSED) !== 0 ? "closed" : undefined;
    }
    return !checkAlive || side.alive() ? undefined : "died";
  }

  /**
   * For an empty ring: throws when the producer closed its end or died
   * (`checkDeath`: also look at /proc, which costs a read).
   */
  #endedError(action: string, closedOnly: boolean): void {
    const side = this.#producerSide;
    const pid = side.pid;
    if (pid === 0) {
      if (this.#ring.flag(RING.PRODUCER_CLOSED) !== 0) {
        throw new Deno.errors.UnexpectedEof(
          `Cannot ${action}: its producer closed its end`,
        );
      }
      return;
    }
    if (!closedOnly && !side.alive()) {
      throw new Deno.errors.ConnectionReset(
        `Cannot ${action}: its producer, process ${pid}, died`,
      );
    }
  }

  #queueSend<R>(run: () => Promise<R>): Promise<R> {
    // Nothing in flight: start now, without a turn of the microtask queue.
    const before = this.#sendQueue;
    const result = before === undefined ? run() : before.then(run);
    const settled = result.then(() => {}, () => {});
    this.#sendQueue = settled;
    settled.then(() => {
      if (this.#sendQueue === settled) this.#sendQueue = undefined;
    });
    return result;
  }

  #queueReceive<R>(run: () => Promise<R>): Promise<R> {
    // Nothing in flight: start now, without a turn of the microtask queue.
    const before = this.#receiveQueue;
    const result = before === undefined ? run() : before.then(run);
    const settled = result.then(() => {}, () => {});
    this.#receiveQueue = settled;
    settled.then(() => {
      if (this.#receiveQueue === settled) this.#receiveQueue = undefined;
    });
    return result;
  }

  #noAsyncInFlight(queue: Promise<unknown> | undefined, action: string): void {
    if (queue !== undefined) {
      throw new TypeError(
        `Cannot ${action} synchronously while asynchronous calls are in flight on this handle`,
      );
    }
  }

  /** Tries, spins, then parks on the tail word until `attempt()` succeeds. */
  async #waitToWrite(
    size: number,
    deadline: Deadline,
    signal: AbortSignal | undefined,
    action: string,
    attempt: () => boolean,
  ): Promise<void> {
    if (attempt()) return;
    const started = performance.now();
    if (deadline.timeout !== 0) {
      if (await _spinAsync(this.#sendSpin, attempt, signal)) return;
    }
    const ring = this.#ring;
    let checked = started;
    for (;;) {
      if (signal?.aborted) throw signal.reason;
      this.#life.check("send to");
      this.#checkConsumerClosed(action);
      if (performance.now() - checked >= LIVENESS_CHECK_MS) {
        checked = performance.now();
        this.#checkConsumer(action);
      }
      if (expired(deadline)) throw timeoutError(action, deadline.timeout);
      const expected = ring.parkProducer(size);
      if (expected !== undefined) {
        try {
          await this.#sleep(ring.tailWord, expected, deadline, signal, action);
        } finally {
          if (!this.#life.closed) ring.unparkProducer();
        }
      }
      if (attempt()) {
        this.#sendSpin.slept(performance.now() - started);
        return;
      }
    }
  }

  /**
   * Tries, spins, then parks on the head word until `attempt()` succeeds;
   * when the ring stays empty and the producer is gone, throws (`orThrow`)
   * or returns (for ready()).
   */
  async #waitToRead(
    deadline: Deadline,
    signal: AbortSignal | undefined,
    action: string,
    attempt: () => boolean,
    orThrow: boolean,
  ): Promise<void> {
    if (attempt()) return;
    const started = performance.now();
    if (deadline.timeout !== 0) {
      if (await _spinAsync(this.#receiveSpin, attempt, signal)) return;
    }
    const ring = this.#ring;
    let checked = started;
    for (;;) {
      if (signal?.aborted) throw signal.reason;
      this.#life.check("receive from");
      const checkAlive = performance.now() - checked >= LIVENESS_CHECK_MS;
      if (checkAlive) checked = performance.now();
      if (this.#producerEnded(checkAlive)) {
        if (attempt()) return; // what it sent before it went comes first
        if (!orThrow) return;
        this.#endedError(action, false);
      }
      if (expired(deadline)) throw timeoutError(action, deadline.timeout);
      const expected = ring.parkConsumer();
      if (expected !== undefined) {
        try {
          await this.#sleep(ring.headWord, expected, deadline, signal, action);
        } finally {
          if (!this.#life.closed) ring.unparkConsumer();
        }
      }
      if (attempt()) {
        this.#receiveSpin.slept(performance.now() - started);
        return;
      }
    }
  }

  /**
   * Parks on `word` while it holds `expected`, for at most the liveness
   * interval: returns to let the caller look at its peer again.
   */
  async #sleep(
    word: Int32Array,
    expected: number,
    deadline: Deadline,
    signal: AbortSignal | undefined,
    action: string,
  ): Promise<void> {
    const slice: Deadline = {
      at: Math.min(deadline.at, performance.now() + LIVENESS_CHECK_MS),
      timeout: deadline.timeout,
    };
    using link = untilClosed(signal, this.#closing.signal);
    const any = link.signal;
    try {
      await waitWord(word, expected, slice, any, action);
    } catch (error) {
      if (error instanceof Deno.errors.TimedOut && !expired(deadline)) return;
      throw error;
    }
  }

  #sleepSync(
    word: Int32Array,
    expected: number,
    deadline: Deadline,
    action: string,
  ): void {
    waitWordSync(word, expected, deadline, action, LIVENESS_CHECK_MS);
  }
}

/**
 * Retries `attempt` for the spinner's budget, a microtask apart, like
 * `Spinner.spinAsync`, but reads the clock only every 32 attempts: an
 * attempt here is a few atomic loads, and `performance.now()` (an op call)
 * took 38% of a spinning round trip's CPU when read after each one.
 */
async function _spinAsync(
  spinner: Spinner,
  attempt: () => boolean,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  const budget = spinner.budgetMicros / 1000;
  if (budget === 0) return false;
  const until = performance.now() + budget;
  for (let i = 1;; i++) {
    await undefined;
    if (signal?.aborted) return false;
    if (attempt()) return true;
    if ((i & 31) === 0 && performance.now() >= until) return false;
  }
}

function _checkCapacity(capacity: unknown, action: string): void {
  if (
    typeof capacity !== "number" || !Number.isInteger(capacity) ||
    capacity < MIN_CAPACITY || capacity > MAX_CAPACITY ||
    (capacity & (capacity - 1)) !== 0
  ) {
    throw new RangeError(
      `Cannot ${action}: capacity must be a power of two from ${MIN_CAPACITY} to ${MAX_CAPACITY} bytes, got ${
        String(capacity)
      }`,
    );
  }
}
