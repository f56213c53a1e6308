/**
 * One message of a work queue as a worker holds it: the decoded value, what
 * JetStream knows about it, and the three ways to settle it (done, try
 * again, still working).
 *
 * @module
 */

import type { JsMsg } from "@nats-io/jetstream";
import type { Message } from "../channel.ts";
import { timeoutError } from "../_common/system_error.ts";

/**
 * Why a message ended up in the dead letters, read from its headers.
 *
 * @example
 * ```ts
 * import type { DeadLetterInfo } from "@ipckit/ipckit/nats";
 *
 * const info: DeadLetterInfo = { reason: "disk full", deliveries: 5, queue: "jobs", sequence: 42 };
 * ```
 */
export interface DeadLetterInfo {
  /** The last error's message, or why the queue gave up. */
  reason: string;
  /** How many times it was delivered before it was given up. */
  deliveries: number;
  /** The work queue it came from. */
  queue: string;
  /** Its sequence number in that queue's stream. */
  sequence: number;
}

/**
 * A message from a {@linkcode WorkQueue}. It stays in the queue until it is
 * acknowledged; settle it with `ack()` once the work is done, or `retry()`
 * to hand it back. One that is neither (its worker crashed, or took longer
 * than `ackWait`) is delivered again.
 *
 * @example
 * ```ts ignore
 * const job = await jobs.receive({ timeout: 5000 });
 * try {
 *   await render(job.value);
 *   await job.ack();
 * } catch (error) {
 *   await job.retry(error); // again later, or to the dead letters at the bound
 * }
 * ```
 */
export interface WorkMessage<T> extends Message<T> {
  /** The id it was sent with (`send(value, { id })`), which deduplicates retries. */
  readonly id: string | undefined;
  /** Its sequence number in the stream. */
  readonly sequence: number;
  /** 1 on the first delivery, then 2, 3, … */
  readonly deliveries: number;
  /** The subject it was published to. */
  readonly subject: string;
  /** Set on a message read from a dead-letter queue. */
  readonly deadLetter: DeadLetterInfo | undefined;
  /** Whether `ack()` or `retry()` was called. */
  readonly settled: boolean;
  /**
   * Marks the work done: the message leaves the queue. Waits for the
   * server to confirm.
   *
   * @throws {Deno.errors.TimedOut} when the server does not confirm within
   * 5 s (it may then deliver the message again)
   */
  ack(): Promise<void>;
  /**
   * Hands the message back: it is delivered again after the queue's
   * `retryDelay`, or, if this was its last allowed delivery, goes to the
   * dead-letter subject with `reason`.
   */
  retry(reason?: unknown): Promise<void>;
  /** Tells the server the work goes on, restarting the `ackWait` clock. */
  inProgress(): void;
}

/** What a message needs from its queue to settle itself. */
export interface SettleRules {
  queue: string;
  maxDeliveries: number;
  retryDelay: number;
  deadLetter(message: JsMsg, reason: string): Promise<void>;
  settled(message: WorkMessageImpl<unknown>): void;
}

/** The headers a dead letter carries. */
export const DEAD_LETTER_HEADERS = {
  reason: "Ipckit-Dead-Reason",
  deliveries: "Ipckit-Dead-Deliveries",
  queue: "Ipckit-Dead-Queue",
  sequence: "Ipckit-Dead-Sequence",
} as const;

const _ACK_TIMEOUT_MS = 5_000;

/** A received work message. */
export class WorkMessageImpl<T> implements WorkMessage<T> {
  readonly value: T;
  readonly id: string | undefined;
  readonly sequence: number;
  readonly deliveries: number;
  readonly subject: string;
  readonly deadLetter: DeadLetterInfo | undefined;
  readonly #message: JsMsg;
  readonly #rules: SettleRules;
  #settled = false;

  constructor(value: T, message: JsMsg, rules: SettleRules) {
    this.value = value;
    this.#message = message;
    this.#rules = rules;
    this.id = message.headers?.get("Nats-Msg-Id") || undefined;
    this.sequence = message.seq;
    this.deliveries = message.info.deliveryCount;
    this.subject = message.subject;
    this.deadLetter = readDeadLetter(message);
  }

  get settled(): boolean {
    return this.#settled;
  }

  async ack(): Promise<void> {
    if (!this.#settle()) return;
    const confirmed = await this.#message.ackAck({ timeout: _ACK_TIMEOUT_MS })
      .catch(() => false);
    if (!confirmed) {
      throw timeoutError(
        `confirm the acknowledgement of message ${this.sequence} of work queue "${this.#rules.queue}"`,
        _ACK_TIMEOUT_MS,
      );
    }
  }

  /** Acknowledges without waiting for the server: a lost ack means one more delivery. */
  ackQuietly(): void {
    if (this.#settle()) this.#message.ack();
  }

  async retry(reason?: unknown): Promise<void> {
    if (!this.#settle()) return;
    if (this.deliveries >= this.#rules.maxDeliveries) {
      const text = reason instanceof Error
        ? reason.message
        : reason === undefined
        ? "handed back"
        : String(reason);
      await this.#rules.deadLetter(this.#message, text);
      return;
    }
    this.#message.nak(this.#rules.retryDelay || undefined);
  }

  inProgress(): void {
    if (!this.#settled) this.#message.working();
  }

  /**
   * Hands the message back without counting it as a failure: delivered
   * again at once, and past the bound, dead-lettered by the next receive.
   */
  handBack(): void {
    if (this.#settle()) this.#message.nak();
  }

  /** Marks the message settled; false when it already was. */
  #settle(): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    this.#rules.settled(this as WorkMessageImpl<unknown>);
    return true;
  }
}

/** The dead-letter facts of a message, if it is one. */
export function readDeadLetter(message: JsMsg): DeadLetterInfo | undefined {
  const h = message.headers;
  if (!h?.has(DEAD_LETTER_HEADERS.reason)) return undefined;
  return {
    reason: h.get(DEAD_LETTER_HEADERS.reason),
    deliveries: Number(h.get(DEAD_LETTER_HEADERS.deliveries)) || 0,
    queue: h.get(DEAD_LETTER_HEADERS.queue),
    sequence: Number(h.get(DEAD_LETTER_HEADERS.sequence)) || 0,
  };
}
