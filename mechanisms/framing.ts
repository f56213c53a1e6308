/**
 * Message framing over byte streams: how pipes, FIFOs and stream sockets,
 * which carry bytes without boundaries, carry typed messages.
 *
 * Two framings:
 *
 * - `"frames"` (the default): each message is a 4-byte big-endian length and
 *   then that many bytes of codec output. Any bytes may cross.
 * - `"lines"`: each message is one line of codec output ending in `\n`, so
 *   plain tools (`echo`, `cat`, `socat`) can take part; with `codecs.json()`
 *   this is JSON Lines. A `\r` before the `\n` is dropped.
 *
 * {@linkcode FramedChannel} applies a framing to any pair of Web streams (a
 * `Deno.Conn`'s `readable`/`writable`, a child process's stdout/stdin, a
 * FIFO), and is the one implementation behind every stream mechanism.
 *
 * @example Framed messages through a child's stdin and stdout
 * ```ts
 * import { FramedChannel } from "@ipckit/ipckit/framing";
 *
 * const cat = new Deno.Command("cat", { stdin: "piped", stdout: "piped" }).spawn();
 * using channel = new FramedChannel<{ op: string }>({
 *   readable: cat.stdout,
 *   writable: cat.stdin,
 * });
 * await channel.send({ op: "ping" });
 * const { value } = await channel.receive({ timeout: 1000 });
 * console.log(value.op); // ping
 * await channel.closeWrite(); // cat sees the end of its input and exits
 * await cat.status;
 * ```
 *
 * @module
 */

import type { Channel, Message, WaitOptions } from "./channel.ts";
import { type Codec, codecs } from "./codec.ts";
import { DecodeError } from "./errors.ts";
import { timeoutError } from "./_common/system_error.ts";
import { Lifecycle } from "./_common/lifecycle.ts";
import { checkOptionKeys, optionKeys } from "./_common/checks.ts";
import { receiveUntilEnd } from "./_common/iterate.ts";
import {
  type Deadline,
  deadlineOf,
  raceDeadline,
  WAIT_KEYS,
} from "./_wait/deadline.ts";
import { KeptOperation } from "./_wait/race.ts";
import {
  DEFAULT_MAX_MESSAGE_SIZE,
  FRAME_HEADER_BYTES,
} from "./_stream/frames.ts";

/**
 * Direct byte I/O, the shape of `Deno.Conn`: `read` fills part of a buffer
 * and resolves to the count (`null` at end of stream), `write` takes part of
 * a buffer and resolves to the count written.
 *
 * @example Standard input and output as one ByteIO
 * ```ts
 * import type { ByteIO } from "@ipckit/ipckit";
 *
 * const stdio: ByteIO = {
 *   read: (buffer) => Deno.stdin.read(buffer),
 *   write: (bytes) => Deno.stdout.write(bytes),
 *   close: () => Deno.stdin.close(),
 * };
 * ```
 *
 * @category Channels
 */
export interface ByteIO {
  /** Reads into `buffer`; resolves to the byte count, or `null` at end of stream. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Writes some of `bytes`; resolves to how many were written. */
  write(bytes: Uint8Array): Promise<number>;
  /** Half-close: no more writes (a socket's `shutdown(SHUT_WR)`). Optional. */
  closeWrite?(): Promise<void>;
  /**
   * Optional: reads without waiting. Returns the byte count, `null` at end
   * of stream, or `undefined` when nothing is there yet; throws what `read`
   * would reject with. With it, a message already there is received
   * without a single promise hop.
   */
  tryRead?(buffer: Uint8Array): number | null | undefined;
  /**
   * Optional: writes without waiting. Returns how many bytes were taken
   * (possibly fewer than given), or `undefined` when none could be now;
   * throws what `write` would reject with.
   */
  tryWrite?(bytes: Uint8Array): number | undefined;
  /**
   * Optional: a read bounded by `wait` that, when it gives up (timeout or
   * abort), has taken nothing, so nothing is left pending. Without it, a
   * read that outlives its receive is kept for the next one.
   */
  readWithin?(buffer: Uint8Array, wait: ByteIOWait): Promise<number | null>;
  /** Releases the resource; called once, by the channel's `close()`. */
  close(): void;
}

/**
 * What bounds {@linkcode ByteIO.readWithin}: an instant on the clock of
 * `performance.now()` (`Infinity` for no limit), the timeout the caller
 * asked for (for the message), the signal, and what is being done.
 *
 * @example A one-second bound on a read
 * ```ts
 * import type { ByteIOWait } from "@ipckit/ipckit";
 *
 * const wait: ByteIOWait = {
 *   until: performance.now() + 1000,
 *   timeout: 1000,
 *   action: "receive from my stream",
 * };
 * ```
 *
 * @category Channels
 */
export interface ByteIOWait {
  /** When to give up with `Deno.errors.TimedOut`, in `performance.now()` ms. */
  until: number;
  /** The timeout asked for, in milliseconds, as the message names it. */
  timeout: number;
  /** Aborting gives up with the signal's reason. */
  signal?: AbortSignal;
  /** What is being done, phrased to follow "Cannot ". */
  action: string;
}

/** Bytes read per slab from a {@linkcode ByteIO}; each read gets the slab's unused tail. */
const _SLAB_BYTES = 64 * 1024;
/** A slab tail shorter than this is not worth a read: start a new slab. */
const _MIN_READ_BYTES = 4 * 1024;

/** The reading half as the channel uses it: what a stream reader offers. */
interface _Source {
  read(): Promise<ReadableStreamReadResult<Uint8Array>>;
  /** A read that does not wait: undefined when nothing is there (io only). */
  readNow?(): ReadableStreamReadResult<Uint8Array> | undefined;
  /** A read that takes nothing when it gives up (io with readWithin only). */
  readWithin?(wait: ByteIOWait): Promise<ReadableStreamReadResult<Uint8Array>>;
  cancel(): Promise<void>;
}

/** The writing half as the channel uses it: what a stream writer offers. */
interface _Sink {
  write(chunk: Uint8Array): Promise<void>;
  close(): Promise<void>;
  abort(): Promise<void>;
}

/** A source over direct reads; chunks are slices of a slab that are never reused. */
function _ioSource(io: ByteIO): _Source {
  let slab = new Uint8Array(_SLAB_BYTES);
  let used = 0;
  const target = () => {
    if (slab.byteLength - used < _MIN_READ_BYTES) {
      slab = new Uint8Array(_SLAB_BYTES);
      used = 0;
    }
    return slab.subarray(used);
  };
  const result = (
    into: Uint8Array,
    count: number | null,
  ): ReadableStreamReadResult<Uint8Array> => {
    if (count === null) return { done: true, value: undefined };
    used += count;
    return { done: false, value: into.subarray(0, count) };
  };
  const tryRead = io.tryRead?.bind(io);
  const readWithin = io.readWithin?.bind(io);
  return {
    async read(): Promise<ReadableStreamReadResult<Uint8Array>> {
      const into = target();
      return result(into, await io.read(into));
    },
    readNow: tryRead
      ? () => {
        const into = target();
        const count = tryRead(into);
        return count === undefined ? undefined : result(into, count);
      }
      : undefined,
    readWithin: readWithin
      ? async (wait) => {
        const into = target();
        return result(into, await readWithin(into, wait));
      }
      : undefined,
    cancel: () => Promise.resolve(),
  };
}

/** A sink over direct writes; partial writes are continued. */
function _ioSink(io: ByteIO): _Sink {
  return {
    async write(chunk): Promise<void> {
      for (let offset = 0; offset < chunk.byteLength;) {
        offset += await io.write(chunk.subarray(offset));
      }
    },
    close: async () => await io.closeWrite?.(),
    abort: () => Promise.resolve(),
  };
}

/**
 * How message boundaries are marked on a byte stream.
 *
 * @category Channels
 */
export type Framing = "frames" | "lines";

/**
 * How to build a {@linkcode FramedChannel}. Give `readable`, `writable` or
 * both: a one-way channel rejects the other direction with a `TypeError`.
 *
 * @example Text lines of at most 4 KiB
 * ```ts
 * import { codecs, type FramedChannelOptions } from "@ipckit/ipckit";
 *
 * const options: FramedChannelOptions<string> = {
 *   framing: "lines",
 *   codec: codecs.text(),
 *   maxMessageSize: 4096,
 * };
 * ```
 *
 * @category Channels
 */
export interface FramedChannelOptions<T> {
  /** Where messages come from. */
  readable?: ReadableStream<Uint8Array>;
  /** Where messages go. */
  writable?: WritableStream<Uint8Array>;
  /**
   * Instead of streams: an object that reads and writes bytes directly, in
   * `Deno.Conn`'s shape (`conn` itself, or `Deno.stdin`/`Deno.stdout` joined).
   * It skips the Web streams layer, which costs tens of microseconds per
   * message. The channel owns it: `close()` calls `io.close()`.
   */
  io?: ByteIO;
  /**
   * How values become bytes, both ways. Default `codecs.json<T>()`. A
   * channel whose directions carry different types takes one codec for
   * both (`FramedChannelOptions<Request | Reply>`).
   */
  codec?: Codec<T>;
  /** `"frames"` (default) or `"lines"`. */
  framing?: Framing;
  /**
   * The largest message accepted, in bytes. An incoming frame header that
   * announces more is rejected before anything is allocated for it, and a
   * line longer than this is rejected too. Within the limit, memory grows
   * with the bytes that arrive, not with what a header announces. Default
   * 64 MiB.
   */
  maxMessageSize?: number;
  /** Names the channel in error messages, e.g. `FIFO "/tmp/jobs"`. */
  description?: string;
  /** Runs once when the channel closes, after its streams are released. */
  onClose?: () => void;
}

const _OPTION_KEYS = optionKeys<FramedChannelOptions<unknown>>({
  readable: true,
  writable: true,
  io: true,
  codec: true,
  framing: true,
  maxMessageSize: true,
  description: true,
  onClose: true,
});

/** The smallest buffer allocated to join chunks. */
const _MIN_GROWTH_BYTES = 4096;

/** Frames larger than this are not kept in a channel's scratch buffer. */
const _MAX_SCRATCH_FRAME = 64 * 1024;

const _NEWLINE = 0x0a;
const _CARRIAGE_RETURN = 0x0d;

/**
 * A typed {@linkcode Channel} over a readable and/or writable byte stream.
 *
 * `send()` resolves once the frame has been handed to the stream, so a slow
 * reader slows the writer (backpressure) instead of growing memory.
 * Iteration ends cleanly when the peer closes its end. A frame whose payload
 * the codec cannot decode rejects with a `DecodeError` carrying the payload,
 * and the next message is still received; a broken frame header or an
 * over-long message cannot be skipped, so the channel closes itself after
 * reporting it.
 *
 * `send()` takes `TSend` and `receive()` yields `TReceive`; give one type
 * when both directions carry the same.
 *
 * @typeParam TSend the values this end sends
 * @typeParam TReceive the values this end receives; default `TSend`
 *
 * @example Two channels joined by an in-memory pipe
 * ```ts
 * import { FramedChannel } from "@ipckit/ipckit";
 *
 * const pipe = new TransformStream<Uint8Array, Uint8Array>();
 * const writer = new FramedChannel<number[]>({ writable: pipe.writable });
 * const reader = new FramedChannel<number[]>({ readable: pipe.readable });
 * // An in-memory pipe takes a frame as it is read: receive, then send.
 * const received = reader.receive({ timeout: 1000 });
 * await writer.send([1, 2, 3]);
 * console.log((await received).value); // [1, 2, 3]
 * ```
 *
 * @category Channels
 */
export class FramedChannel<TSend, TReceive = TSend>
  implements Channel<TSend, Message<TReceive>>, AsyncDisposable {
  #codec: Codec<TSend | TReceive>;
  #framing: Framing;
  #maxMessageSize: number;
  #what: string;
  #onClose: (() => void) | undefined;
  #reader: _Source | undefined;
  #writer: _Sink | undefined;
  #io: ByteIO | undefined;
  #life: Lifecycle;
  #ended = false;
  // Bytes read but not yet framed: #buffer[#start, #end).
  #buffer: Uint8Array = new Uint8Array(0);
  // Whether #buffer was allocated here (so it may be appended to) or is a
  // chunk the stream handed over.
  #ownsBuffer = false;
  #start = 0;
  #end = 0;
  // At most one read is outstanding; a receive that times out leaves it for
  // the next, and leaves nothing of its own attached to it.
  #reads = new KeptOperation<ReadableStreamReadResult<Uint8Array>>();
  // Receives and sends each run one at a time, in call order.
  #receiveTurn: Promise<unknown> = Promise.resolve();
  #sendTurn: Promise<unknown> = Promise.resolve();
  // How many receives (and ready() calls) and sends are queued in those
  // turns: with none, a call may complete at once, synchronously, through
  // the io's tryRead/tryWrite, without jumping the queue.
  #queuedReceives = 0;
  #queuedSends = 0;
  // The frame a send that completes at once is built in (reused: its bytes
  // are in the kernel before the next send starts).
  #frameScratch = new Uint8Array(0);

  /** Wraps the given streams; see {@linkcode FramedChannelOptions}. */
  constructor(options: FramedChannelOptions<TSend | TReceive>) {
    checkOptionKeys(options, _OPTION_KEYS, "frame a channel");
    const framing = options.framing ?? "frames";
    if (framing !== "frames" && framing !== "lines") {
      throw new TypeError(
        `Cannot frame a channel as ${
          JSON.stringify(framing)
        }: use "frames" or "lines"`,
      );
    }
    const max = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    if (!Number.isSafeInteger(max) || max < 1 || max > 0xffff_ffff) {
      throw new RangeError(
        `Cannot frame a channel: maxMessageSize must be an integer from 1 to ${0xffff_ffff}, got ${max}`,
      );
    }
    if (options.io && (options.readable || options.writable)) {
      throw new TypeError(
        "Cannot frame a channel: give either io or streams, not both",
      );
    }
    if (!options.readable && !options.writable && !options.io) {
      throw new TypeError(
        "Cannot frame a channel: give a readable stream, a writable stream, both, or io",
      );
    }
    this.#codec = options.codec ?? codecs.json<TSend | TReceive>();
    this.#framing = framing;
    this.#maxMessageSize = max;
    this.#what = options.description ?? "framed channel";
    this.#life = new Lifecycle(this.#what);
    this.#onClose = options.onClose;
    this.#io = options.io;
    if (options.io) {
      this.#reader = _ioSource(options.io);
      this.#writer = _ioSink(options.io);
    } else {
      this.#reader = options.readable?.getReader();
      this.#writer = options.writable?.getWriter();
    }
  }

  /** Whether `close()` has been called (or the channel closed itself). */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * Sends one value. Resolves when the stream has taken the whole frame.
   *
   * A send that times out or is aborted may have written part of its frame,
   * which would corrupt every later frame, so the channel closes itself in
   * that case.
   *
   * @throws {RangeError} when the encoded value exceeds `maxMessageSize`, or
   * contains a newline under `"lines"` framing (nothing is written)
   */
  async send(value: TSend, options: WaitOptions = {}): Promise<void> {
    const action = `send to ${this.#what}`;
    checkOptionKeys(options, WAIT_KEYS, action);
    const tryWrite = this.#io?.tryWrite;
    if (
      tryWrite && this.#queuedSends === 0 && !this.#life.closed &&
      this.#writer && !options.signal?.aborted
    ) {
      deadlineOf(options, action);
      // Nothing queued: write it now; only what does not fit waits.
      const frame = this.#frame(value, true);
      let written: number | undefined;
      try {
        written = tryWrite.call(this.#io, frame);
      } catch (error) {
        this.close();
        throw error;
      }
      if (written === frame.byteLength) return;
      // The scratch frame is reused: what is left waits in its own copy.
      return await this.#sendFrame(frame.slice(written ?? 0), options, action);
    }
    return await this.#sendFrame(this.#frame(value, false), options, action);
  }

  async #sendFrame(
    frame: Uint8Array,
    options: WaitOptions,
    action: string,
  ): Promise<void> {
    const deadline = deadlineOf(options, action);
    const writer = this.#writer!;
    this.#queuedSends++;
    const turn = this.#sendTurn.then(() => {
      // Given up while waiting for its turn: nothing was written, so the
      // channel stays usable.
      if (this.#life.closed) throw this.#life.closedError("send to");
      if (options.signal?.aborted) throw options.signal.reason;
      if (performance.now() >= deadline.at) {
        throw timeoutError(action, deadline.timeout);
      }
      return raceDeadline(
        writer.write(frame),
        deadline,
        options.signal,
        action,
      ).catch((error) => {
        if (this.#life.closed) throw this.#life.closedError("send to");
        // A partial frame cannot be taken back: later frames would be garbage.
        this.close();
        throw error;
      });
    });
    this.#sendTurn = turn.catch(() => {});
    try {
      await turn;
    } finally {
      this.#queuedSends--;
    }
  }

  /**
   * Receives one message, waiting without blocking the event loop.
   *
   * @throws {Deno.errors.UnexpectedEof} when the peer closed its end and no
   * message is left
   * @throws {DecodeError} when a message cannot be decoded (with its bytes)
   * @throws {Deno.errors.TimedOut} when `timeout` passes first
   */
  receive(options: WaitOptions = {}): Promise<Message<TReceive>> {
    let deadline: Deadline;
    try {
      deadline = this.#receiveDeadline(options, "receive from");
    } catch (error) {
      return Promise.reject(error);
    }
    if (
      this.#queuedReceives === 0 && this.#reads.idle &&
      this.#reader!.readNow && !options.signal?.aborted
    ) {
      // Nothing queued and nothing in flight: a message that is there
      // already is taken at once.
      try {
        const message = this.#receiveNow();
        if (message) return Promise.resolve(message);
      } catch (error) {
        return Promise.reject(error);
      }
      if (this.#reader!.readWithin) {
        // Not there yet: wait for it straight away, no turn to take.
        this.#queuedReceives++;
        const waiting = this.#receiveWithin(deadline, options.signal);
        this.#receiveTurn = waiting.catch(() => {});
        return waiting;
      }
    }
    return this.#inReceiveTurn(() =>
      this.#receiveFrame(deadline, options.signal)
    );
  }

  /**
   * The deadline of a `receive()` or `ready()` (`verb`) whose options are
   * valid on a channel that can receive; throws what the call rejects with.
   */
  #receiveDeadline(options: WaitOptions, verb: string): Deadline {
    const action = `${verb} ${this.#what}`;
    checkOptionKeys(options, WAIT_KEYS, action);
    const deadline = deadlineOf(options, action);
    if (this.#life.closed) throw this.#life.closedError(verb);
    if (!this.#reader) {
      throw new TypeError(
        `Cannot receive from ${this.#what}: it is write-only`,
      );
    }
    return deadline;
  }

  /** Runs `receive` after every receive and `ready()` called before it. */
  #inReceiveTurn<R>(receive: () => Promise<R>): Promise<R> {
    this.#queuedReceives++;
    const turn = this.#receiveTurn.then(receive).finally(() =>
      this.#queuedReceives--
    );
    this.#receiveTurn = turn.catch(() => {});
    return turn;
  }

  /** A receive that waits with io's readWithin, which takes nothing when it gives up. */
  async #receiveWithin(
    deadline: Deadline,
    signal: AbortSignal | undefined,
  ): Promise<Message<TReceive>> {
    const action = `receive from ${this.#what}`;
    try {
      for (;;) {
        if (this.#life.closed) throw this.#life.closedError("receive from");
        const result = await this.#readWithin(deadline, signal, action);
        if (this.#life.closed) throw this.#life.closedError("receive from");
        this.#took(result);
        const message = this.#receiveNow();
        if (message) return message;
      }
    } finally {
      this.#queuedReceives--;
    }
  }

  /**
   * A message from what is buffered or can be read without waiting, or
   * undefined when one would have to wait; throws what a receive would.
   */
  #receiveNow(): Message<TReceive> | undefined {
    for (;;) {
      const payload = this.#takeMessage();
      if (payload) return { value: this.#decode(payload) };
      if (this.#ended) return this.#atEnd();
      const result = this.#reader!.readNow!();
      if (!result) return undefined;
      this.#took(result);
    }
  }

  /**
   * Waits until a whole message has been read into the channel's buffer (or
   * the peer closed its end), without taking it: the next `receive()` then
   * does not wait. It reads ahead into the channel's own buffer, in turn
   * with `receive()` calls made before it. `select()` is built on it.
   *
   * @throws {Deno.errors.TimedOut} when `timeout` passes first; what was
   * read meanwhile stays buffered for the next call
   * @throws {Deno.errors.BadResource} when the channel is closed
   *
   * @example Wait until a message is buffered, then take it at once
   * ```ts
   * import { FramedChannel } from "@ipckit/ipckit";
   *
   * const pipe = new TransformStream<Uint8Array, Uint8Array>();
   * const writer = new FramedChannel<string>({ writable: pipe.writable });
   * const reader = new FramedChannel<string>({ readable: pipe.readable });
   * const sent = writer.send("hello");
   * await reader.ready({ timeout: 1000 });
   * await sent;
   * console.log((await reader.receive({ timeout: 0 })).value); // hello
   * ```
   */
  ready(options: WaitOptions = {}): Promise<void> {
    let deadline: Deadline;
    try {
      deadline = this.#receiveDeadline(options, "wait for a message on");
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#inReceiveTurn(() =>
      this.#waitForMessage(deadline, options.signal)
    );
  }

  /** Receives until the peer closes its end or this channel is closed. */
  [Symbol.asyncIterator](): AsyncGenerator<Message<TReceive>, void> {
    return receiveUntilEnd(
      () => this.receive(),
      () => this.#life.closed,
      true,
    );
  }

  /**
   * Half-close: flushes what was sent and closes the writing side, so the
   * peer's iteration ends, while this side can still receive.
   */
  async closeWrite(): Promise<void> {
    if (!this.#writer || this.#life.closed) return;
    await this.#sendTurn;
    const writer = this.#writer;
    this.#writer = undefined;
    await writer.close();
  }

  /**
   * Closes both directions; idempotent. Pending operations reject with
   * `Deno.errors.BadResource`; sends that already resolved were delivered to
   * the stream.
   */
  close(): void {
    this.#life.close(() => {
      this.#reads.close(this.#life.closedError("receive from"));
      this.#reader?.cancel().catch(() => {});
      this.#writer?.abort().catch(() => {});
      this.#reader = undefined;
      this.#writer = undefined;
      try {
        this.#io?.close();
      } catch (error) {
        // Closed already (by the peer's side of the runtime): nothing to release.
        if (!(error instanceof Deno.errors.BadResource)) throw error;
      }
      this.#buffer = new Uint8Array(0);
      this.#onClose?.();
    });
  }

  /** Closes the channel; see {@linkcode FramedChannel.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Flushes pending sends, half-closes, then closes. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.closeWrite();
    } catch {
      // The peer may be gone already; closing is still the right end.
    }
    this.close();
  }

  /** The codec's answer, as the type this direction carries. */
  #decode(payload: Uint8Array): TReceive {
    return this.#codec.decode(payload) as TReceive;
  }

  /**
   * The frame (or line) for `value`. With `reuse`, it is built in the
   * channel's scratch buffer, which the next such call overwrites: only for
   * a frame written at once.
   */
  #frame(value: TSend, reuse: boolean): Uint8Array<ArrayBuffer> {
    if (this.#life.closed) throw this.#life.closedError("send to");
    if (!this.#writer) {
      throw new TypeError(`Cannot send to ${this.#what}: it is read-only`);
    }
    const payload = this.#codec.encode(value);
    if (payload.byteLength > this.#maxMessageSize) {
      throw new RangeError(
        `Cannot send to ${this.#what}: the message is ${payload.byteLength} bytes, maxMessageSize is ${this.#maxMessageSize}`,
      );
    }
    if (this.#framing === "lines") {
      if (payload.includes(_NEWLINE)) {
        throw new RangeError(
          `Cannot send to ${this.#what}: the ${this.#codec.name} message contains a newline, which "lines" framing uses as the separator`,
        );
      }
      const line = this.#frameBuffer(payload.byteLength + 1, reuse);
      line.set(payload);
      line[payload.byteLength] = _NEWLINE;
      return line;
    }
    const frame = this.#frameBuffer(
      FRAME_HEADER_BYTES + payload.byteLength,
      reuse,
    );
    new DataView(frame.buffer, frame.byteOffset).setUint32(
      0,
      payload.byteLength,
      false,
    );
    frame.set(payload, FRAME_HEADER_BYTES);
    return frame;
  }

  /** `bytes` of the scratch buffer (grown as needed) with `reuse`, else fresh ones. */
  #frameBuffer(bytes: number, reuse: boolean): Uint8Array<ArrayBuffer> {
    if (!reuse || bytes > _MAX_SCRATCH_FRAME) return new Uint8Array(bytes);
    if (this.#frameScratch.byteLength < bytes) {
      this.#frameScratch = new Uint8Array(Math.max(bytes, 256));
    }
    return this.#frameScratch.subarray(0, bytes);
  }

  async #receiveFrame(
    deadline: Deadline,
    signal: AbortSignal | undefined,
  ): Promise<Message<TReceive>> {
    for (;;) {
      if (this.#life.closed) throw this.#life.closedError("receive from");
      const payload = this.#takeMessage();
      if (payload) return { value: this.#decode(payload) };
      if (this.#ended) return this.#atEnd();
      await this.#readMore(deadline, signal, `receive from ${this.#what}`);
    }
  }

  async #waitForMessage(
    deadline: Deadline,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    for (;;) {
      if (this.#life.closed) {
        throw this.#life.closedError("wait for a message on");
      }
      if (this.#ended || this.#messageBuffered()) return;
      await this.#readMore(
        deadline,
        signal,
        `wait for a message on ${this.#what}`,
      );
    }
  }

  /**
   * Reads one more chunk into the buffer, or notes the end of the stream.
   * A read the deadline or the signal gives up on stays pending, and the
   * next call takes what it brings: nothing read is lost.
   */
  async #readMore(
    deadline: Deadline,
    signal: AbortSignal | undefined,
    action: string,
  ): Promise<void> {
    if (this.#reader!.readWithin && this.#reads.idle) {
      // A read that gives up takes nothing: no read is kept for the next.
      this.#took(await this.#readWithin(deadline, signal, action));
      return;
    }
    let result: ReadableStreamReadResult<Uint8Array>;
    try {
      result = await this.#reads.run(
        () => this.#reader!.read(),
        deadline,
        signal,
        action,
      );
    } catch (error) {
      // A read cut short by close() fails with whatever the resource says.
      if (this.#life.closed) throw this.#life.closedError("receive from");
      throw error;
    }
    this.#took(result);
  }

  /** One read with io's readWithin; one cut short by close() says it is closed. */
  async #readWithin(
    deadline: Deadline,
    signal: AbortSignal | undefined,
    action: string,
  ): Promise<ReadableStreamReadResult<Uint8Array>> {
    try {
      return await this.#reader!.readWithin!({
        until: deadline.at,
        timeout: deadline.timeout,
        signal,
        action,
      });
    } catch (error) {
      if (this.#life.closed) throw this.#life.closedError("receive from");
      throw error;
    }
  }

  /** Keeps what a read brought, or notes the end of the stream. */
  #took(result: ReadableStreamReadResult<Uint8Array>): void {
    if (result.done) this.#ended = true;
    else this.#append(result.value);
  }

  /**
   * Whether the buffer holds a whole message, or something `receive()`
   * reports at once (a frame header or a line beyond maxMessageSize).
   */
  #messageBuffered(): boolean {
    const available = this.#end - this.#start;
    if (this.#framing === "lines") {
      return available > this.#maxMessageSize ||
        this.#buffer.subarray(this.#start, this.#end).includes(_NEWLINE);
    }
    if (available < FRAME_HEADER_BYTES) return false;
    const length = this.#frameLength();
    return length > this.#maxMessageSize ||
      available >= FRAME_HEADER_BYTES + length;
  }

  /** The payload length the frame header at the start of the buffer announces. */
  #frameLength(): number {
    return new DataView(
      this.#buffer.buffer,
      this.#buffer.byteOffset + this.#start,
      FRAME_HEADER_BYTES,
    ).getUint32(0, false);
  }

  /** The next complete message in the buffer, or undefined if more bytes are needed. */
  #takeMessage(): Uint8Array | undefined {
    const available = this.#end - this.#start;
    if (this.#framing === "lines") return this.#takeLine(available);
    if (available < FRAME_HEADER_BYTES) return undefined;
    const length = this.#frameLength();
    if (length > this.#maxMessageSize) {
      const header = this.#buffer.subarray(
        this.#start,
        this.#start + FRAME_HEADER_BYTES,
      );
      const error = new DecodeError(
        `Cannot receive from ${this.#what}: a frame header announces ${length} bytes, above maxMessageSize ${this.#maxMessageSize}; the stream is not ipckit frames or is corrupt, so the channel is closed`,
        header,
      );
      this.close();
      throw error;
    }
    if (available < FRAME_HEADER_BYTES + length) return undefined;
    const start = this.#start + FRAME_HEADER_BYTES;
    this.#start = start + length;
    return this.#buffer.subarray(start, start + length);
  }

  #takeLine(available: number): Uint8Array | undefined {
    const newline = this.#buffer.subarray(this.#start, this.#end).indexOf(
      _NEWLINE,
    );
    // The same limit whether the newline is in or not: a line that arrives
    // whole in one chunk is no more acceptable than one still arriving. A
    // "\r" before the newline is not part of the message.
    const length = newline < 0
      ? available
      : newline > 0 && this.#buffer[this.#start + newline - 1] ===
          _CARRIAGE_RETURN
      ? newline - 1
      : newline;
    if (length > this.#maxMessageSize) {
      const error = new DecodeError(
        `Cannot receive from ${this.#what}: a line is longer than maxMessageSize ${this.#maxMessageSize}, so the channel is closed`,
        // The start of the line, as a sample: the whole may be megabytes.
        this.#buffer.subarray(
          this.#start,
          Math.min(this.#end, this.#start + 64),
        ),
      );
      this.close();
      throw error;
    }
    if (newline < 0) return undefined;
    const start = this.#start;
    let end = start + newline;
    this.#start = end + 1;
    if (end > start && this.#buffer[end - 1] === _CARRIAGE_RETURN) end--;
    return this.#buffer.subarray(start, end);
  }

  /**
   * The size of the frame that starts at #start, header included, once its
   * header has arrived (in the buffer, or partly in `chunk`); 0 when unknown,
   * for lines, or when the header announces more than maxMessageSize (which
   * #takeMessage rejects). Only an upper bound for growing the buffer.
   */
  #frameBytes(chunk: Uint8Array): number {
    if (this.#framing !== "frames") return 0;
    const pending = this.#end - this.#start;
    if (pending + chunk.byteLength < FRAME_HEADER_BYTES) return 0;
    let length = 0;
    for (let i = 0; i < FRAME_HEADER_BYTES; i++) {
      const byte = i < pending
        ? this.#buffer[this.#start + i]
        : chunk[i - pending];
      length = length * 256 + byte;
    }
    return length > this.#maxMessageSize ? 0 : FRAME_HEADER_BYTES + length;
  }

  #append(chunk: Uint8Array): void {
    const pending = this.#end - this.#start;
    if (pending === 0) {
      // The common case: nothing left over, so frame straight from the chunk.
      this.#buffer = chunk;
      this.#ownsBuffer = false;
      this.#start = 0;
      this.#end = chunk.byteLength;
      return;
    }
    const needed = pending + chunk.byteLength;
    if (this.#buffer.byteLength - this.#start >= needed && this.#ownsBuffer) {
      this.#buffer.set(chunk, this.#end);
      this.#end += chunk.byteLength;
      return;
    }
    // Grow with the bytes that arrived, never with what a header announces:
    // a peer that sends a header for 64 MiB and then nothing must not make
    // us allocate 64 MiB. Doubling copies a large message about twice in
    // all; a known frame size caps the growth, so the last step is exact.
    let size = Math.max(needed, pending * 2, _MIN_GROWTH_BYTES);
    const frame = this.#frameBytes(chunk);
    if (frame > 0) size = Math.max(needed, Math.min(size, frame));
    const grown = new Uint8Array(size);
    grown.set(this.#buffer.subarray(this.#start, this.#end));
    grown.set(chunk, pending);
    this.#buffer = grown;
    this.#ownsBuffer = true;
    this.#start = 0;
    this.#end = needed;
  }

  /**
   * What is left when the stream has ended: a last line without its newline
   * is still a line (as `printf hello` writes it), a partial frame is an error.
   */
  #atEnd(): Message<TReceive> {
    const leftover = this.#end - this.#start;
    if (leftover > 0) {
      const bytes = this.#buffer.subarray(this.#start, this.#end);
      this.#start = this.#end;
      if (this.#framing === "lines") {
        return { value: this.#decode(bytes) };
      }
      throw new DecodeError(
        `Cannot receive from ${this.#what}: the stream ended inside a message, after ${leftover} bytes`,
        bytes,
      );
    }
    throw new Deno.errors.UnexpectedEof(
      `Cannot receive from ${this.#what}: the other end closed it`,
    );
  }
}
