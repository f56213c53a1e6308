/**
 * One connection to NATS, as every NATS channel, server, client and work
 * queue uses it: dialled after the permission check, redialled for ever
 * (unless told otherwise) when the server goes away, and with a bounded
 * buffer for what is published while it is away.
 *
 * Why ipckit keeps its own buffer: nats.js discards what it buffered while
 * disconnected each time it dials again (`resetOutbound()` before every
 * attempt), so a publish made during an outage would be lost without a
 * word. Here it waits in the outbox, up to `reconnectBufferBytes`, and goes
 * out, in order, once the connection is back; beyond that, `send()` waits
 * for the reconnect, within its own timeout.
 *
 * @module
 */

import {
  connect,
  errors as natsErrors,
  type MsgHdrs,
  type NatsConnection,
} from "@nats-io/transport-node";
import { closedError, timeoutError } from "../_common/system_error.ts";
import type { Deadline } from "../_wait/deadline.ts";
import type { ServerAddress } from "./servers.ts";

/** What the connection is given, already checked. */
export interface LinkOptions {
  servers: readonly ServerAddress[];
  name?: string;
  user?: string;
  pass?: string;
  token?: string;
  /** Milliseconds between reconnect attempts (nats.js adds jitter). */
  reconnectWait: number;
  /** Attempts per server before giving up; -1 for no limit. */
  maxReconnectAttempts: number;
  /** Bytes of payload kept while disconnected before `send()` waits. */
  reconnectBufferBytes: number;
  /** Milliseconds the first connection may take. */
  connectTimeout: number;
  /** Milliseconds `close()` gives buffered messages and subscriptions. */
  drainTimeout: number;
}

/** A publish as the outbox keeps it. */
interface _Outgoing {
  subject: string;
  data: Uint8Array;
  reply?: string;
  headers?: MsgHdrs;
  /** Settles the `send()` that made it; absent once it has resolved. */
  settle?: { resolve(): void; reject(error: unknown): void };
  timer?: ReturnType<typeof setTimeout>;
  onAbort?: () => void;
  signal?: AbortSignal;
}

/** The part of nats.js's connection that says whether its socket is up. */
interface _WithProtocol {
  protocol?: { connected?: boolean };
}

/** A NATS connection with ipckit's reconnect buffer and lifecycle. */
export class Link {
  readonly nc: NatsConnection;
  readonly #options: LinkOptions;
  #up = true;
  /** `close()` was called: no new sends, no new requests taken. */
  #closing = false;
  /** The drain hooks finished: nothing is published any more. */
  #sealed = false;
  #drainHooks = new Set<() => Promise<void>>();
  #endListeners = new Set<() => void>();
  #lost: Error | undefined;
  #outbox: _Outgoing[] = [];
  #outboxBytes = 0;
  #reconnectWaiters = new Set<() => void>();
  #watching: Promise<void>;
  #reconnects = 0;

  private constructor(nc: NatsConnection, options: LinkOptions) {
    this.nc = nc;
    this.#options = options;
    this.#watching = this.#watch();
    nc.closed().then((error) => {
      // Closed by nats.js itself: every reconnect attempt failed.
      if (!this.#closing) {
        this.#lost = new Deno.errors.NotConnected(
          `Cannot use the NATS connection: it closed after the server could not be reached again${
            error ? `: ${error.message}` : ""
          }`,
          { cause: error },
        );
      }
      this.#failOutbox(this.#lost ?? closedError("NATS connection"));
      this.#wakeReconnectWaiters();
      for (const listener of [...this.#endListeners]) listener();
      this.#endListeners.clear();
    });
  }

  /**
   * Dials the servers (the permission check is the caller's).
   *
   * @throws {Deno.errors.ConnectionRefused} when no server accepts
   * @throws {Deno.errors.TimedOut} when the first connection takes too long
   */
  static async open(options: LinkOptions): Promise<Link> {
    const where = options.servers.map((s) => `"${s.hostPort}"`).join(", ");
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: options.servers.map((server) => server.url),
        name: options.name,
        user: options.user,
        pass: options.pass,
        token: options.token,
        reconnect: true,
        reconnectTimeWait: options.reconnectWait,
        maxReconnectAttempts: options.maxReconnectAttempts,
        timeout: options.connectTimeout,
        waitOnFirstConnect: false,
      });
    } catch (error) {
      throw _connectError(error, where, options.connectTimeout);
    }
    return new Link(nc, options);
  }

  /** Whether publishes go out now rather than into the outbox. */
  get connected(): boolean {
    // nats.js marks its socket down synchronously, before the status event
    // reaches #watch(): between the two, a publish would be lost.
    const protocol = (this.nc as unknown as _WithProtocol).protocol;
    return this.#up && protocol?.connected !== false;
  }

  /** Whether `close()` was called or the connection was lost for good. */
  get closed(): boolean {
    return this.#closing || this.#lost !== undefined;
  }

  /** How many times the connection came back after losing its server. */
  get reconnects(): number {
    return this.#reconnects;
  }

  /** Bytes of payload waiting in the outbox for the connection to return. */
  get bufferedBytes(): number {
    return this.#outboxBytes;
  }

  /** The largest payload the server takes. */
  get maxPayload(): number {
    return this.nc.info?.max_payload ?? 1024 * 1024;
  }

  /** The error for using the connection after it ended. */
  endError(): Error {
    return this.#lost ?? closedError("NATS connection");
  }

  /**
   * Calls `listener` once the socket is closed for good (by `close()` or
   * because the server could not be reached again). Returns the
   * unregistration, for a channel closed before that: a long-lived
   * connection must not keep every channel it ever had.
   */
  onEnd(listener: () => void): () => void {
    if (this.nc.isClosed()) {
      queueMicrotask(listener);
      return () => {};
    }
    this.#endListeners.add(listener);
    return () => this.#endListeners.delete(listener);
  }

  /**
   * Registers work that `close()` waits for before it stops publishing
   * (a server answering the requests it took). Returns the unregistration.
   */
  onDrain(hook: () => Promise<void>): () => void {
    this.#drainHooks.add(hook);
    return () => this.#drainHooks.delete(hook);
  }

  /**
   * Publishes, or keeps the message in the outbox while disconnected.
   * Resolves once the message is handed to the socket or kept; waits (up to
   * the deadline) while the outbox is full. Still works while `close()`
   * waits for its drain hooks: callers that make new messages check
   * `closed` first.
   */
  publish(
    subject: string,
    data: Uint8Array,
    extra: { reply?: string; headers?: MsgHdrs },
    deadline: Deadline,
    signal: AbortSignal | undefined,
    action: string,
  ): Promise<void> {
    if (this.#sealed || this.#lost) return Promise.reject(this.endError());
    if (signal?.aborted) return Promise.reject(signal.reason);
    // Once something waits in the outbox, later sends queue behind it, so
    // order is kept across an outage.
    if (this.connected && this.#outbox.length === 0) {
      this.nc.publish(subject, data, extra);
      return Promise.resolve();
    }
    const outgoing: _Outgoing = { subject, data, ...extra };
    this.#outbox.push(outgoing);
    this.#outboxBytes += data.byteLength;
    if (this.#outboxBytes <= this.#options.reconnectBufferBytes) {
      return Promise.resolve();
    }
    // Full: this send waits for the connection to come back and flush it.
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const giveUp = (error: unknown) => {
      const index = this.#outbox.indexOf(outgoing);
      if (index < 0) return;
      this.#outbox.splice(index, 1);
      this.#outboxBytes -= data.byteLength;
      this.#settle(outgoing, error);
    };
    outgoing.settle = { resolve, reject };
    if (deadline.at !== Infinity) {
      outgoing.timer = setTimeout(
        () => giveUp(timeoutError(action, deadline.timeout)),
        Math.max(0, deadline.at - performance.now()),
      );
    }
    if (signal) {
      outgoing.signal = signal;
      outgoing.onAbort = () => giveUp(signal.reason);
      signal.addEventListener("abort", outgoing.onAbort, { once: true });
    }
    return promise;
  }

  /**
   * Resolves at once when connected, else when the connection is back;
   * rejects at the deadline, on abort, or when the connection ends.
   */
  whenConnected(
    deadline: Deadline,
    signal: AbortSignal | undefined,
    action: string,
  ): Promise<void> {
    if (this.closed) return Promise.reject(this.endError());
    return this.#untilConnected(deadline, signal, action);
  }

  /** `whenConnected()` without the closing check, for `close()` itself. */
  #untilConnected(
    deadline: Deadline,
    signal: AbortSignal | undefined,
    action: string,
  ): Promise<void> {
    if (this.connected) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const done = (error?: unknown) => {
      this.#reconnectWaiters.delete(wake);
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      if (error === undefined) resolve();
      else reject(error);
    };
    const wake = () =>
      done(this.#lost ?? (this.nc.isClosed() ? this.endError() : undefined));
    const onAbort = () => done(signal!.reason);
    this.#reconnectWaiters.add(wake);
    if (deadline.at !== Infinity) {
      timer = setTimeout(
        () => done(timeoutError(action, deadline.timeout)),
        Math.max(0, deadline.at - performance.now()),
      );
    }
    signal?.addEventListener("abort", onAbort, { once: true });
    return promise;
  }

  /**
   * Stops publishing, gives the outbox and every subscription up to the
   * drain timeout to finish, then closes the socket.
   *
   * @throws {Deno.errors.TimedOut} (after closing) when buffered messages
   * could not be sent in time; they are dropped
   */
  async close(): Promise<void> {
    if (this.#closing) return await this.#watching;
    this.#closing = true;
    const deadline = performance.now() + this.#options.drainTimeout;
    if (this.#drainHooks.size > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.allSettled([...this.#drainHooks].map((hook) => hook())),
        new Promise((resolve) => {
          timer = setTimeout(resolve, this.#options.drainTimeout);
        }),
      ]);
      clearTimeout(timer);
    }
    this.#sealed = true;
    const unsent = () => this.#outbox.length;
    if (unsent() > 0 && !this.#lost) {
      await this.#untilConnected(
        { at: deadline, timeout: this.#options.drainTimeout },
        undefined,
        "drain",
      ).catch(() => {});
      // #watch() flushed already when it woke us; this covers the rest.
      if (this.connected) this.#flush();
    }
    const left = unsent();
    if (!this.nc.isClosed()) {
      const remaining = Math.max(0, deadline - performance.now());
      let timer: ReturnType<typeof setTimeout> | undefined;
      const drained = await Promise.race([
        this.nc.drain().then(() => true, () => false),
        new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), remaining);
        }),
      ]);
      clearTimeout(timer);
      if (!drained) await this.nc.close().catch(() => {});
    }
    await this.nc.closed();
    await this.#watching;
    if (left > 0) {
      throw timeoutError(
        `drain the NATS connection: ${left} buffered messages were not sent`,
        this.#options.drainTimeout,
      );
    }
  }

  async #watch(): Promise<void> {
    for await (const status of this.nc.status()) {
      if (status.type === "disconnect") {
        this.#up = false;
      } else if (status.type === "reconnect") {
        this.#up = true;
        this.#reconnects++;
        this.#flush();
        this.#wakeReconnectWaiters();
      }
    }
  }

  /** Sends everything in the outbox, in order, and settles its sends. */
  #flush(): void {
    const outbox = this.#outbox;
    this.#outbox = [];
    this.#outboxBytes = 0;
    for (const outgoing of outbox) {
      try {
        this.nc.publish(outgoing.subject, outgoing.data, {
          reply: outgoing.reply,
          headers: outgoing.headers,
        });
        this.#settle(outgoing);
      } catch (error) {
        this.#settle(outgoing, error);
      }
    }
  }

  #settle(outgoing: _Outgoing, error?: unknown): void {
    clearTimeout(outgoing.timer);
    if (outgoing.onAbort) {
      outgoing.signal?.removeEventListener("abort", outgoing.onAbort);
    }
    const settle = outgoing.settle;
    outgoing.settle = undefined;
    if (error === undefined) settle?.resolve();
    else settle?.reject(error);
  }

  #failOutbox(error: Error): void {
    const outbox = this.#outbox;
    this.#outbox = [];
    this.#outboxBytes = 0;
    for (const outgoing of outbox) this.#settle(outgoing, error);
  }

  #wakeReconnectWaiters(): void {
    for (const wake of [...this.#reconnectWaiters]) wake();
  }
}

/** Deno's class for a failed first connection, with a message that names the servers. */
function _connectError(
  error: unknown,
  where: string,
  timeout: number,
): Error {
  if (error instanceof Deno.errors.NotCapable) return error;
  const detail = error instanceof Error ? error.message : String(error);
  const options = { cause: error };
  if (error instanceof natsErrors.TimeoutError) {
    return timeoutError(`connect to NATS at ${where}`, timeout);
  }
  if (
    error instanceof natsErrors.ConnectionError && /refused/i.test(detail)
  ) {
    return new Deno.errors.ConnectionRefused(
      `Cannot connect to NATS at ${where}: the connection was refused`,
      options,
    );
  }
  if ((error as { code?: unknown })?.code === "ENOTFOUND") {
    return new Deno.errors.NotFound(
      `Cannot connect to NATS at ${where}: the host name does not resolve`,
      options,
    );
  }
  return new Error(`Cannot connect to NATS at ${where}: ${detail}`, options);
}
