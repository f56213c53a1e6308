/**
 * POSIX message queues (`mq_open`): typed, prioritised messages between
 * unrelated processes on one machine, with kernel-kept message boundaries.
 *
 * Permissions: opening for receiving needs `--allow-read=/dev/mqueue`,
 * for sending, creating or unlinking `--allow-write=/dev/mqueue`, and every
 * call needs `--allow-ffi`. Reading `/proc/sys/fs/mqueue` (`--allow-read`)
 * lets ipckit check sizes against the system limits before calling the kernel.
 *
 * @example A queue in one process
 * ```ts
 * import { MessageQueue } from "@ipckit/ipckit/message-queue";
 *
 * await using queue = MessageQueue.open<{ job: string }>(`/jobs-${Deno.pid}`, {
 *   create: true,
 *   unlinkOnClose: true, // remove the name when the queue closes
 * });
 * await queue.send({ job: "resize" }, { priority: 5 });
 * const { value, priority } = await queue.receive({ timeout: 1000 });
 * console.log(value.job, priority); // resize 5
 * ```
 *
 * @module
 */

import { cString, O, requireSymbol } from "../ffi/c.ts";
import { ERRNO, retryEintr, retryTransfer } from "../ffi/errno.ts";
import { mqAttributes, mqCreateAttributes } from "../ffi/mqueue.ts";
import { statFd } from "../ffi/stat.ts";
import type { Channel, Message, WaitOptions } from "./channel.ts";
import { type Codec, codecs } from "./codec.ts";
import {
  checkCreateFlags,
  checkDirections,
  checkMode,
  checkOptionKeys,
  optionKeys,
} from "./_common/checks.ts";
import { systemError, timeoutError } from "./_common/system_error.ts";
import { Lifecycle, unlinkQuietly } from "./_common/lifecycle.ts";
import { receiveUntilEnd } from "./_common/iterate.ts";
import {
  defaultMqLimit,
  MQ_PROC_DIR,
  readMqLimit,
} from "./_kernel/mq_limits.ts";
import {
  checkAdoptOption,
  openTracked,
  requireAdoptable,
} from "./_kernel/adoption.ts";
import { validateIpcName } from "./_kernel/names.ts";
import { MQUEUE_DIR } from "./_kernel/objects.ts";
import { type Access, requirePermissions } from "./_kernel/permissions.ts";
import { deadlineOf, SYNC_WAIT_KEYS, WAIT_KEYS } from "./_wait/deadline.ts";
import { type Direction, pollSync } from "./_wait/poll_sync.ts";
import { reactor } from "./_wait/reactor.ts";
import {
  type ParkBounds,
  retryAsync,
  type RetryPlan,
  retrySync,
} from "./_wait/retry.ts";
import { checkSpinMicros, Spinner } from "./_wait/spin.ts";
import { markPassable, registerAdopter } from "./_socket/passing.ts";
import { accessModeOf } from "../ffi/socket.ts";

/**
 * Priorities run from 0 to this value minus one (Linux's MQ_PRIO_MAX).
 *
 * @category Message queues
 */
export const MQ_PRIO_MAX = 32768;

/**
 * How to open a message queue.
 *
 * @example A queue this process only receives from
 * ```ts
 * import type { MessageQueueOptions } from "@ipckit/ipckit";
 *
 * const options: MessageQueueOptions<string> = {
 *   create: true,
 *   maxMessages: 10,
 *   messageSize: 1024,
 *   read: true,
 *   write: false,
 * };
 * ```
 *
 * @category Message queues
 */
export interface MessageQueueOptions<T> {
  /** Create the queue if it does not exist. Default `false`. */
  create?: boolean;
  /** With `create`: fail with `AlreadyExists` if the queue exists. Default `false`. */
  exclusive?: boolean;
  /**
   * With `create`, which existing queue to use. `"owned"` (default): only
   * one owned by this process's effective uid whose mode grants nothing
   * beyond `mode`; any other fails with `PermissionDenied` naming its owner
   * and mode (another user may have created it first to read what this
   * process sends). `"any-owner"`: any queue this process may open. Cannot
   * be combined with `exclusive`.
   */
  adopt?: "owned" | "any-owner";
  /** Permission bits of a created queue. Default `0o600`. */
  mode?: number;
  /**
   * Capacity of a created queue, in messages. Default: the system's
   * `msg_default`. Must not exceed `/proc/sys/fs/mqueue/msg_max`: ipckit
   * holds privileged processes to that limit too, so code behaves the same
   * for every user.
   */
  maxMessages?: number;
  /**
   * Largest message of a created queue, in bytes. Default: the system's
   * `msgsize_default`. Must not exceed `/proc/sys/fs/mqueue/msgsize_max`.
   */
  messageSize?: number;
  /** How values become bytes. Default `codecs.json<T>()`. */
  codec?: Codec<T>;
  /** Open for receiving. Default `true`. */
  read?: boolean;
  /** Open for sending. Default `true`. */
  write?: boolean;
  /** Remove the queue's name when this handle closes. Default `false`. */
  unlinkOnClose?: boolean;
  /**
   * Microseconds that a waiting `send`/`receive` (async or sync) retries the
   * non-blocking call before it sleeps, 0 to 1000. Default 50. Spinning saves
   * the wake-ups of a sleep when the peer answers quickly (request/response;
   * for async calls, two cross-thread wake-ups through the thread pool), at
   * the price of up to that much CPU once per wait (more, up to 10 times,
   * when recent sleeps ended soon after the spin gave up). Async calls yield a
   * microtask between attempts, so promise continuations keep running, but
   * timers and I/O callbacks wait up to that long. 0 never spins.
   */
  spin?: number;
}

/**
 * A received message and the priority it was sent with.
 *
 * @example What a receive resolves to
 * ```ts
 * import type { QueueMessage } from "@ipckit/ipckit";
 *
 * const message: QueueMessage<string> = { value: "hello", priority: 0 };
 * ```
 *
 * @category Message queues
 */
export interface QueueMessage<T> extends Message<T> {
  /** The priority the sender gave, 0 (lowest) to 32767. */
  priority: number;
}

/**
 * Options for sending: a priority, and for the waiting forms a timeout and a
 * signal.
 *
 * @example An urgent send that waits at most 100 ms
 * ```ts
 * import type { SendOptions } from "@ipckit/ipckit";
 *
 * const urgent: SendOptions = { priority: 10, timeout: 100 };
 * ```
 *
 * @category Message queues
 */
export interface SendOptions extends WaitOptions {
  /** 0 (the default, lowest) to 32767. Higher priorities are received first. */
  priority?: number;
}

/**
 * A queue's attributes as the kernel reports them.
 *
 * @example Whether a queue is full
 * ```ts
 * import type { QueueAttributes } from "@ipckit/ipckit";
 *
 * function isFull(attributes: QueueAttributes): boolean {
 *   return attributes.currentMessages === attributes.maxMessages;
 * }
 * ```
 *
 * @category Message queues
 */
export interface QueueAttributes {
  /** Capacity in messages. */
  maxMessages: number;
  /** Largest message in bytes. */
  messageSize: number;
  /** Messages waiting right now. */
  currentMessages: number;
}

interface _Handle {
  fd: number;
}

const _OPEN_KEYS = optionKeys<MessageQueueOptions<unknown>>({
  create: true,
  exclusive: true,
  adopt: true,
  mode: true,
  maxMessages: true,
  messageSize: true,
  codec: true,
  read: true,
  write: true,
  unlinkOnClose: true,
  spin: true,
});
const _TRY_SEND_KEYS = optionKeys<{ priority?: number }>({ priority: true });
const _SEND_KEYS = optionKeys<SendOptions>({
  priority: true,
  timeout: true,
  signal: true,
});
const _SEND_SYNC_KEYS = optionKeys<{ priority?: number; timeout?: number }>({
  priority: true,
  timeout: true,
});

/**
 * A POSIX message queue carrying values of type `T`.
 *
 * Every waiting operation has three forms: `send`/`receive` return Promises
 * and never block the event loop; `trySend`/`tryReceive` never wait and throw
 * `Deno.errors.WouldBlock`; `sendSync`/`receiveSync` block the calling thread
 * like C (for Workers and scripts).
 *
 * @example Producer and consumer sharing a queue
 * ```ts
 * import { MessageQueue } from "@ipckit/ipckit";
 *
 * using queue = MessageQueue.open<number>(`/numbers-${Deno.pid}`, {
 *   create: true,
 *   unlinkOnClose: true,
 * });
 * queue.trySend(1);
 * await queue.send(2, { priority: 1 });
 * for await (const { value, priority } of queue) {
 *   console.log(value, priority); // 2 1, then 1 0
 *   if (value === 1) break;
 * }
 * ```
 *
 * @category Message queues
 */
export class MessageQueue<T = unknown>
  implements Channel<T, QueueMessage<T>>, AsyncDisposable {
  #name: string;
  #what: string;
  #handle: _Handle;
  #codec: Codec<T>;
  #canRead: boolean;
  #canWrite: boolean;
  #unlinkOnClose: boolean;
  #messageSize: number;
  #life: Lifecycle;
  #receiveSpinner: Spinner;
  #sendSpinner: Spinner;
  // Allocated once per queue: every message is received into the same
  // buffer and decoded before anything else can run (#receiveAndDecode).
  #receiveBuffer: Uint8Array<ArrayBuffer>;
  #receiveLength: bigint;
  #priority = new Uint32Array(1);

  private constructor(
    name: string,
    fd: number,
    messageSize: number,
    options: MessageQueueOptions<T>,
  ) {
    this.#name = name;
    this.#what = `message queue "${name}"`;
    this.#life = new Lifecycle(this.#what);
    const handle = { fd };
    this.#handle = handle;
    this.#codec = options.codec ?? codecs.json<T>();
    this.#canRead = options.read ?? true;
    this.#canWrite = options.write ?? true;
    this.#unlinkOnClose = options.unlinkOnClose ?? false;
    this.#messageSize = messageSize;
    this.#receiveBuffer = new Uint8Array(this.#canRead ? messageSize : 0);
    this.#receiveLength = BigInt(this.#receiveBuffer.byteLength);
    const spin = checkSpinMicros(options.spin, `open ${this.#what}`);
    this.#receiveSpinner = new Spinner(spin);
    this.#sendSpinner = new Spinner(spin);
    // The safety net for a queue dropped without close().
    this.#life.guard(this, () => {
      if (handle.fd >= 0) requireSymbol("mq_close")(handle.fd);
    });
    // Can be sent over a seqpacket socket (socket.ts): a queue descriptor
    // is a file descriptor on Linux.
    markPassable(this, () => ({
      kind: "message-queue",
      fd: handle.fd,
      meta: { name },
    }));
  }

  static {
    // A queue whose descriptor arrived over a socket: the descriptor is the
    // capability (the sender had the access), so the name is not opened
    // again and no path permission is asked; it reads and writes as the
    // sender's descriptor was opened to, with the JSON codec.
    registerAdopter("message-queue", (fd, meta) => {
      const name = typeof meta.name === "string" ? meta.name : "";
      const what = `message queue "${name}"`;
      const access = accessModeOf(fd);
      if (access < 0) {
        throw systemError("fcntl", `take ${what} that arrived`, -access);
      }
      const { messageSize } = _readAttributes(fd, what);
      return new MessageQueue<unknown>(name, fd, messageSize, {
        read: access !== O.WRONLY,
        write: access !== O.RDONLY,
      });
    });
  }

  /**
   * Opens (or with `create`, creates) the queue `name`, e.g. `"/jobs"`.
   *
   * Cleanup: the queue stays after its handles close, for other
   * processes, unless this handle is opened with `unlinkOnClose: true`
   * (the one rule of every named object; see the README's "Cleaning up").
   *
   * @throws {TypeError} for an invalid name or option, before any system call
   * @throws {RangeError} for sizes beyond the system limits, naming the limit
   * @throws {Deno.errors.NotCapable} without the read/write permission on `/dev/mqueue/<name>`
   * @throws {Deno.errors.NotFound} when the queue does not exist and `create` is not set
   * @throws {Deno.errors.AlreadyExists} with `create` and `exclusive` when it exists
   * @throws {Deno.errors.PermissionDenied} with `create` when an existing
   * queue belongs to another user or has a wider mode (see `adopt`)
   * @throws {Deno.errors.NotSupported} where the OS has no POSIX message queues (macOS)
   *
   * @example Create a queue of 8 messages of up to 256 bytes
   * ```ts
   * import { MessageQueue } from "@ipckit/ipckit";
   *
   * using jobs = MessageQueue.open<string>(`/jobs-${Deno.pid}`, {
   *   create: true,
   *   maxMessages: 8,
   *   messageSize: 256,
   *   unlinkOnClose: true,
   * });
   * console.log(jobs.attributes().maxMessages); // 8
   * ```
   */
  static open<T = unknown>(
    name: string,
    options: MessageQueueOptions<T> = {},
  ): MessageQueue<T> {
    const action = `open message queue "${name}"`;
    checkOptionKeys(options, _OPEN_KEYS, action);
    const base = validateIpcName(name, "message queue");
    checkCreateFlags(options, action);
    const { read, write } = checkDirections(options, action);
    const mode = checkMode(
      options.mode ?? 0o600,
      `open message queue "${name}"`,
    );
    checkSpinMicros(options.spin, action);
    const adopt = checkAdoptOption(
      options.adopt,
      options.create,
      options.exclusive,
      action,
    );
    const attr = options.create ? _createAttributes(name, options) : undefined;

    const accesses: Access[] = [];
    if (read) accesses.push("read");
    if (write || options.create || options.unlinkOnClose) {
      accesses.push("write");
    }
    requirePermissions(accesses, `${MQUEUE_DIR}/${base}`, MQUEUE_DIR);

    const mqOpen = requireSymbol("mq_open");
    const flags = (read && write ? O.RDWR : write ? O.WRONLY : O.RDONLY) |
      O.NONBLOCK | O.CLOEXEC;
    const cName = cString(name);
    const { fd, created } = openTracked(
      (extra) =>
        retryEintr(() => mqOpen(cName, flags | extra, mode, attr ?? null)),
      (errno, reason) => _openError(name, errno, options, reason),
      options.create ?? false,
      options.exclusive ?? false,
    );

    let messageSize: number;
    try {
      if (options.create && !created) {
        // Checked on the descriptor: exactly the queue that was opened.
        const status = statFd(fd);
        if (typeof status === "number") {
          throw systemError("fstat", action, -status);
        }
        requireAdoptable(status, mode, adopt, "mq_open", action);
      }
      // An existing queue keeps the sizes it was created with: ask the kernel.
      messageSize = _readAttributes(fd, `message queue "${name}"`).messageSize;
    } catch (error) {
      requireSymbol("mq_close")(fd);
      throw error;
    }
    return new MessageQueue<T>(name, fd, messageSize, options);
  }

  /**
   * Removes the queue's name. Processes that have it open keep using it; the
   * kernel frees it when the last one closes.
   *
   * @throws {Deno.errors.NotFound} when no queue has that name
   * @throws {Deno.errors.NotCapable} without `--allow-write` on `/dev/mqueue/<name>`
   *
   * @example Remove a queue's name
   * ```ts
   * import { MessageQueue } from "@ipckit/ipckit";
   *
   * const name = `/jobs-${Deno.pid}`;
   * MessageQueue.open(name, { create: true }).close(); // the name stays
   * MessageQueue.unlink(name); // now it is gone
   * ```
   */
  static unlink(name: string): void {
    const base = validateIpcName(name, "message queue");
    requirePermissions(["write"], `${MQUEUE_DIR}/${base}`, MQUEUE_DIR);
    const mqUnlink = requireSymbol("mq_unlink");
    const cName = cString(name);
    const result = retryEintr(() => mqUnlink(cName));
    if (result < 0) {
      throw systemError("mq_unlink", `unlink message queue "${name}"`, -result);
    }
  }

  /** The queue's name, e.g. `"/jobs"`. */
  get name(): string {
    return this.#name;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /** The largest message this queue accepts, in bytes. */
  get messageSize(): number {
    return this.#messageSize;
  }

  /**
   * Reads the queue's current attributes from the kernel.
   *
   * @example How full a queue is
   * ```ts
   * import { MessageQueue } from "@ipckit/ipckit";
   *
   * using queue = MessageQueue.open<string>(`/jobs-${Deno.pid}`, {
   *   create: true,
   *   unlinkOnClose: true,
   * });
   * const { currentMessages, maxMessages } = queue.attributes();
   * console.log(`${currentMessages} of ${maxMessages} messages waiting`);
   * ```
   */
  attributes(): QueueAttributes {
    this.#life.check("read attributes of");
    return _readAttributes(this.#handle.fd, this.#what);
  }

  /**
   * Sends a value without waiting.
   *
   * @throws {Deno.errors.WouldBlock} when the queue is full
   * @throws {RangeError} when the encoded value exceeds `messageSize` (nothing is sent)
   *
   * @example Send only if there is room
   * ```ts
   * import { MessageQueue } from "@ipckit/ipckit";
   *
   * using queue = MessageQueue.open<string>(`/jobs-${Deno.pid}`, {
   *   create: true,
   *   unlinkOnClose: true,
   * });
   * try {
   *   queue.trySend("job", { priority: 1 });
   * } catch (error) {
   *   if (!(error instanceof Deno.errors.WouldBlock)) throw error;
   *   console.log("the queue is full");
   * }
   * ```
   */
  trySend(value: T, options: { priority?: number } = {}): void {
    checkOptionKeys(options, _TRY_SEND_KEYS, `send to ${this.#what}`);
    const bytes = this.#encode(value);
    const priority = _checkPriority(options.priority, this.#what);
    const errno = this.#sendOnce(bytes, priority);
    if (errno !== 0) throw this.#sendError(errno);
  }

  /**
   * Sends a value, waiting without blocking the event loop while the queue is
   * full.
   *
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   * @throws {RangeError} when the encoded value exceeds `messageSize` (nothing is sent)
   *
   * @example Send, waiting at most 500 ms for room
   * ```ts
   * import { MessageQueue } from "@ipckit/ipckit";
   *
   * using queue = MessageQueue.open<string>(`/jobs-${Deno.pid}`, {
   *   create: true,
   *   unlinkOnClose: true,
   * });
   * await queue.send("urgent", { priority: 9, timeout: 500 });
   * ```
   */
  async send(value: T, options: SendOptions = {}): Promise<void> {
    checkOptionKeys(options, _SEND_KEYS, `send to ${this.#what}`);
    const bytes = this.#encode(value);
    const priority = _checkPriority(options.priority, this.#what);
    const plan = this.#sendPlan(bytes, priority, options);
    const errno = await retryAsync(plan, () => this.#park("write", plan));
    if (errno !== 0) throw this.#sendError(errno);
  }

  /**
   * Sends a value, blocking the calling thread while the queue is full.
   * Meant for Workers and scripts; it stops the event loop while it waits.
   *
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   *
   * @example Send from a Worker or a script, blocking the thread
   * ```ts
   * import { MessageQueue } from "@ipckit/ipckit";
   *
   * using queue = MessageQueue.open<string>(`/jobs-${Deno.pid}`, {
   *   create: true,
   *   unlinkOnClose: true,
   * });
   * queue.sendSync("job", { timeout: 100 });
   * ```
   */
  sendSync(
    value: T,
    options: { priority?: number; timeout?: number } = {},
  ): void {
    checkOptionKeys(options, _SEND_SYNC_KEYS, `send to ${this.#what}`);
    const bytes = this.#encode(value);
    const priority = _checkPriority(options.priority, this.#what);
    const plan = this.#sendPlan(bytes, priority, options);
    const errno = retrySync(plan, () => this.#waitSync("write", plan));
    if (errno !== 0) throw this.#sendError(errno);
  }

  /**
   * Receives a message without waiting.
   *
   * @throws {Deno.errors.WouldBlock} when the queue is empty
   * @throws {DecodeError} when the message cannot be decoded; it is consumed,
   * its bytes are in the error, and the next call receives the next message
   *
   * @example Take a message if there is one
   * ```ts
   * import { MessageQueue } from "@ipckit/ipckit";
   *
   * using queue = MessageQueue.open<string>(`/jobs-${Deno.pid}`, {
   *   create: true,
   *   unlinkOnClose: true,
   * });
   * queue.trySend("job");
   * const { value } = queue.tryReceive();
   * console.log(value); // job
   * ```
   */
  tryReceive(): QueueMessage<T> {
    return this.#received(this.#receiveAndDecode());
  }

  /**
   * Receives the oldest message of the highest priority, waiting without
   * blocking the event loop while the queue is empty.
   *
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   * @throws {Deno.errors.BadResource} when the queue is closed meanwhile
   * @throws {DecodeError} when the message cannot be decoded (see `tryReceive`)
   *
   * @example Wait at most a second for a message
   * ```ts
   * import { MessageQueue } from "@ipckit/ipckit";
   *
   * using queue = MessageQueue.open<string>(`/jobs-${Deno.pid}`, {
   *   create: true,
   *   unlinkOnClose: true,
   * });
   * setTimeout(() => queue.trySend("late job", { priority: 3 }), 10);
   * const { value, priority } = await queue.receive({ timeout: 1000 });
   * console.log(value, priority); // late job 3
   * ```
   */
  async receive(options: WaitOptions = {}): Promise<QueueMessage<T>> {
    checkOptionKeys(options, WAIT_KEYS, `receive from ${this.#what}`);
    const plan = this.#receivePlan(options);
    const result = await retryAsync(plan, () => this.#park("read", plan));
    return this.#received(result);
  }

  /**
   * Waits until the queue holds a message, without taking it (see
   * `Selectable.ready`); `select()` is built on it. Another
   * receiver, in this process or another, may take that message first.
   *
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   * @throws {Deno.errors.BadResource} when the queue is closed meanwhile
   * @throws {TypeError} when the queue was opened with `read: false`
   *
   * @example Wait for a message without taking it
   * ```ts
   * import { MessageQueue } from "@ipckit/ipckit";
   *
   * using queue = MessageQueue.open<string>(`/jobs-${Deno.pid}`, {
   *   create: true,
   *   unlinkOnClose: true,
   * });
   * setTimeout(() => queue.trySend("job"), 10);
   * await queue.ready({ timeout: 1000 });
   * const { value } = queue.tryReceive(); // there is one, unless another receiver took it
   * console.log(value); // job
   * ```
   */
  async ready(options: WaitOptions = {}): Promise<void> {
    const action = `wait for a message on ${this.#what}`;
    checkOptionKeys(options, WAIT_KEYS, action);
    const plan: RetryPlan<boolean> = {
      attempt: () => {
        this.#checkReadable();
        return _readAttributes(this.#handle.fd, this.#what).currentMessages >
          0;
      },
      wouldBlock: (hasMessage) => !hasMessage,
      spinner: this.#receiveSpinner,
      deadline: deadlineOf(options, action),
      signal: options.signal,
      action,
    };
    await retryAsync(plan, () => this.#park("read", plan));
  }

  /**
   * Receives a message, blocking the calling thread while the queue is empty.
   * Meant for Workers and scripts; it stops the event loop while it waits.
   *
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   *
   * @example Receive in a Worker or a script, blocking the thread
   * ```ts
   * import { MessageQueue } from "@ipckit/ipckit";
   *
   * using queue = MessageQueue.open<string>(`/jobs-${Deno.pid}`, {
   *   create: true,
   *   unlinkOnClose: true,
   * });
   * queue.trySend("job");
   * const { value } = queue.receiveSync({ timeout: 1000 });
   * console.log(value); // job
   * ```
   */
  receiveSync(options: { timeout?: number } = {}): QueueMessage<T> {
    checkOptionKeys(options, SYNC_WAIT_KEYS, `receive from ${this.#what}`);
    const plan = this.#receivePlan(options);
    const result = retrySync(plan, () => this.#waitSync("read", plan));
    return this.#received(result);
  }

  /**
   * Receives messages until the queue is closed. A message that cannot be
   * decoded ends the loop with its `DecodeError`; call `receive()` to go on.
   *
   * @example Handle messages until the queue is closed
   * ```ts
   * import { MessageQueue } from "@ipckit/ipckit";
   *
   * using queue = MessageQueue.open<string>(`/jobs-${Deno.pid}`, {
   *   create: true,
   *   unlinkOnClose: true,
   * });
   * setTimeout(() => queue.close(), 50); // ends the loop
   * queue.trySend("one");
   * for await (const { value } of queue) console.log(value); // one
   * ```
   */
  [Symbol.asyncIterator](): AsyncGenerator<QueueMessage<T>, void> {
    return receiveUntilEnd(
      () => this.receive(),
      () => this.#life.closed,
      false,
    );
  }

  /**
   * Removes this queue's name (see the static {@linkcode MessageQueue.unlink}).
   *
   * @example Remove the name while the queue stays open
   * ```ts
   * import { MessageQueue } from "@ipckit/ipckit";
   *
   * using queue = MessageQueue.open(`/jobs-${Deno.pid}`, { create: true });
   * queue.unlink(); // other processes can no longer open it; this handle works on
   * queue.trySend("still works");
   * ```
   */
  unlink(): void {
    MessageQueue.unlink(this.#name);
  }

  /**
   * Closes the queue; idempotent. Pending `send`/`receive` calls reject with
   * `Deno.errors.BadResource`, and the descriptor is closed at once (a
   * parked wait holds no reference to it). With `unlinkOnClose` the name is
   * removed too.
   *
   * @example Close twice
   * ```ts
   * import { MessageQueue } from "@ipckit/ipckit";
   *
   * const queue = MessageQueue.open<string>(`/jobs-${Deno.pid}`, {
   *   create: true,
   *   unlinkOnClose: true,
   * });
   * queue.close();
   * queue.close(); // no-op
   * ```
   */
  close(): void {
    this.#life.close(() => {
      // Waiters first, with the "it is closed" error; then the descriptor.
      reactor().release(this.#handle.fd);
      requireSymbol("mq_close")(this.#handle.fd);
      this.#handle.fd = -1;
      if (this.#unlinkOnClose) {
        unlinkQuietly(() => MessageQueue.unlink(this.#name));
      }
    });
  }

  /** Closes the queue; see {@linkcode MessageQueue.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes the queue; see {@linkcode MessageQueue.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.#life.closeAsync(() => this.close());
  }

  #encode(value: T): Uint8Array {
    this.#life.check("send to");
    if (!this.#canWrite) {
      throw new TypeError(
        `Cannot send to ${this.#what}: it was opened with write: false`,
      );
    }
    const bytes = this.#codec.encode(value);
    if (bytes.byteLength > this.#messageSize) {
      throw new RangeError(
        `Cannot send to ${this.#what}: the message is ${bytes.byteLength} bytes, the queue's messageSize is ${this.#messageSize}`,
      );
    }
    return bytes;
  }

  /** One non-blocking mq_send; returns 0 or the errno. */
  #sendOnce(bytes: Uint8Array, priority: number): number {
    this.#life.check("send to");
    const mqSend = requireSymbol("mq_send");
    const fd = this.#handle.fd;
    const length = BigInt(bytes.byteLength);
    const result = retryTransfer(() =>
      mqSend(fd, bytes as Uint8Array<ArrayBuffer>, length, priority)
    );
    return result < 0 ? -result : 0;
  }

  /** How a waiting send retries: mq_send until the queue has room. */
  #sendPlan(
    bytes: Uint8Array,
    priority: number,
    options: WaitOptions,
  ): RetryPlan<number> {
    return {
      attempt: () => this.#sendOnce(bytes, priority),
      wouldBlock: _isAgain,
      spinner: this.#sendSpinner,
      deadline: deadlineOf(options, `send to ${this.#what}`),
      signal: options.signal,
      action: `send to ${this.#what}`,
    };
  }

  /** How a waiting receive retries: mq_receive until a message is there. */
  #receivePlan(options: WaitOptions): RetryPlan<QueueMessage<T> | number> {
    return {
      attempt: () => this.#receiveAndDecode(),
      wouldBlock: _isMinusAgain,
      spinner: this.#receiveSpinner,
      deadline: deadlineOf(options, `receive from ${this.#what}`),
      signal: options.signal,
      action: `receive from ${this.#what}`,
    };
  }

  /** Throws unless the queue is open for receiving. */
  #checkReadable(): void {
    this.#life.check("receive from");
    if (!this.#canRead) {
      throw new TypeError(
        `Cannot receive from ${this.#what}: it was opened with read: false`,
      );
    }
  }

  /** One non-blocking mq_receive; returns the length or -errno. */
  #receiveOnce(): number {
    this.#checkReadable();
    const mqReceive = requireSymbol("mq_receive");
    const fd = this.#handle.fd;
    const buffer = this.#receiveBuffer;
    const length = this.#receiveLength;
    const priority = this.#priority;
    return retryTransfer(() => Number(mqReceive(fd, buffer, length, priority)));
  }

  /**
   * One non-blocking mq_receive, decoded in the same synchronous step:
   * the message, or -errno. The receive buffer and the priority word are
   * shared by every call on this handle, so nothing may run between filling
   * them and decoding them; another receive in flight (woken by the same
   * poll) would overwrite them at its own attempt. Decoding here, before
   * any await, is what gives each concurrent receive its own message
   * without a buffer per call. A DecodeError thrown here has consumed its
   * message and carries a copy of its bytes.
   */
  #receiveAndDecode(): QueueMessage<T> | number {
    const length = this.#receiveOnce();
    if (length < 0) return length;
    const value = this.#codec.decode(this.#receiveBuffer.subarray(0, length));
    return { value, priority: this.#priority[0] };
  }

  /** The message of a receive attempt, or its errno as the error to throw. */
  #received(result: QueueMessage<T> | number): QueueMessage<T> {
    if (typeof result === "number") throw this.#receiveError(-result);
    return result;
  }

  /** Parks an async wait on the reactor until the queue may be ready. */
  #park(direction: Direction, plan: ParkBounds): Promise<void> {
    return reactor().park(
      this.#handle.fd,
      direction,
      this.#what,
      plan.deadline,
      plan.signal,
      plan.action,
    );
  }

  /** Blocks the thread until the queue may be ready, or throws the timeout. */
  #waitSync(direction: Direction, plan: ParkBounds): undefined {
    if (!pollSync(this.#handle.fd, direction, plan.deadline, plan.action)) {
      throw timeoutError(plan.action, plan.deadline.timeout);
    }
  }

  #sendError(errno: number): Error {
    return systemError(
      "mq_send",
      `send to ${this.#what}`,
      errno,
      errno === ERRNO.EAGAIN ? "the queue is full" : undefined,
    );
  }

  #receiveError(errno: number): Error {
    return systemError(
      "mq_receive",
      `receive from ${this.#what}`,
      errno,
      errno === ERRNO.EAGAIN ? "the queue is empty" : undefined,
    );
  }
}

/** Whether an errno result means "would block". */
function _isAgain(errno: number): boolean {
  return errno === ERRNO.EAGAIN;
}

/** Whether a message-or-minus-errno result means "would block". */
function _isMinusAgain(result: unknown): boolean {
  return result === -ERRNO.EAGAIN;
}

function _readAttributes(fd: number, what: string): QueueAttributes {
  const attributes = mqAttributes(fd);
  if (typeof attributes === "number") {
    throw systemError("mq_getattr", `read attributes of ${what}`, -attributes);
  }
  return attributes;
}

function _checkPriority(priority: unknown, what: string): number {
  if (priority === undefined) return 0;
  if (
    !Number.isInteger(priority) || (priority as number) < 0 ||
    (priority as number) >= MQ_PRIO_MAX
  ) {
    throw new RangeError(
      `Cannot send to ${what}: priority must be an integer from 0 to ${
        MQ_PRIO_MAX - 1
      }, got ${String(priority)}`,
    );
  }
  return priority as number;
}

/** Checks the shape of a size option: a positive safe integer, or unset. */
function _checkSizeShape(
  name: string,
  option: "maxMessages" | "messageSize",
  value: unknown,
): void {
  if (value === undefined) return;
  if (!Number.isSafeInteger(value) || (value as number) < 1) {
    throw new RangeError(
      `Cannot create message queue "${name}": ${option} must be a positive integer, got ${
        String(value)
      }`,
    );
  }
}

/** Checks a size option and the system limit it must respect. */
function _checkSize(
  name: string,
  option: "maxMessages" | "messageSize",
  value: unknown,
  limitFile: "msg_max" | "msgsize_max",
): number {
  _checkSizeShape(name, option, value);
  const limit = readMqLimit(limitFile);
  if (limit !== undefined && (value as number) > limit) {
    throw new RangeError(
      `Cannot create message queue "${name}": ${option} is ${
        String(value)
      }, above the system limit ${MQ_PROC_DIR}/${limitFile} = ${limit}`,
    );
  }
  return value as number;
}

/** The mq_attr for a create, or undefined to let the kernel use its defaults. */
function _createAttributes(
  name: string,
  options: MessageQueueOptions<unknown>,
): BigInt64Array<ArrayBuffer> | undefined {
  if (options.maxMessages === undefined && options.messageSize === undefined) {
    return undefined;
  }
  // Both shapes first: reading a default or a limit from /proc is a system
  // call, and bad input must fail before any.
  _checkSizeShape(name, "maxMessages", options.maxMessages);
  _checkSizeShape(name, "messageSize", options.messageSize);
  const maxMessages = _checkSize(
    name,
    "maxMessages",
    options.maxMessages ?? defaultMqLimit("msg_default"),
    "msg_max",
  );
  const messageSize = _checkSize(
    name,
    "messageSize",
    options.messageSize ?? defaultMqLimit("msgsize_default"),
    "msgsize_max",
  );
  return mqCreateAttributes(maxMessages, messageSize);
}

function _openError(
  name: string,
  errno: number,
  options: MessageQueueOptions<unknown>,
  reason?: string,
): Error {
  const action = `open message queue "${name}"`;
  if (reason !== undefined) {
    return systemError("mq_open", action, errno, reason);
  }
  switch (errno) {
    case ERRNO.EINVAL:
      return systemError(
        "mq_open",
        action,
        errno,
        options.create
          ? `the kernel rejected maxMessages or messageSize; see the limits in ${MQ_PROC_DIR}`
          : undefined,
      );
    case ERRNO.EMFILE:
      return systemError(
        "mq_open",
        action,
        errno,
        "the per-user message queue memory limit (RLIMIT_MSGQUEUE) or the descriptor limit was reached",
      );
    case ERRNO.ENOSPC:
      return systemError(
        "mq_open",
        action,
        errno,
        `the system-wide number of queues (${MQ_PROC_DIR}/queues_max) was reached`,
      );
    default:
      return systemError("mq_open", action, errno);
  }
}
