/**
 * `WorkQueue<T>`: a durable queue of jobs on JetStream, as a
 * {@linkcode Channel}. Messages are stored on the server's disk, survive a
 * worker's crash and the server's restart, and leave the queue only once a
 * worker acknowledges them: delivery is at least once.
 *
 * @module
 */

import {
  type ConsumerMessages,
  jetstream,
  JetStreamApiError,
  type JetStreamClient,
  type JsMsg,
} from "@nats-io/jetstream";
import { errors as natsErrors, headers } from "@nats-io/transport-node";
import type { Channel, WaitOptions } from "../channel.ts";
import type { Codec } from "../codec.ts";
import { DecodeError } from "../errors.ts";
import { closedError, timeoutError } from "../_common/system_error.ts";
import { checkOptionKeys } from "../_common/checks.ts";
import { type Deadline, deadlineOf, raceDeadline } from "../_wait/deadline.ts";
import type { Link } from "./link.ts";
import { Mailbox } from "./mailbox.ts";
import { ensureQueue, type QueueLayout } from "./streams.ts";
import {
  DEAD_LETTER_HEADERS,
  type WorkMessage,
  WorkMessageImpl,
} from "./work_message.ts";
import { plainBytes } from "./bytes.ts";

/**
 * Options for one `WorkQueue.send()`.
 *
 * @example
 * ```ts
 * import type { WorkSendOptions } from "@ipckit/ipckit/nats";
 *
 * const options: WorkSendOptions = { id: "invoice-2024-0042", timeout: 10_000 };
 * ```
 */
export interface WorkSendOptions extends WaitOptions {
  /**
   * The message's id. Sends with the same id within the queue's
   * `duplicateWindow` are stored once while the server runs; after a server
   * restart, only while the first copy still waits in the queue (see
   * {@linkcode WorkQueue.send}). Default: a fresh random id, which makes the
   * retries of this one call count once in the same way.
   */
  id?: string;
}

/**
 * What the server said about a stored message.
 *
 * @example
 * ```ts
 * import type { WorkReceipt } from "@ipckit/ipckit/nats";
 *
 * const receipt: WorkReceipt = { sequence: 7, duplicate: false };
 * ```
 */
export interface WorkReceipt {
  /** Its sequence number in the stream. */
  sequence: number;
  /** True when a message with the same id was stored already (this one was not). */
  duplicate: boolean;
}

/**
 * How `WorkQueue.process()` runs a handler.
 *
 * @example
 * ```ts
 * import type { ProcessOptions } from "@ipckit/ipckit/nats";
 *
 * const options: ProcessOptions = { concurrency: 4, onError: console.error };
 * ```
 */
export interface ProcessOptions {
  /** Handlers running at once. Default 1. */
  concurrency?: number;
  /** Told about each handler error (the message is retried) and bad message. */
  onError?: (error: unknown) => void;
  /** Stops processing when aborted. */
  signal?: AbortSignal;
}

/**
 * A running `process()`: `done` resolves when it stopped and the running
 * handlers finished.
 *
 * @example
 * ```ts ignore
 * using worker = jobs.process(render);
 * await worker.done;
 * ```
 */
export interface WorkProcessor extends Disposable {
  /** Resolves once stopped and every running handler settled its message. */
  readonly done: Promise<void>;
  /** Stops taking messages; running handlers finish and settle theirs. */
  close(): void;
}

/** What a work queue is built from, checked by `Nats.workQueue()`. */
export interface ResolvedWorkQueueOptions<T> {
  codec: Codec<T>;
  layout: QueueLayout;
  maxDeliveries: number;
  retryDelay: number;
  prefetch: number;
}

const _PUBLISH_ATTEMPT_MS = 5_000;
const _SEND_OPTIONS = ["id", "timeout", "signal"] as const;
const _PROCESS_OPTIONS = ["concurrency", "onError", "signal"] as const;

/**
 * A durable work queue on JetStream, made by `Nats.workQueue()`: a stream
 * that keeps each message until a worker acknowledges it, and one durable
 * consumer shared by every worker, so each message goes to one of them.
 *
 * - `send()` resolves once the server has stored the message (on disk),
 *   retrying through an outage with the same message id, so a publish that
 *   was retried is stored once; across a server restart, once unless its
 *   first copy was already acknowledged (see `send()`).
 * - `receive()` gives a {@linkcode WorkMessage} to `ack()` when its work is
 *   done; `for await` acknowledges each message when the loop body finishes
 *   and asks for the next one, and hands the current one back if the loop
 *   ends early (a `break` too: `ack()` first if the work was done).
 *   `process(handler)` acknowledges after the handler resolves and retries
 *   when it throws.
 * - A message delivered `maxDeliveries` times without success (its handler
 *   threw each time, or its workers crashed) goes to the dead-letter subject
 *   with the reason, kept in a stream of its own (`deadLetters()`).
 *
 * Consuming starts with the first `receive()`: a producer that only sends
 * takes no messages.
 *
 * @example A producer and a worker
 * ```ts ignore
 * await using jobs = await nats.workQueue<{ file: string }>("thumbnails");
 * await jobs.send({ file: "a.png" }, { id: "a.png" });
 * for await (const job of jobs) {
 *   await makeThumbnail(job.value.file); // acknowledged when the body finishes
 * }
 * ```
 */
export class WorkQueue<T>
  implements Channel<T, WorkMessage<T>>, AsyncDisposable {
  /** The queue's name, which is its stream's name. */
  readonly name: string;
  /** The subject messages are published to. */
  readonly subject: string;
  /** Where messages go after `maxDeliveries`, unless dead letters are dropped. */
  readonly deadLetterSubject: string | undefined;
  readonly #link: Link;
  readonly #js: JetStreamClient;
  readonly #options: ResolvedWorkQueueOptions<T>;
  readonly #mailbox: Mailbox<JsMsg>;
  /** Received and not yet settled: handed back when the queue closes. */
  readonly #outstanding = new Set<WorkMessageImpl<unknown>>();
  #consuming: Promise<ConsumerMessages> | undefined;
  /** Aborted by `close()`: ends the waits of a consumer still starting. */
  readonly #stopping = new AbortController();
  readonly #forgetEnd: () => void;
  #closed = false;

  /** @internal Made by `Nats.workQueue()`, which creates the streams first. */
  constructor(link: Link, options: ResolvedWorkQueueOptions<T>) {
    this.#link = link;
    this.#options = options;
    this.name = options.layout.stream;
    this.subject = options.layout.subject;
    this.deadLetterSubject = options.layout.deadLetter?.subject;
    this.#js = jetstream(link.nc);
    // Room for two pulls' worth: a message past that is handed back.
    this.#mailbox = new Mailbox<JsMsg>(options.prefetch * 2);
    this.#forgetEnd = link.onEnd(() => this.#stop(() => link.endError()));
  }

  /** @internal Creates the streams and the consumer, then the queue. */
  static async open<T>(
    link: Link,
    options: ResolvedWorkQueueOptions<T>,
  ): Promise<WorkQueue<T>> {
    await ensureQueue(
      link.nc,
      options.layout,
      `work queue "${options.layout.stream}"`,
    );
    return new WorkQueue<T>(link, options);
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Stores `value` in the queue. Resolves once the server confirms it is
   * stored; while the server is away, waits and tries again with the same
   * message id, until `timeout` (default: the queue's `duplicateWindow`,
   * past which a retry could be stored twice).
   * {@linkcode WorkQueue.publish} does the same and says what was stored.
   *
   * A retry is stored once while the server runs. The server keeps the ids
   * it has seen in memory only: after it restarts (a crash or a clean stop)
   * it rebuilds them from the messages it still holds, and a work queue no
   * longer holds the ones already acknowledged (nats-io/nats-server#3272).
   * So a send that was stored, whose answer was lost with the server, and
   * whose message a worker acknowledged before the retry arrived, can be
   * stored a second time and delivered again. Only sends in flight when
   * the server went away can meet this; workers get such a message twice,
   * as they do any redelivery (at least once).
   *
   * @throws {TypeError} when the codec cannot encode the value, or the id
   * is not a non-empty single-line string
   * @throws {RangeError} when the message exceeds the server's `max_payload`
   * @throws {Deno.errors.TimedOut} when it could not be stored in time
   * @throws {Deno.errors.BadResource} when the queue or connection is closed
   */
  async send(value: T, options: WorkSendOptions = {}): Promise<void> {
    await this.publish(value, options);
  }

  /**
   * `send()`, resolving with the stream sequence the message got and
   * whether it was a duplicate of one stored already (same id).
   *
   * @throws {Error} as `send()` does
   */
  async publish(
    value: T,
    options: WorkSendOptions = {},
  ): Promise<WorkReceipt> {
    const action = `send to work queue "${this.name}"`;
    checkOptionKeys(options, _SEND_OPTIONS, action);
    const given = deadlineOf(options);
    const deadline: Deadline = options.timeout === undefined
      ? deadlineOf({ timeout: this.#options.layout.duplicateWindowMs })
      : given;
    const id = options.id ?? crypto.randomUUID();
    if (typeof id !== "string" || id === "" || /[\r\n]/.test(id)) {
      throw new TypeError(
        `Cannot ${action}: id must be a non-empty string on one line`,
      );
    }
    if (this.#closed) throw closedError(`work queue "${this.name}"`);
    if (this.#link.closed) throw this.#link.endError();
    const data = this.#options.codec.encode(value);
    // Room for the message id header and the protocol line.
    const limit = this.#link.maxPayload - 128 - id.length;
    if (data.byteLength > limit) {
      throw new RangeError(
        `Cannot ${action}: the message is ${data.byteLength} bytes, the server takes at most ${limit} with its headers (max_payload)`,
      );
    }
    const signal = options.signal;
    let pause = 50;
    for (;;) {
      await this.#link.whenConnected(deadline, signal, action);
      const left = deadline.at - performance.now();
      try {
        const ack = await raceDeadline(
          this.#js.publish(this.subject, data, {
            msgID: id,
            timeout: Math.max(1, Math.min(_PUBLISH_ATTEMPT_MS, left)),
          }),
          deadline,
          signal,
          action,
        );
        return { sequence: ack.seq, duplicate: ack.duplicate };
      } catch (error) {
        if (signal?.aborted || error instanceof Deno.errors.TimedOut) {
          throw error;
        }
        if (!_worthRetrying(error)) {
          throw new Error(`Cannot ${action}: ${(error as Error).message}`, {
            cause: error,
          });
        }
      }
      if (performance.now() + pause >= deadline.at) {
        throw timeoutError(action, deadline.timeout);
      }
      await _sleep(pause, signal);
      pause = Math.min(pause * 2, 1_000);
    }
  }

  /**
   * Resolves once a message has been fetched for `receive()`, without taking
   * it (see `Selectable.ready` in `@ipckit/ipckit`); starts consuming like
   * `receive()`. A message past its last delivery is still dead-lettered by
   * the `receive()` that meets it, so that call may wait again.
   *
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   * @throws {Deno.errors.BadResource} when the queue or connection is closed
   *
   * @example
   * ```ts ignore
   * import { Nats } from "@ipckit/ipckit/nats";
   *
   * await using nats = await Nats.connect({ servers: "127.0.0.1:4222" });
   * const jobs = await nats.workQueue<string>("jobs");
   * await jobs.ready({ timeout: 1000 });
   * const job = await jobs.receive();
   * await job.ack();
   * ```
   */
  async ready(options?: WaitOptions): Promise<void> {
    const deadline = deadlineOf(options);
    const action = `wait for a message on work queue "${this.name}"`;
    if (this.#closed) throw closedError(`work queue "${this.name}"`);
    this.#consuming ??= this.#consume().catch((error) => {
      this.#consuming = undefined;
      throw error;
    });
    await raceDeadline(this.#consuming, deadline, options?.signal, action);
    await this.#mailbox.ready(deadline, options?.signal, action);
  }

  /**
   * Receives the next message, waiting until one arrives. A message past
   * its last allowed delivery goes to the dead letters instead; one that
   * cannot be decoded goes there too, and is thrown as a `DecodeError`
   * with its bytes.
   *
   * @throws {DecodeError} for a message the codec cannot decode
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   * @throws {Deno.errors.BadResource} when the queue or connection is closed
   */
  async receive(options?: WaitOptions): Promise<WorkMessage<T>> {
    const deadline = deadlineOf(options);
    const action = `receive from work queue "${this.name}"`;
    if (this.#closed) throw closedError(`work queue "${this.name}"`);
    // A failed start is forgotten, so that the next receive tries again.
    this.#consuming ??= this.#consume().catch((error) => {
      this.#consuming = undefined;
      throw error;
    });
    await raceDeadline(this.#consuming, deadline, options?.signal, action);
    for (;;) {
      const message = await this.#mailbox.take(
        deadline,
        options?.signal,
        action,
      );
      const deliveries = message.info.deliveryCount;
      if (deliveries > this.#options.maxDeliveries) {
        await this.#deadLetterOrHandBack(
          message,
          `not acknowledged in ${deliveries - 1} deliveries`,
        );
        continue;
      }
      let value: T;
      try {
        value = this.#options.codec.decode(plainBytes(message.data));
      } catch (error) {
        // Its bytes will not decode on another try: keep them in the
        // dead letters, and tell the caller.
        await this.#deadLetterOrHandBack(message, (error as Error).message);
        throw error instanceof DecodeError ? error : new DecodeError(
          `Cannot decode a message of work queue "${this.name}": ${
            (error as Error).message
          }`,
          plainBytes(message.data),
          { cause: error },
        );
      }
      const received = new WorkMessageImpl<T>(value, message, {
        queue: this.name,
        maxDeliveries: this.#options.maxDeliveries,
        retryDelay: this.#options.retryDelay,
        deadLetter: (m, reason) => this.#deadLetter(m, reason),
        settled: (m) => this.#outstanding.delete(m),
      });
      this.#outstanding.add(received as WorkMessageImpl<unknown>);
      return received;
    }
  }

  /**
   * Receives until the queue is closed. Each message is acknowledged when
   * the loop body finishes and asks for the next (unless the body settled
   * it); when the loop ends early, by `break`, `return` or a throw, the
   * current message is handed back for another delivery.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<WorkMessage<T>, void> {
    let current: WorkMessageImpl<T> | undefined;
    try {
      while (!this.#closed) {
        let message: WorkMessage<T>;
        try {
          message = await this.receive();
        } catch (error) {
          if (this.#closed && error instanceof Deno.errors.BadResource) return;
          throw error;
        }
        current = message as WorkMessageImpl<T>;
        yield message;
        current.ackQuietly();
        current = undefined;
      }
    } finally {
      current?.handBack();
    }
  }

  /**
   * Runs `handler` on every message, `concurrency` at a time: a message is
   * acknowledged once its handler resolves, and retried (then dead-lettered,
   * at the bound) when it throws.
   *
   * @throws {TypeError} for a handler that is not a function or a bad option
   */
  process(
    handler: (value: T, message: WorkMessage<T>) => unknown,
    options: ProcessOptions = {},
  ): WorkProcessor {
    const action = `process work queue "${this.name}"`;
    checkOptionKeys(options, _PROCESS_OPTIONS, action);
    if (typeof handler !== "function") {
      throw new TypeError(`Cannot ${action}: the handler must be a function`);
    }
    const concurrency = options.concurrency ?? 1;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new RangeError(
        `Cannot ${action}: concurrency must be an integer of 1 or more, got ${concurrency}`,
      );
    }
    const report = options.onError ?? (() => {});
    const stop = new AbortController();
    const close = () => stop.abort();
    options.signal?.addEventListener("abort", close, { once: true });
    if (options.signal?.aborted) close();
    const worker = async () => {
      while (!stop.signal.aborted && !this.#closed) {
        let message: WorkMessage<T>;
        try {
          message = await this.receive({ signal: stop.signal });
        } catch (error) {
          if (stop.signal.aborted || this.#closed) return;
          if (error instanceof DecodeError) {
            report(error);
            continue;
          }
          report(error);
          return;
        }
        try {
          await handler(message.value, message);
          (message as WorkMessageImpl<T>).ackQuietly();
        } catch (error) {
          report(error);
          await message.retry(error).catch(report);
        }
      }
    };
    const done = Promise.all(Array.from({ length: concurrency }, worker))
      .then(() => options.signal?.removeEventListener("abort", close));
    return { done, close, [Symbol.dispose]: close };
  }

  /**
   * Opens the dead letters of this queue as a work queue of their own, to
   * inspect, fix and resend them. Each carries `deadLetter` (why, after how
   * many deliveries, from which sequence).
   *
   * @throws {TypeError} when this queue drops its dead letters
   */
  deadLetters(): Promise<WorkQueue<T>> {
    const deadLetter = this.#options.layout.deadLetter;
    if (!deadLetter) {
      return Promise.reject(
        new TypeError(
          `Cannot open the dead letters of work queue "${this.name}": it drops them (deadLetter: false)`,
        ),
      );
    }
    return WorkQueue.open<T>(this.#link, {
      ...this.#options,
      layout: {
        ...this.#options.layout,
        stream: deadLetter.stream,
        subject: deadLetter.subject,
        deadLetter: undefined,
      },
    });
  }

  /**
   * Stops consuming; idempotent. Messages received but not settled, and
   * the ones fetched ahead, are handed back at once, for another worker.
   * Pending receives reject with `Deno.errors.BadResource`.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#forgetEnd();
    this.#stopping.abort();
    this.#stop(() => closedError(`work queue "${this.name}"`));
  }

  /** Closes the queue. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes the queue and waits until its consumer stopped. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    const messages = await this.#consuming?.catch(() => undefined);
    await messages?.closed();
  }

  /**
   * Starts pulling from the durable consumer, retrying while the server is
   * away or its JetStream is still starting (after a restart).
   */
  async #consume(): Promise<ConsumerMessages> {
    const layout = this.#options.layout;
    const forever = { at: Infinity, timeout: Infinity };
    let pause = 50;
    for (;;) {
      if (this.#closed) throw closedError(`work queue "${this.name}"`);
      try {
        await this.#link.whenConnected(
          forever,
          this.#stopping.signal,
          "consume",
        );
        const consumer = await this.#js.consumers.get(
          layout.stream,
          layout.consumer,
        );
        const messages = await consumer.consume({
          max_messages: this.#options.prefetch,
        });
        if (this.#closed) messages.stop();
        (async () => {
          for await (const message of messages) {
            if (!this.#mailbox.push(message)) message.nak();
          }
        })().catch((error) => this.#mailbox.close(() => error));
        return messages;
      } catch (error) {
        if (this.#closed) throw closedError(`work queue "${this.name}"`);
        if (!_worthRetrying(error)) throw error;
      }
      await _sleep(pause, this.#stopping.signal).catch(() => {});
      pause = Math.min(pause * 2, 1_000);
    }
  }

  #stop(error: () => unknown): void {
    const kept = this.#mailbox.takeAll();
    this.#mailbox.close(error);
    if (this.#link.nc.isClosed()) return;
    this.#consuming?.then((messages) => messages.stop(), () => {});
    for (const message of kept) message.nak();
    for (const message of [...this.#outstanding]) message.handBack();
  }

  /**
   * Dead-letters a message on the queue's own initiative; if that fails
   * (the server went away), the message is handed back and comes again.
   */
  async #deadLetterOrHandBack(message: JsMsg, reason: string): Promise<void> {
    try {
      await this.#deadLetter(message, reason);
    } catch {
      message.nak();
    }
  }

  /** Stores the message under the dead-letter subject, then removes it here. */
  async #deadLetter(message: JsMsg, reason: string): Promise<void> {
    const layout = this.#options.layout;
    if (!layout.deadLetter) {
      message.term(reason.slice(0, 200));
      return;
    }
    const h = headers();
    h.set(DEAD_LETTER_HEADERS.reason, reason.split(/\r?\n/, 1)[0]);
    h.set(DEAD_LETTER_HEADERS.deliveries, String(message.info.deliveryCount));
    h.set(DEAD_LETTER_HEADERS.queue, this.name);
    h.set(DEAD_LETTER_HEADERS.sequence, String(message.seq));
    // Its own id: a dead-lettering retried after a crash is stored once
    // (after a server restart, while the first copy is still a dead letter).
    await this.#js.publish(layout.deadLetter.subject, message.data, {
      msgID: `${this.name}:${message.seq}`,
      headers: h,
      timeout: _PUBLISH_ATTEMPT_MS,
    });
    message.ack();
  }
}

/** Failures a later attempt may not meet: the server away, restarting, slow. */
function _worthRetrying(error: unknown): boolean {
  if (error instanceof JetStreamApiError) return error.status === 503;
  return error instanceof natsErrors.TimeoutError ||
    error instanceof natsErrors.RequestError ||
    error instanceof natsErrors.NoRespondersError ||
    (error as Error)?.name === "JetStreamNotEnabled" ||
    error instanceof natsErrors.ConnectionError;
}

function _sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  const onAbort = () => {
    clearTimeout(timer);
    reject(signal!.reason);
  };
  const timer = setTimeout(() => {
    signal?.removeEventListener("abort", onAbort);
    resolve();
  }, ms);
  signal?.addEventListener("abort", onAbort, { once: true });
  return promise;
}
