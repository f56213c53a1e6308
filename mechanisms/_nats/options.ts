/**
 * The options of `Nats.connect()`, `Nats.channel()`, `Nats.serve()`,
 * `Nats.client()` and `Nats.workQueue()`, and their checks: an unknown key,
 * a wrong type or a value out of range is a `TypeError` or `RangeError`
 * that names the option, before anything is sent to a server. Codecs left
 * out stay `undefined` here; `Nats` puts in the default.
 *
 * @module
 */

import type { Codec } from "../codec.ts";
import type { ServeOptions } from "../rpc.ts";
import {
  checkDirections,
  checkFlag,
  checkInteger,
  checkOptionKeys,
} from "../_common/checks.ts";
import type { LinkOptions } from "./link.ts";
import { parseServers } from "./servers.ts";
import type { QueueLayout } from "./streams.ts";
import { checkName, checkSubject } from "./subjects.ts";

/**
 * How to reach NATS and how to behave when the server goes away.
 *
 * @example
 * ```ts
 * import type { NatsOptions } from "@ipckit/ipckit/nats";
 *
 * const options: NatsOptions = {
 *   servers: ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"],
 *   name: "thumbnailer",
 *   reconnectWait: 250,
 * };
 * ```
 */
export interface NatsOptions {
  /**
   * One server or several of one cluster: `nats://host:port`, `tls://…`,
   * `host:port` or `host` (port 4222). Default `127.0.0.1:4222`.
   */
  servers?: string | string[];
  /** The name this client shows in the server's monitoring. */
  name?: string;
  /** User name, with `pass`, when the server wants them. */
  user?: string;
  /** Password for `user`. */
  pass?: string;
  /** Token, when the server authenticates with one. */
  token?: string;
  /** Milliseconds the first connection may take. Default 10,000. */
  timeout?: number;
  /** Milliseconds between attempts to reconnect. Default 500. */
  reconnectWait?: number;
  /**
   * Attempts per server before the connection gives up for good; `-1`
   * (the default) keeps trying.
   */
  maxReconnectAttempts?: number;
  /**
   * Bytes of messages kept while the server is away, sent in order once it
   * is back; beyond that, sends wait for the reconnect. Default 8 MiB.
   */
  reconnectBufferBytes?: number;
  /**
   * Milliseconds `close()` gives buffered messages and open subscriptions
   * to finish before it closes the socket anyway. Default 10,000.
   */
  drainTimeout?: number;
}

/**
 * How a channel on a subject behaves.
 *
 * @example
 * ```ts
 * import { codecs } from "@ipckit/ipckit";
 * import type { NatsChannelOptions } from "@ipckit/ipckit/nats";
 *
 * const workers: NatsChannelOptions<string> = { codec: codecs.text(), queue: "workers" };
 * ```
 */
export interface NatsChannelOptions<T> {
  /** How values become bytes and back. Default `codecs.json()`. */
  codec?: Codec<T>;
  /**
   * A queue group: channels with the same group on a subject split its
   * messages (each goes to one). Without one, every channel gets every
   * message.
   */
  queue?: string;
  /** Subscribe, to receive. Default `true`; `false` for a send-only channel. */
  read?: boolean;
  /** Allow `send()`. Default `true`. */
  write?: boolean;
  /** A reply subject set on every message sent, so answers go there. */
  replyTo?: string;
  /** Messages kept for `receive()` before more are dropped. Default 65,536. */
  maxPending?: number;
}

/**
 * How `Nats.serve()` answers requests. Besides the options of `serve()` for
 * local channels (`exposeStack`, `onError`, `signal`):
 *
 * @example
 * ```ts
 * import type { NatsServeOptions } from "@ipckit/ipckit/nats";
 *
 * const options: NatsServeOptions<string, number> = { queue: "sizes", maxInFlight: 8 };
 * ```
 */
export interface NatsServeOptions<Req, Res> extends ServeOptions {
  /**
   * The queue group servers of this subject share, so each request reaches
   * one of them. Default `"ipckit"`; `false` lets every server answer.
   */
  queue?: string | false;
  /** How requests are decoded. Default `codecs.json()`. */
  requestCodec?: Codec<Req>;
  /** How responses are encoded. Default `codecs.json()`. */
  responseCodec?: Codec<Res>;
  /** Handlers running at once. Default 64. */
  maxInFlight?: number;
  /**
   * Requests kept waiting for a free handler; past that, a request is
   * answered at once with a `Busy` error (status 503). Default 1,024.
   */
  maxQueued?: number;
}

/**
 * How `Nats.client()` encodes requests and decodes responses.
 *
 * @example
 * ```ts
 * import { codecs } from "@ipckit/ipckit";
 * import type { NatsClientOptions } from "@ipckit/ipckit/nats";
 *
 * const options: NatsClientOptions<string, string> = {
 *   requestCodec: codecs.text(),
 *   responseCodec: codecs.text(),
 * };
 * ```
 */
export interface NatsClientOptions<Req, Res> {
  /** How requests are encoded. Default `codecs.json()`. */
  requestCodec?: Codec<Req>;
  /** How responses are decoded. Default `codecs.json()`. */
  responseCodec?: Codec<Res>;
}

/**
 * How a durable work queue is laid out on JetStream. Every process that
 * opens the queue must give the same layout (subject, consumer, `ackWait`,
 * `duplicateWindow`, `replicas`): the first one creates the streams.
 *
 * @example
 * ```ts
 * import type { WorkQueueOptions } from "@ipckit/ipckit/nats";
 *
 * const options: WorkQueueOptions<{ file: string }> = {
 *   maxDeliveries: 3,
 *   retryDelay: 2_000,
 *   ackWait: 60_000,
 * };
 * ```
 */
export interface WorkQueueOptions<T> {
  /** The subject messages are published to. Default: the queue's name. */
  subject?: string;
  /** How values become bytes and back. Default `codecs.json()`. */
  codec?: Codec<T>;
  /**
   * Deliveries a message gets before it goes to the dead letters: a handler
   * that threw, or a worker that died holding it, each use one. Default 5.
   */
  maxDeliveries?: number;
  /** Milliseconds before a retried message is delivered again. Default 1,000. */
  retryDelay?: number;
  /**
   * Milliseconds a worker may hold a message without settling it before the
   * server gives it to another (`inProgress()` restarts the clock).
   * Default 30,000.
   */
  ackWait?: number;
  /**
   * The subject dead letters go to, kept in the stream `<name>_dead`.
   * Default `<subject>.dead`; `false` drops them instead.
   */
  deadLetter?: string | false;
  /** The durable consumer every worker shares. Default `"workers"`. */
  consumer?: string;
  /** Messages fetched ahead by each process. Default 16. */
  prefetch?: number;
  /**
   * Milliseconds within which sends with the same id are stored once
   * (after a server restart, only while the first copy waits in the queue:
   * see `WorkQueue.send()`). Default 120,000 (JetStream's own default).
   */
  duplicateWindow?: number;
  /** Copies of each message in a cluster (1, 3 or 5). Default 1. */
  replicas?: number;
}

const _NATS_OPTIONS = [
  "servers",
  "name",
  "user",
  "pass",
  "token",
  "timeout",
  "reconnectWait",
  "maxReconnectAttempts",
  "reconnectBufferBytes",
  "drainTimeout",
] as const;

const _CHANNEL_OPTIONS = [
  "codec",
  "queue",
  "read",
  "write",
  "replyTo",
  "maxPending",
] as const;

const _SERVE_OPTIONS = [
  "queue",
  "requestCodec",
  "responseCodec",
  "maxInFlight",
  "maxQueued",
  "exposeStack",
  "onError",
  "signal",
] as const;

const _CLIENT_OPTIONS = ["requestCodec", "responseCodec"] as const;

const _WORK_QUEUE_OPTIONS = [
  "subject",
  "codec",
  "maxDeliveries",
  "retryDelay",
  "ackWait",
  "deadLetter",
  "consumer",
  "prefetch",
  "duplicateWindow",
  "replicas",
] as const;

const _MiB = 1024 * 1024;

/** Checks `Nats.connect()`'s options; the permission check comes after. */
export function resolveConnect(options: NatsOptions): LinkOptions {
  const action = "connect to NATS";
  checkOptionKeys(options, _NATS_OPTIONS, action);
  const servers = parseServers(options.servers, action);
  for (const key of ["name", "user", "pass", "token"] as const) {
    if (options[key] !== undefined && typeof options[key] !== "string") {
      throw new TypeError(`Cannot ${action}: ${key} must be a string`);
    }
  }
  const integer = (key: keyof NatsOptions, fallback: number, min: number) =>
    checkInteger(options[key], key, action, fallback, min);
  return {
    servers,
    name: options.name,
    user: options.user,
    pass: options.pass,
    token: options.token,
    connectTimeout: integer("timeout", 10_000, 1),
    reconnectWait: integer("reconnectWait", 500, 0),
    maxReconnectAttempts: integer("maxReconnectAttempts", -1, -1),
    reconnectBufferBytes: integer("reconnectBufferBytes", 8 * _MiB, 0),
    drainTimeout: integer("drainTimeout", 10_000, 0),
  };
}

/** `Nats.channel()`'s options, checked. */
export interface CheckedChannelOptions<T> {
  codec: Codec<T> | undefined;
  queue?: string;
  read: boolean;
  write: boolean;
  replyTo?: string;
  maxPending: number;
}

/** Checks `Nats.channel()`'s subject and options. */
export function resolveChannel<T>(
  subject: string,
  options: NatsChannelOptions<T>,
): CheckedChannelOptions<T> {
  const action = `open a channel on NATS subject "${subject}"`;
  checkOptionKeys(options, _CHANNEL_OPTIONS, action);
  const { read, write } = checkDirections(options, action);
  // Receiving only, a subject may hold wildcards; one that is published to may not.
  checkSubject(subject, !write, action);
  if (options.queue !== undefined) {
    checkName(options.queue, "queue group", action);
  }
  if (options.replyTo !== undefined) {
    checkSubject(options.replyTo, false, action);
  }
  return {
    codec: checkCodec(options.codec, action),
    queue: options.queue,
    read,
    write,
    replyTo: options.replyTo,
    maxPending: checkInteger(
      options.maxPending,
      "maxPending",
      action,
      65_536,
      1,
    ),
  };
}

/** `Nats.serve()`'s options, checked. */
export interface CheckedServeOptions<Req, Res> {
  queue: string | undefined;
  requestCodec: Codec<Req> | undefined;
  responseCodec: Codec<Res> | undefined;
  maxInFlight: number;
  maxQueued: number;
  exposeStack: boolean;
  onError: (error: unknown) => void;
  signal: AbortSignal | undefined;
}

/** Checks `Nats.serve()`'s subject, handler and options. */
export function resolveServe<Req, Res>(
  subject: string,
  handler: unknown,
  options: NatsServeOptions<Req, Res>,
): CheckedServeOptions<Req, Res> {
  const action = `serve NATS subject "${subject}"`;
  checkOptionKeys(options, _SERVE_OPTIONS, action);
  checkSubject(subject, true, action);
  if (typeof handler !== "function") {
    throw new TypeError(`Cannot ${action}: the handler must be a function`);
  }
  if (options.queue !== undefined && options.queue !== false) {
    checkName(options.queue, "queue group", action);
  }
  checkFlag(options.exposeStack, "exposeStack", action);
  if (options.onError !== undefined && typeof options.onError !== "function") {
    throw new TypeError(`Cannot ${action}: onError must be a function`);
  }
  if (
    options.signal !== undefined && !(options.signal instanceof AbortSignal)
  ) {
    throw new TypeError(`Cannot ${action}: signal must be an AbortSignal`);
  }
  return {
    queue: options.queue === false ? undefined : options.queue ?? "ipckit",
    requestCodec: checkCodec(options.requestCodec, action),
    responseCodec: checkCodec(options.responseCodec, action),
    maxInFlight: checkInteger(
      options.maxInFlight,
      "maxInFlight",
      action,
      64,
      1,
    ),
    maxQueued: checkInteger(options.maxQueued, "maxQueued", action, 1024, 0),
    exposeStack: options.exposeStack ?? false,
    onError: options.onError ?? (() => {}),
    signal: options.signal,
  };
}

/** Checks `Nats.client()`'s subject and options. */
export function resolveClient<Req, Res>(
  subject: string,
  options: NatsClientOptions<Req, Res>,
): {
  requestCodec: Codec<Req> | undefined;
  responseCodec: Codec<Res> | undefined;
} {
  const action = `make a client for NATS subject "${subject}"`;
  checkOptionKeys(options, _CLIENT_OPTIONS, action);
  checkSubject(subject, false, action);
  return {
    requestCodec: checkCodec(options.requestCodec, action),
    responseCodec: checkCodec(options.responseCodec, action),
  };
}

/** `Nats.workQueue()`'s options, checked. */
export interface CheckedWorkQueueOptions<T> {
  codec: Codec<T> | undefined;
  layout: QueueLayout;
  maxDeliveries: number;
  retryDelay: number;
  prefetch: number;
}

/** Checks `Nats.workQueue()`'s name and options and lays out its streams. */
export function resolveWorkQueue<T>(
  name: string,
  options: WorkQueueOptions<T>,
): CheckedWorkQueueOptions<T> {
  const action = `open work queue "${name}"`;
  checkOptionKeys(options, _WORK_QUEUE_OPTIONS, action);
  checkName(name, "name", action);
  const subject = checkSubject(options.subject ?? name, false, action);
  let deadLetter: QueueLayout["deadLetter"];
  if (options.deadLetter !== false) {
    const deadSubject = checkSubject(
      options.deadLetter ?? `${subject}.dead`,
      false,
      action,
    );
    if (deadSubject === subject) {
      throw new TypeError(
        `Cannot ${action}: the dead-letter subject must differ from the queue's subject "${subject}"`,
      );
    }
    deadLetter = { stream: `${name}_dead`, subject: deadSubject };
  }
  const integer = (
    key: keyof WorkQueueOptions<T>,
    fallback: number,
    min: number,
    max?: number,
  ) => checkInteger(options[key], key, action, fallback, min, max);
  return {
    codec: checkCodec(options.codec, action),
    maxDeliveries: integer("maxDeliveries", 5, 1),
    retryDelay: integer("retryDelay", 1_000, 0),
    prefetch: integer("prefetch", 16, 1),
    layout: {
      stream: name,
      subject,
      deadLetter,
      consumer: checkName(options.consumer ?? "workers", "consumer", action),
      ackWaitMs: integer("ackWait", 30_000, 1_000),
      duplicateWindowMs: integer("duplicateWindow", 120_000, 1_000),
      replicas: integer("replicas", 1, 1, 5),
    },
  };
}

/** Checks that a codec given has `encode` and `decode`. */
function checkCodec<T>(
  codec: Codec<T> | undefined,
  action: string,
): Codec<T> | undefined {
  if (
    codec !== undefined &&
    (typeof codec?.encode !== "function" || typeof codec.decode !== "function")
  ) {
    throw new TypeError(
      `Cannot ${action}: codec must have encode and decode functions`,
    );
  }
  return codec;
}
