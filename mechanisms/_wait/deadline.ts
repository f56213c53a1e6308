/**
 * Deadlines, and the one race of "this wait, or the deadline, or the
 * signal" that every waiting call goes through.
 *
 * A wait ends in one of three ways: whatever it waits for settles it, its
 * deadline passes (`Deno.errors.TimedOut`), or its `AbortSignal` aborts
 * (the signal's reason). {@linkcode bounded} arms at most one timer and one
 * abort listener for that, and removes both, and runs the wait's own
 * clean-up, as soon as any of the three settles it, so an abandoned wait
 * leaves nothing behind (in the spirit of std's `deadline()` and
 * `abortable()`, which this module does not use because they cancel
 * nothing underneath and give no hook to unregister a waiter).
 *
 * Deadlines are instants of `performance.now()`, the monotonic clock: a
 * wall-clock step changes no timeout.
 *
 * @module
 */

import { optionKeys } from "../_common/checks.ts";
import { timeoutError } from "../_common/system_error.ts";

/** When a wait must end, on the monotonic clock of `performance.now()`. */
export interface Deadline {
  /** The instant in `performance.now()` milliseconds; `Infinity` for no limit. */
  readonly at: number;
  /** The timeout the caller asked for, for error messages. */
  readonly timeout: number;
}

/** The options every waiting call takes (the public `WaitOptions`). */
export interface WaitBounds {
  /** Milliseconds before `TimedOut`; unset: no limit; 0: do not wait. */
  timeout?: number;
  /** Aborting ends the wait with the signal's reason. */
  signal?: AbortSignal;
}

/** The keys of {@linkcode WaitBounds}, for `checkOptionKeys`. */
export const WAIT_KEYS: readonly string[] = optionKeys<WaitBounds>({
  timeout: true,
  signal: true,
});

/** The keys of a blocking (`*Sync`) call's options: a timeout only. */
export const SYNC_WAIT_KEYS: readonly string[] = optionKeys<
  Pick<WaitBounds, "timeout">
>({ timeout: true });

/** No deadline. */
export const FOREVER: Deadline = { at: Infinity, timeout: Infinity };

/**
 * Checks `{ timeout, signal }` before any system call and fixes the deadline.
 *
 * @param action what waits, for messages: `receive from message queue "/jobs"`
 * @throws {TypeError} when `timeout` is not a number or `signal` not an AbortSignal
 * @throws {RangeError} for a negative timeout
 */
export function deadlineOf(
  options: WaitBounds | undefined,
  action: string = "wait",
): Deadline {
  const timeout = options?.timeout;
  if (timeout !== undefined) {
    if (typeof timeout !== "number" || Number.isNaN(timeout)) {
      throw new TypeError(
        `Cannot ${action}: timeout must be a number of milliseconds, got ${typeof timeout}`,
      );
    }
    if (timeout < 0) {
      throw new RangeError(
        `Cannot ${action}: timeout must be 0 or more milliseconds, got ${timeout}`,
      );
    }
  }
  const signal = options?.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(`Cannot ${action}: signal must be an AbortSignal`);
  }
  return timeout === undefined
    ? FOREVER
    : { at: performance.now() + timeout, timeout };
}

/** Whether the deadline has passed. */
export function expired(deadline: Deadline): boolean {
  return deadline.at !== Infinity && performance.now() >= deadline.at;
}

/**
 * Milliseconds left before `deadline`, rounded up, as poll() and timers
 * take them: never negative, -1 for no deadline.
 */
export function remainingMs(deadline: Deadline): number {
  if (deadline.at === Infinity) return -1;
  return Math.max(0, Math.ceil(deadline.at - performance.now()));
}

/**
 * What settles a {@linkcode bounded} wait from the inside. Only the first
 * call of either counts; later ones do nothing.
 */
export interface Settle<R> {
  /** Ends the wait with a value. */
  resolve(value: R): void;
  /** Ends the wait with an error. */
  reject(error: unknown): void;
}

/**
 * Runs one wait bounded by `deadline` and `signal`: `begin` starts it and
 * gets the means to settle it, and may return a clean-up, which runs
 * exactly once, synchronously, however the wait ends (before the caller
 * hears of it). At most one timer and one abort listener exist meanwhile.
 *
 * An already aborted signal rejects at once without calling `begin`; an
 * exception thrown by `begin` rejects the wait. A
 * deadline that has passed still calls `begin`, and rejects on a timer of
 * 0 ms, so that something already settled (a promise `begin` awaits) wins
 * over the timeout; callers that must not even start check
 * {@linkcode expired} first.
 *
 * @param action what was being done, for the timeout message: `receive from message queue "/jobs"`
 */
export function bounded<R>(
  deadline: Deadline,
  signal: AbortSignal | undefined,
  action: string,
  begin: (settle: Settle<R>) => (() => void) | void,
): Promise<R> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  const { promise, resolve, reject } = Promise.withResolvers<R>();
  let settled = false;
  let cleanup: (() => void) | void = undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const finish = () => {
    settled = true;
    if (timer !== undefined) clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    const run = cleanup;
    cleanup = undefined;
    run?.();
  };
  const settle: Settle<R> = {
    resolve(value): void {
      if (settled) return;
      finish();
      resolve(value);
    },
    reject(error): void {
      if (settled) return;
      finish();
      reject(error);
    },
  };
  const onAbort = () => settle.reject(signal!.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  if (deadline.at !== Infinity) {
    timer = setTimeout(
      () => settle.reject(timeoutError(action, deadline.timeout)),
      remainingMs(deadline),
    );
  }
  try {
    cleanup = begin(settle);
  } catch (error) {
    settle.reject(error);
  }
  // `begin` settled the wait itself: its clean-up did not exist yet then.
  if (settled && cleanup) {
    const run = cleanup;
    cleanup = undefined;
    run();
  }
  return promise;
}

/**
 * Settles with `operation`, or rejects when the deadline passes or `signal`
 * aborts, without cancelling `operation` (an accept, a connect, a read of a
 * stream). `onLate` receives its value if it arrives after the caller gave
 * up (to close a connection nobody will use).
 */
export function raceDeadline<R>(
  operation: Promise<R>,
  deadline: Deadline,
  signal: AbortSignal | undefined,
  action: string,
  onLate?: (value: R) => void,
): Promise<R> {
  if (deadline.at === Infinity && !signal) return operation;
  // Who settled the race: nobody yet, the operation, or the caller giving up.
  let state: "racing" | "done" | "gave up" = "gave up";
  operation.then((value) => {
    if (state === "gave up") onLate?.(value);
  }, () => {});
  return bounded<R>(deadline, signal, action, (settle) => {
    state = "racing";
    operation.then((value) => {
      if (state !== "racing") return;
      state = "done";
      settle.resolve(value);
    }, (error) => {
      if (state !== "racing") return;
      state = "done";
      settle.reject(error);
    });
    return () => {
      if (state === "racing") state = "gave up";
    };
  });
}

/**
 * Sleeps `ms` on a timer (the event loop runs meanwhile), never past the
 * deadline: resolves after `ms`, or at the deadline if that comes first,
 * and rejects with `TimedOut` once the deadline has passed, or with the
 * signal's reason. The sleep of every backoff loop.
 */
export function sleep(
  ms: number,
  deadline: Deadline,
  signal: AbortSignal | undefined,
  action: string,
): Promise<void> {
  if (expired(deadline)) return bounded(deadline, signal, action, () => {});
  const remaining = deadline.at === Infinity ? Infinity : remainingMs(deadline);
  return bounded<void>(FOREVER, signal, action, (settle) => {
    const timer = setTimeout(() => settle.resolve(), Math.min(ms, remaining));
    return () => clearTimeout(timer);
  });
}
