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
 * @example A calculator served over a Unix socket
 * ```ts ignore
 * import { client, connect, listen, type RpcEnvelope, serve } from "@ipckit/ipckit";
 *
 * type Envelope = RpcEnvelope<{ a: number; b: number }, number>;
 * await using server = await listen<Envelope>({ path: "/tmp/calc.sock" });
 * (async () => {
 *   for await (const connection of server) serve(connection, ({ a, b }) => a + b);
 * })();
 * await using channel = await connect<Envelope>({ path: "/tmp/calc.sock" });
 * using calc = client(channel);
 * console.log(await calc.request({ a: 2, b: 3 }, { timeout: 1000 })); // 5
 * ```
 *
 * @module
 */

import type { Channel, Message, WaitOptions } from "./channel.ts";
import { DecodeError } from "./errors.ts";
import { closedError } from "./_common/system_error.ts";
import { bounded, deadlineOf } from "./_wait/deadline.ts";

/**
 * An error as it crosses the channel.
 *
 * @example
 * ```ts
 * import type { RpcErrorInfo } from "@ipckit/ipckit";
 *
 * const info: RpcErrorInfo = { name: "RangeError", message: "too big" };
 * ```
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
 * @example
 * ```ts
 * import type { RpcEnvelope } from "@ipckit/ipckit";
 *
 * const request: RpcEnvelope<string, number> = { kind: "request", id: 1, value: "abc" };
 * const response: RpcEnvelope<string, number> = { kind: "response", id: 1, value: 3 };
 * ```
 */
export type RpcEnvelope<Req, Res> =
  | { kind: "request"; id: number; value: Req }
  | { kind: "response"; id: number; value: Res }
  | { kind: "error"; id: number; error: RpcErrorInfo };

/**
 * An error the remote handler threw. Its `name` and `message` are the
 * remote error's; `remoteStack` is set only when the server exposes stacks.
 *
 * @example
 * ```ts ignore
 * import { RemoteError } from "@ipckit/ipckit";
 *
 * try {
 *   await calc.request({ a: 1, b: 0 });
 * } catch (error) {
 *   if (error instanceof RemoteError) console.log(error.name, error.message);
 * }
 * ```
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
 * @example
 * ```ts
 * import type { RequestContext } from "@ipckit/ipckit";
 *
 * function describe(context: RequestContext<unknown>): string {
 *   return `request ${context.id}`;
 * }
 * ```
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
 * @example
 * ```ts
 * import type { ServeOptions } from "@ipckit/ipckit";
 *
 * const options: ServeOptions = { exposeStack: false, onError: console.error };
 * ```
 */
export interface ServeOptions {
  /** Send the handler's stack with its errors. Default `false`. */
  exposeStack?: boolean;
  /**
   * Told about messages that could not be handled: undecodable ones, ones
   * that are not requests, responses that could not be sent. Default: ignored.
   */
  onError?: (error: unknown) => void;
  /** Stops the server when aborted. */
  signal?: AbortSignal;
}

/**
 * A running server; `done` settles when its channel ends.
 *
 * @example
 * ```ts ignore
 * import { serve } from "@ipckit/ipckit";
 *
 * using server = serve(channel, (n: number) => n * 2);
 * await server.done;
 * ```
 */
export interface RpcServer extends Disposable {
  /**
   * Resolves when the channel ends, breaks, or the server is closed. It never
   * rejects, so a server per connection needs no handler for it; failures go
   * to `onError`.
   */
  readonly done: Promise<void>;
  /** Stops receiving requests; handlers already running finish. Does not close the channel. */
  close(): void;
}

/**
 * A handler: the request, and what is known about it.
 *
 * @example
 * ```ts
 * import type { RpcHandler } from "@ipckit/ipckit";
 *
 * const double: RpcHandler<number, number> = (n) => n * 2;
 * ```
 */
export type RpcHandler<Req, Res, M = Message<RpcEnvelope<Req, Res>>> = (
  request: Req,
  context: RequestContext<M>,
) => Res | Promise<Res>;

/** A channel that answers each sender itself (a datagram socket). */
interface _Replying<T, M> {
  reply(message: M, value: T): Promise<void>;
}

/**
 * Answers every request on `channel` with `handler`, concurrently: a slow
 * request does not hold up the next. The server does not own the channel:
 * closing the server stops receiving, closing the channel ends the server.
 *
 * @example
 * ```ts ignore
 * import { serve } from "@ipckit/ipckit";
 *
 * const server = serve(channel, async (path: string) => (await Deno.stat(path)).size);
 * await server.done;
 * ```
 */
export function serve<Req, Res, M extends Message<RpcEnvelope<Req, Res>>>(
  channel: Channel<RpcEnvelope<Req, Res>, M>,
  handler: RpcHandler<Req, Res, M>,
  options: ServeOptions = {},
): RpcServer {
  if (typeof handler !== "function") {
    throw new TypeError("Cannot serve: the handler must be a function");
  }
  if (
    options.signal !== undefined && !(options.signal instanceof AbortSignal)
  ) {
    throw new TypeError("Cannot serve: options.signal must be an AbortSignal");
  }
  const stop = new AbortController();
  const onOuterAbort = () => stop.abort();
  options.signal?.addEventListener("abort", onOuterAbort, { once: true });
  if (options.signal?.aborted) stop.abort();
  const report = options.onError ?? (() => {});
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

  const loop = async () => {
    while (!stop.signal.aborted && !channel.closed) {
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
      const envelope = message.value as Partial<RpcEnvelope<Req, Res>>;
      if (envelope?.kind !== "request" || !Number.isSafeInteger(envelope.id)) {
        report(
          new TypeError("Cannot serve a message: it is not an RPC request"),
        );
        continue;
      }
      answer(message, envelope.id!, (envelope as { value: Req }).value);
    }
  };

  const done = loop().finally(() => {
    options.signal?.removeEventListener("abort", onOuterAbort);
  });
  const close = () => stop.abort();
  return { done, close, [Symbol.dispose]: close };
}

/**
 * Options for one request.
 *
 * @example
 * ```ts
 * import type { RequestOptions } from "@ipckit/ipckit";
 *
 * const options: RequestOptions = { timeout: 1000 };
 * ```
 */
export type RequestOptions = WaitOptions;

/**
 * The calling side of a channel.
 *
 * @example
 * ```ts ignore
 * import { client } from "@ipckit/ipckit";
 *
 * using calc = client<{ a: number; b: number }, number>(channel);
 * const [x, y] = await Promise.all([
 *   calc.request({ a: 1, b: 2 }),
 *   calc.request({ a: 3, b: 4 }, { timeout: 500 }),
 * ]);
 * ```
 */
export class RpcClient<Req, Res> implements Disposable {
  #channel: Channel<RpcEnvelope<Req, Res>, Message<RpcEnvelope<Req, Res>>>;
  #pending = new Map<
    number,
    { resolve: (value: Res) => void; reject: (error: unknown) => void }
  >();
  #nextId = 1;
  #closed = false;
  #stop = new AbortController();
  #reading: Promise<void> | undefined;

  /** Wraps `channel`; the client does not own it. Use {@linkcode client}. */
  constructor(
    channel: Channel<RpcEnvelope<Req, Res>, Message<RpcEnvelope<Req, Res>>>,
  ) {
    if (
      typeof channel?.send !== "function" ||
      typeof channel.receive !== "function"
    ) {
      throw new TypeError("Cannot make an RPC client: expected a Channel");
    }
    this.#channel = channel;
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
   * @throws {RemoteError} when the handler threw
   * @throws {Deno.errors.TimedOut} when `timeout` passes first; the late
   * response, if any, is dropped
   * @throws {Deno.errors.BadResource} when the client or channel closes first
   */
  request(value: Req, options: RequestOptions = {}): Promise<Res> {
    const deadline = deadlineOf(options);
    if (this.#closed) return Promise.reject(closedError("RPC client"));
    const id = this.#nextId;
    // Ids wrap well before they lose precision; a wrapped id cannot still be pending.
    this.#nextId = id >= 0x7fff_ffff ? 1 : id + 1;
    return bounded<Res>(
      deadline,
      options.signal,
      "get an RPC response",
      (settle) => {
        this.#pending.set(id, settle);
        this.#reading ??= this.#read();
        const failed = (error: unknown) => this.#pending.get(id)?.reject(error);
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
    if (this.#closed) return;
    this.#closed = true;
    this.#stop.abort();
    this.#failAll(closedError("RPC client"));
  }

  /** Closes the client; see {@linkcode RpcClient.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  async #read(): Promise<void> {
    for (;;) {
      let message: Message<RpcEnvelope<Req, Res>>;
      try {
        message = await this.#channel.receive({ signal: this.#stop.signal });
      } catch (error) {
        if (this.#closed) return;
        if (error instanceof DecodeError && !this.#channel.closed) continue;
        // The channel ended or broke: no response can arrive any more.
        this.#failAll(
          _isEnd(error)
            ? new Deno.errors.BadResource(
              "Cannot get an RPC response: the channel closed",
              { cause: error },
            )
            : error,
        );
        this.#reading = undefined;
        return;
      }
      const envelope = message.value;
      const waiter = this.#pending.get(envelope?.id);
      if (!waiter) continue; // a late response to a request that timed out
      if (envelope.kind === "response") waiter.resolve(envelope.value);
      else if (envelope.kind === "error") {
        waiter.reject(new RemoteError(envelope.error));
      }
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
 * @example
 * ```ts ignore
 * import { client } from "@ipckit/ipckit";
 *
 * using calc = client<number, number>(channel);
 * console.log(await calc.request(21, { timeout: 1000 }));
 * ```
 */
export function client<Req, Res>(
  channel: Channel<RpcEnvelope<Req, Res>, Message<RpcEnvelope<Req, Res>>>,
): RpcClient<Req, Res> {
  return new RpcClient<Req, Res>(channel);
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
