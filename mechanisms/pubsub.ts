/**
 * Publish-subscribe over shared memory: a {@linkcode Publisher} writes typed
 * messages to a named topic, and every {@linkcode Subscriber} of it, in any
 * number of processes, receives every message published after it joined
 * (and, if it asks, up to `history` published before).
 *
 * A topic is one POSIX shared memory object (`/dev/shm/<name>`) holding a
 * ring of `capacity` message slots of `maxMessageSize` bytes each and a
 * table of `maxSubscribers` subscriber slots; its memory format and
 * protocol are documented in `mechanisms/_pubsub/format.ts`, so a C or
 * Python program can take part. Permissions are those of shared memory:
 * `--allow-read=/dev/shm/<name>`, `--allow-write` on it to publish, to
 * subscribe (a subscriber writes its slot) and to create, and
 * `--allow-ffi`. With `--allow-read=/proc` the liveness checks also
 * compare process start times (see "Crashes").
 *
 * ## Slow subscribers
 *
 * With `overflow: "drop-oldest"` (the default) a publisher never waits for
 * a subscriber: the ring keeps the last `capacity` messages, and a
 * subscriber that falls further behind loses the oldest. It is never lost
 * silently: each received message carries `missed`, the number lost just
 * before it, and `Subscriber.missed` counts them all. With
 * `overflow: "block"` a publisher waits (`send()`) or throws `WouldBlock`
 * (`trySend()`) while a live subscriber is a whole ring behind.
 *
 * ## Several publishers
 *
 * Any number of publishers may share a topic. They take turns through a
 * lock in the topic that is held only while one message is copied into
 * its slot. Every message gets the next sequence number, so there is one
 * order, and every subscriber sees the messages it receives in that order;
 * the messages of one publisher appear in the order its `send()` calls
 * returned. Between publishers, the order is the order they took the lock.
 *
 * ## Crashes
 *
 * A publisher killed at any moment (SIGKILL) leaves at worst the lock
 * taken and one slot half-written: the next publisher finds the holder
 * dead and takes the lock over, and the half-written slot is never read,
 * because the count of published messages moves only once a slot is
 * complete. A subscriber killed leaves its slot taken until it is found
 * dead and reclaimed: by a joining subscriber that finds no free slot, and
 * by a publisher it blocks (which checks every 100 ms, so "block" topics
 * resume). A process is dead when
 * its pid is gone or a zombie, or (with `--allow-read=/proc`) when the
 * process with that pid started at another time than the one recorded, so
 * a reused pid is not taken for the old subscriber.
 *
 * Publishers may come and go: a subscriber waiting while no publisher
 * exists simply waits (until its timeout), since another may join.
 *
 * ## Waiting
 *
 * A subscriber with nothing to read spins briefly (`spin`), then parks on
 * a futex word in the topic through ipckit's futex lanes: no thread of its
 * own, no timer, no CPU while idle. A publisher wakes sleeping subscribers
 * once per episode of sleep, so a busy topic costs no system call per
 * message.
 *
 * @example One publisher, one subscriber
 * ```ts
 * import { Publisher, Subscriber } from "@ipckit/ipckit";
 *
 * type Price = { symbol: string; price: number };
 * const name = `/prices-${Deno.pid}`;
 * using publisher = Publisher.open<Price>(name, { create: true, unlinkOnClose: true });
 * using subscriber = Subscriber.open<Price>(name);
 * await publisher.send({ symbol: "ACME", price: 12.5 });
 * const { value, missed } = await subscriber.receive({ timeout: 1000 });
 * console.log(value.price, missed); // 12.5 0
 * ```
 *
 * @module
 */

import type { Codec } from "./codec.ts";
import { codecs } from "./codec.ts";
import type { Message, Selectable, WaitOptions } from "./channel.ts";
import { DecodeError } from "./errors.ts";
import { SharedMemory } from "./shared_memory.ts";
import {
  checkFlag,
  checkInteger,
  checkMode,
  checkOptionKeys,
  optionKeys,
} from "./_common/checks.ts";
import { receiveUntilEnd } from "./_common/iterate.ts";
import { Lifecycle, unlinkQuietly } from "./_common/lifecycle.ts";
import { INIT_TIMEOUT_MS } from "./_memory/init_once.ts";
import { deadlineOf, WAIT_KEYS } from "./_wait/deadline.ts";
import { retryAsync, type RetryPlan } from "./_wait/retry.ts";
import { checkSpinMicros, Spinner } from "./_wait/spin.ts";
import { OVERFLOW_CODES, topicSize } from "./_pubsub/format.ts";
import { codecFormat } from "./_ring/identity.ts";
import { type ReadState, Topic, type TopicParams } from "./_pubsub/topic.ts";

/**
 * How to open a topic; the options both ends take.
 *
 * `capacity`, `maxMessageSize`, `maxSubscribers` and `overflow` shape a
 * topic when it is created; opening an existing topic with one of them set
 * to another value than the topic has is a `RangeError` naming both.
 *
 * @example A topic of up to 64 KiB frames that keeps the last 16
 * ```ts
 * import type { TopicOptions } from "@ipckit/ipckit";
 *
 * const options: TopicOptions<Uint8Array> = { create: true, capacity: 16, maxMessageSize: 1 << 16 };
 * ```
 *
 * @category Publish-subscribe
 */
export interface TopicOptions<T> {
  /** How messages are encoded; both ends must use the same. Default `codecs.json()`. */
  codec?: Codec<T>;
  /** Create the topic if it does not exist. Default `false`. */
  create?: boolean;
  /** With `create`: fail with `AlreadyExists` if it exists. Default `false`. */
  exclusive?: boolean;
  /**
   * With `create`, which existing topic to use: `"owned"` (default), only
   * one of this user with no wider mode; `"any-owner"`, any this process
   * may open (see `SharedMemoryOptions.adopt`).
   */
  adopt?: "owned" | "any-owner";
  /** Permission bits of a created topic. Default `0o600`. */
  mode?: number;
  /** Remove the topic's name when this handle closes. Default `false`. */
  unlinkOnClose?: boolean;
  /** Message slots in the ring: how far a subscriber may fall behind. Default 256. */
  capacity?: number;
  /** The largest encoded message, in bytes. Default 1024. */
  maxMessageSize?: number;
  /** How many subscribers may be joined at once. Default 32. */
  maxSubscribers?: number;
  /** What a full ring does to a publisher. Default `"drop-oldest"`. */
  overflow?: "drop-oldest" | "block";
}

/**
 * How to open a publisher: the topic's options, and how long a blocked
 * `send()` spins before it parks.
 *
 * @example A publisher that creates its topic
 * ```ts
 * import type { PublisherOptions } from "@ipckit/ipckit";
 *
 * const options: PublisherOptions<string> = { create: true, overflow: "block" };
 * ```
 *
 * @category Publish-subscribe
 */
export interface PublisherOptions<T> extends TopicOptions<T> {
  /** Microseconds a waiting `send()` spins before it parks, 0 to 1000. Default 50. */
  spin?: number;
}

/**
 * How to open a subscriber: the topic's options, how many messages from
 * before it joined it receives, and its spin.
 *
 * @example A subscriber that starts with the last 10 messages
 * ```ts
 * import type { SubscriberOptions } from "@ipckit/ipckit";
 *
 * const options: SubscriberOptions<string> = { history: 10 };
 * ```
 *
 * @category Publish-subscribe
 */
export interface SubscriberOptions<T> extends TopicOptions<T> {
  /**
   * Receive up to this many of the messages published before joining, the
   * newest ones still in the ring (at most `capacity - 1`). Default 0.
   */
  history?: number;
  /** Microseconds a waiting `receive()` spins before it parks, 0 to 1000. Default 50. */
  spin?: number;
}

/**
 * One message received from a topic.
 *
 * @example A message as receive() resolves to it
 * ```ts
 * import type { TopicMessage } from "@ipckit/ipckit";
 *
 * const message: TopicMessage<string> = { value: "tick", sequence: 41, missed: 0 };
 * ```
 *
 * @category Publish-subscribe
 */
export interface TopicMessage<T> extends Message<T> {
  /** Its sequence number in the topic: 0 for the first message ever published. */
  sequence: number;
  /**
   * How many messages this subscriber lost just before this one: they were
   * overwritten before it read them (overflow `"drop-oldest"`).
   */
  missed: number;
}

const _TOPIC_KEYS = {
  codec: true,
  create: true,
  exclusive: true,
  adopt: true,
  mode: true,
  unlinkOnClose: true,
  capacity: true,
  maxMessageSize: true,
  maxSubscribers: true,
  overflow: true,
} as const;
const _PUBLISHER_KEYS = optionKeys<PublisherOptions<unknown>>({
  ..._TOPIC_KEYS,
  spin: true,
});
const _SUBSCRIBER_KEYS = optionKeys<SubscriberOptions<unknown>>({
  ..._TOPIC_KEYS,
  history: true,
  spin: true,
});

const _DEFAULTS: TopicParams = {
  capacity: 256,
  maxMessageSize: 1024,
  maxSubscribers: 32,
  overflow: "drop-oldest",
};

/** What opening either end gives it. */
interface _Opened<T> {
  memory: SharedMemory;
  topic: Topic;
  codec: Codec<T>;
  what: string;
  unlinkOnClose: boolean;
}

/** Checks the options both ends take, before any system call. */
function _checkTopicOptions<T>(
  options: TopicOptions<T>,
  action: string,
): { asked: Partial<TopicParams>; codec: Codec<T> } {
  const codec = options.codec ?? codecs.json<T>();
  if (
    typeof codec !== "object" || codec === null ||
    typeof codec.encode !== "function" || typeof codec.decode !== "function" ||
    typeof codec.name !== "string"
  ) {
    throw new TypeError(
      `Cannot ${action}: codec must be a Codec (name, encode, decode), such as codecs.json()`,
    );
  }
  for (const flag of ["create", "exclusive", "unlinkOnClose"] as const) {
    checkFlag(options[flag], flag, action);
  }
  if (options.exclusive && !options.create) {
    throw new TypeError(`Cannot ${action}: exclusive needs create: true`);
  }
  if (options.mode !== undefined) checkMode(options.mode, action);
  if (
    options.adopt !== undefined && options.adopt !== "owned" &&
    options.adopt !== "any-owner"
  ) {
    throw new TypeError(
      `Cannot ${action}: adopt must be "owned" or "any-owner", got ${
        String(options.adopt)
      }`,
    );
  }
  if (
    options.overflow !== undefined &&
    !Object.hasOwn(OVERFLOW_CODES, options.overflow)
  ) {
    throw new TypeError(
      `Cannot ${action}: overflow must be "drop-oldest" or "block", got ${
        String(options.overflow)
      }`,
    );
  }
  const asked: Partial<TopicParams> = {};
  const capacity = options.capacity;
  if (capacity !== undefined) {
    asked.capacity = checkInteger(capacity, "capacity", action, 0, 1, 1 << 20);
  }
  if (options.maxMessageSize !== undefined) {
    asked.maxMessageSize = checkInteger(
      options.maxMessageSize,
      "maxMessageSize",
      action,
      0,
      1,
      1 << 24,
    );
  }
  if (options.maxSubscribers !== undefined) {
    asked.maxSubscribers = checkInteger(
      options.maxSubscribers,
      "maxSubscribers",
      action,
      0,
      1,
      4096,
    );
  }
  if (options.overflow !== undefined) asked.overflow = options.overflow;
  const size = topicSize({ ..._DEFAULTS, ...asked });
  if (size > 2 ** 31) {
    throw new RangeError(
      `Cannot ${action}: a topic of capacity ${
        asked.capacity ?? _DEFAULTS.capacity
      } and maxMessageSize ${
        asked.maxMessageSize ?? _DEFAULTS.maxMessageSize
      } would take ${size} bytes, more than 2 GiB`,
    );
  }
  return { asked, codec };
}

/** Opens (or creates) the topic's memory and binds it. */
function _openTopic<T>(
  name: string,
  options: TopicOptions<T>,
  action: string,
): _Opened<T> {
  const { asked, codec } = _checkTopicOptions(options, action);
  const what = `topic "${name}"`;
  const params = { ..._DEFAULTS, ...asked };
  const create = options.create ?? false;
  const { memory, created } = _openMemory(name, {
    create,
    exclusive: options.exclusive ?? false,
    adopt: options.adopt,
    mode: options.mode,
    size: topicSize(params),
  });
  try {
    const topic = Topic.bind(memory, what, {
      params,
      asked,
      created,
      format: codecFormat(codec),
    });
    return {
      memory,
      topic,
      codec,
      what,
      unlinkOnClose: options.unlinkOnClose ?? false,
    };
  } catch (error) {
    memory.close();
    throw error;
  }
}

/**
 * The waits of one handle that are parked, so that `close()` can end them.
 * Each has a controller of its own, forgotten when it ends, rather than a
 * signal combined with one long-lived "closing" signal: the test of
 * memory per wait (tests/memory_test.ts) measured 1,214 bytes kept for
 * every aborted wait with `AbortSignal.any([signal, closing])`.
 */
class _Waits {
  #all = new Set<AbortController>();

  /** The signal of one wait: aborts with `outer`, or when the handle closes; `done` forgets it. */
  begin(
    outer: AbortSignal | undefined,
  ): { signal: AbortSignal; done: () => void } {
    const own = new AbortController();
    const onAbort = () => own.abort(outer!.reason);
    outer?.addEventListener("abort", onAbort, { once: true });
    this.#all.add(own);
    return {
      signal: own.signal,
      done: () => {
        outer?.removeEventListener("abort", onAbort);
        this.#all.delete(own);
      },
    };
  }

  /** Ends every wait with `reason`. */
  abortAll(reason: unknown): void {
    for (const own of this.#all) own.abort(reason);
    this.#all.clear();
  }
}

// A word nobody changes, to sleep on for a millisecond.
const _pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * Maps the topic's shared memory. Creating never grows or shrinks a topic
 * that exists: an exclusive create is tried first, and an existing object
 * is adopted (with the owner checks of `create`) at the size it has, so
 * that its header decides whether it is the topic asked for.
 */
function _openMemory(
  name: string,
  options: {
    create: boolean;
    exclusive: boolean;
    adopt: "owned" | "any-owner" | undefined;
    mode: number | undefined;
    size: number;
  },
): { memory: SharedMemory; created: boolean } {
  const { create, adopt, mode } = options;
  const until = performance.now() + INIT_TIMEOUT_MS;
  for (;;) {
    try {
      if (create) {
        try {
          const memory = SharedMemory.open(name, {
            create: true,
            exclusive: true,
            size: options.size,
            mode,
          });
          return { memory, created: true };
        } catch (error) {
          if (
            options.exclusive ||
            !(error instanceof Deno.errors.AlreadyExists)
          ) {
            throw error;
          }
        }
        const probe = SharedMemory.open(name);
        const size = probe.size;
        probe.close();
        const memory = SharedMemory.open(name, {
          create: true,
          adopt,
          mode,
          size,
        });
        return { memory, created: false };
      }
      return { memory: SharedMemory.open(name), created: false };
    } catch (error) {
      // Made by another process this very moment: it has no size yet (or,
      // for a creator, it was removed between two steps). Try again.
      const young = error instanceof RangeError &&
        /empty \(0 bytes\)/.test(error.message);
      const gone = create && error instanceof Deno.errors.NotFound;
      if (!(young || gone) || performance.now() > until) throw error;
      Atomics.wait(_pause, 0, 0, 1);
    }
  }
}

/**
 * The end of a topic that publishes: every `send()` is one message that
 * every current subscriber receives.
 *
 * @example Publish readings; subscribers in other processes receive them
 * ```ts
 * import { Publisher } from "@ipckit/ipckit";
 *
 * type Reading = { sensor: string; celsius: number };
 * await using readings = Publisher.open<Reading>(`/readings-${Deno.pid}`, {
 *   create: true,
 *   unlinkOnClose: true,
 * });
 * await readings.send({ sensor: "kitchen", celsius: 21.5 });
 * console.log(readings.published); // 1
 * ```
 *
 * @category Publish-subscribe
 */
export class Publisher<T> implements Disposable, AsyncDisposable {
  #name: string;
  #what: string;
  #memory: SharedMemory;
  #topic: Topic;
  #codec: Codec<T>;
  #unlinkOnClose: boolean;
  #spinner: Spinner;
  #life: Lifecycle;
  #waits = new _Waits();

  private constructor(name: string, opened: _Opened<T>, spin: number) {
    this.#name = name;
    this.#what = opened.what;
    this.#memory = opened.memory;
    this.#topic = opened.topic;
    this.#codec = opened.codec;
    this.#unlinkOnClose = opened.unlinkOnClose;
    this.#spinner = new Spinner(spin);
    this.#life = new Lifecycle(opened.what);
    const memory = opened.memory;
    // Dropped without close(): the memory's own handle is released (held
    // here, so it is not collected first).
    this.#life.guard(this, () => memory.close());
  }

  /**
   * Opens the topic `name` (e.g. `"/prices"`) for publishing; with
   * `create`, creates it if it does not exist.
   *
   * Cleanup: the topic stays after its handles close, for other
   * processes, unless this handle is opened with `unlinkOnClose: true`.
   *
   * @throws {TypeError} for an invalid name or option, before any system call;
   * or when the object holds no topic, or one of another format version or codec
   * @throws {RangeError} for an option out of range, or one that differs from the existing topic's
   * @throws {Deno.errors.NotCapable} without read/write permission on `/dev/shm/<name>`
   * @throws {Deno.errors.NotFound} when it does not exist and `create` is not set
   *
   * @example Create a topic that blocks publishers for slow subscribers
   * ```ts
   * import { Publisher } from "@ipckit/ipckit";
   *
   * using publisher = Publisher.open<number>(`/ticks-${Deno.pid}`, {
   *   create: true,
   *   overflow: "block",
   *   capacity: 64,
   *   unlinkOnClose: true,
   * });
   * console.log(publisher.capacity); // 64
   * ```
   */
  static open<T = unknown>(
    name: string,
    options: PublisherOptions<T> = {},
  ): Publisher<T> {
    const action = `open topic "${name}"`;
    checkOptionKeys(options, _PUBLISHER_KEYS, action);
    const spin = checkSpinMicros(options.spin, action);
    return new Publisher<T>(name, _openTopic(name, options, action), spin);
  }

  /**
   * Removes the topic's name; handles open on it keep working.
   *
   * @throws {Deno.errors.NotFound} when no topic has that name
   * @throws {Deno.errors.NotCapable} without `--allow-write` on `/dev/shm/<name>`
   *
   * @example Remove a topic that outlived its handles
   * ```ts
   * import { Publisher } from "@ipckit/ipckit";
   *
   * const name = `/ticks-${Deno.pid}`;
   * Publisher.open(name, { create: true }).close(); // the topic stays
   * Publisher.unlink(name);
   * ```
   */
  static unlink(name: string): void {
    SharedMemory.unlink(name);
  }

  /** The topic's name. */
  get name(): string {
    return this.#name;
  }

  /** Message slots in the topic's ring. */
  get capacity(): number {
    return this.#topic.params.capacity;
  }

  /** The largest message the topic holds, in bytes (encoded). */
  get maxMessageSize(): number {
    return this.#topic.params.maxMessageSize;
  }

  /** What a full ring does to publishers. */
  get overflow(): "drop-oldest" | "block" {
    return this.#topic.params.overflow;
  }

  /** Messages published to the topic so far, by every publisher. */
  get published(): number {
    this.#life.check();
    return this.#topic.head();
  }

  /** How many subscribers are joined now (dead ones not yet reclaimed included). */
  get subscribers(): number {
    this.#life.check();
    return this.#topic.subscribers();
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * Publishes one message. With overflow `"drop-oldest"` it never waits;
   * with `"block"` it waits (without blocking the event loop) while a live
   * subscriber is a whole ring behind.
   *
   * @throws {RangeError} when the encoded message is larger than `maxMessageSize`, before anything is written
   * @throws {Deno.errors.TimedOut} when `timeout` passes while blocked
   * @throws {Deno.errors.BadResource} when the publisher is closed before or meanwhile
   *
   * @example Publish, waiting at most a second for room
   * ```ts
   * import { Publisher } from "@ipckit/ipckit";
   *
   * using publisher = Publisher.open<string>(`/news-${Deno.pid}`, {
   *   create: true,
   *   overflow: "block",
   *   unlinkOnClose: true,
   * });
   * await publisher.send("hello", { timeout: 1000 });
   * ```
   */
  async send(value: T, options: WaitOptions = {}): Promise<void> {
    const action = `publish to ${this.#what}`;
    checkOptionKeys(options, WAIT_KEYS, action);
    const deadline = deadlineOf(options, action);
    this.#life.check("publish to");
    const bytes = this.#encode(value);
    if (options.signal?.aborted) throw options.signal.reason;
    // The usual case, with room: no signal to combine, no plan to build.
    if (this.#topic.publish(bytes)) return;
    const { signal, done } = this.#waits.begin(options.signal);
    let first = true;
    const plan: RetryPlan<boolean> = {
      attempt: () => {
        this.#life.check("publish to");
        if (first) {
          first = false;
          return false; // just tried, above
        }
        return this.#topic.publish(bytes);
      },
      wouldBlock: (written) => !written,
      spinner: this.#spinner,
      deadline,
      signal,
      action,
    };
    try {
      await retryAsync(
        plan,
        () => this.#topic.waitForRoom(deadline, signal, action),
      );
    } finally {
      done();
    }
  }

  /**
   * Publishes one message without waiting.
   *
   * @throws {Deno.errors.WouldBlock} with overflow `"block"`, when a live subscriber is a whole ring behind
   * @throws {RangeError} when the encoded message is larger than `maxMessageSize`
   *
   * @example Publish if there is room
   * ```ts
   * import { Publisher } from "@ipckit/ipckit";
   *
   * using publisher = Publisher.open<string>(`/news-${Deno.pid}`, {
   *   create: true,
   *   unlinkOnClose: true,
   * });
   * publisher.trySend("hello");
   * ```
   */
  trySend(value: T): void {
    this.#life.check("publish to");
    const bytes = this.#encode(value);
    if (!this.#topic.publish(bytes)) {
      throw new Deno.errors.WouldBlock(
        `Cannot publish to ${this.#what}: a subscriber is ${this.capacity} messages behind (overflow "block")`,
      );
    }
  }

  /**
   * Removes the topic's name (see the static {@linkcode Publisher.unlink}).
   *
   * @example Remove the name while the handle stays usable
   * ```ts
   * import { Publisher } from "@ipckit/ipckit";
   *
   * using publisher = Publisher.open(`/news-${Deno.pid}`, { create: true });
   * publisher.unlink();
   * publisher.trySend("still works for those already subscribed");
   * ```
   */
  unlink(): void {
    SharedMemory.unlink(this.#name);
  }

  /**
   * Closes the publisher; idempotent. A pending `send()` rejects with
   * `BadResource`. With `unlinkOnClose` the topic's name is removed.
   *
   * @example Close twice
   * ```ts
   * import { Publisher } from "@ipckit/ipckit";
   *
   * const publisher = Publisher.open(`/news-${Deno.pid}`, { create: true, unlinkOnClose: true });
   * publisher.close();
   * publisher.close(); // no-op
   * ```
   */
  close(): void {
    this.#life.close(() => {
      this.#waits.abortAll(this.#life.closedError("publish to"));
      this.#memory.close();
      if (this.#unlinkOnClose) {
        unlinkQuietly(() => SharedMemory.unlink(this.#name));
      }
    });
  }

  /** Closes the publisher; see {@linkcode Publisher.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes the publisher; see {@linkcode Publisher.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.#life.closeAsync(() => this.close());
  }

  #encode(value: T): Uint8Array {
    const bytes = this.#codec.encode(value);
    if (bytes.byteLength > this.#topic.params.maxMessageSize) {
      throw new RangeError(
        `Cannot publish to ${this.#what}: the message is ${bytes.byteLength} bytes, and the topic holds at most ${this.#topic.params.maxMessageSize} (maxMessageSize)`,
      );
    }
    return bytes;
  }
}

/**
 * The end of a topic that receives: every message published after it
 * joined, in the topic's one order, each exactly once (or counted as
 * missed when it was overwritten first).
 *
 * @example Receive until closed
 * ```ts
 * import { Publisher, Subscriber } from "@ipckit/ipckit";
 *
 * const name = `/events-${Deno.pid}`;
 * using publisher = Publisher.open<string>(name, { create: true, unlinkOnClose: true });
 * using subscriber = Subscriber.open<string>(name);
 * publisher.trySend("a");
 * publisher.trySend("b");
 * setTimeout(() => subscriber.close(), 50);
 * for await (const { value, sequence } of subscriber) console.log(sequence, value);
 * ```
 *
 * @category Publish-subscribe
 */
export class Subscriber<T>
  implements
    AsyncIterable<TopicMessage<T>>,
    Selectable,
    Disposable,
    AsyncDisposable {
  #name: string;
  #what: string;
  #memory: SharedMemory;
  #topic: Topic;
  #codec: Codec<T>;
  #unlinkOnClose: boolean;
  #spinner: Spinner;
  #life: Lifecycle;
  #waits = new _Waits();
  #slot: number;
  #cursor: number;
  #missed = 0;
  #block: boolean;
  /** Losses found without a message after them, reported with the next one. */
  #pendingMissed = 0;
  /** Where messages are copied out of the ring to be decoded, reused. */
  #buffer: Uint8Array<ArrayBuffer>;
  #state: ReadState = { sequence: 0, length: 0, missed: 0, corrupt: false };

  private constructor(
    name: string,
    opened: _Opened<T>,
    history: number,
    spin: number,
  ) {
    this.#name = name;
    this.#what = opened.what;
    this.#memory = opened.memory;
    this.#topic = opened.topic;
    this.#codec = opened.codec;
    this.#unlinkOnClose = opened.unlinkOnClose;
    this.#spinner = new Spinner(spin);
    this.#life = new Lifecycle(opened.what);
    this.#block = opened.topic.params.overflow === "block";
    this.#buffer = new Uint8Array(opened.topic.params.maxMessageSize);
    const { index, cursor } = opened.topic.join(history);
    this.#slot = index;
    this.#cursor = cursor;
    const { memory, topic } = opened;
    // Dropped without close(): the slot is given back, or a "block" topic
    // would wait for this subscriber as long as this process lives.
    this.#life.guard(this, () => {
      topic.leave(index);
      memory.close();
    });
  }

  /**
   * Joins the topic `name` (e.g. `"/prices"`): from now on every message
   * published to it is received here, plus up to `history` from before.
   *
   * @throws {TypeError} for an invalid name or option, before any system call;
   * or when the object holds no topic, or one of another format version or codec
   * @throws {RangeError} for an option out of range or differing from the topic's,
   * or when every subscriber slot belongs to a live subscriber
   * @throws {Deno.errors.NotFound} when it does not exist and `create` is not set
   *
   * @example Join with the last 5 messages
   * ```ts
   * import { Publisher, Subscriber } from "@ipckit/ipckit";
   *
   * const name = `/log-${Deno.pid}`;
   * using publisher = Publisher.open<number>(name, { create: true, unlinkOnClose: true });
   * for (let i = 0; i < 8; i++) publisher.trySend(i);
   * using late = Subscriber.open<number>(name, { history: 5 });
   * console.log(late.tryReceive()?.value); // 3
   * ```
   */
  static open<T = unknown>(
    name: string,
    options: SubscriberOptions<T> = {},
  ): Subscriber<T> {
    const action = `subscribe to topic "${name}"`;
    checkOptionKeys(options, _SUBSCRIBER_KEYS, action);
    const spin = checkSpinMicros(options.spin, action);
    const history = checkInteger(
      options.history,
      "history",
      action,
      0,
      0,
      1 << 20,
    );
    const opened = _openTopic(name, options, action);
    try {
      return new Subscriber<T>(name, opened, history, spin);
    } catch (error) {
      opened.memory.close();
      throw error;
    }
  }

  /**
   * Removes the topic's name; handles open on it keep working.
   *
   * @example Remove a topic by name
   * ```ts
   * import { Subscriber } from "@ipckit/ipckit";
   *
   * const name = `/log-${Deno.pid}`;
   * Subscriber.open(name, { create: true }).close();
   * Subscriber.unlink(name);
   * ```
   */
  static unlink(name: string): void {
    SharedMemory.unlink(name);
  }

  /** The topic's name. */
  get name(): string {
    return this.#name;
  }

  /** Message slots in the topic's ring. */
  get capacity(): number {
    return this.#topic.params.capacity;
  }

  /** What a full ring does to publishers. */
  get overflow(): "drop-oldest" | "block" {
    return this.#topic.params.overflow;
  }

  /** How many messages this subscriber has lost so far (overwritten before it read them). */
  get missed(): number {
    return this.#missed;
  }

  /** How many published messages this subscriber has not read yet (some may be lost by then). */
  get pending(): number {
    this.#life.check();
    return Math.max(0, this.#topic.head() - this.#cursor);
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * Takes the next message if there is one, without waiting: `undefined`
   * when it has read everything.
   *
   * @throws {DecodeError} when the message cannot be decoded; it is consumed, its bytes are in the error
   * @throws {Deno.errors.BadResource} after `close()`
   *
   * @example Drain what is there
   * ```ts
   * import { Publisher, Subscriber } from "@ipckit/ipckit";
   *
   * const name = `/log-${Deno.pid}`;
   * using publisher = Publisher.open<string>(name, { create: true, unlinkOnClose: true });
   * using subscriber = Subscriber.open<string>(name);
   * publisher.trySend("one");
   * let message;
   * while ((message = subscriber.tryReceive()) !== undefined) console.log(message.value);
   * ```
   */
  tryReceive(): TopicMessage<T> | undefined {
    this.#life.check("receive from");
    return this.#take();
  }

  /**
   * Receives the next message, waiting without blocking the event loop
   * (spinning briefly, then parked on a futex) until one is published.
   *
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   * @throws {Deno.errors.BadResource} when the subscriber is closed before or meanwhile
   * @throws {DecodeError} when the message cannot be decoded (see `tryReceive`)
   *
   * @example Wait at most a second
   * ```ts
   * import { Publisher, Subscriber } from "@ipckit/ipckit";
   *
   * const name = `/log-${Deno.pid}`;
   * using publisher = Publisher.open<string>(name, { create: true, unlinkOnClose: true });
   * using subscriber = Subscriber.open<string>(name);
   * setTimeout(() => publisher.trySend("late"), 10);
   * const { value } = await subscriber.receive({ timeout: 1000 });
   * console.log(value); // late
   * ```
   */
  async receive(options: WaitOptions = {}): Promise<TopicMessage<T>> {
    return (await this.#wait(options, `receive from ${this.#what}`, true))!;
  }

  /**
   * Waits until a message is there to read, without taking it (see
   * `Selectable.ready`); `select()` is built on it.
   *
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   * @throws {Deno.errors.BadResource} when the subscriber is closed meanwhile
   *
   * @example Wait for a message without taking it
   * ```ts
   * import { Publisher, Subscriber } from "@ipckit/ipckit";
   *
   * const name = `/log-${Deno.pid}`;
   * using publisher = Publisher.open<string>(name, { create: true, unlinkOnClose: true });
   * using subscriber = Subscriber.open<string>(name);
   * setTimeout(() => publisher.trySend("news"), 10);
   * await subscriber.ready({ timeout: 1000 });
   * console.log(subscriber.tryReceive()?.value); // news
   * ```
   */
  async ready(options: WaitOptions = {}): Promise<void> {
    await this.#wait(options, `wait for a message on ${this.#what}`, false);
  }

  /**
   * Receives until the subscriber is closed; a message that cannot be
   * decoded ends the loop with a `DecodeError`.
   *
   * @example Count messages until closed
   * ```ts
   * import { Publisher, Subscriber } from "@ipckit/ipckit";
   *
   * const name = `/log-${Deno.pid}`;
   * using publisher = Publisher.open<number>(name, { create: true, unlinkOnClose: true });
   * using subscriber = Subscriber.open<number>(name);
   * for (let i = 0; i < 3; i++) publisher.trySend(i);
   * setTimeout(() => subscriber.close(), 50);
   * let count = 0;
   * for await (const _ of subscriber) count++;
   * console.log(count); // 3
   * ```
   */
  [Symbol.asyncIterator](): AsyncIterator<TopicMessage<T>> {
    return receiveUntilEnd(() => this.receive(), () => this.closed, false);
  }

  /**
   * Leaves the topic; idempotent. Pending `receive()` calls reject with
   * `BadResource`, and the subscriber slot is given back at once (a
   * `"block"` topic stops waiting for it). With `unlinkOnClose` the
   * topic's name is removed.
   *
   * @example Leave
   * ```ts
   * import { Subscriber } from "@ipckit/ipckit";
   *
   * const subscriber = Subscriber.open(`/log-${Deno.pid}`, { create: true, unlinkOnClose: true });
   * subscriber.close();
   * console.log(subscriber.closed); // true
   * ```
   */
  close(): void {
    this.#life.close(() => {
      // Parked waits stop reading the topic first, then the slot is given
      // back, then the memory goes.
      this.#waits.abortAll(this.#life.closedError("receive from"));
      this.#topic.leave(this.#slot);
      this.#memory.close();
      if (this.#unlinkOnClose) {
        unlinkQuietly(() => SharedMemory.unlink(this.#name));
      }
    });
  }

  /** Leaves the topic; see {@linkcode Subscriber.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Leaves the topic; see {@linkcode Subscriber.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.#life.closeAsync(() => this.close());
  }

  /**
   * Waits until there is a message: takes it (`take`) or only sees it.
   * Returns what was taken.
   */
  async #wait(
    options: WaitOptions,
    action: string,
    take: boolean,
  ): Promise<TopicMessage<T> | undefined> {
    checkOptionKeys(options, WAIT_KEYS, action);
    const deadline = deadlineOf(options, action);
    this.#life.check("receive from");
    if (options.signal?.aborted) throw options.signal.reason;
    // The usual case on a busy topic: a message is there already.
    if (take) {
      const found = this.#take();
      if (found) return found;
    } else if (this.#topic.head() > this.#cursor) return undefined;
    const { signal, done } = this.#waits.begin(options.signal);
    const none = Symbol("none");
    const plan: RetryPlan<TopicMessage<T> | undefined | typeof none> = {
      attempt: () => {
        this.#life.check("receive from");
        if (take) return this.#take() ?? none;
        return this.#topic.head() > this.#cursor ? undefined : none;
      },
      wouldBlock: (result) => result === none,
      spinner: this.#spinner,
      deadline,
      signal,
      action,
    };
    try {
      const result = await retryAsync(
        plan,
        () => this.#topic.waitForData(this.#cursor, deadline, signal, action),
      );
      return result === none ? undefined : result;
    } finally {
      done();
    }
  }

  /**
   * Reads the next message out of the ring and decodes it, counting
   * losses; moves the cursor. One synchronous step: the buffer it decodes
   * from is this handle's and is reused by the next call.
   *
   * @throws {DecodeError} when the message cannot be decoded (it is consumed)
   */
  #take(): TopicMessage<T> | undefined {
    const state = this.#state;
    for (;;) {
      if (!this.#topic.read(this.#cursor, this.#buffer, state)) {
        return undefined;
      }
      this.#cursor = state.sequence + 1;
      this.#missed += state.missed;
      this.#pendingMissed += state.missed;
      if (this.#block) this.#topic.advance(this.#slot, this.#cursor);
      if (state.length >= 0) break;
      // Only losses: they are reported with the next message.
    }
    const missed = this.#pendingMissed;
    this.#pendingMissed = 0;
    const bytes = this.#buffer.subarray(0, state.length);
    if (state.corrupt) {
      throw new DecodeError(
        `Cannot receive from ${this.#what}: message ${state.sequence} claims more bytes than a slot holds (${this.#topic.params.maxMessageSize}); the slot's bytes are attached`,
        bytes,
      );
    }
    let value: T;
    try {
      value = this.#codec.decode(bytes);
    } catch (error) {
      if (error instanceof DecodeError) throw error;
      throw new DecodeError(
        `Cannot decode a ${this.#codec.name} message of ${bytes.byteLength} bytes from ${this.#what}: ${
          (error as Error)?.message ?? String(error)
        }`,
        bytes,
        { cause: error },
      );
    }
    return { value, sequence: state.sequence, missed };
  }
}
