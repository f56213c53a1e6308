/**
 * The same channels over NATS, for when one machine is not enough: typed
 * {@linkcode NatsChannel}s on subjects (fan-out, or competing consumers in
 * a queue group), request/response with the semantics of `serve`/`client`,
 * and durable {@linkcode WorkQueue}s on JetStream that survive a consumer's
 * crash and the server's restart.
 *
 * This entry point is separate from `@ipckit/ipckit` so that only programs
 * that use NATS load the NATS client (`npm:@nats-io/transport-node` and
 * `npm:@nats-io/jetstream`).
 *
 * Permissions: `--allow-net=<host>:<port>` for every server you list,
 * checked before anything dials. Servers a cluster announces beyond those
 * are tried only if Deno lets this process reach them.
 *
 * @example A worker that runs unchanged on a local queue or on NATS
 * ```ts ignore
 * // deno run --allow-net=127.0.0.1:4222 worker.ts
 * import type { Channel } from "@ipckit/ipckit";
 * import { Nats } from "@ipckit/ipckit/nats";
 *
 * async function work(jobs: Channel<string>, done: Channel<string>): Promise<void> {
 *   for await (const { value } of jobs) await done.send(value.toUpperCase());
 * }
 *
 * await using nats = await Nats.connect({ servers: "127.0.0.1:4222" });
 * await work(
 *   await nats.channel<string>("jobs", { queue: "workers", write: false }),
 *   await nats.channel<string>("done", { read: false }),
 * );
 * ```
 *
 * @module
 */

import {
  createInbox,
  type Msg,
  type Subscription,
} from "@nats-io/transport-node";
import type { WaitOptions } from "./channel.ts";
import { type Codec, codecs } from "./codec.ts";
import { RemoteError, type RpcServer } from "./rpc.ts";
import { closedError, timeoutError } from "./_common/system_error.ts";
import { deadlineOf, raceDeadline } from "./_wait/deadline.ts";
import { Link } from "./_nats/link.ts";
import { NatsChannel } from "./_nats/channel.ts";
import { requireNetPermission } from "./_nats/servers.ts";
import { type NatsHandler, serveOnLink } from "./_nats/serve.ts";
import { readAnswer } from "./_nats/rpc_wire.ts";
import { WorkQueue } from "./_nats/work_queue.ts";
import {
  type NatsChannelOptions,
  type NatsClientOptions,
  type NatsOptions,
  type NatsServeOptions,
  resolveChannel,
  resolveClient,
  resolveConnect,
  resolveServe,
  resolveWorkQueue,
  type WorkQueueOptions,
} from "./_nats/options.ts";

// The types this module's API is written in, so that it is complete on its
// own (and `deno doc` of this entry point lists them).
export type { Channel, Message, WaitOptions } from "./channel.ts";
export type { Codec } from "./codec.ts";
export type { RequestContext, RpcServer, ServeOptions } from "./rpc.ts";

export { NatsChannel } from "./_nats/channel.ts";
export type { NatsMessage } from "./_nats/channel.ts";
export { NatsServer } from "./_nats/server.ts";
export type { NatsServerOptions } from "./_nats/server.ts";
export type { NatsHandler } from "./_nats/serve.ts";
export { WorkQueue } from "./_nats/work_queue.ts";
export type {
  ProcessOptions,
  WorkProcessor,
  WorkReceipt,
  WorkSendOptions,
} from "./_nats/work_queue.ts";
export type { DeadLetterInfo, WorkMessage } from "./_nats/work_message.ts";
export type {
  NatsChannelOptions,
  NatsClientOptions,
  NatsOptions,
  NatsServeOptions,
  WorkQueueOptions,
} from "./_nats/options.ts";

/**
 * A connection to NATS, from which channels, servers, clients and work
 * queues are made. Close it (or `await using`) when done: `close()` drains,
 * sending what is buffered and letting subscriptions deliver what arrived.
 *
 * @example Send and receive on a subject
 * ```ts ignore
 * // deno run --allow-net=127.0.0.1:4222 hello.ts
 * import { Nats } from "@ipckit/ipckit/nats";
 *
 * await using nats = await Nats.connect();
 * using greetings = await nats.channel<{ text: string }>("greetings");
 * await greetings.send({ text: "hello" });
 * console.log((await greetings.receive({ timeout: 1000 })).value.text);
 * ```
 */
export class Nats implements AsyncDisposable {
  readonly #link: Link;
  readonly #servers: readonly string[];

  private constructor(link: Link, servers: readonly string[]) {
    this.#link = link;
    this.#servers = servers;
  }

  /**
   * Connects to a NATS server (or one of a cluster's).
   *
   * @param options where the servers are and how to reconnect
   * @returns the open connection
   * @throws {TypeError} / {RangeError} for a bad option, before anything dials
   * @throws {Deno.errors.NotCapable} without `--allow-net` for a server,
   * naming the flag to add
   * @throws {Deno.errors.ConnectionRefused} when no server accepts
   * @throws {Deno.errors.TimedOut} when connecting takes longer than `timeout`
   *
   * @example
   * ```ts ignore
   * import { Nats } from "@ipckit/ipckit/nats";
   *
   * await using nats = await Nats.connect({ servers: Deno.env.get("NATS_URL") });
   * ```
   */
  static async connect(options: NatsOptions = {}): Promise<Nats> {
    const linkOptions = resolveConnect(options);
    requireNetPermission(linkOptions.servers);
    const link = await Link.open(linkOptions);
    return new Nats(link, linkOptions.servers.map((server) => server.hostPort));
  }

  /** The servers this connection was given, as `host:port`. */
  get servers(): readonly string[] {
    return this.#servers;
  }

  /** Whether `close()` was called or the connection was lost for good. */
  get closed(): boolean {
    return this.#link.closed;
  }

  /** Whether the server is reachable right now (false while reconnecting). */
  get connected(): boolean {
    return !this.#link.closed && this.#link.connected;
  }

  /** How many times the connection came back after losing its server. */
  get reconnects(): number {
    return this.#link.reconnects;
  }

  /**
   * Opens a channel on `subject`. Resolves once the server has the
   * subscription, so a message published after that reaches it (while the
   * connection is down, at once: the subscription is made on reconnect).
   *
   * @param subject a subject such as `"jobs"` or `"sensors.kitchen"`; to
   * receive only, it may hold the wildcards `*` and `>`
   * @param options codec, queue group, direction
   * @returns the channel
   * @throws {TypeError} for a bad subject, queue group or option
   * @throws {Deno.errors.BadResource} when the connection is closed
   *
   * @example Competing consumers
   * ```ts ignore
   * using jobs = await nats.channel<{ id: number }>("jobs", { queue: "workers" });
   * for await (const { value } of jobs) console.log("job", value.id);
   * ```
   */
  async channel<T = unknown>(
    subject: string,
    options: NatsChannelOptions<T> = {},
  ): Promise<NatsChannel<T>> {
    const checked = resolveChannel(subject, options);
    if (this.#link.closed) throw this.#link.endError();
    const channel = new NatsChannel<T>(this.#link, subject, {
      ...checked,
      codec: checked.codec ?? codecs.json<T>(),
    });
    // While reconnecting, the subscription reaches the server with the
    // reconnect: nothing to wait for here.
    if (checked.read && this.#link.connected) await this.flush();
    return channel;
  }

  /**
   * Answers requests on `subject` with `handler`, concurrently, with the
   * semantics of `serve()` on a local channel: an error the handler throws
   * reaches the caller as a `RemoteError` with its `name` and `message`.
   * Uses NATS's own request/reply, so any NATS client can call it, and
   * servers started on the same subject share its requests (a queue group).
   * Resolves once the server has the subscription.
   *
   * At most `maxInFlight` handlers run at once and `maxQueued` requests
   * wait; a request past that is answered at once with a `Busy` error.
   * Closing the server (or the connection) stops taking requests; the ones
   * taken finish and are answered, the waiting ones get `Busy`.
   *
   * @param subject the subject requests are sent to
   * @param handler computes the response
   * @param options queue group, codecs, bounds
   * @returns the running server; `done` resolves when it stopped and its
   * last answer went out
   * @throws {TypeError} / {RangeError} for a bad subject or option
   * @throws {Deno.errors.BadResource} when the connection is closed
   *
   * @example A calculator any NATS client can call
   * ```ts ignore
   * using server = await nats.serve<{ a: number; b: number }, number>(
   *   "calc.add",
   *   ({ a, b }) => a + b,
   * );
   * using calc = nats.client<{ a: number; b: number }, number>("calc.add");
   * console.log(await calc.request({ a: 2, b: 3 }, { timeout: 1000 })); // 5
   * ```
   */
  async serve<Req, Res>(
    subject: string,
    handler: NatsHandler<Req, Res>,
    options: NatsServeOptions<Req, Res> = {},
  ): Promise<RpcServer> {
    const checked = resolveServe(subject, handler, options);
    if (this.#link.closed) throw this.#link.endError();
    const server = serveOnLink(this.#link, subject, handler, {
      ...checked,
      requestCodec: checked.requestCodec ?? codecs.json<Req>(),
      responseCodec: checked.responseCodec ?? codecs.json<Res>(),
    });
    if (this.#link.connected) await this.flush();
    return server;
  }

  /**
   * The calling side of `serve()`: requests to `subject` through NATS's own
   * request/reply, many in flight at once.
   *
   * @param subject the subject a server answers on
   * @param options codecs
   * @returns the client; close it when done
   * @throws {TypeError} for a bad subject or option
   * @throws {Deno.errors.BadResource} when the connection is closed
   *
   * @example
   * ```ts ignore
   * using sizes = nats.client<string, number>("files.size");
   * console.log(await sizes.request("/etc/hostname", { timeout: 1000 }));
   * ```
   */
  client<Req, Res>(
    subject: string,
    options: NatsClientOptions<Req, Res> = {},
  ): NatsClient<Req, Res> {
    const checked = resolveClient(subject, options);
    if (this.#link.closed) throw this.#link.endError();
    return new NatsClient<Req, Res>(
      this.#link,
      subject,
      checked.requestCodec ?? codecs.json<Req>(),
      checked.responseCodec ?? codecs.json<Res>(),
    );
  }

  /**
   * Opens (creating it when it does not exist) the durable work queue
   * `name` on JetStream: messages stored on the server's disk until a
   * worker acknowledges them, retried up to `maxDeliveries`, then kept as
   * dead letters. Needs a server with JetStream (`nats-server -js`).
   *
   * @param name the queue's name, which is its stream's: letters, digits,
   * `-` and `_`
   * @param options subject, codec, delivery bound, dead letters
   * @returns the queue
   * @throws {TypeError} / {RangeError} for a bad name or option
   * @throws {Deno.errors.NotSupported} when the server has no JetStream
   * @throws {Deno.errors.AlreadyExists} when a stream of that name exists
   * with another layout
   * @throws {Deno.errors.BadResource} when the connection is closed
   *
   * @example
   * ```ts ignore
   * await using jobs = await nats.workQueue<{ file: string }>("thumbnails", {
   *   maxDeliveries: 3,
   * });
   * using worker = jobs.process(async ({ file }) => await makeThumbnail(file));
   * ```
   */
  async workQueue<T = unknown>(
    name: string,
    options: WorkQueueOptions<T> = {},
  ): Promise<WorkQueue<T>> {
    const checked = resolveWorkQueue(name, options);
    if (this.#link.closed) throw this.#link.endError();
    return await WorkQueue.open<T>(this.#link, {
      ...checked,
      codec: checked.codec ?? codecs.json<T>(),
    });
  }

  /**
   * Waits until the server has processed everything sent so far
   * (subscriptions included): one round trip.
   *
   * @param options how long to wait, and a signal to stop waiting
   * @throws {Deno.errors.TimedOut} when the server does not answer in time
   * @throws {Deno.errors.BadResource} when the connection is closed
   *
   * @example
   * ```ts ignore
   * await nats.flush({ timeout: 1000 });
   * ```
   */
  async flush(options?: WaitOptions): Promise<void> {
    const deadline = deadlineOf(options);
    if (this.#link.closed) throw this.#link.endError();
    await raceDeadline(
      this.#link.nc.flush(),
      deadline,
      options?.signal,
      "flush the NATS connection",
    );
  }

  /**
   * A fresh, unique subject for answers (`_INBOX.…`).
   *
   * @returns the subject
   *
   * @example
   * ```ts ignore
   * const inbox = nats.inbox();
   * ```
   */
  inbox(): string {
    if (this.#link.closed) throw closedError("NATS connection");
    return createInbox();
  }

  /**
   * Drains and closes: stops new sends, sends what the reconnect buffer
   * holds, lets every subscription deliver what already arrived (a channel
   * can still receive those), then closes the socket. Idempotent.
   *
   * @throws {Deno.errors.TimedOut} (after closing) when buffered messages
   * could not be sent within `drainTimeout`
   *
   * @example
   * ```ts ignore
   * await nats.close();
   * ```
   */
  close(): Promise<void> {
    return this.#link.close();
  }

  /** Drains and closes; see {@linkcode Nats.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** A request waiting for its answer. */
interface _Waiting<Res> {
  resolve(value: Res): void;
  reject(error: unknown): void;
}

/**
 * The calling side of `Nats.serve()` (or of any NATS service that answers
 * on the reply subject): made by `Nats.client()`.
 *
 * Each request gets its own reply subject under this client's inbox, so
 * responses may come back in any order. Delivery is at most once: a
 * request or answer lost with a server is a timeout, so give requests a
 * `timeout`. A request made while the server is away waits in the
 * connection's reconnect buffer and goes out when it is back.
 *
 * @example Many requests in flight
 * ```ts ignore
 * using calc = nats.client<{ a: number; b: number }, number>("calc.add");
 * const sums = await Promise.all(
 *   [1, 2, 3].map((a) => calc.request({ a, b: 10 }, { timeout: 1000 })),
 * );
 * ```
 */
export class NatsClient<Req, Res> implements Disposable {
  /** The subject requests go to. */
  readonly subject: string;
  readonly #link: Link;
  readonly #requestCodec: Codec<Req>;
  readonly #responseCodec: Codec<Res>;
  readonly #inbox: string;
  readonly #subscription: Subscription;
  readonly #pending = new Map<string, _Waiting<Res>>();
  readonly #forgetEnd: () => void;
  #nextId = 1;
  #closed = false;

  /** @internal Made by `Nats.client()`. */
  constructor(
    link: Link,
    subject: string,
    requestCodec: Codec<Req>,
    responseCodec: Codec<Res>,
  ) {
    this.#link = link;
    this.subject = subject;
    this.#requestCodec = requestCodec;
    this.#responseCodec = responseCodec;
    this.#inbox = createInbox();
    // One subscription for every answer: the server sees it before the
    // first request, which the same connection sends after it.
    this.#subscription = link.nc.subscribe(`${this.#inbox}.*`, {
      callback: (error, message) => {
        if (error) this.#failAll(error);
        else this.#answer(message);
      },
    });
    this.#forgetEnd = link.onEnd(() => this.#failAll(link.endError()));
  }

  /** Requests waiting for their response. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sends `value` and resolves with the handler's result.
   *
   * @param value the request
   * @param options how long to wait for the answer, and a signal to give up
   * @returns the response
   * @throws {RemoteError} when the handler threw (`Busy` when the server
   * had too many requests)
   * @throws {DecodeError} when the response cannot be decoded
   * @throws {Deno.errors.ConnectionRefused} when no server subscribes to
   * the subject
   * @throws {Deno.errors.TimedOut} when `timeout` passes first; a late
   * answer is dropped
   * @throws {Deno.errors.BadResource} when the client or connection closes
   * first
   *
   * @example
   * ```ts ignore
   * const sum = await calc.request({ a: 1, b: 2 }, { timeout: 500 });
   * ```
   */
  request(value: Req, options: WaitOptions = {}): Promise<Res> {
    let data: Uint8Array;
    let deadline: ReturnType<typeof deadlineOf>;
    const what = `NATS subject "${this.subject}"`;
    try {
      deadline = deadlineOf(options);
      if (this.#closed) throw closedError(`the NATS client for ${what}`);
      if (this.#link.closed) throw this.#link.endError();
      data = this.#requestCodec.encode(value);
      if (data.byteLength > this.#link.maxPayload) {
        throw new RangeError(
          `Cannot send a request to ${what}: it is ${data.byteLength} bytes, the server takes at most ${this.#link.maxPayload} (max_payload)`,
        );
      }
    } catch (error) {
      return Promise.reject(error);
    }
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const id = (this.#nextId++).toString(36);
    const { promise, resolve, reject } = Promise.withResolvers<Res>();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const onAbort = () => settle(() => reject(signal!.reason));
    const settle = (action: () => void) => {
      if (!this.#pending.delete(id)) return;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      action();
    };
    this.#pending.set(id, {
      resolve: (result) => settle(() => resolve(result)),
      reject: (error) => settle(() => reject(error)),
    });
    if (deadline.at !== Infinity) {
      timer = setTimeout(
        () =>
          settle(() =>
            reject(
              timeoutError(`get a response from ${what}`, deadline.timeout),
            )
          ),
        Math.max(0, deadline.at - performance.now()),
      );
    }
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#link.publish(
      this.subject,
      data,
      { reply: `${this.#inbox}.${id}` },
      deadline,
      signal,
      `send a request to ${what}`,
    ).catch((error) => this.#pending.get(id)?.reject(error));
    return promise;
  }

  /** Rejects every pending request with `BadResource` and unsubscribes; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#forgetEnd();
    this.#failAll(
      closedError(`the NATS client for NATS subject "${this.subject}"`),
    );
    if (!this.#link.nc.isClosed()) this.#subscription.unsubscribe();
  }

  /** Closes the client; see {@linkcode NatsClient.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  #answer(message: Msg): void {
    const id = message.subject.slice(this.#inbox.length + 1);
    const waiter = this.#pending.get(id);
    if (!waiter) return; // a late answer to a request that gave up
    const answer = readAnswer(message);
    if (answer.kind === "no-responders") {
      waiter.reject(
        new Deno.errors.ConnectionRefused(
          `Cannot send a request to NATS subject "${this.subject}": no server subscribes to it`,
        ),
      );
    } else if (answer.kind === "error") {
      waiter.reject(new RemoteError(answer.info));
    } else {
      let result: Res;
      try {
        result = this.#responseCodec.decode(answer.data);
      } catch (error) {
        waiter.reject(error);
        return;
      }
      waiter.resolve(result);
    }
  }

  #failAll(error: unknown): void {
    for (const waiter of [...this.#pending.values()]) waiter.reject(error);
  }
}
