/**
 * Anonymous pipes: a typed channel between a parent and the child process it
 * starts, over the child's stdin and stdout.
 *
 * {@linkcode spawn} starts the child with `Deno.Command` (stdin and stdout
 * piped, stderr inherited by default so the child's logs and crashes stay
 * visible) and frames messages on the pipes with {@linkcode FramedChannel}.
 * A Deno child answers with {@linkcode parentChannel}; any other program
 * can take part by reading and writing the same framing (`"lines"` with
 * `codecs.json()` is JSON Lines).
 *
 * Why `Deno.Command` and not `pipe2(2)` through FFI: the runtime already
 * gives non-blocking pipes to a child, reaps it, and checks `--allow-run`,
 * and it needs neither `--allow-ffi` in the parent nor in the child. What
 * FFI could add is an extra descriptor beyond stdio (fd 3), which keeps
 * stdout free for logging; but an inheritable descriptor made with FFI would
 * also leak into every other child spawned meanwhile, and reading it in the
 * child would need `--allow-ffi` there. So stdout is the channel: in the
 * child, log with `console.error`, never `console.log`.
 *
 * How the child ends reaches the channel: when its stdout ends, `receive()`
 * waits for it to exit and, if it exited with a non-zero code or was killed,
 * rejects with a {@linkcode ChildProcessError} carrying the exit code and
 * signal; after a clean exit the iteration simply ends. `Deno.Command` reaps
 * every child, so none is left a zombie.
 *
 * @example Ask a Deno child for answers
 * ```ts ignore
 * // Not run as a test: it starts worker.ts, which is not here.
 * import { spawn } from "@ipckit/ipckit/pipe";
 *
 * await using child = spawn<{ n: number }, { square: number }>(
 *   Deno.execPath(),
 *   { args: ["run", "worker.ts"] },
 * );
 * await child.send({ n: 7 });
 * console.log((await child.receive()).value.square); // 49
 * ```
 *
 * @module
 */

import type { Channel, Message, WaitOptions } from "./channel.ts";
import { type Codec, codecs } from "./codec.ts";
import { FramedChannel, type FramedChannelOptions } from "./framing.ts";
import { receiveUntilEnd } from "./_common/iterate.ts";
import { Lifecycle } from "./_common/lifecycle.ts";
import { checkOptionKeys, optionKeys } from "./_common/checks.ts";
import { checkFramingOptions } from "./_stream/options.ts";
import { directStdio } from "./_stream/direct_stdio.ts";
import { deadlineOf, raceDeadline } from "./_wait/deadline.ts";

/**
 * How to build a {@linkcode PipeChannel}: a stream each way, a codec each
 * way, and the framing.
 *
 * @example Text out, JSON arrays back, one per line
 * ```ts
 * import { codecs, type PipeChannelOptions } from "@ipckit/ipckit";
 *
 * const options: PipeChannelOptions<string, number[]> = {
 *   sendCodec: codecs.text(),
 *   receiveCodec: codecs.json<number[]>(),
 *   framing: "lines",
 * };
 * ```
 *
 * @category FIFOs and pipes
 */
export interface PipeChannelOptions<TSend, TReceive>
  extends Pick<FramedChannelOptions<unknown>, "framing" | "maxMessageSize"> {
  /** How sent values become bytes. Default `codecs.json<TSend>()`. */
  sendCodec?: Codec<TSend>;
  /** How received bytes become values. Default `codecs.json<TReceive>()`. */
  receiveCodec?: Codec<TReceive>;
  /** Names the channel in error messages. */
  description?: string;
}

/**
 * Options of {@linkcode parentChannel}.
 *
 * @example The child's end, reading and writing the pipes itself
 * ```ts
 * import { codecs, type ParentChannelOptions } from "@ipckit/ipckit";
 *
 * const options: ParentChannelOptions<string, string> = {
 *   direct: true,
 *   sendCodec: codecs.text(),
 *   receiveCodec: codecs.text(),
 * };
 * ```
 *
 * @category FIFOs and pipes
 */
export interface ParentChannelOptions<TSend, TReceive>
  extends PipeChannelOptions<TSend, TReceive> {
  /**
   * Read stdin and write stdout with non-blocking calls through libc, which
   * spin briefly before they sleep (see the `spin` option of other
   * mechanisms), instead of Deno's own stdio, which hands every read and
   * write to its blocking thread pool. Needs `--allow-ffi` in the child, and
   * both descriptors must be pipes (as `spawn` makes them): ipckit sets
   * `O_NONBLOCK` on them, which a terminal shared with a shell must not get.
   * Default `false`.
   */
  direct?: boolean;
}

const _PIPE_KEYS = optionKeys<PipeChannelOptions<unknown, unknown>>({
  framing: true,
  maxMessageSize: true,
  sendCodec: true,
  receiveCodec: true,
  description: true,
});
const _PARENT_KEYS = optionKeys<ParentChannelOptions<unknown, unknown>>({
  framing: true,
  maxMessageSize: true,
  sendCodec: true,
  receiveCodec: true,
  description: true,
  direct: true,
});

/** The options of a {@linkcode PipeChannel} among `options`. */
function _pipeOptions<TSend, TReceive>(
  options: PipeChannelOptions<TSend, TReceive>,
  description: string,
): PipeChannelOptions<TSend, TReceive> {
  return {
    framing: options.framing,
    maxMessageSize: options.maxMessageSize,
    sendCodec: options.sendCodec,
    receiveCodec: options.receiveCodec,
    description,
  };
}

/**
 * A typed two-way channel over a pair of byte streams, where each direction
 * may carry its own type and codec: `send()` takes `TSend`, `receive()`
 * yields `TReceive`; it is a `Channel<TSend, Message<TReceive>>`.
 *
 * @example Two ends of an in-memory pipe, a type each way
 * ```ts
 * import { PipeChannel } from "@ipckit/ipckit";
 *
 * const down = new TransformStream<Uint8Array, Uint8Array>();
 * const up = new TransformStream<Uint8Array, Uint8Array>();
 * using parent = new PipeChannel<string, number>(up.readable, down.writable);
 * using child = new PipeChannel<number, string>(down.readable, up.writable);
 * const question = child.receive({ timeout: 1000 });
 * await parent.send("hello");
 * const answer = parent.receive({ timeout: 1000 });
 * await child.send((await question).value.length);
 * console.log((await answer).value); // 5
 * ```
 *
 * @category FIFOs and pipes
 */
export class PipeChannel<TSend = unknown, TReceive = TSend>
  implements Channel<TSend, Message<TReceive>>, AsyncDisposable {
  #outgoing: FramedChannel<TSend>;
  #incoming: FramedChannel<TReceive>;
  #life: Lifecycle;

  /**
   * Frames messages on `readable` (incoming) and `writable` (outgoing).
   *
   * @throws {TypeError} or {RangeError} for bad framing options
   */
  constructor(
    readable: ReadableStream<Uint8Array>,
    writable: WritableStream<Uint8Array>,
    options: PipeChannelOptions<TSend, TReceive> = {},
  ) {
    checkOptionKeys(options, _PIPE_KEYS, "make a pipe channel");
    const what = options.description ?? "pipe";
    this.#life = new Lifecycle(what);
    const shared = {
      framing: options.framing,
      maxMessageSize: options.maxMessageSize,
      description: what,
    };
    this.#outgoing = new FramedChannel<TSend>({
      ...shared,
      codec: options.sendCodec ?? codecs.json<TSend>(),
      writable,
    });
    this.#incoming = new FramedChannel<TReceive>({
      ...shared,
      codec: options.receiveCodec ?? codecs.json<TReceive>(),
      readable,
    });
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * Sends one value; resolves once the pipe has taken the whole frame
   * (a full pipe slows the sender: backpressure).
   *
   * @example Send a line to cat
   * ```ts
   * import { spawn } from "@ipckit/ipckit";
   *
   * await using child = spawn<string, string>("cat", { framing: "lines" });
   * await child.send("hello", { timeout: 1000 });
   * ```
   */
  async send(value: TSend, options: WaitOptions = {}): Promise<void> {
    try {
      await this.#outgoing.send(value, options);
    } catch (error) {
      throw await this.explainSendError(error);
    }
  }

  /**
   * Receives one message, waiting without blocking the event loop.
   *
   * @throws {Deno.errors.UnexpectedEof} when the other end closed and no
   * message is left
   * @throws {DecodeError} for a message that cannot be decoded, or a frame
   * cut short by the end of the stream (with the bytes received)
   *
   * @example Send a line to cat and read it back
   * ```ts
   * import { spawn } from "@ipckit/ipckit";
   *
   * await using child = spawn<string, string>("cat", { framing: "lines" });
   * await child.send("hello");
   * const { value } = await child.receive({ timeout: 1000 });
   * console.log(value); // hello
   * ```
   */
  async receive(options: WaitOptions = {}): Promise<Message<TReceive>> {
    try {
      return await this.#incoming.receive(options);
    } catch (error) {
      throw await this.explainReceiveError(error, options);
    }
  }

  /**
   * Waits until a whole message has arrived (or the other end closed),
   * without taking it: the next `receive()` does not wait (see
   * `Selectable.ready`). `select()` is built on it.
   *
   * @example Wait until the answer is there, then take it at once
   * ```ts
   * import { spawn } from "@ipckit/ipckit";
   *
   * await using child = spawn<string, string>("cat", { framing: "lines" });
   * await child.send("hello");
   * await child.ready({ timeout: 1000 });
   * const { value } = await child.receive({ timeout: 0 });
   * console.log(value); // hello
   * ```
   */
  ready(options: WaitOptions = {}): Promise<void> {
    return this.#incoming.ready(options);
  }

  /** Receives until the other end closes; an error on the way is thrown. */
  [Symbol.asyncIterator](): AsyncGenerator<Message<TReceive>, void> {
    return receiveUntilEnd(
      () => this.receive(),
      () => this.#life.closed,
      true,
    );
  }

  /**
   * Flushes and closes the outgoing stream, so the other end reads to its
   * end, while this side can still receive.
   *
   * @example Tell the child there is no more, then read what is left
   * ```ts
   * import { spawn } from "@ipckit/ipckit";
   *
   * await using child = spawn<string, string>("cat", { framing: "lines" });
   * await child.send("last");
   * await child.closeWrite(); // cat sees the end of its input and exits
   * for await (const { value } of child) console.log(value); // last
   * ```
   */
  async closeWrite(): Promise<void> {
    await this.#outgoing.closeWrite();
  }

  /**
   * Closes both directions; idempotent. Pending operations reject with
   * `Deno.errors.BadResource`.
   *
   * @example Close at once: the pipes close and the child gets SIGTERM
   * ```ts
   * import { spawn } from "@ipckit/ipckit";
   *
   * const child = spawn("cat");
   * child.close();
   * console.log((await child.status).signal); // SIGTERM
   * ```
   */
  close(): void {
    this.#life.close(() => {
      try {
        this.#outgoing.close();
      } finally {
        this.#incoming.close();
      }
    });
  }

  /** Closes the channel; see {@linkcode PipeChannel.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Flushes pending sends, half-closes, then closes. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.closeWrite();
    } catch {
      // The other end may be gone already; closing is still the right end.
    }
    this.close();
  }

  /**
   * Turns an error of `receive()` into the error the caller sees; the base
   * class passes it through. {@linkcode ChildChannel} reports how the child
   * ended instead of a bare end of stream.
   */
  protected explainReceiveError(
    error: unknown,
    _options: WaitOptions,
  ): Promise<unknown> {
    return Promise.resolve(error);
  }

  /** Turns an error of `send()` into the error the caller sees. */
  protected explainSendError(error: unknown): Promise<unknown> {
    return Promise.resolve(error);
  }
}

/**
 * A child process ended badly: a non-zero exit code, or a signal.
 *
 * @example A child that fails
 * ```ts
 * import { ChildProcessError, spawn } from "@ipckit/ipckit";
 *
 * await using child = spawn("false");
 * try {
 *   await child.receive();
 * } catch (error) {
 *   if (error instanceof ChildProcessError) console.log(error.exitCode); // 1
 * }
 * ```
 *
 * @category FIFOs and pipes
 */
export class ChildProcessError extends Error {
  /** The exit code; 128 + the signal number when a signal ended it. */
  readonly exitCode: number;
  /** The signal that ended the child, or null. */
  readonly signal: Deno.Signal | null;
  /** The child's process id. */
  readonly pid: number;

  /** Creates the error for a child that ended with `status`. */
  constructor(
    command: string,
    pid: number,
    status: Deno.CommandStatus,
    options?: ErrorOptions,
  ) {
    const how = status.signal
      ? `was killed by ${status.signal} (exit code ${status.code})`
      : `exited with code ${status.code}`;
    super(`Child process "${command}" (pid ${pid}) ${how}`, options);
    this.name = "ChildProcessError";
    this.exitCode = status.code;
    this.signal = status.signal;
    this.pid = pid;
  }
}

/**
 * How to start a child with {@linkcode spawn}.
 *
 * @example Lines to a child whose errors are thrown away
 * ```ts
 * import type { SpawnOptions } from "@ipckit/ipckit";
 *
 * const options: SpawnOptions<string, string> = {
 *   args: ["-u"],
 *   framing: "lines",
 *   stderr: "null",
 * };
 * ```
 *
 * @category FIFOs and pipes
 */
export interface SpawnOptions<TSend, TReceive>
  extends PipeChannelOptions<TSend, TReceive> {
  /** Arguments for the command, as `Deno.Command` takes them. Default none. */
  args?: string[];
  /** Working directory of the child. */
  cwd?: string | URL;
  /** Environment variables to set for the child. */
  env?: Record<string, string>;
  /** Start from an empty environment instead of inheriting this one. */
  clearEnv?: boolean;
  /** Where the child's stderr goes. Default `"inherit"`. */
  stderr?: "inherit" | "piped" | "null";
  /** Aborting kills the child (SIGTERM), as with `Deno.Command`. */
  signal?: AbortSignal;
  /**
   * How long `await using` (asyncDispose) lets the child finish after its
   * stdin is closed before killing it with SIGKILL. Default 5000 ms.
   */
  exitTimeout?: number;
}

const _SPAWN_KEYS = optionKeys<SpawnOptions<unknown, unknown>>({
  framing: true,
  maxMessageSize: true,
  sendCodec: true,
  receiveCodec: true,
  description: true,
  args: true,
  cwd: true,
  env: true,
  clearEnv: true,
  stderr: true,
  signal: true,
  exitTimeout: true,
});

/** How long a failed send waits to learn whether the child has exited. */
const _SEND_EXIT_GRACE_MS = 200;

/**
 * A typed channel to a child process, returned by {@linkcode spawn}: the
 * child's stdin carries `TSend`, its stdout `TReceive`.
 *
 * `close()` (and `using`) closes the pipes and ends the child with SIGTERM
 * if it is still running; `await using` instead closes its stdin, gives it
 * `exitTimeout` to finish, then kills it with SIGKILL, and waits for it.
 *
 * @example Talk to cat, line by line
 * ```ts
 * import { spawn } from "@ipckit/ipckit";
 *
 * await using child = spawn<string, string>("cat", { framing: "lines" });
 * await child.send("echo me");
 * console.log((await child.receive()).value, child.pid > 0); // echo me true
 * ```
 *
 * @category FIFOs and pipes
 */
export class ChildChannel<TSend = unknown, TReceive = TSend>
  extends PipeChannel<TSend, TReceive> {
  #process: Deno.ChildProcess;
  #command: string;
  #exit: Deno.CommandStatus | undefined;
  #exitTimeout: number;

  /**
   * Wraps a child started with `stdin: "piped"` and `stdout: "piped"`;
   * {@linkcode spawn} does this for you.
   */
  constructor(
    process: Deno.ChildProcess,
    command: string,
    options: SpawnOptions<TSend, TReceive> = {},
  ) {
    checkOptionKeys(options, _SPAWN_KEYS, `talk to child "${command}"`);
    super(
      process.stdout,
      process.stdin,
      _pipeOptions(
        options,
        options.description ??
          `child process "${command}" (pid ${process.pid})`,
      ),
    );
    this.#process = process;
    this.#command = command;
    this.#exitTimeout = options.exitTimeout ?? 5000;
    process.status.then((status) => (this.#exit = status));
  }

  /** The child's process id. */
  get pid(): number {
    return this.#process.pid;
  }

  /** Resolves with how the child ended, once it has. */
  get status(): Promise<Deno.CommandStatus> {
    return this.#process.status;
  }

  /** The child's stderr when started with `stderr: "piped"`. */
  get stderr(): ReadableStream<Uint8Array> {
    return this.#process.stderr;
  }

  /**
   * Sends a signal to the child (default SIGTERM); does nothing once it has
   * exited.
   *
   * @example Interrupt a child
   * ```ts
   * import { spawn } from "@ipckit/ipckit";
   *
   * await using child = spawn("sleep", { args: ["60"] });
   * child.kill("SIGINT");
   * console.log((await child.status).signal); // SIGINT
   * ```
   */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    if (this.#exit) return;
    try {
      this.#process.kill(signal);
    } catch (error) {
      // It exited between the check and the kill.
      if (!(error instanceof TypeError)) throw error;
    }
  }

  /** Closes the pipes and ends the child with SIGTERM if it still runs. */
  override close(): void {
    if (this.closed) return;
    super.close();
    this.kill();
  }

  /**
   * Closes the child's stdin, waits up to `exitTimeout` for it to exit, then
   * kills it with SIGKILL, closes the pipes and waits until it is reaped.
   */
  override async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.closeWrite();
    } catch {
      // The child may have closed its stdin already.
    }
    const timer = setTimeout(() => this.kill("SIGKILL"), this.#exitTimeout);
    try {
      await this.#process.status;
    } finally {
      clearTimeout(timer);
      super.close();
    }
  }

  /** At end of stream, waits for the child's exit and reports a bad one. */
  protected override async explainReceiveError(
    error: unknown,
    options: WaitOptions,
  ): Promise<unknown> {
    if (!(error instanceof Deno.errors.UnexpectedEof)) return error;
    const status = await this.#waitForExit(options);
    return status.success ? error : this.#exitError(status, error);
  }

  /** A send that fails because the child is gone reports how it ended. */
  protected override async explainSendError(error: unknown): Promise<unknown> {
    if (this.closed && error instanceof Deno.errors.BadResource) return error;
    const status = await this.#waitForExit({ timeout: _SEND_EXIT_GRACE_MS })
      .catch(() => undefined);
    return status && !status.success ? this.#exitError(status, error) : error;
  }

  #exitError(status: Deno.CommandStatus, cause: unknown): ChildProcessError {
    return new ChildProcessError(this.#command, this.pid, status, { cause });
  }

  /** The exit status, waiting for it within the caller's timeout and signal. */
  #waitForExit(options: WaitOptions): Promise<Deno.CommandStatus> {
    if (this.#exit) return Promise.resolve(this.#exit);
    return raceDeadline(
      this.#process.status,
      deadlineOf(options),
      options.signal,
      `learn how child process "${this.#command}" ended`,
    );
  }
}

/**
 * Starts `command` and returns a typed channel to it over its stdin
 * (`TSend`) and stdout (`TReceive`). Takes its options as `Deno.Command`
 * does (`args`, `cwd`, `env`, `clearEnv`, `signal`, `stderr`), plus the
 * channel's (`framing`, codecs, `maxMessageSize`, `exitTimeout`). Needs
 * `--allow-run` for the command. The child's stderr is inherited unless
 * `stderr` says otherwise.
 *
 * @throws {TypeError} or {RangeError} for bad options, before starting anything
 * @throws {Deno.errors.NotFound} when the command does not exist
 * @throws {Deno.errors.NotCapable} without `--allow-run` for the command
 *
 * @example A Deno child that doubles numbers
 * ```ts ignore
 * // Not run as a test: it starts double.ts, which is not here.
 * import { spawn } from "@ipckit/ipckit";
 *
 * await using child = spawn<number, number>(Deno.execPath(), {
 *   args: ["run", "double.ts"],
 * });
 * await child.send(21);
 * console.log((await child.receive()).value); // 42
 * ```
 *
 * @example JSON lines with a program that knows nothing of ipckit
 * ```ts
 * import { spawn } from "@ipckit/ipckit";
 *
 * await using cat = spawn<{ n: number }, { n: number }>("cat", {
 *   framing: "lines",
 * });
 * await cat.send({ n: 1 });
 * console.log((await cat.receive({ timeout: 1000 })).value); // { n: 1 }
 * ```
 *
 * @category FIFOs and pipes
 */
export function spawn<TSend = unknown, TReceive = TSend>(
  command: string | URL,
  options: SpawnOptions<TSend, TReceive> = {},
): ChildChannel<TSend, TReceive> {
  const name = command instanceof URL ? command.pathname : String(command);
  const action = `spawn "${name}"`;
  if (typeof command !== "string" && !(command instanceof URL)) {
    throw new TypeError(
      `Cannot spawn a child: command must be a string or URL, got ${typeof command}`,
    );
  }
  if (Array.isArray(options)) {
    throw new TypeError(
      `Cannot ${action}: pass the arguments as { args: [...] }, as Deno.Command takes them`,
    );
  }
  checkOptionKeys(options, _SPAWN_KEYS, action);
  const args = options.args ?? [];
  if (!Array.isArray(args) || args.some((arg) => typeof arg !== "string")) {
    throw new TypeError(`Cannot ${action}: args must be an array of strings`);
  }
  checkFramingOptions({ ...options, codec: options.sendCodec }, action);
  checkFramingOptions({ codec: options.receiveCodec }, action);
  const stderr = options.stderr ?? "inherit";
  if (stderr !== "inherit" && stderr !== "piped" && stderr !== "null") {
    throw new TypeError(
      `Cannot ${action}: stderr must be "inherit", "piped" or "null", got ${
        JSON.stringify(stderr)
      }`,
    );
  }
  const exitTimeout = options.exitTimeout;
  if (
    exitTimeout !== undefined &&
    (typeof exitTimeout !== "number" || !(exitTimeout >= 0))
  ) {
    throw new RangeError(
      `Cannot ${action}: exitTimeout must be 0 or more milliseconds, got ${exitTimeout}`,
    );
  }
  const process = new Deno.Command(command, {
    args,
    cwd: options.cwd,
    env: options.env,
    clearEnv: options.clearEnv,
    signal: options.signal,
    stdin: "piped",
    stdout: "piped",
    stderr,
  }).spawn();
  return new ChildChannel<TSend, TReceive>(process, name, options);
}

/**
 * In a child started by {@linkcode spawn}: the channel back to the parent,
 * over this process's stdin (`TReceive`) and stdout (`TSend`). Use the same
 * framing and codecs as the parent, and keep stdout for the channel: log
 * with `console.error`.
 *
 * @example A child that doubles every number it gets
 * ```ts ignore
 * // Not run as a test: it is the child's side, reading its parent's pipe on stdin.
 * import { parentChannel } from "@ipckit/ipckit";
 *
 * await using parent = parentChannel<number, number>();
 * for await (const { value } of parent) await parent.send(value * 2);
 * ```
 *
 * @category FIFOs and pipes
 */
export function parentChannel<TSend = unknown, TReceive = TSend>(
  options: ParentChannelOptions<TSend, TReceive> = {},
): PipeChannel<TSend, TReceive> {
  const action = "open the channel to the parent";
  checkOptionKeys(options, _PARENT_KEYS, action);
  checkFramingOptions({ ...options, codec: options.sendCodec }, action);
  checkFramingOptions({ codec: options.receiveCodec }, action);
  const description = options.description ?? "parent process";
  if (options.direct) {
    const { readable, writable } = directStdio(description, action);
    return new PipeChannel<TSend, TReceive>(
      readable,
      writable,
      _pipeOptions(options, description),
    );
  }
  return new PipeChannel<TSend, TReceive>(
    Deno.stdin.readable,
    Deno.stdout.writable,
    _pipeOptions(options, description),
  );
}
