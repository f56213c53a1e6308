/**
 * System V message queues (`msgget`, `msgsnd`, `msgrcv`): typed messages,
 * each with a message type that receivers select by, between any
 * processes that know the key, C programs and Python's `sysv_ipc`
 * included.
 *
 * Selecting by type follows the kernel's rules: `receive()` (type 0) takes
 * the oldest message; `{ type: 3 }` the oldest of type 3; `{ type: -3 }`
 * the oldest of the lowest type from 1 to 3; `{ type: 3, except: true }`
 * the oldest of any type but 3.
 *
 * Permissions: System V objects have no path; ipckit checks the file that
 * lists them, `/proc/sysvipc/msg`: receiving needs
 * `--allow-read=/proc/sysvipc`, sending, creating and removing
 * `--allow-write=/proc/sysvipc`, and every call `--allow-ffi`. With
 * `--allow-read=/proc/sys/kernel` sizes are checked against the kernel's
 * limits (`msgmax`, `msgmnb`) before any call, and the error names the one
 * exceeded.
 *
 * ## How an async receive waits
 *
 * `msgrcv` has no descriptor to poll and a blocking `msgrcv` on Deno's
 * thread pool would hold a thread per wait and could not be cancelled (it
 * would take a message after its caller gave up). So every attempt is an
 * `IPC_NOWAIT` call on the main thread, through the one retry loop: it
 * spins for the `spin` budget, then retries on a timer shared by every
 * wait on the queue in this process, 1 ms after activity and doubling to
 * 32 ms while the queue stays quiet (mechanisms/_wait/poll_group.ts). A
 * message sent by another process after a long quiet spell is therefore
 * received up to 32 ms late (16 ms on average); a send from this process
 * wakes its receivers at once. An idle wait costs a timer tick every
 * 32 ms and one `msgrcv` per message type waited for, not per wait; the
 * README's "What waiting costs" has the measurements. Use a POSIX
 * `MessageQueue` where the latency of a quiet queue matters.
 *
 * @example Selective receive by type
 * ```ts
 * import { SysvMessageQueue } from "@ipckit/ipckit/sysv-message-queue";
 *
 * await using queue = SysvMessageQueue.open<string>("private", {
 *   create: true,
 *   unlinkOnClose: true,
 * });
 * await queue.send("low", { type: 1 });
 * await queue.send("urgent", { type: 9 });
 * console.log((await queue.receive({ type: 9 })).value); // urgent
 * console.log((await queue.receive()).value); // low
 * ```
 *
 * @module
 */

import { ERRNO } from "../ffi/errno.ts";
import {
  IPC,
  messageBuffer,
  messageCapacity,
  messageText,
  msgget,
  msgrcv,
  msgSetQbytes,
  msgsnd,
  msgStat,
  type MsqidDs,
} from "../ffi/sysv.ts";
import type { Channel, Message, WaitOptions } from "./channel.ts";
import { type Codec, codecs } from "./codec.ts";
import {
  checkDirections,
  checkFlag,
  checkOptionKeys,
  optionKeys,
} from "./_common/checks.ts";
import { receiveUntilEnd } from "./_common/iterate.ts";
import { Lifecycle, unlinkQuietly, untilClosed } from "./_common/lifecycle.ts";
import { systemError } from "./_common/system_error.ts";
import type { Access } from "./_kernel/permissions.ts";
import {
  checkSysvOpen,
  describeLimit,
  describeSysv,
  getTracked,
  idError,
  readSysvLimit,
  removeSysvId,
  requireSysvAdoptable,
  requireSysvPermissions,
  resolveKey,
  settleOrRemove,
  SYSV_KIND_FACTS,
  type SysvKey,
} from "./_kernel/sysv.ts";
import { type Deadline, deadlineOf, WAIT_KEYS } from "./_wait/deadline.ts";
import {
  backoffSleeper,
  type PollGroup,
  pollGroup,
} from "./_wait/poll_group.ts";
import { retryAsync, type RetryPlan, retrySync } from "./_wait/retry.ts";
import { checkSpinMicros, Spinner } from "./_wait/spin.ts";

export type { SysvKey } from "./_kernel/sysv.ts";

/** Linux's compiled-in `msgmax`, the receive buffer where /proc/sys/kernel may not be read. */
const _DEFAULT_MSGMAX = 8192;

/**
 * The largest message type ipckit sends: types travel as JavaScript numbers.
 *
 * @example
 * ```ts
 * import { SYSV_MAX_MESSAGE_TYPE } from "@ipckit/ipckit";
 *
 * console.log(SYSV_MAX_MESSAGE_TYPE === Number.MAX_SAFE_INTEGER); // true
 * ```
 *
 * @category System V IPC
 */
export const SYSV_MAX_MESSAGE_TYPE: number = Number.MAX_SAFE_INTEGER;

/**
 * How to open a System V message queue.
 *
 * @example
 * ```ts
 * import type { SysvMessageQueueOptions } from "@ipckit/ipckit";
 *
 * const options: SysvMessageQueueOptions<string> = { create: true, mode: 0o600, maxBytes: 16384 };
 * ```
 *
 * @category System V IPC
 */
export interface SysvMessageQueueOptions<T> {
  /** Create the queue if no queue has the key (`IPC_CREAT`). Default `false`. */
  create?: boolean;
  /** With `create`: fail with `AlreadyExists` if it exists (`IPC_EXCL`). Default `false`. */
  exclusive?: boolean;
  /**
   * With `create`, which existing queue to use: `"owned"` (default) only
   * one whose owner and creator are this process's effective uid and whose
   * mode grants nothing beyond `mode`; `"any-owner"` any this process may
   * use. As for POSIX queues.
   */
  adopt?: "owned" | "any-owner";
  /** Permission bits of a created queue. Default `0o600`. */
  mode?: number;
  /**
   * With `create`: the most bytes of messages the new queue holds
   * (`msg_qbytes`). Default: the kernel's `msgmnb`. Above
   * `/proc/sys/kernel/msgmnb` only a privileged process may go; ipckit
   * refuses it for everyone, so code behaves the same for every user.
   */
  maxBytes?: number;
  /** How values become bytes. Default `codecs.json<T>()`. */
  codec?: Codec<T>;
  /** Open for receiving. Default `true`. */
  read?: boolean;
  /** Open for sending. Default `true`. */
  write?: boolean;
  /**
   * Remove the queue (`IPC_RMID`, as {@linkcode SysvMessageQueue.remove})
   * when this handle closes. Unlike unlinking a POSIX name, that discards
   * its messages at once, and other processes' waits on it fail with
   * `NotFound`. Default `false`: the queue stays, as every named object
   * does (the README's "Cleaning up").
   */
  unlinkOnClose?: boolean;
  /**
   * Microseconds a waiting call retries before it sleeps, 0 to 1000.
   * Default 50. See `MessageQueueOptions.spin`.
   */
  spin?: number;
}

/**
 * A received message and its type.
 *
 * @example
 * ```ts
 * import type { SysvMessage } from "@ipckit/ipckit";
 *
 * const message: SysvMessage<string> = { value: "hello", type: 1 };
 * ```
 *
 * @category System V IPC
 */
export interface SysvMessage<T> extends Message<T> {
  /** The message type the sender gave (`mtype`), 1 or more. */
  type: number;
}

/**
 * Options for sending: the message type, and for the waiting forms a
 * timeout and a signal.
 *
 * @example
 * ```ts
 * import type { SysvSendOptions } from "@ipckit/ipckit";
 *
 * const options: SysvSendOptions = { type: 2, timeout: 100 };
 * ```
 *
 * @category System V IPC
 */
export interface SysvSendOptions extends WaitOptions {
  /** The message type, an integer from 1 to `SYSV_MAX_MESSAGE_TYPE`. Default 1. */
  type?: number;
}

/**
 * Which message to receive, and for the waiting forms a timeout and a
 * signal.
 *
 * @example
 * ```ts
 * import type { SysvReceiveOptions } from "@ipckit/ipckit";
 *
 * const anyButLogs: SysvReceiveOptions = { type: 7, except: true };
 * const lowestUpTo5: SysvReceiveOptions = { type: -5 };
 * ```
 *
 * @category System V IPC
 */
export interface SysvReceiveOptions extends WaitOptions {
  /**
   * 0 (default): the oldest message. A positive type: the oldest of that
   * type. A negative type: the oldest of the lowest type that is not above
   * its absolute value.
   */
  type?: number;
  /** With a positive `type`: the oldest message of any other type (`MSG_EXCEPT`). */
  except?: boolean;
}

/**
 * A queue's state as the kernel reports it (`msgctl(IPC_STAT)`).
 *
 * @example
 * ```ts
 * import type { SysvQueueAttributes } from "@ipckit/ipckit";
 *
 * function isEmpty(attributes: SysvQueueAttributes): boolean {
 *   return attributes.messages === 0;
 * }
 * ```
 *
 * @category System V IPC
 */
export interface SysvQueueAttributes {
  /** The key (0 for a private queue). */
  key: number;
  /** The queue's id. */
  id: number;
  /** Messages waiting. */
  messages: number;
  /** Bytes of messages waiting. */
  bytes: number;
  /** The most bytes the queue holds (`msg_qbytes`). */
  maxBytes: number;
  /** The last process that sent, and the last that received; 0 for none. */
  lastSendPid: number;
  /** See `lastSendPid`. */
  lastReceivePid: number;
  /** When the last message was sent, and received; undefined for never. */
  lastSend: Date | undefined;
  /** See `lastSend`. */
  lastReceive: Date | undefined;
  /** When the queue was created or its settings last changed. */
  changed: Date;
  /** The owner's and the creator's uid. */
  uid: number;
  /** See `uid`. */
  creatorUid: number;
  /** Permission bits. */
  mode: number;
}

const _OPEN_KEYS = optionKeys<SysvMessageQueueOptions<unknown>>({
  create: true,
  exclusive: true,
  adopt: true,
  mode: true,
  maxBytes: true,
  codec: true,
  read: true,
  write: true,
  unlinkOnClose: true,
  spin: true,
});
const _TRY_SEND_KEYS = optionKeys<Pick<SysvSendOptions, "type">>({
  type: true,
});
const _SEND_KEYS = optionKeys<SysvSendOptions>({
  type: true,
  timeout: true,
  signal: true,
});
const _SEND_SYNC_KEYS = optionKeys<Pick<SysvSendOptions, "type" | "timeout">>(
  { type: true, timeout: true },
);
const _TRY_RECEIVE_KEYS = optionKeys<
  Pick<SysvReceiveOptions, "type" | "except">
>({ type: true, except: true });
const _RECEIVE_KEYS = optionKeys<SysvReceiveOptions>({
  type: true,
  except: true,
  timeout: true,
  signal: true,
});
const _RECEIVE_SYNC_KEYS = optionKeys<
  Pick<SysvReceiveOptions, "type" | "except" | "timeout">
>({ type: true, except: true, timeout: true });

/**
 * A System V message queue carrying values of type `T`, each message with
 * a type that receivers can select by.
 *
 * As everywhere in ipckit, `send`/`receive` return Promises and never
 * block the event loop, `trySend`/`tryReceive` never wait
 * (`Deno.errors.WouldBlock`), and `sendSync`/`receiveSync` block the
 * calling thread. See the module doc for how an async receive waits.
 *
 * @example The notes' structured messages: id, type, data
 * ```ts
 * import { SysvMessageQueue } from "@ipckit/ipckit";
 *
 * type Order = { id: number; item: string };
 * // A key made from a file, as C's ftok("/some/file", 7) makes it.
 * const file = Deno.makeTempFileSync();
 * using orders = SysvMessageQueue.open<Order>({ path: file, id: 7 }, {
 *   create: true,
 *   unlinkOnClose: true,
 * });
 * await orders.send({ id: 1, item: "tea" }, { type: 2 });
 * const { value, type } = await orders.receive({ type: 2, timeout: 1000 });
 * console.log(value.item, type); // tea 2
 * Deno.removeSync(file);
 * ```
 *
 * @category System V IPC
 */
export class SysvMessageQueue<T = unknown>
  implements Channel<T, SysvMessage<T>>, AsyncDisposable {
  #id: number;
  #key: number;
  #what: string;
  #codec: Codec<T>;
  #canRead: boolean;
  #canWrite: boolean;
  #unlinkOnClose: boolean;
  // No safety net (Lifecycle.guard): a queue id is not a resource this
  // process holds, so a dropped handle leaves nothing to release.
  #life: Lifecycle;
  #closing = new AbortController();
  #group: () => PollGroup;
  #receiveSpinner: Spinner;
  #sendSpinner: Spinner;
  #receiveBuffer: Uint8Array<ArrayBuffer>;
  /** The kernel's msgmax when /proc/sys/kernel may be read, read once at open. */
  #msgmax: number | undefined;
  #senders = 0;

  private constructor(
    id: number,
    key: number,
    what: string,
    options: SysvMessageQueueOptions<T>,
    spin: number,
  ) {
    this.#id = id;
    this.#key = key;
    this.#what = what;
    this.#life = new Lifecycle(what);
    this.#codec = options.codec ?? codecs.json<T>();
    this.#canRead = options.read ?? true;
    this.#canWrite = options.write ?? true;
    this.#unlinkOnClose = options.unlinkOnClose ?? false;
    this.#receiveSpinner = new Spinner(spin);
    this.#sendSpinner = new Spinner(spin);
    const groupKey = `sysv-msg:${id}`;
    this.#group = () => pollGroup(groupKey);
    this.#msgmax = readSysvLimit("msgmax")?.[0];
    this.#receiveBuffer = messageBuffer(
      this.#canRead ? this.#msgmax ?? _DEFAULT_MSGMAX : 0,
    );
  }

  /**
   * Opens (or with `create`, creates) the queue of `key`: a number, ftok's
   * `{ path, id }`, or `"private"` for a new queue only its id reaches.
   *
   * @throws {TypeError} for an invalid key or option, before any system call
   * @throws {RangeError} for `maxBytes` above the kernel's `msgmnb`, naming the limit
   * @throws {Deno.errors.NotCapable} without `--allow-read`/`--allow-write` on `/proc/sysvipc/msg`
   * @throws {Deno.errors.NotFound} when no queue has the key and `create` is not set
   * @throws {Deno.errors.AlreadyExists} with `create` and `exclusive` when it exists
   * @throws {Deno.errors.PermissionDenied} with `create` when an existing
   * queue belongs to another user or has a wider mode (see `adopt`)
   *
   * @example
   * ```ts
   * import { SysvMessageQueue } from "@ipckit/ipckit";
   *
   * using queue = SysvMessageQueue.open<string>("private", {
   *   create: true,
   *   maxBytes: 4096,
   *   unlinkOnClose: true,
   * });
   * console.log(queue.attributes().maxBytes); // 4096
   * ```
   */
  static open<T = unknown>(
    key: SysvKey,
    options: SysvMessageQueueOptions<T> = {},
  ): SysvMessageQueue<T> {
    const request = checkSysvOpen("sysv-msg", key, options, _OPEN_KEYS);
    const { checked, action, create, unlinkOnClose } = request;
    const { read, write } = checkDirections(options, action);
    const spin = checkSpinMicros(options.spin, action);
    if (options.maxBytes !== undefined && !create) {
      throw new TypeError(`Cannot ${action}: maxBytes needs create`);
    }
    const maxBytes = _checkMaxBytes(options.maxBytes, action);

    const accesses: Access[] = [];
    if (read) accesses.push("read");
    if (write || create || unlinkOnClose) accesses.push("write");
    requireSysvPermissions("sysv-msg", accesses);
    const number = resolveKey(checked, SYSV_KIND_FACTS["sysv-msg"].label);
    const opening = `open ${describeSysv("sysv-msg", checked, undefined)}`;

    const got = getTracked(
      (flags) => msgget(number, flags),
      (errno, reason) => systemError("msgget", opening, errno, reason),
      request,
    );
    const { id, created } = got;
    settleOrRemove("sysv-msg", got, () => {
      if (create && !created) {
        const status = msgStat(id);
        if (typeof status === "number") {
          throw idError("msgctl", opening, -status);
        }
        requireSysvAdoptable(status.perm, request, "msgget", opening);
      }
      if (created && maxBytes !== undefined) {
        const result = msgSetQbytes(id, maxBytes);
        if (result < 0) {
          throw systemError(
            "msgctl",
            opening,
            -result,
            -result === ERRNO.EPERM
              ? `maxBytes ${maxBytes} is above the kernel's msgmnb, which only a privileged process may exceed`
              : undefined,
          );
        }
      }
    });
    return new SysvMessageQueue<T>(
      id,
      number,
      describeSysv("sysv-msg", checked, id),
      options,
      spin,
    );
  }

  /** The queue's id (what `ipcs -q` shows as msqid). */
  get id(): number {
    return this.#id;
  }

  /** The queue's key; 0 for a private queue. */
  get key(): number {
    return this.#key;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * Reads the queue's state from the kernel: messages and bytes waiting,
   * its capacity, the last pids and times, owner and mode.
   *
   * @throws {Deno.errors.NotFound} when the queue was removed
   * @throws {Deno.errors.NotCapable} without `--allow-read=/proc/sysvipc`
   *
   * @example
   * ```ts
   * import { SysvMessageQueue } from "@ipckit/ipckit";
   *
   * using queue = SysvMessageQueue.open<string>("private", {
   *   create: true,
   *   unlinkOnClose: true,
   * });
   * queue.trySend("job");
   * const { messages, lastSendPid } = queue.attributes();
   * console.log(messages, lastSendPid === Deno.pid); // 1 true
   * ```
   */
  attributes(): SysvQueueAttributes {
    this.#life.check("read attributes of");
    requireSysvPermissions("sysv-msg", ["read"]);
    const status = this.#stat(`read attributes of ${this.#what}`);
    const when = (seconds: number) =>
      seconds === 0 ? undefined : new Date(seconds * 1000);
    return {
      key: status.perm.key,
      id: this.#id,
      messages: status.qnum,
      bytes: status.cbytes,
      maxBytes: status.qbytes,
      lastSendPid: status.lspid,
      lastReceivePid: status.lrpid,
      lastSend: when(status.stime),
      lastReceive: when(status.rtime),
      changed: new Date(status.ctime * 1000),
      uid: status.perm.uid,
      creatorUid: status.perm.cuid,
      mode: status.perm.mode,
    };
  }

  /**
   * Sends a value without waiting.
   *
   * @throws {Deno.errors.WouldBlock} when the queue is full
   * @throws {RangeError} for a type below 1, or a message above the kernel's
   * `msgmax` or the queue's `maxBytes` (nothing is sent)
   *
   * @example
   * ```ts
   * import { SysvMessageQueue } from "@ipckit/ipckit";
   *
   * using queue = SysvMessageQueue.open<string>("private", {
   *   create: true,
   *   unlinkOnClose: true,
   * });
   * queue.trySend("job", { type: 3 });
   * ```
   */
  trySend(value: T, options: Pick<SysvSendOptions, "type"> = {}): void {
    checkOptionKeys(options, _TRY_SEND_KEYS, `send to ${this.#what}`);
    const message = this.#encode(value, options.type);
    const errno = this.#sendOnce(message);
    if (errno !== 0) throw this.#sendError(errno, message);
  }

  /**
   * Sends a value, waiting without blocking the event loop while the queue
   * is full.
   *
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   * @throws {Deno.errors.BadResource} when the queue is closed meanwhile
   * @throws {Deno.errors.NotFound} when the queue is removed meanwhile
   * @throws {RangeError} for a type below 1, or a message too large (see `trySend`)
   *
   * @example
   * ```ts
   * import { SysvMessageQueue } from "@ipckit/ipckit";
   *
   * using queue = SysvMessageQueue.open<string>("private", {
   *   create: true,
   *   unlinkOnClose: true,
   * });
   * await queue.send("job", { type: 2, timeout: 500 });
   * ```
   */
  async send(value: T, options: SysvSendOptions = {}): Promise<void> {
    checkOptionKeys(options, _SEND_KEYS, `send to ${this.#what}`);
    const message = this.#encode(value, options.type);
    const plan = this.#sendPlan(message, options);
    const waiter = this.#group().waiter(`send:${this.#senders++}`, plan);
    let errno: number;
    try {
      errno = await retryAsync(plan, waiter.park);
    } finally {
      waiter.end();
    }
    if (errno !== 0) throw this.#sendError(errno, message);
  }

  /**
   * Sends a value, blocking the calling thread while the queue is full
   * (for Workers and scripts). Without a timeout it blocks in `msgsnd`;
   * with one it retries on a backing-off sleep (1 ms to 32 ms).
   *
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   *
   * @example
   * ```ts
   * import { SysvMessageQueue } from "@ipckit/ipckit";
   *
   * using queue = SysvMessageQueue.open<string>("private", {
   *   create: true,
   *   unlinkOnClose: true,
   * });
   * queue.sendSync("job", { type: 1, timeout: 100 });
   * ```
   */
  sendSync(
    value: T,
    options: Pick<SysvSendOptions, "type" | "timeout"> = {},
  ): void {
    checkOptionKeys(options, _SEND_SYNC_KEYS, `send to ${this.#what}`);
    const message = this.#encode(value, options.type);
    const plan = this.#sendPlan(message, options);
    const errno = retrySync(
      plan,
      this.#blocker(plan.deadline, () => this.#sendOnce(message, 0)),
    );
    if (errno !== 0) throw this.#sendError(errno, message);
  }

  /**
   * Receives a message without waiting.
   *
   * @throws {Deno.errors.WouldBlock} when no message of the type asked for is waiting
   * @throws {DecodeError} when the message cannot be decoded; it is consumed,
   * and its bytes are in the error
   *
   * @example
   * ```ts
   * import { SysvMessageQueue } from "@ipckit/ipckit";
   *
   * using queue = SysvMessageQueue.open<string>("private", {
   *   create: true,
   *   unlinkOnClose: true,
   * });
   * queue.trySend("later", { type: 7 });
   * queue.trySend("sooner", { type: 4 });
   * const { value, type } = queue.tryReceive({ type: -5 }); // the lowest type up to 5
   * console.log(value, type); // sooner 4
   * ```
   */
  tryReceive(
    options: Pick<SysvReceiveOptions, "type" | "except"> = {},
  ): SysvMessage<T> {
    checkOptionKeys(options, _TRY_RECEIVE_KEYS, `receive from ${this.#what}`);
    const selection = this.#selection(options);
    return this.#received(this.#receiveOnce(selection, IPC.NOWAIT));
  }

  /**
   * Receives the message `type` selects (see {@linkcode SysvReceiveOptions}),
   * waiting without blocking the event loop until there is one.
   *
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   * @throws {Deno.errors.BadResource} when the queue is closed meanwhile
   * @throws {Deno.errors.NotFound} when the queue is removed meanwhile
   * @throws {DecodeError} when the message cannot be decoded (see `tryReceive`)
   *
   * @example
   * ```ts
   * import { SysvMessageQueue } from "@ipckit/ipckit";
   *
   * using queue = SysvMessageQueue.open<string>("private", {
   *   create: true,
   *   unlinkOnClose: true,
   * });
   * setTimeout(() => queue.trySend("job", { type: 2 }), 10);
   * const { value } = await queue.receive({ type: 2, timeout: 1000 });
   * console.log(value); // job
   * ```
   */
  async receive(options: SysvReceiveOptions = {}): Promise<SysvMessage<T>> {
    checkOptionKeys(options, _RECEIVE_KEYS, `receive from ${this.#what}`);
    const selection = this.#selection(options);
    const plan = this.#receivePlan(selection, options);
    const waiter = this.#group().waiter(
      `receive:${selection.type}:${selection.flags}`,
      plan,
    );
    let result: SysvMessage<T> | number;
    try {
      result = await retryAsync(plan, waiter.park);
    } finally {
      waiter.end();
    }
    return this.#received(result);
  }

  /**
   * Receives a message, blocking the calling thread until there is one (for
   * Workers and scripts). Without a timeout it blocks in `msgrcv`; with one
   * it retries on a backing-off sleep (1 ms to 32 ms).
   *
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   *
   * @example
   * ```ts
   * import { SysvMessageQueue } from "@ipckit/ipckit";
   *
   * using queue = SysvMessageQueue.open<string>("private", {
   *   create: true,
   *   unlinkOnClose: true,
   * });
   * queue.trySend("job", { type: 1 });
   * const { value } = queue.receiveSync({ type: 1, timeout: 1000 });
   * console.log(value); // job
   * ```
   */
  receiveSync(
    options: Pick<SysvReceiveOptions, "type" | "except" | "timeout"> = {},
  ): SysvMessage<T> {
    checkOptionKeys(options, _RECEIVE_SYNC_KEYS, `receive from ${this.#what}`);
    const selection = this.#selection(options);
    const plan = this.#receivePlan(selection, options);
    const result = retrySync(
      plan,
      this.#blocker(plan.deadline, () => this.#receiveOnce(selection, 0)),
    );
    return this.#received(result);
  }

  /**
   * Waits until the queue holds a message of any type, without taking it
   * (see `Selectable.ready`); `select()` is built on it.
   *
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   * @throws {Deno.errors.BadResource} when the queue is closed meanwhile
   *
   * @example
   * ```ts
   * import { SysvMessageQueue } from "@ipckit/ipckit";
   *
   * using queue = SysvMessageQueue.open<string>("private", {
   *   create: true,
   *   unlinkOnClose: true,
   * });
   * queue.trySend("job");
   * await queue.ready({ timeout: 1000 });
   * console.log(queue.attributes().messages); // 1: ready() took nothing
   * ```
   */
  async ready(options: WaitOptions = {}): Promise<void> {
    const action = `wait for a message on ${this.#what}`;
    checkOptionKeys(options, WAIT_KEYS, action);
    this.#checkReadable();
    const deadline = deadlineOf(options);
    const plan: RetryPlan<boolean> = {
      attempt: () => {
        this.#checkReadable();
        return this.#stat(action).qnum > 0;
      },
      wouldBlock: (has) => !has,
      spinner: this.#receiveSpinner,
      deadline,
      signal: untilClosed(options.signal, this.#closing.signal),
      action,
    };
    const waiter = this.#group().waiter("ready", plan);
    try {
      await retryAsync(plan, waiter.park);
    } finally {
      waiter.end();
    }
  }

  /**
   * Receives messages of any type until the queue is closed. A message
   * that cannot be decoded ends the loop with its `DecodeError`.
   *
   * @example
   * ```ts
   * import { SysvMessageQueue } from "@ipckit/ipckit";
   *
   * using queue = SysvMessageQueue.open<string>("private", {
   *   create: true,
   *   unlinkOnClose: true,
   * });
   * queue.trySend("first", { type: 1 });
   * queue.trySend("last", { type: 2 });
   * for await (const { value, type } of queue) {
   *   console.log(type, value); // 1 first, then 2 last
   *   if (value === "last") break;
   * }
   * ```
   */
  [Symbol.asyncIterator](): AsyncGenerator<SysvMessage<T>, void> {
    return receiveUntilEnd(
      () => this.receive(),
      () => this.#life.closed,
      false,
    );
  }

  /**
   * Removes the queue (`IPC_RMID`): its messages are discarded, and every
   * process waiting on it, here or elsewhere, fails with `NotFound`.
   *
   * @throws {Deno.errors.NotCapable} without `--allow-write=/proc/sysvipc`
   * @throws {Deno.errors.NotFound} when it was removed already
   * @throws {Deno.errors.PermissionDenied} when you are neither its owner nor its creator
   *
   * @example
   * ```ts
   * import { SysvMessageQueue } from "@ipckit/ipckit";
   *
   * using queue = SysvMessageQueue.open("private", { create: true });
   * queue.remove(); // gone for every process, its messages with it
   * ```
   */
  remove(): void {
    removeSysvId("sysv-msg", this.#id, this.#what);
    this.#group().poke();
  }

  /**
   * Closes the handle; idempotent. Pending calls reject with
   * `Deno.errors.BadResource`. The queue stays (System V queues live until
   * removed), unless the handle was opened with `unlinkOnClose: true`: then
   * it is removed, as {@linkcode SysvMessageQueue.remove} does (one
   * removed already counts as done).
   *
   * @example
   * ```ts
   * import { SysvMessageQueue } from "@ipckit/ipckit";
   *
   * const queue = SysvMessageQueue.open("private", {
   *   create: true,
   *   unlinkOnClose: true,
   * });
   * queue.close();
   * queue.close(); // no-op
   * ```
   */
  close(): void {
    this.#life.close(() => {
      this.#closing.abort(this.#life.closedError());
      if (this.#unlinkOnClose) unlinkQuietly(() => this.remove());
    });
  }

  /** Closes the handle; see {@linkcode SysvMessageQueue.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes the handle; see {@linkcode SysvMessageQueue.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.#life.closeAsync(() => this.close());
  }

  #checkReadable(): void {
    this.#life.check("receive from");
    if (!this.#canRead) {
      throw new TypeError(
        `Cannot receive from ${this.#what}: it was opened with read: false`,
      );
    }
  }

  #stat(action: string): MsqidDs {
    const status = msgStat(this.#id);
    if (typeof status === "number") throw idError("msgctl", action, -status);
    return status;
  }

  /** The bytes of a message and its type, checked before any system call. */
  #encode(value: T, type: unknown): _Outgoing {
    this.#life.check("send to");
    if (!this.#canWrite) {
      throw new TypeError(
        `Cannot send to ${this.#what}: it was opened with write: false`,
      );
    }
    const mtype = type ?? 1;
    if (
      typeof mtype !== "number" || !Number.isSafeInteger(mtype) || mtype < 1
    ) {
      throw new RangeError(
        `Cannot send to ${this.#what}: type must be an integer from 1 to ${SYSV_MAX_MESSAGE_TYPE}, got ${
          String(mtype)
        } (0 and below select messages when receiving, they are no type)`,
      );
    }
    const bytes = this.#codec.encode(value);
    const msgmax = this.#msgmax;
    if (msgmax !== undefined && bytes.byteLength > msgmax) {
      throw new RangeError(
        `Cannot send to ${this.#what}: the message is ${bytes.byteLength} bytes, above the kernel limit ${
          describeLimit("msgmax", msgmax)
        }`,
      );
    }
    const buffer = messageBuffer(bytes.byteLength);
    messageText(buffer, bytes.byteLength).set(bytes);
    return { buffer, type: BigInt(mtype), length: bytes.byteLength };
  }

  /** One msgsnd; 0 or the errno. A send that is never possible is a RangeError. */
  #sendOnce(message: _Outgoing, flags: number = IPC.NOWAIT): number {
    this.#life.check("send to");
    const result = msgsnd(
      this.#id,
      message.buffer,
      message.type,
      message.length,
      flags,
    );
    if (result === 0) {
      this.#group().poke();
      return 0;
    }
    if (-result === ERRNO.EAGAIN) {
      // Full, or never fits: a message above msg_qbytes waits for ever.
      const status = msgStat(this.#id);
      if (typeof status !== "number" && message.length > status.qbytes) {
        throw new RangeError(
          `Cannot send to ${this.#what}: the message is ${message.length} bytes, and the queue holds at most ${status.qbytes} (its maxBytes, msg_qbytes)`,
        );
      }
    }
    return -result;
  }

  #sendPlan(message: _Outgoing, options: WaitOptions): RetryPlan<number> {
    return {
      attempt: () => this.#sendOnce(message),
      wouldBlock: (errno) => errno === ERRNO.EAGAIN,
      spinner: this.#sendSpinner,
      deadline: deadlineOf(options),
      signal: untilClosed(options.signal, this.#closing.signal),
      action: `send to ${this.#what}`,
    };
  }

  #sendError(errno: number, message: _Outgoing): Error {
    const action = `send to ${this.#what}`;
    if (errno === ERRNO.EAGAIN) {
      return systemError("msgsnd", action, errno, "the queue is full");
    }
    if (errno === ERRNO.EINVAL && typeof msgStat(this.#id) !== "number") {
      // The queue is there, so the kernel refused the size.
      return systemError(
        "msgsnd",
        action,
        errno,
        `the kernel refused a message of ${message.length} bytes: it is above /proc/sys/kernel/msgmax (add --allow-read=/proc/sys/kernel to have it checked first)`,
      );
    }
    return idError("msgsnd", action, errno);
  }

  /** Checks `{ type, except }` and turns it into msgrcv's type and flags. */
  #selection(options: SysvReceiveOptions): _Selection {
    this.#checkReadable();
    const { type = 0, except } = options;
    const action = `receive from ${this.#what}`;
    if (typeof type !== "number" || !Number.isSafeInteger(type)) {
      throw new RangeError(
        `Cannot ${action}: type must be a safe integer, got ${String(type)}`,
      );
    }
    checkFlag(except, "except", action);
    if (except && type <= 0) {
      throw new TypeError(
        `Cannot ${action}: except needs a positive type (the type to skip), got ${type}`,
      );
    }
    return { type: BigInt(type), flags: except ? IPC.MSG_EXCEPT : 0 };
  }

  /**
   * One msgrcv, decoded in the same synchronous step (the buffer is the
   * handle's): the message, or -errno. A message larger than the buffer
   * (msgmax raised since, unknown here) grows the buffer to the queue's
   * capacity and is read again: without MSG_NOERROR it stays queued.
   */
  #receiveOnce(
    selection: _Selection,
    flags: number,
  ): SysvMessage<T> | number {
    this.#checkReadable();
    for (;;) {
      const result = msgrcv(
        this.#id,
        this.#receiveBuffer,
        selection.type,
        selection.flags | flags,
      );
      if (typeof result === "number") {
        if (-result === ERRNO.E2BIG) {
          const { qbytes } = this.#stat(`receive from ${this.#what}`);
          if (qbytes > messageCapacity(this.#receiveBuffer)) {
            this.#receiveBuffer = messageBuffer(qbytes);
            continue;
          }
        }
        // No message of that type: ENOMSG with IPC_NOWAIT, as good as EAGAIN.
        return -result === ERRNO.ENOMSG ? -ERRNO.EAGAIN : result;
      }
      this.#group().poke();
      const bytes = messageText(this.#receiveBuffer, result.length);
      return { value: this.#codec.decode(bytes), type: Number(result.type) };
    }
  }

  #receivePlan(
    selection: _Selection,
    options: WaitOptions,
  ): RetryPlan<SysvMessage<T> | number> {
    return {
      attempt: () => this.#receiveOnce(selection, IPC.NOWAIT),
      wouldBlock: (result) => result === -ERRNO.EAGAIN,
      spinner: this.#receiveSpinner,
      deadline: deadlineOf(options),
      signal: untilClosed(options.signal, this.#closing.signal),
      action: `receive from ${this.#what}`,
    };
  }

  #received(result: SysvMessage<T> | number): SysvMessage<T> {
    if (typeof result !== "number") return result;
    const action = `receive from ${this.#what}`;
    if (-result === ERRNO.EAGAIN) {
      return _throw(
        systemError(
          "msgrcv",
          action,
          ERRNO.EAGAIN,
          "no message of the type asked for is waiting",
        ),
      );
    }
    return _throw(idError("msgrcv", action, -result));
  }

  /**
   * The block of a `*Sync` call: without a deadline, the blocking call
   * itself (its result is final); with one, a backing-off sleep.
   */
  #blocker<R>(deadline: Deadline, blocking: () => R): () => R | undefined {
    if (deadline.at === Infinity) return blocking;
    const sleep = backoffSleeper(deadline);
    return () => {
      sleep();
      return undefined;
    };
  }
}

interface _Outgoing {
  buffer: Uint8Array<ArrayBuffer>;
  type: bigint;
  length: number;
}

interface _Selection {
  type: bigint;
  flags: number;
}

function _throw(error: Error): never {
  throw error;
}

function _checkMaxBytes(value: unknown, action: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(
      `Cannot ${action}: maxBytes must be a positive integer, got ${
        String(value)
      }`,
    );
  }
  const msgmnb = readSysvLimit("msgmnb")?.[0];
  if (msgmnb !== undefined && value > msgmnb) {
    throw new RangeError(
      `Cannot ${action}: maxBytes is ${value}, above the kernel limit ${
        describeLimit("msgmnb", msgmnb)
      }`,
    );
  }
  return value;
}
