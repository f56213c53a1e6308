/**
 * Joining two one-way channels into one two-way {@linkcode Channel}: a pair
 * of message queues or FIFOs, one per direction, becomes something that
 * request/response and other channel code can use unchanged.
 *
 * @module
 */

import type { Channel, Message, WaitOptions } from "./channel.ts";
import { Lifecycle } from "./_common/lifecycle.ts";

/**
 * A channel that sends on one channel and receives from another.
 *
 * @example Requests on one queue, replies on another
 * ```ts
 * import { duplex, MessageQueue } from "@ipckit/ipckit";
 *
 * const open = (name: string) =>
 *   MessageQueue.open<string>(`${name}-${Deno.pid}`, { create: true, unlinkOnClose: true });
 * using channel = duplex(open("/requests"), open("/replies"));
 * await channel.send("ping"); // goes to /requests
 * using replies = open("/replies"); // the other side answers on /replies
 * replies.trySend("pong");
 * const { value } = await channel.receive({ timeout: 1000 }); // comes from /replies
 * console.log(value); // pong
 * ```
 *
 * @category Channels
 */
export class DuplexChannel<T, M extends Message<unknown> = Message<T>>
  implements Channel<T, M>, AsyncDisposable {
  #sendSide: Channel<T, Message<unknown>>;
  #receiveSide: Channel<unknown, M>;
  #life = new Lifecycle("duplex channel");

  /** Joins `sendSide` (used only to send) and `receiveSide` (used only to receive). */
  constructor(
    sendSide: Channel<T, Message<unknown>>,
    receiveSide: Channel<unknown, M>,
  ) {
    if (!_isChannel(sendSide) || !_isChannel(receiveSide)) {
      throw new TypeError(
        "Cannot join channels: both sides must have send, receive, ready and close",
      );
    }
    this.#sendSide = sendSide;
    this.#receiveSide = receiveSide;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /** Sends on the send side. */
  send(value: T, options?: WaitOptions): Promise<void> {
    return this.#sendSide.send(value, options);
  }

  /** Receives from the receive side, with whatever metadata it adds. */
  receive(options?: WaitOptions): Promise<M> {
    return this.#receiveSide.receive(options);
  }

  /**
   * Waits until the receive side has a message, without taking it (see
   * `Selectable.ready`).
   *
   * @example Wait for a reply without taking it
   * ```ts
   * import { duplex, MessageQueue } from "@ipckit/ipckit";
   *
   * const open = (name: string) =>
   *   MessageQueue.open<string>(`${name}-${Deno.pid}`, { create: true, unlinkOnClose: true });
   * using channel = duplex(open("/requests"), open("/replies"));
   * using replies = open("/replies");
   * setTimeout(() => replies.trySend("pong"), 10);
   * await channel.ready({ timeout: 1000 }); // a reply is waiting in /replies
   * ```
   */
  ready(options?: WaitOptions): Promise<void> {
    return this.#receiveSide.ready(options);
  }

  /** Iterates the receive side. */
  [Symbol.asyncIterator](): AsyncIterator<M> {
    return this.#receiveSide[Symbol.asyncIterator]();
  }

  /** Closes both sides; idempotent. */
  close(): void {
    this.#life.close(() => {
      try {
        this.#sendSide.close();
      } finally {
        this.#receiveSide.close();
      }
    });
  }

  /** Closes both sides. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes both sides, waiting for each where it supports waiting. */
  async [Symbol.asyncDispose](): Promise<void> {
    // Marked closed first, so that close() meanwhile does nothing twice.
    if (!this.#life.close()) return;
    for (const side of [this.#sendSide, this.#receiveSide]) {
      const asyncDispose = (side as Partial<AsyncDisposable>)[
        Symbol.asyncDispose
      ];
      if (asyncDispose) await asyncDispose.call(side);
      else side.close();
    }
  }
}

/**
 * Joins a send-only and a receive-only channel into one two-way channel.
 * Closing it closes both. It sends what `sendSide` carries and receives what
 * `receiveSide` carries, which may be another type: `duplex(requests,
 * replies)` over a `MessageQueue<Request>` and a `MessageQueue<Reply>` is a
 * `Channel<Request, QueueMessage<Reply>>`.
 *
 * @example Request/response over two message queues
 * ```ts
 * import { client, duplex, MessageQueue, type RpcEnvelope, serve } from "@ipckit/ipckit";
 *
 * const open = (name: string) =>
 *   MessageQueue.open<RpcEnvelope<number, number>>(`${name}-${Deno.pid}`, {
 *     create: true,
 *     unlinkOnClose: true,
 *   });
 * using calls = duplex(open("/calc-requests"), open("/calc-replies"));
 * using answers = duplex(open("/calc-replies"), open("/calc-requests"));
 * using _server = serve(answers, (n: number) => n * 2);
 * using calc = client<number, number>(calls);
 * console.log(await calc.request(21, { timeout: 1000 })); // 42
 * ```
 *
 * @category Channels
 */
export function duplex<T, M extends Message<unknown> = Message<T>>(
  sendSide: Channel<T, Message<unknown>>,
  receiveSide: Channel<unknown, M>,
): DuplexChannel<T, M> {
  return new DuplexChannel<T, M>(sendSide, receiveSide);
}

function _isChannel(value: unknown): boolean {
  const channel = value as Partial<Channel<unknown>> | null;
  return typeof channel?.send === "function" &&
    typeof channel.receive === "function" &&
    typeof channel.ready === "function" &&
    typeof channel.close === "function";
}
