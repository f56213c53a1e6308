/**
 * Signals: the IPC every process already speaks. Typed names, disposable
 * subscriptions, an async iterator, and sending — on top of Deno's own
 * `Deno.addSignalListener` and `Deno.kill`.
 *
 * A signal carries no data, only "it happened"; several deliveries of the
 * same signal before the handler runs may merge into one. Use it to wake or
 * stop a process, and a channel to tell it what to do.
 *
 * Permissions: listening needs none; `sendSignal()` needs `--allow-run`
 * without a list of programs (Deno's rule for `Deno.kill`).
 *
 * @example Reload on SIGHUP, stop on SIGUSR2
 * ```ts
 * import { onSignal, sendSignal, signals } from "@ipckit/ipckit/signal";
 *
 * using _reload = onSignal("SIGHUP", () => console.log("reloading"));
 * setTimeout(() => sendSignal(Deno.pid, "SIGUSR2"), 10);
 * for await (const _ of signals("SIGUSR2")) break;
 * console.log("shutting down");
 * ```
 *
 * @module
 */

import { checkOptionKeys, optionKeys } from "./_common/checks.ts";

/**
 * Every signal name Deno knows on some platform.
 *
 * @example The signal that asks a process to stop
 * ```ts
 * import type { SignalName } from "@ipckit/ipckit";
 *
 * const stop: SignalName = "SIGTERM";
 * ```
 *
 * @category Signals
 */
export type SignalName = Deno.Signal;

/**
 * Signals no process can handle: the kernel acts on them directly.
 *
 * @example A signal no handler can catch
 * ```ts
 * import type { UncatchableSignal } from "@ipckit/ipckit";
 *
 * const kill: UncatchableSignal = "SIGKILL";
 * ```
 *
 * @category Signals
 */
export type UncatchableSignal = "SIGKILL" | "SIGSTOP";

/**
 * Signals that report a fault in the process itself; Deno keeps them.
 *
 * @example A signal that reports a fault in the process itself
 * ```ts
 * import type { FaultSignal } from "@ipckit/ipckit";
 *
 * const fault: FaultSignal = "SIGSEGV";
 * ```
 *
 * @category Signals
 */
export type FaultSignal = "SIGSEGV" | "SIGILL" | "SIGFPE";

/**
 * Signals a Deno program can listen for (where the platform has them).
 *
 * @example A signal a handler may catch
 * ```ts
 * import type { CatchableSignal } from "@ipckit/ipckit";
 *
 * const reload: CatchableSignal = "SIGHUP";
 * ```
 *
 * @category Signals
 */
export type CatchableSignal = Exclude<
  SignalName,
  UncatchableSignal | FaultSignal
>;

/**
 * A signal handler registration; dispose it (or call `unsubscribe()`) to
 * remove the handler.
 *
 * @example Listen, then stop listening
 * ```ts
 * import { onSignal } from "@ipckit/ipckit";
 *
 * const subscription = onSignal("SIGUSR1", () => console.log("ping"));
 * subscription.unsubscribe();
 * console.log(subscription.active); // false
 * ```
 *
 * @category Signals
 */
export interface SignalSubscription extends Disposable, AsyncDisposable {
  /** The signal this subscription listens for. */
  readonly name: CatchableSignal;
  /** Whether the handler is still registered. */
  readonly active: boolean;
  /** Removes the handler; idempotent. */
  unsubscribe(): void;
  /** Removes the handler; the same as `unsubscribe()`. */
  close(): void;
  /** Removes the handler; the same as `unsubscribe()`. */
  [Symbol.asyncDispose](): Promise<void>;
}

const _SIGNALS_KEYS = optionKeys<{ signal?: AbortSignal }>({ signal: true });
const _SEND_KEYS = optionKeys<SendSignalOptions>({ processGroup: true });

/** Only keeps the event loop busy; the interval's length does not matter. */
const _KEEP_ALIVE_MS = 1 << 30;

const _UNCATCHABLE: ReadonlySet<string> = new Set(["SIGKILL", "SIGSTOP"]);
const _FAULTS: ReadonlySet<string> = new Set(["SIGSEGV", "SIGILL", "SIGFPE"]);

// Which names exist where. Signals common to Linux and the BSDs/macOS are
// listed once; each side adds its own.
const _POSIX_COMMON = [
  "SIGABRT",
  "SIGALRM",
  "SIGBUS",
  "SIGCHLD",
  "SIGCONT",
  "SIGFPE",
  "SIGHUP",
  "SIGILL",
  "SIGINT",
  "SIGIO",
  "SIGKILL",
  "SIGPIPE",
  "SIGPROF",
  "SIGQUIT",
  "SIGSEGV",
  "SIGSTOP",
  "SIGSYS",
  "SIGTERM",
  "SIGTRAP",
  "SIGTSTP",
  "SIGTTIN",
  "SIGTTOU",
  "SIGURG",
  "SIGUSR1",
  "SIGUSR2",
  "SIGVTALRM",
  "SIGWINCH",
  "SIGXCPU",
  "SIGXFSZ",
];
const _PLATFORM_SIGNALS: Partial<Record<string, ReadonlySet<string>>> = {
  linux: new Set([
    ..._POSIX_COMMON,
    "SIGPOLL",
    "SIGPWR",
    "SIGSTKFLT",
    "SIGUNUSED",
  ]),
  android: new Set([
    ..._POSIX_COMMON,
    "SIGPOLL",
    "SIGPWR",
    "SIGSTKFLT",
    "SIGUNUSED",
  ]),
  darwin: new Set([..._POSIX_COMMON, "SIGEMT", "SIGINFO"]),
  freebsd: new Set([..._POSIX_COMMON, "SIGEMT", "SIGINFO"]),
  openbsd: new Set([..._POSIX_COMMON, "SIGEMT", "SIGINFO"]),
  netbsd: new Set([..._POSIX_COMMON, "SIGEMT", "SIGINFO"]),
  windows: new Set(["SIGINT", "SIGBREAK"]),
};

/** Throws unless `name` is a signal this platform has. */
function _checkExists(name: unknown, action: string): SignalName {
  if (typeof name !== "string") {
    throw new TypeError(
      `Cannot ${action}: the signal name must be a string like "SIGTERM", got ${typeof name}`,
    );
  }
  const known = _PLATFORM_SIGNALS[Deno.build.os];
  if (known && !known.has(name)) {
    const anywhere = Object.values(_PLATFORM_SIGNALS).some((set) =>
      set!.has(name)
    );
    throw new TypeError(
      anywhere
        ? `Cannot ${action} ${name}: ${Deno.build.os} has no such signal`
        : `Cannot ${action} ${name}: no such signal; names look like "SIGTERM"`,
    );
  }
  return name as SignalName;
}

/** Throws unless a handler may be installed for `name`. */
function _checkCatchable(name: unknown, action: string): CatchableSignal {
  const signal = _checkExists(name, action);
  if (_UNCATCHABLE.has(signal)) {
    throw new TypeError(
      `Cannot ${action} ${signal}: it cannot be caught, the kernel acts on it without asking the process`,
    );
  }
  if (_FAULTS.has(signal)) {
    throw new TypeError(
      `Cannot ${action} ${signal}: it reports a fault in the process itself, which Deno does not let JavaScript handle`,
    );
  }
  return signal as CatchableSignal;
}

/**
 * Calls `handler` each time this process receives `name`. The returned
 * subscription removes the handler when disposed. Like Deno's own listeners,
 * it does not keep the process alive; a pending `next()` of
 * {@linkcode signals} does.
 *
 * @throws {TypeError} for `SIGKILL`/`SIGSTOP` (uncatchable), the fault
 * signals, or a name this platform does not have
 *
 * @example Finish up on Ctrl-C
 * ```ts
 * import { onSignal } from "@ipckit/ipckit";
 *
 * using _ = onSignal("SIGINT", (name) => console.log(`got ${name}, finishing up`));
 * ```
 *
 * @category Signals
 */
export function onSignal(
  name: CatchableSignal,
  handler: (name: CatchableSignal) => void,
): SignalSubscription {
  const signal = _checkCatchable(name, "listen for");
  if (typeof handler !== "function") {
    throw new TypeError(
      `Cannot listen for ${signal}: the handler must be a function`,
    );
  }
  const listener = () => handler(signal);
  Deno.addSignalListener(signal, listener);
  let active = true;
  const unsubscribe = () => {
    if (!active) return;
    active = false;
    Deno.removeSignalListener(signal, listener);
  };
  return {
    name: signal,
    get active() {
      return active;
    },
    unsubscribe,
    close: unsubscribe,
    [Symbol.dispose]: unsubscribe,
    [Symbol.asyncDispose]: () => Promise.resolve(unsubscribe()),
  };
}

/**
 * The deliveries of one signal, as an async iterator; returned by
 * {@linkcode signals}. Disposing it (or ending the loop) removes its handler.
 *
 * @example Wait for the next delivery
 * ```ts
 * import { sendSignal, signals } from "@ipckit/ipckit";
 *
 * using hups = signals("SIGUSR2");
 * sendSignal(Deno.pid, "SIGUSR2");
 * await hups.next(); // resolves at the next SIGUSR2: counted already
 * ```
 *
 * @category Signals
 */
export interface SignalStream
  extends AsyncIterableIterator<CatchableSignal>, Disposable, AsyncDisposable {
  /** Stops listening; a pending `next()` resolves as done. */
  return(): Promise<IteratorResult<CatchableSignal, undefined>>;
  /** Stops listening, as `return()` does; idempotent. */
  close(): void;
  /** Stops listening, as `return()` does. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Yields the signal's name each time this process receives `name`, until
 * the loop ends (`break`), the stream is disposed, or `options.signal`
 * aborts. The handler is installed at once, so a signal that arrives before
 * the loop starts is not lost, and deliveries that arrive while the loop body
 * runs are counted. While the loop waits, the process stays alive.
 *
 * @throws {TypeError} as {@linkcode onSignal} does
 *
 * @example A loop that runs once per signal
 * ```ts
 * import { sendSignal, signals } from "@ipckit/ipckit";
 *
 * const stop = new AbortController();
 * setTimeout(() => sendSignal(Deno.pid, "SIGUSR2"), 10);
 * for await (const _ of signals("SIGUSR2", { signal: stop.signal })) {
 *   console.log("dumping stats");
 *   stop.abort(); // ends the loop
 * }
 * ```
 *
 * @category Signals
 */
export function signals(
  name: CatchableSignal,
  options: { signal?: AbortSignal } = {},
): SignalStream {
  checkOptionKeys(options, _SIGNALS_KEYS, `listen for ${String(name)}`);
  const signal = _checkCatchable(name, "listen for");
  const abort = options.signal;
  if (abort !== undefined && !(abort instanceof AbortSignal)) {
    throw new TypeError(
      `Cannot listen for ${signal}: options.signal must be an AbortSignal`,
    );
  }
  let pending = 0;
  let done = false;
  let wake: (() => void) | undefined;
  const subscription = onSignal(signal, () => {
    pending++;
    wake?.();
  });
  const finish = (): Promise<IteratorResult<CatchableSignal, undefined>> => {
    done = true;
    subscription.unsubscribe();
    abort?.removeEventListener("abort", onAbort);
    wake?.();
    return Promise.resolve({ done: true, value: undefined });
  };
  const onAbort = () => void finish();
  if (abort?.aborted) void finish();
  else abort?.addEventListener("abort", onAbort, { once: true });

  const stream: SignalStream = {
    async next(): Promise<IteratorResult<CatchableSignal, undefined>> {
      while (!done) {
        if (pending > 0) {
          pending--;
          return { done: false, value: signal };
        }
        const { promise, resolve } = Promise.withResolvers<void>();
        wake = resolve;
        // Deno's signal listeners do not keep the process alive; a loop
        // waiting for a signal must, as a pending read would.
        const keepAlive = setInterval(() => {}, _KEEP_ALIVE_MS);
        try {
          await promise;
        } finally {
          clearInterval(keepAlive);
          wake = undefined;
        }
      }
      return { done: true, value: undefined };
    },
    return: finish,
    [Symbol.asyncIterator](): SignalStream {
      return stream;
    },
    close(): void {
      void finish();
    },
    [Symbol.dispose](): void {
      void finish();
    },
    async [Symbol.asyncDispose](): Promise<void> {
      await finish();
    },
  };
  return stream;
}

/**
 * Options for {@linkcode sendSignal}.
 *
 * @example Signal a whole process group
 * ```ts
 * import type { SendSignalOptions } from "@ipckit/ipckit";
 *
 * const wholeGroup: SendSignalOptions = { processGroup: true };
 * ```
 *
 * @category Signals
 */
export interface SendSignalOptions {
  /**
   * Treat the id as a process group id and signal every process in that
   * group (`kill(-pgid, sig)`). Default `false`: the id is one process.
   * Group 1 is refused, because `kill(-1)` means every process the caller
   * may signal, not group 1.
   */
  processGroup?: boolean;
}

/** The largest `pid_t` (a signed 32-bit integer on Linux and macOS). */
const _PID_T_MAX = 0x7fff_ffff;

/**
 * Sends signal `name` to process `pid`, or with `{ processGroup: true }` to
 * every process in the group `pid`.
 *
 * Only a positive integer that fits `pid_t` is accepted: `kill(2)` gives 0,
 * -1 and negative ids other meanings (the caller's group, every process it
 * may signal, a group), and a larger number would wrap around to one of
 * them, so those are refused before anything is sent.
 *
 * Permissions: `--allow-run` with no list of programs, Deno's rule for
 * `Deno.kill` (`--allow-run=sleep` is not enough), for a process and for a
 * group alike. The kernel then allows signalling only processes of the same
 * user (or any, for root).
 *
 * @param pid a process id, or with `processGroup` a process group id: an
 * integer from 1 (2 for a group) to 2147483647
 * @param name the signal, e.g. `"SIGTERM"`
 * @param options `{ processGroup: true }` to signal a process group
 * @throws {TypeError} for an id that is not an integer, or a name this
 * platform does not have
 * @throws {RangeError} for an id outside 1 to 2147483647 (2 to 2147483647
 * for a group)
 * @throws {Deno.errors.NotCapable} without `--allow-run`
 * @throws {Deno.errors.NotFound} when no such process (or group) exists
 * @throws {Deno.errors.PermissionDenied} when the OS forbids signalling it
 *
 * @example Stop a child process
 * ```ts
 * import { sendSignal } from "@ipckit/ipckit";
 *
 * const child = new Deno.Command("sleep", { args: ["60"] }).spawn();
 * sendSignal(child.pid, "SIGTERM");
 * console.log((await child.status).signal); // SIGTERM
 * ```
 *
 * @category Signals
 */
export function sendSignal(
  pid: number,
  name: SignalName,
  options: SendSignalOptions = {},
): void {
  checkOptionKeys(options, _SEND_KEYS, "send a signal");
  const group = options?.processGroup;
  if (group !== undefined && typeof group !== "boolean") {
    throw new TypeError(
      `Cannot send a signal: processGroup must be a boolean, got ${typeof group}`,
    );
  }
  const what = group ? "process group id" : "pid";
  if (typeof pid !== "number" || !Number.isInteger(pid)) {
    throw new TypeError(
      `Cannot send a signal: ${what} must be an integer, got ${
        typeof pid === "number" ? String(pid) : typeof pid
      }`,
    );
  }
  const lowest = group ? 2 : 1;
  if (pid < lowest || pid > _PID_T_MAX) {
    throw new RangeError(
      `Cannot send a signal: ${what} must be from ${lowest} to ${_PID_T_MAX}, got ${pid}${
        _whyRefused(pid, group ?? false)
      }`,
    );
  }
  const signal = _checkExists(name, "send");
  const target = group ? `process group ${pid}` : `process ${pid}`;
  try {
    Deno.kill(group ? -pid : pid, signal);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(
        `Cannot send ${signal} to ${target}: no such ${
          group ? "process group" : "process"
        }`,
        { cause: error },
      );
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new Deno.errors.PermissionDenied(
        `Cannot send ${signal} to ${target}: the OS does not permit it`,
        { cause: error },
      );
    }
    throw error;
  }
}

/** What kill(2) would have made of an id that is refused, for the message. */
function _whyRefused(pid: number, group: boolean): string {
  if (pid === 0) return " (kill(0) would signal this process's own group)";
  if (pid === -1 || (group && pid === 1)) {
    return " (kill(-1) would signal every process this user may signal)";
  }
  if (pid < 0) {
    return group
      ? " (give the group id itself, without a minus sign)"
      : " (a negative pid is a process group: pass { processGroup: true } and the positive group id)";
  }
  return " (it does not fit pid_t, so it would wrap around)";
}
