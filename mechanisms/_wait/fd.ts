/**
 * Waiting for a descriptor without blocking the event loop, and with it.
 *
 * Async operations try the non-blocking call first and only "park" when it
 * would block. Parking runs `poll()` on Deno's blocking thread pool (a
 * `nonblocking` FFI call), then the caller retries the non-blocking call on
 * the main thread, where errno can be read. The parked poll also watches an
 * eventfd, so a timeout, an abort or `close()` can wake it at once: no thread
 * stays parked on a descriptor nobody waits for, and a closed handle never
 * keeps the process alive.
 *
 * @module
 */

import { EFD, POLL, POLLFD_SIZE } from "../../ffi/c.ts";
import { retryEintr } from "../../ffi/errno.ts";
import { libc } from "../../ffi/load.ts";
import type { WaitOptions } from "../channel.ts";
import {
  closedError,
  systemError,
  timeoutError,
} from "../_common/system_error.ts";

/** Without an eventfd (macOS) a parked poll rechecks this often. */
const _FALLBACK_SLICE_MS = 50;

/** When a wait must end, on the monotonic clock of `performance.now()`. */
export interface Deadline {
  /** The instant in `performance.now()` milliseconds; `Infinity` for no limit. */
  at: number;
  /** The timeout the caller asked for, for error messages. */
  timeout: number;
}

/**
 * Checks `{ timeout, signal }` before any system call and fixes the deadline.
 */
export function deadlineOf(options: WaitOptions | undefined): Deadline {
  const timeout = options?.timeout;
  if (timeout !== undefined) {
    if (typeof timeout !== "number" || Number.isNaN(timeout)) {
      throw new TypeError(
        `Cannot wait: timeout must be a number of milliseconds, got ${typeof timeout}`,
      );
    }
    if (timeout < 0) {
      throw new RangeError(
        `Cannot wait: timeout must be 0 or more milliseconds, got ${timeout}`,
      );
    }
  }
  const signal = options?.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError("Cannot wait: signal must be an AbortSignal");
  }
  return timeout === undefined
    ? { at: Infinity, timeout: Infinity }
    : { at: performance.now() + timeout, timeout };
}

/**
 * Blocks the calling thread until `fd` is ready for `events` or the deadline
 * passes. Retries EINTR with the remaining time.
 *
 * @returns whether the descriptor became ready (false: timed out)
 */
export function pollSync(
  fd: number,
  events: number,
  deadline: Deadline,
  action: string,
): boolean {
  const pollfd = new Uint8Array(POLLFD_SIZE);
  const view = new DataView(pollfd.buffer);
  view.setInt32(0, fd, true);
  view.setInt16(4, events, true);
  const poll = libc().symbols.poll;
  const result = retryEintr(() => poll(pollfd, 1n, _remainingMs(deadline)));
  if (result < 0) throw systemError("poll", action, -result);
  return result > 0;
}

/** Milliseconds left before `deadline`, rounded up, as poll() takes them (-1: forever). */
function _remainingMs(deadline: Deadline): number {
  if (deadline.at === Infinity) return -1;
  return Math.max(0, Math.ceil(deadline.at - performance.now()));
}

interface _Waiter {
  resolve(): void;
  reject(error: unknown): void;
}

/**
 * Parks async callers until one descriptor is ready for one kind of event.
 *
 * All callers waiting on the same descriptor share one parked poll; when it
 * returns, every caller retries its operation (one may win, the others park
 * again). Each caller's own timeout and abort are handled here, and the last
 * caller to leave wakes the parked poll so that its thread is released.
 */
export class FdParker {
  #fd: number;
  #events: number;
  #what: string;
  #waiters = new Set<_Waiter>();
  #inFlight: Promise<void> | undefined;
  #wakeFd = -1;
  #closed = false;
  #onIdle: (() => void) | undefined;
  // Kept in fields: C reads them on another thread while a poll is parked.
  #pollfds = new Uint8Array(POLLFD_SIZE * 2);
  #wakeValue = new BigUint64Array([1n]);
  #drain = new Uint8Array(8);

  /**
   * @param fd the descriptor to watch
   * @param events `POLL.IN` or `POLL.OUT`
   * @param what the object, for messages: `message queue "/jobs"`
   */
  constructor(fd: number, events: number, what: string) {
    this.#fd = fd;
    this.#events = events;
    this.#what = what;
  }

  /**
   * Waits until the descriptor may be ready. Resolves when the caller should
   * retry; rejects with `TimedOut` at the deadline, with the signal's reason on
   * abort, and with `BadResource` when the parker is closed.
   */
  park(
    deadline: Deadline,
    signal: AbortSignal | undefined,
    action: string,
  ): Promise<void> {
    if (this.#closed) return Promise.reject(closedError(this.#what));
    if (signal?.aborted) return Promise.reject(signal.reason);
    const remaining = deadline.at - performance.now();
    if (remaining <= 0) {
      return Promise.reject(timeoutError(action, deadline.timeout));
    }
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const leave = () => {
      this.#waiters.delete(waiter);
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      // Nobody is left to care about the parked poll: release its thread.
      if (this.#waiters.size === 0) this.#wake();
    };
    const waiter: _Waiter = {
      resolve: () => {
        leave();
        resolve();
      },
      reject: (error) => {
        leave();
        reject(error);
      },
    };
    const onAbort = () => waiter.reject(signal!.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    if (deadline.at !== Infinity) {
      timer = setTimeout(
        () => waiter.reject(timeoutError(action, deadline.timeout)),
        Math.ceil(remaining),
      );
    }
    this.#waiters.add(waiter);
    this.#startPoll();
    return promise;
  }

  /**
   * Rejects every waiter with `BadResource` and wakes the parked poll.
   * `onIdle` runs once no poll is parked any more: only then may the owner
   * close the descriptor, because a parked thread may still be reading it.
   */
  close(onIdle: () => void): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#onIdle = onIdle;
    for (const waiter of [...this.#waiters]) {
      waiter.reject(closedError(this.#what));
    }
    if (!this.#inFlight) this.#release();
  }

  #startPoll(): void {
    if (this.#inFlight) return;
    const view = new DataView(this.#pollfds.buffer);
    view.setInt32(0, this.#fd, true);
    view.setInt16(4, this.#events, true);
    view.setInt16(6, 0, true);
    const wakeFd = this.#ensureWakeFd();
    view.setInt32(8, wakeFd, true);
    view.setInt16(12, POLL.IN, true);
    view.setInt16(14, 0, true);
    const count = wakeFd >= 0 ? 2n : 1n;
    const timeout = wakeFd >= 0 ? -1 : _FALLBACK_SLICE_MS;
    this.#inFlight = libc().symbols.poll_nonblocking(
      this.#pollfds,
      count,
      timeout,
    ).then(() => this.#afterPoll());
  }

  #afterPoll(): void {
    this.#inFlight = undefined;
    const view = new DataView(this.#pollfds.buffer);
    if (this.#wakeFd >= 0 && (view.getInt16(14, true) & POLL.IN)) {
      // Reset the eventfd so the next park sleeps again.
      libc().symbols.read(this.#wakeFd, this.#drain, 8n);
    }
    if (this.#closed) {
      this.#release();
      return;
    }
    // Ready, woken, or an error condition: in every case the waiters retry
    // their operation, which reports the real state with an exact errno.
    for (const waiter of [...this.#waiters]) waiter.resolve();
  }

  #wake(): void {
    if (this.#inFlight && this.#wakeFd >= 0) {
      libc().symbols.write(this.#wakeFd, this.#wakeValue, 8n);
    }
  }

  #ensureWakeFd(): number {
    if (this.#wakeFd >= 0) return this.#wakeFd;
    const eventfd = libc().symbols.eventfd;
    if (!eventfd) return -1;
    const fd = eventfd(0, EFD.NONBLOCK | EFD.CLOEXEC);
    if (fd < 0) {
      // Without a wake descriptor we still work, with bounded polls.
      return -1;
    }
    this.#wakeFd = fd;
    return fd;
  }

  #release(): void {
    if (this.#wakeFd >= 0) {
      libc().symbols.close(this.#wakeFd);
      this.#wakeFd = -1;
    }
    const onIdle = this.#onIdle;
    this.#onIdle = undefined;
    onIdle?.();
  }
}
