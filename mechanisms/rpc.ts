/**
 * Request/response, written once for every {@linkcode Channel}: a socket, a
 * pipe to a child, a pair of FIFOs or message queues joined with `duplex`,
 * a datagram socket.
 *
 * Both ends exchange {@linkcode RpcEnvelope} values on the channel, so the
 * channel's codec must carry them (`codecs.json()`, the default, and
 * `codecs.v8()` do). Each request gets a correlation id; many requests may
 * be in flight at once and their responses may come back in any order. An
 * error thrown by the handler reaches the caller as a {@linkcode RemoteError}
 * with the same `name` and `message`; the remote stack is sent only when
 * the server opts in with `exposeStack`.
 *
 * One client per channel: two clients reading the same channel would take
 * each other's responses.
 *
 * Bytes from another process are never trusted: every envelope field is
 * checked on both sides. A malformed envelope becomes a `DecodeError` whose
 * `value` is what arrived. The client rejects the request it concerns with
 * it (an error envelope whose `error` is not an error description), or
 * drops it, counts it in `dropped` and tells `onError` when it concerns no
 * pending request; the server tells its `onError` and goes on serving.
 * Neither ever ends the process with an unhandled rejection.
 *
 * A server answers at most `maxInFlight` requests at a time per channel
 * (default 100); at the bound it stops
 * receiving, so a client that sends faster than it reads the answers is
 * slowed by the channel's own backpressure instead of growing the
 * server's memory.
 *
 * @example A calculator served over a pair of message queues
 * ```ts
 * import { client, duplex, MessageQueue, type RpcEnvelope, serve } from "@ipckit/ipckit";
 *
 * type Envelope = RpcEnvelope<{ a: number; b: number }, number>;
 * const queue = (name: string) =>
 *   MessageQueue.open<Envelope>(`${name}-${Deno.pid}`, { create: true, unlinkOnClose: true });
 * // Each side sends on one queue and receives on the other.
 * using serverSide = duplex(queue("/replies"), queue("/requests"));
 * using clientSide = duplex(queue("/requests"), queue("/replies"));
 * using _server = serve(serverSide, ({ a, b }) => a + b);
 * using calc = client(clientSide);
 * console.log(await calc.request({ a: 2, b: 3 }, { timeout: 1000 })); // 5
 * ```
 *
 * @module
 */

import type { Channel, Message, WaitOptions } from "./channel.ts";
import { DecodeError } from "./errors.ts";
import { Lifecycle } from "./_common/lifecycle.ts";
import { checkOptionKeys, optionKeys } from "./_common/checks.ts";
import { bounded, deadlineOf, WAIT_KEYS } from "./_wait/deadline.ts";

/**
 * An error as it crosses the channel.
 *
 * @example How a RangeError crosses the channel
 * ```ts
 * import type { RpcErrorInfo } from "@ipckit/ipckit";
 *
 * const info: RpcErrorInfo = { name: "RangeError", message: "too big" };
 * ```
 *
 * @category Request and response
 */
export interface RpcErrorInfo {
  /** The error's `name`, e.g. `"TypeError"`. */
  name: string;
  /** The error's `message`. */
  message: string;
  /** The error's `code` (e.g. `"ENOENT"`), when it had a string one. */
  code?: string;
  /** The remote stack, only when the server sets `exposeStack`. */
  stack?: string;
}

/**
 * What travels on an RPC channel: requests one way, responses or errors the
 * other, matched by `id`.
 *
 * @example A request and its response
 * ```ts
 * import type { RpcEnvelope } from "@ipckit/ipckit";
 *
 * const request: RpcEnvelope<string, number> = { kind: "request", id: 1, value: "abc" };
 * const response: RpcEnvelope<string, number> = { kind: "response", id: 1, value: 3 };
 * ```
 *
 * @category Request and response
 */
export type RpcEnvelope<Req, Res> =
  | { kind: "request"; id: number; value: Req }
  | { kind: "response"; id: number; value: Res }
  | { kind: "error"; id: number; error: RpcErrorInfo };

/**
 * An error the remote handler threw. Its `name` and `message` are the
 * remote error's; `remoteStack` is set only when the server exposes stacks.
 *
 * @example An error the server's handler threw
 * ```ts
 * import { client, RemoteError, duplex, MessageQueue, type RpcEnvelope, serve } from "@ipckit/ipckit";
 *
 * type Envelope = RpcEnvelope<{ a: number; b: number }, number>;
 * const queue = (name: string) =>
 *   MessageQueue.open<Envelope>(`${name}-${Deno.pid}`, { create: true, unlinkOnClose: true });
 * // Each side sends on one queue and receives on the other.
 * using serverSide = duplex(queue("/replies"), queue("/requests"));
 * using clientSide = duplex(queue("/requests"), queue("/replies"));
 * using _server = serve(serverSide, ({ a, b }) => {
 *   if (b === 0) throw new RangeError("division by zero");
 *   return a / b;
 * });
 * using calc = client(clientSide);
 * try {
 *   await calc.request({ a: 1, b: 0 }, { timeout: 1000 });
 * } catch (error) {
 *   if (error instanceof RemoteError) console.log(error.name, error.message); // RangeError division by zero
 * }
 * ```
 *
 * @category Request and response
 */
export class RemoteError extends Error {
  /** The remote error's `code`, when it had one. */
  readonly code: string | undefined;
  /** The stack in the remote process, when the server sent it. */
  readonly remoteStack: string | undefined;

  /** Builds the local error for a remote one. */
  constructor(info: RpcErrorInfo) {
    super(info.message);
    this.name = info.name;
    this.code = info.code;
    this.remoteStack = info.stack;
  }
}

/**
 * What a handler gets besides the request.
 *
 * @example Name a request in a log line
 * ```ts
 * import type { RequestContext } from "@ipckit/ipckit";
 *
 * function describe(context: RequestContext<unknown>): string {
 *   return `request ${context.id}`;
 * }
 * ```
 *
 * @category Request and response
 */
export interface RequestContext<M> {
  /** The request's correlation id. */
  id: number;
  /** The message as received, with the channel's metadata (sender, priority). */
  message: M;
  /** Aborted when the server is closed. */
  signal: AbortSignal;
}

/**
 * How a server behaves.
 *
 * @example Report what the server could not handle
 * ```ts
 * import type { ServeOptions } from "@ipckit/ipckit";
 *
 * const options: ServeOptions = { exposeStack: false, onError: console.error };
 * ```
 *
 * @category Request and response
 */
export interface ServeOptions {
  /** Send the handler's stack with its errors. Default `false`. */
  exposeStack?: boolean;
  /**
   * Told about messages that could not be handled: undecodable ones, ones
   * that are not well-formed requests (a `DecodeError` whose `value` is the
   * envelope), responses that could not be sent. Default: ignored.
   */
  onError?: (error: unknown) => void;
  /** Stops the server when aborted. */
  signal?: AbortSignal;
  /**
   * How many requests may be in progress at once (handler running, or its
   * answer being sent). At the bound the server stops receiving until one
   * finishes. A positive integer; default 100.
   */
  maxInFlight?: number;
}

/**
 * Requests a server works on at once per channel unless `maxInFlight` says
 * otherwise: HTTP/2's recommended minimum for concurrent streams, plenty
 * for pipelining, and a bound on what one client can make a server hold.
 */
const _DEFAULT_MAX_IN_FLIGHT = 100;

/**
 * A running server; `done` settles when its channel ends.
 *
 * @example Stop a server and wait for it to finish
 * ```ts
 * import { duplex, MessageQueue, type RpcEnvelope, serve } from "@ipckit/ipckit";
 *
 * const queue = (name: string) =>
 *   MessageQueue.open<RpcEnvelope<number, number>>(`${name}-${Deno.pid}`, {
 *     create: true,
 *     unlinkOnClose: true,
 *   });
 * using channel = duplex(queue("/replies"), queue("/requests"));
 * const server = serve(channel, (n: number) => n * 2);
 * await server[Symbol.asyncDispose](); // stops receiving, then waits for done
 * ```
 *
 * @category Request and response
 */
export interface RpcServer extends Disposable, AsyncDisposable {
  /**
   * Resolves when the channel ends, breaks, or the server is closed. It never
   * rejects, so a server per connection needs no handler for it; failures go
   * to `onError`.
   */
  readonly done: Promise<void>;
  /** Stops receiving requests; handlers already running finish. Does not close the channel. */
  close(): void;
  /** Stops receiving (see `close()`), then waits for `done`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * A handler: the request, and what is known about it.
 *
 * @example A handler that doubles
 * ```ts
 * import type { RpcHandler } from "@ipckit/ipckit";
 *
 * const double: RpcHandler<number, number> = (n) => n * 2;
 * ```
 *
 * @category Request and response
 */
export type RpcHandler<Req, Res, M = Message<RpcEnvelope<Req, Res>>> = (
  request: Req,
  context: RequestContext<M>,
) => Res | Promise<Res>;

const _SERVE_KEYS = optionKeys<ServeOptions>({
  exposeStack: true,
  onError: true,
  signal: true,
  maxInFlight: true,
});
const _CLIENT_KEYS = optionKeys<ClientOptions>({ onError: true });

/** A channel that answers each sender itself (a datagram socket). */
interface _Replying<T, M> {
  reply(message: M, value: T): Promise<void>;
}

/**
 * Answers every request on `channel` with `handler`, concurrently: a slow
 * request does not hold up the next. The server does not own the channel:
 * closing the server stops receiving, closing the channel ends the server.
 * Its type arguments are those of {@linkcode client}: `serve<Req, Res>()`
 * answers `client<Req, Res>()`; a third, `M`, is what the channel's
 * `receive()` resolves to, when it adds metadata (a sender, a priority).
 *
 * @example Serve file sizes
 * ```ts
 * import { client, duplex, MessageQueue, type RpcEnvelope, serve } from "@ipckit/ipckit";
 *
 * type Envelope = RpcEnvelope<string, number>;
 * const queue = (name: string) =>
 *   MessageQueue.open<Envelope>(`${name}-${Deno.pid}`, { create: true, unlinkOnClose: true });
 * // Each side sends on one queue and receives on the other.
 * using serverSide = duplex(queue("/replies"), queue("/requests"));
 * using clientSide = duplex(queue("/requests"), queue("/replies"));
 * using _server = serve(serverSide, async (path) => (await Deno.stat(path)).size);
 * using sizes = client(clientSide);
 * console.log(await sizes.request("/tmp", { timeout: 1000 }) > 0); // true
 * ```
 *
 * @category Request and response
 */
export function serve<
  Req,
  Res,
  M extends Message<RpcEnvelope<Req, Res>> = Message<RpcEnvelope<Req, Res>>,
>(
  channel: Channel<RpcEnvelope<Req, Res>, M>,
  handler: RpcHandler<Req, Res, M>,
  options: ServeOptions = {},
): RpcServer {
  checkOptionKeys(options, _SERVE_KEYS, "serve");
  if (typeof handler !== "function") {
    throw new TypeError("Cannot serve: the handler must be a function");
  }
  if (
    options.signal !== undefined && !(options.signal instanceof AbortSignal)
  ) {
    throw new TypeError("Cannot serve: options.signal must be an AbortSignal");
  }
  if (options.onError !== undefined && typeof options.onError !== "function") {
    throw new TypeError("Cannot serve: options.onError must be a function");
  }
  const maxInFlight = options.maxInFlight ?? _DEFAULT_MAX_IN_FLIGHT;
  if (!Number.isSafeInteger(maxInFlight) || maxInFlight < 1) {
    throw new RangeError(
      `Cannot serve: maxInFlight must be a positive integer, got ${
        String(options.maxInFlight)
      }`,
    );
  }
  const stop = new AbortController();
  const onOuterAbort = () => stop.abort();
  options.signal?.addEventListener("abort", onOuterAbort, { once: true });
  if (options.signal?.aborted) stop.abort();
  const onError = options.onError ?? (() => {});
  const report = (error: unknown) => {
    try {
      onError(error);
    } catch {
      // A failing onError must not stop the server (done never rejects).
    }
  };
  const replying = channel as unknown as Partial<
    _Replying<RpcEnvelope<Req, Res>, M>
  >;
  const respond = (message: M, envelope: RpcEnvelope<Req, Res>) =>
    typeof replying.reply === "function"
      ? replying.reply(message, envelope)
      : channel.send(envelope);

  const answer = async (message: M, id: number, value: Req) => {
    let envelope: RpcEnvelope<Req, Res>;
    try {
      const result = await handler(value, { id, message, signal: stop.signal });
      envelope = { kind: "response", id, value: result };
    } catch (error) {
      envelope = {
        kind: "error",
        id,
        error: _errorInfo(error, options.exposeStack),
      };
    }
    try {
      await respond(message, envelope);
    } catch (error) {
      // The client may be gone, or the result may not encode: tell it so.
      if (envelope.kind === "response" && !channel.closed) {
        try {
          await respond(message, {
            kind: "error",
            id,
            error: _errorInfo(error, false),
          });
          return;
        } catch {
          // Fall through to the report below.
        }
      }
      report(error);
    }
  };

  // Requests being answered; at maxInFlight the loop waits for one to end.
  // It waits on a callback, not Promise.race over long-lived promises: each
  // race would leave a reaction on them, and a server that meets its bound
  // a million times would keep a million.
  let inFlight = 0;
  let slotFreed: (() => void) | undefined;
  const freeSlot = () => {
    const wake = slotFreed;
    slotFreed = undefined;
    wake?.();
  };
  stop.signal.addEventListener("abort", freeSlot, { once: true });
  const loop = async () => {
    while (!stop.signal.aborted && !channel.closed) {
      if (inFlight >= maxInFlight) {
        // Backpressure: stop reading until an answer is out. What the client
        // keeps sending waits in the channel (the kernel's buffers, a full
        // queue), which in turn makes its sends wait.
        await new Promise<void>((resolve) => (slotFreed = resolve));
        continue;
      }
      let message: M;
      try {
        message = await channel.receive({ signal: stop.signal });
      } catch (error) {
        if (stop.signal.aborted) return;
        if (_isEnd(error)) return;
        if (error instanceof DecodeError) {
          report(error);
          continue; // one bad message; a broken stream closes the channel
        }
        // The connection broke (reset by the peer, ...): this server is done.
        report(error);
        return;
      }
      let request: { id: number; value: Req } | DecodeError;
      try {
        request = _checkRequest<Req>(message.value);
      } catch (error) {
        // Not expected (the checks only read fields); never fatal, though.
        report(error);
        continue;
      }
      if (request instanceof DecodeError) {
        report(request);
        continue;
      }
      inFlight++;
      answer(message, request.id, request.value)
        .catch(report)
        .finally(() => {
          inFlight--;
          freeSlot();
        });
    }
  };

  const done = loop().finally(() => {
    options.signal?.removeEventListener("abort", onOuterAbort);
    stop.signal.removeEventListener("abort", freeSlot);
  });
  const close = () => stop.abort();
  return {
    done,
    close,
    [Symbol.dispose]: close,
    [Symbol.asyncDispose]: () => {
      close();
      return done;
    },
  };
}

/**
 * Options for one request.
 *
 * @example A request that waits at most a second
 * ```ts
 * import type { RequestOptions } from "@ipckit/ipckit";
 *
 * const options: RequestOptions = { timeout: 1000 };
 * ```
 *
 * @category Request and response
 */
export type RequestOptions = WaitOptions;

/**
 * How a client behaves.
 *
 * @example Warn about messages that concern no request
 * ```ts
 * import type { ClientOptions } from "@ipckit/ipckit";
 *
 * const options: ClientOptions = { onError: (error) => console.warn(error) };
 * ```
 *
 * @category Request and response
 */
export interface ClientOptions {
  /**
   * Told about what arrived but concerns no pending request and is not a
   * late answer: a malformed envelope without a usable id, a request sent
   * to the client (`DecodeError`s whose `value` is the envelope), or a
   * message that could not be decoded. Each is also counted in `dropped`.
   * Default: ignored.
   */
  onError?: (error: unknown) => void;
}

/**
 * The calling side of a channel.
 *
 * @example Many requests in flight at once
 * ```ts
 * import { client, duplex, MessageQueue, type RpcEnvelope, serve } from "@ipckit/ipckit";
 *
 * type Envelope = RpcEnvelope<{ a: number; b: number }, number>;
 * const queue = (name: string) =>
 *   MessageQueue.open<Envelope>(`${name}-${Deno.pid}`, { create: true, unlinkOnClose: true });
 * // Each side sends on one queue and receives on the other.
 * using serverSide = duplex(queue("/replies"), queue("/requests"));
 * using clientSide = duplex(queue("/requests"), queue("/replies"));
 * using _server = serve(serverSide, ({ a, b }) => a + b);
 * using calc = client(clientSide);
 * const [x, y] = await Promise.all([
 *   calc.request({ a: 1, b: 2 }),
 *   calc.request({ a: 3, b: 4 }, { timeout: 500 }),
 * ]);
 * console.log(x, y); // 3 7
 * ```
 *
 * @category Request and response
 */
export class RpcClient<Req, Res> implements Disposable, AsyncDisposable {
  #channel: Channel<RpcEnvelope<Req, Res>, Message<RpcEnvelope<Req, Res>>>;
  #pending = new Map<
    number,
    { resolve: (value: Res) => void; reject: (error: unknown) => void }
  >();
  #nextId = 1;
  #life = new Lifecycle("RPC client");
  #stop = new AbortController();
  #reading: Promise<void> | undefined;
  #onError: (error: unknown) => void;
  #dropped = 0;

  /** Wraps `channel`; the client does not own it. Use {@linkcode client}. */
  constructor(
    channel: Channel<RpcEnvelope<Req, Res>, Message<RpcEnvelope<Req, Res>>>,
    options: ClientOptions = {},
  ) {
    if (
      typeof channel?.send !== "function" ||
      typeof channel.receive !== "function"
    ) {
      throw new TypeError("Cannot make an RPC client: expected a Channel");
    }
    checkOptionKeys(options, _CLIENT_KEYS, "make an RPC client");
    if (
      options.onError !== undefined && typeof options.onError !== "function"
    ) {
      throw new TypeError(
        "Cannot make an RPC client: options.onError must be a function",
      );
    }
    this.#channel = channel;
    this.#onError = options.onError ?? (() => {});
  }

  /** Requests waiting for their response. */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * Messages received and thrown away: late answers to requests that timed
   * out or were aborted, and messages that concern no pending request
   * (malformed, undecodable, or not a response; those also go to
   * `onError`).
   */
  get dropped(): number {
    return this.#dropped;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * Sends `value` and resolves with the handler's result.
   *
   * @throws {RemoteError} when the handler threw
   * @throws {Deno.errors.TimedOut} when `timeout` passes first; the late
   * response, if any, is dropped
   * @throws {Deno.errors.BadResource} when the client or channel closes
   * first, or the channel breaks (the server died), with the channel's error
   * as its `cause`
   */
  request(value: Req, options: RequestOptions = {}): Promise<Res> {
    let deadline;
    try {
      checkOptionKeys(options, WAIT_KEYS, "send an RPC request");
      deadline = deadlineOf(options, "send an RPC request");
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#life.closed) {
      return Promise.reject(this.#life.closedError());
    }
    const id = this.#nextId;
    // Ids wrap well before they lose precision; a wrapped id cannot still be pending.
    this.#nextId = id >= 0x7fff_ffff ? 1 : id + 1;
    return bounded<Res>(
      deadline,
      options.signal,
      "get an RPC response",
      (settle) => {
        this.#pending.set(id, settle);
        this.#reading ??= this.#read().catch((error) => {
          // Not expected: #read handles what arrives. Never unhandled, though.
          this.#reading = undefined;
          this.#failAll(error);
        });
        // A send that fails because the peer is gone is the same event as
        // the reader seeing the channel end: one error for both.
        const failed = (error: unknown) =>
          this.#pending.get(id)?.reject(
            _isBroken(error) ? _channelEnded(error) : error,
          );
        // The send gets no timeout or signal of its own: giving up on one
        // request must not cut a frame short, which would break the channel
        // for every other request. A send still queued when the request
        // gives up goes out, and its late answer is dropped.
        try {
          this.#channel.send({ kind: "request", id, value }).catch(failed);
        } catch (error) {
          failed(error); // some channels throw at once, e.g. for a value too large
        }
        return () => this.#pending.delete(id);
      },
    );
  }

  /** Rejects every pending request with `BadResource` and stops reading; idempotent. */
  close(): void {
    this.#life.close(() => {
      this.#stop.abort();
      this.#failAll(this.#life.closedError());
    });
  }

  /** Closes the client; see {@linkcode RpcClient.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes the client; see {@linkcode RpcClient.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.#life.closeAsync(() => this.close());
  }

  async #read(): Promise<void> {
    for (;;) {
      let message: Message<RpcEnvelope<Req, Res>>;
      try {
        message = await this.#channel.receive({ signal: this.#stop.signal });
      } catch (error) {
        if (this.#life.closed) return;
        if (error instanceof DecodeError && !this.#channel.closed) {
          this.#drop(error);
          continue;
        }
        // The channel ended or broke (the server died: end of stream, or a
        // reset): no response can arrive any more. One error class for
        // both, which says so; the channel's own error is its cause.
        this.#failAll(_channelEnded(error));
        this.#reading = undefined;
        return;
      }
      try {
        this.#deliver(message.value);
      } catch (error) {
        // Not expected (the checks only read fields); never fatal, though.
        this.#drop(error);
      }
    }
  }

  /** Hands one envelope to the request it answers, or drops it. */
  #deliver(envelope: unknown): void {
    const response = _checkResponse<Res>(envelope);
    if (response instanceof DecodeError) {
      // A malformed answer whose id names a pending request: that caller
      // learns why. Anything else concerns no request.
      const { kind, id } = (envelope ?? {}) as { kind?: unknown; id?: unknown };
      const answers = kind === "response" || kind === "error";
      const waiter = answers && typeof id === "number"
        ? this.#pending.get(id)
        : undefined;
      if (waiter) waiter.reject(response);
      else this.#drop(response);
      return;
    }
    const waiter = this.#pending.get(response.id);
    if (!waiter) {
      this.#dropped++; // a late answer to a request that timed out
      return;
    }
    if (response.kind === "response") waiter.resolve(response.value);
    else waiter.reject(new RemoteError(response.error));
  }

  #drop(error: unknown): void {
    this.#dropped++;
    try {
      this.#onError(error);
    } catch {
      // A failing onError must not stop the client from reading.
    }
  }

  #failAll(error: unknown): void {
    for (const waiter of [...this.#pending.values()]) waiter.reject(error);
  }
}

/**
 * Makes the calling side of `channel`. Close it (or `using`) when done: it
 * keeps a receive pending on the channel while it is open.
 *
 * @example Ask a server that doubles
 * ```ts
 * import { client, duplex, MessageQueue, type RpcEnvelope, serve } from "@ipckit/ipckit";
 *
 * type Envelope = RpcEnvelope<number, number>;
 * const queue = (name: string) =>
 *   MessageQueue.open<Envelope>(`${name}-${Deno.pid}`, { create: true, unlinkOnClose: true });
 * // Each side sends on one queue and receives on the other.
 * using serverSide = duplex(queue("/replies"), queue("/requests"));
 * using clientSide = duplex(queue("/requests"), queue("/replies"));
 * using _server = serve(serverSide, (n) => n * 2);
 * using calc = client<number, number>(clientSide);
 * console.log(await calc.request(21, { timeout: 1000 })); // 42
 * ```
 *
 * @category Request and response
 */
export function client<Req, Res>(
  channel: Channel<RpcEnvelope<Req, Res>, Message<RpcEnvelope<Req, Res>>>,
  options: ClientOptions = {},
): RpcClient<Req, Res> {
  return new RpcClient<Req, Res>(channel, options);
}

/** Whether `id` is a correlation id: a safe integer, as both sides make them. */
function _isId(id: unknown): id is number {
  return typeof id === "number" && Number.isSafeInteger(id);
}

/** A short, safe description of a value from the peer, for messages. */
function _describe(value: unknown): string {
  if (typeof value === "string") {
    return JSON.stringify(value.length > 40 ? value.slice(0, 40) + "…" : value);
  }
  if (value === null || typeof value !== "object") {
    // bigint, symbol, undefined, numbers: never JSON.stringify (it throws
    // for bigints, which the v8 codec carries).
    return typeof value === "bigint" ? `${value}n` : String(value);
  }
  return Array.isArray(value) ? "an array" : "an object";
}

function _malformed(what: string, why: string, value: unknown): DecodeError {
  return new DecodeError(
    `Cannot accept an RPC ${what}: ${why}`,
    new Uint8Array(0),
    { value },
  );
}

/** A well-formed request, or the DecodeError that says what is wrong with it. */
function _checkRequest<Req>(
  envelope: unknown,
): { id: number; value: Req } | DecodeError {
  if (typeof envelope !== "object" || envelope === null) {
    return _malformed("request", "it is not an object", envelope);
  }
  const { kind, id, value } = envelope as Record<string, unknown>;
  if (kind !== "request") {
    return _malformed(
      "request",
      `its kind is ${_describe(kind)}, not "request"`,
      envelope,
    );
  }
  if (!_isId(id)) {
    return _malformed("request", "its id is not a safe integer", envelope);
  }
  // A missing value is a request for undefined (JSON drops undefined).
  return { id, value: value as Req };
}

/** A well-formed response or error, or the DecodeError that says what is wrong. */
function _checkResponse<Res>(
  envelope: unknown,
):
  | { kind: "response"; id: number; value: Res }
  | { kind: "error"; id: number; error: RpcErrorInfo }
  | DecodeError {
  if (typeof envelope !== "object" || envelope === null) {
    return _malformed("response", "it is not an object", envelope);
  }
  const { kind, id, value, error } = envelope as Record<string, unknown>;
  if (kind !== "response" && kind !== "error") {
    return _malformed(
      "response",
      `its kind is ${_describe(kind)}, not "response" or "error"`,
      envelope,
    );
  }
  if (!_isId(id)) {
    return _malformed("response", "its id is not a safe integer", envelope);
  }
  if (kind === "response") return { kind, id, value: value as Res };
  const info = _checkErrorInfo(error);
  if (typeof info === "string") {
    return _malformed("error response", info, envelope);
  }
  return { kind, id, error: info };
}

/** The error description as sent, or why it is not one. */
function _checkErrorInfo(error: unknown): RpcErrorInfo | string {
  if (typeof error !== "object" || error === null) {
    return "its error is not an object with a name and a message";
  }
  const { name, message, code, stack } = error as Record<string, unknown>;
  if (typeof name !== "string" || typeof message !== "string") {
    return "its error's name and message are not strings";
  }
  if (code !== undefined && typeof code !== "string") {
    return "its error's code is not a string";
  }
  if (stack !== undefined && typeof stack !== "string") {
    return "its error's stack is not a string";
  }
  // Only the known fields: nothing else from the peer rides along.
  const info: RpcErrorInfo = { name, message };
  if (code !== undefined) info.code = code;
  if (stack !== undefined) info.stack = stack;
  return info;
}

/** Whether a receive failed because the channel ended (peer or local close). */
function _isEnd(error: unknown): boolean {
  return error instanceof Deno.errors.UnexpectedEof ||
    error instanceof Deno.errors.BadResource;
}

function _errorInfo(error: unknown, exposeStack = false): RpcErrorInfo {
  if (error instanceof Error) {
    const info: RpcErrorInfo = {
      name: error.name,
      message: error.message,
    };
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string") info.code = code;
    if (exposeStack && error.stack) info.stack = error.stack;
    return info;
  }
  return { name: "Error", message: String(error) };
}

/**
 * The error every pending request gets when the channel ended (end of
 * stream) or broke (a reset, a broken pipe): no response can arrive any
 * more. The channel's own error is its cause.
 */
function _channelEnded(error: unknown): Deno.errors.BadResource {
  return new Deno.errors.BadResource(
    _isEnd(error)
      ? "Cannot get an RPC response: the channel closed"
      : `Cannot get an RPC response: the channel broke: ${
        (error as Error)?.message ?? String(error)
      }`,
    { cause: error },
  );
}

/** Whether a send failed because the peer went away. */
function _isBroken(error: unknown): boolean {
  return error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.UnexpectedEof;
}
