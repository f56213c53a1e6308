/**
 * `Channel<T>`: what every message-carrying mechanism offers, so code that
 * moves typed messages (request/response, fan-out, tests) is written once.
 *
 * @example Code written against any channel
 * ```ts
 * import type { Channel } from "@ipckit/ipckit";
 *
 * async function echoOnce<T>(channel: Channel<T>): Promise<void> {
 *   const { value } = await channel.receive({ timeout: 1000 });
 *   await channel.send(value);
 * }
 * ```
 *
 * @module
 */

/**
 * How long an operation that can wait may wait, and how to cancel it.
 *
 * @example Wait half a second at most, or until aborted
 * ```ts
 * import type { WaitOptions } from "@ipckit/ipckit";
 *
 * const stop = new AbortController();
 * const options: WaitOptions = { timeout: 500, signal: stop.signal };
 * ```
 *
 * @category Channels
 */
export interface WaitOptions {
  /**
   * Milliseconds to wait before failing with `Deno.errors.TimedOut`, measured
   * on the monotonic clock. `0` means "do not wait at all". Unset: no limit.
   */
  timeout?: number;
  /** Aborting rejects the pending operation with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * One received message. Mechanisms add what they know about it (a message
 * queue adds `priority`).
 *
 * @example A message as receive() resolves to it
 * ```ts
 * import type { Message } from "@ipckit/ipckit";
 *
 * const message: Message<string> = { value: "hello" };
 * ```
 *
 * @category Channels
 */
export interface Message<T> {
  /** The decoded value. */
  value: T;
}

/**
 * Anything that can say when receiving from it would not wait: every
 * {@linkcode Channel}, and `PipeChannel`. What `select()` takes.
 *
 * @example Wait until a channel has a message, without taking it
 * ```ts
 * import type { Selectable } from "@ipckit/ipckit";
 *
 * async function hasMessageWithin(channel: Selectable, ms: number): Promise<boolean> {
 *   try {
 *     await channel.ready({ timeout: ms });
 *     return true;
 *   } catch (error) {
 *     if (error instanceof Deno.errors.TimedOut) return false;
 *     throw error;
 *   }
 * }
 * ```
 *
 * @category Channels
 */
export interface Selectable {
  /**
   * Resolves once a `receive()` called now would not wait: a message is
   * there (for stream channels, a whole frame has been read into the
   * channel's buffer), or the peer has closed its end so `receive()` would
   * report that at once. Takes nothing: the message stays for the next
   * `receive()`. Another consumer of the same queue may take it first, so
   * a `receive()` after `ready()` can still wait when several processes
   * or calls receive from one queue.
   *
   * Rejects with `Deno.errors.TimedOut` after `timeout`, with the signal's
   * reason on abort, and with `Deno.errors.BadResource` when the channel is
   * closed (before or meanwhile).
   */
  ready(options?: WaitOptions): Promise<void>;
}

/**
 * A typed, bidirectional or one-way message channel.
 *
 * `send()` takes values of type `T`; `receive()` resolves to `M`, a
 * {@linkcode Message} whose value may be of another type when the two
 * directions carry different things: `Channel<Request, Message<Reply>>`
 * sends requests and receives replies. With one type both ways, `M`
 * defaults to `Message<T>`.
 *
 * Iterating a channel receives until the channel is closed (locally, or by the
 * peer for stream-based mechanisms); a message that cannot be decoded is
 * thrown as a `DecodeError` from the iterator, with its raw bytes.
 *
 * @typeParam T the type of the values sent
 * @typeParam M what `receive()` resolves to: `Message<T>` (the default), a
 * `Message` of another type, or a richer record (a queue's `QueueMessage`)
 *
 * @example One type both ways
 * ```ts
 * import type { Channel } from "@ipckit/ipckit";
 *
 * async function drain<T>(channel: Channel<T>): Promise<T[]> {
 *   const values: T[] = [];
 *   for await (const { value } of channel) values.push(value);
 *   return values;
 * }
 * ```
 *
 * @example Requests one way, replies the other
 * ```ts
 * import type { Channel, Message } from "@ipckit/ipckit";
 *
 * type Ask = { a: number; b: number };
 * async function add(channel: Channel<Ask, Message<number>>): Promise<number> {
 *   await channel.send({ a: 2, b: 40 });
 *   return (await channel.receive({ timeout: 1000 })).value;
 * }
 * ```
 *
 * @category Channels
 */
export interface Channel<T, M extends Message<unknown> = Message<T>>
  extends AsyncIterable<M>, Disposable, Selectable {
  /** Sends one value; waits (without blocking the event loop) while the channel is full. */
  send(value: T, options?: WaitOptions): Promise<void>;
  /** Receives one message; waits (without blocking the event loop) until one arrives. */
  receive(options?: WaitOptions): Promise<M>;
  /** Releases the channel; idempotent. Pending operations reject with `Deno.errors.BadResource`. */
  close(): void;
  /** Whether `close()` has been called. */
  readonly closed: boolean;
}
