/**
 * `NatsChannel<T>`: a {@linkcode Channel} on one NATS subject, the core
 * (not JetStream) way: what is published reaches the subscribers connected
 * at that moment, at most once.
 *
 * @module
 */

import type { Msg, Subscription } from "@nats-io/transport-node";
import type { Channel, Message, WaitOptions } from "../channel.ts";
import type { Codec } from "../codec.ts";
import { closedError } from "../_common/system_error.ts";
import { receiveUntilEnd } from "../_common/iterate.ts";
import { deadlineOf } from "../_wait/deadline.ts";
import type { Link } from "./link.ts";
import { Mailbox } from "./mailbox.ts";
import { plainBytes } from "./bytes.ts";

/**
 * A message received on a NATS subject.
 *
 * @example
 * ```ts
 * import type { NatsMessage } from "@ipckit/ipckit/nats";
 *
 * const message: NatsMessage<string> = { value: "hi", subject: "greetings" };
 * ```
 */
export interface NatsMessage<T> extends Message<T> {
  /** The subject it was published to (useful when subscribed with a wildcard). */
  subject: string;
  /** Where the sender wants answers, when it said. */
  reply?: string;
}

/** What a channel is built from, checked by `Nats.channel()`. */
export interface ResolvedChannelOptions<T> {
  codec: Codec<T>;
  queue?: string;
  read: boolean;
  write: boolean;
  replyTo?: string;
  maxPending: number;
}

/**
 * A typed channel on a NATS subject, made by `Nats.channel()`.
 *
 * Without `queue`, every channel subscribed to the subject receives every
 * message (publish-subscribe, fan-out). With `queue`, the channels that
 * share the queue group name split the messages: each goes to one of them
 * (competing consumers, like a message queue). Either way delivery is at
 * most once: a message published while no subscriber is connected, or
 * in flight when a server dies, is gone. Use a `WorkQueue` when messages
 * must survive that.
 *
 * Messages are received into this process as NATS delivers them and wait
 * there for `receive()`, at most `maxPending` of them; beyond that they are
 * dropped and counted in {@linkcode NatsChannel.dropped}, as a NATS server
 * drops messages for a slow consumer.
 *
 * @example Fan-out and a queue group on one subject
 * ```ts ignore
 * import { Nats } from "@ipckit/ipckit/nats";
 *
 * await using nats = await Nats.connect({ servers: "127.0.0.1:4222" });
 * using audit = await nats.channel<string>("orders", { write: false });
 * using worker = await nats.channel<string>("orders", { queue: "workers", write: false });
 * using orders = await nats.channel<string>("orders", { read: false });
 * await orders.send("order 1");
 * console.log((await audit.receive({ timeout: 1000 })).value); // order 1: every subscriber
 * console.log((await worker.receive({ timeout: 1000 })).value); // order 1: one of the group
 * ```
 */
export class NatsChannel<T>
  implements Channel<T, NatsMessage<T>>, AsyncDisposable {
  /** The subject this channel publishes to and receives from. */
  readonly subject: string;
  /** The queue group this channel receives in, if any. */
  readonly queue: string | undefined;
  readonly #link: Link;
  readonly #options: ResolvedChannelOptions<T>;
  readonly #subscription: Subscription | undefined;
  readonly #mailbox: Mailbox<Msg>;
  #forgetEnd: () => void = () => {};
  #closed = false;

  /** @internal Made by `Nats.channel()`, which waits for the subscription. */
  constructor(link: Link, subject: string, options: ResolvedChannelOptions<T>) {
    this.#link = link;
    this.subject = subject;
    this.queue = options.queue;
    this.#options = options;
    this.#mailbox = new Mailbox<Msg>(options.maxPending);
    if (options.read) {
      this.#subscription = link.nc.subscribe(subject, {
        queue: options.queue,
        callback: (error, message) => {
          if (error) {
            this.#mailbox.close(() => error);
            return;
          }
          this.#mailbox.push(message);
        },
      });
      // When the connection ends, what already arrived can still be read.
      this.#forgetEnd = link.onEnd(() =>
        this.#mailbox.close(() => link.endError(), true)
      );
    }
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Messages dropped because `maxPending` were waiting for `receive()`. */
  get dropped(): number {
    return this.#mailbox.dropped;
  }

  /** Messages received and waiting for `receive()`. */
  get pending(): number {
    return this.#mailbox.size;
  }

  /**
   * Publishes `value` to the subject. Resolves once it is handed to the
   * connection, or kept in the reconnect buffer while the server is away;
   * core NATS confirms no delivery. Waits, up to `timeout`, only while that
   * buffer is full.
   *
   * @throws {TypeError} when the channel was opened with `write: false`, or
   * the codec cannot encode the value
   * @throws {RangeError} when the encoded message exceeds the server's
   * `max_payload`
   * @throws {Deno.errors.TimedOut} when the reconnect buffer stays full past
   * `timeout`
   * @throws {Deno.errors.BadResource} when the channel or connection is closed
   */
  send(value: T, options?: WaitOptions): Promise<void> {
    try {
      const deadline = deadlineOf(options);
      if (this.#closed) throw closedError(this.#describe());
      if (this.#link.closed) throw this.#link.endError();
      if (!this.#options.write) {
        throw new TypeError(
          `Cannot send on ${this.#describe()}: it was opened with write: false`,
        );
      }
      const data = this.#encode(value);
      return this.#link.publish(
        this.subject,
        data,
        { reply: this.#options.replyTo },
        deadline,
        options?.signal,
        `send on ${this.#describe()}`,
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Receives the next message, waiting (without blocking the event loop)
   * until one arrives.
   *
   * @throws {DecodeError} for a message the codec cannot decode or that
   * fails validation, with its raw bytes; the next call receives the next one
   * @throws {TypeError} when the channel was opened with `read: false`
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   * @throws {Deno.errors.BadResource} when the channel is closed, or the
   * connection closed and every message that had arrived was received
   */
  async receive(options?: WaitOptions): Promise<NatsMessage<T>> {
    const deadline = deadlineOf(options);
    if (this.#closed) throw closedError(this.#describe());
    if (!this.#options.read) {
      throw new TypeError(
        `Cannot receive on ${this.#describe()}: it was opened with read: false`,
      );
    }
    const message = await this.#mailbox.take(
      deadline,
      options?.signal,
      `receive on ${this.#describe()}`,
    );
    const received: NatsMessage<T> = {
      value: this.#options.codec.decode(plainBytes(message.data)),
      subject: message.subject,
    };
    if (message.reply) received.reply = message.reply;
    return received;
  }

  /**
   * Resolves once a message has arrived for `receive()`, without taking it
   * (see `Selectable.ready` in `@ipckit/ipckit`); `select()` uses it.
   *
   * @throws {TypeError} when the channel was opened with `read: false`
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   * @throws {Deno.errors.BadResource} when the channel is closed
   *
   * @example
   * ```ts ignore
   * import { Nats } from "@ipckit/ipckit/nats";
   *
   * await using nats = await Nats.connect({ servers: "127.0.0.1:4222" });
   * const events = await nats.channel<string>("events");
   * await events.ready({ timeout: 1000 });
   * console.log(events.pending); // at least 1
   * ```
   */
  ready(options?: WaitOptions): Promise<void> {
    try {
      const deadline = deadlineOf(options);
      if (this.#closed) throw closedError(this.#describe());
      if (!this.#options.read) {
        throw new TypeError(
          `Cannot wait on ${this.#describe()}: it was opened with read: false`,
        );
      }
      return this.#mailbox.ready(
        deadline,
        options?.signal,
        `wait for a message on ${this.#describe()}`,
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Answers `message` on its reply subject: what `serve()` from
   * `@ipckit/ipckit/rpc` calls to answer a request over NATS.
   *
   * @throws {TypeError} when `message` names no reply subject
   */
  reply(message: NatsMessage<unknown>, value: T): Promise<void> {
    try {
      if (this.#closed) throw closedError(this.#describe());
      if (typeof message?.reply !== "string" || message.reply === "") {
        throw new TypeError(
          `Cannot reply on ${this.#describe()}: the message names no reply subject`,
        );
      }
      return this.#link.publish(
        message.reply,
        this.#encode(value),
        {},
        deadlineOf(undefined),
        undefined,
        `reply on ${this.#describe()}`,
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Receives until the channel is closed, or the connection closed and drained. */
  [Symbol.asyncIterator](): AsyncIterator<NatsMessage<T>> {
    return receiveUntilEnd(
      () => this.receive(),
      () =>
        this.#closed || (this.#link.nc.isClosed() && this.#mailbox.size === 0),
      false,
    );
  }

  /**
   * Unsubscribes and releases the channel; idempotent. Messages received
   * but not yet taken by `receive()` are dropped, and pending receives
   * reject with `Deno.errors.BadResource`.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#forgetEnd();
    this.#mailbox.close(() => closedError(this.#describe()));
    if (!this.#link.nc.isClosed()) this.#subscription?.unsubscribe();
  }

  /** Closes the channel. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes the channel. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  #encode(value: T): Uint8Array {
    const data = this.#options.codec.encode(value);
    const limit = this.#link.maxPayload;
    if (data.byteLength > limit) {
      throw new RangeError(
        `Cannot send on ${this.#describe()}: the message is ${data.byteLength} bytes, the server takes at most ${limit} (max_payload)`,
      );
    }
    return data;
  }

  #describe(): string {
    return `NATS subject "${this.subject}"`;
  }
}
