/**
 * poll(2) from C: the `struct pollfd` layout and the call, blocking the
 * calling thread or parked on Deno's thread pool.
 *
 * @module
 */

import { POLL, POLLFD_SIZE } from "./c.ts";
import { lastErrno } from "./errno.ts";
import { libc } from "./load.ts";

/** `struct pollfd { int fd; short events; short revents; }` (Linux and macOS). */
const _POLLFD = { FD: 0, EVENTS: 4, REVENTS: 6 } as const;

export { POLL };

/**
 * An array of `struct pollfd` that C reads and writes. Its owner holds it
 * while a parked poll may still use it.
 */
export class PollList {
  /** The bytes C reads and writes. */
  readonly bytes: Uint8Array<ArrayBuffer>;
  /** How many entries fit. */
  readonly capacity: number;
  #view: DataView;

  /** @param capacity how many descriptors it holds */
  constructor(capacity: number) {
    this.capacity = capacity;
    this.bytes = new Uint8Array(capacity * POLLFD_SIZE);
    this.#view = new DataView(this.bytes.buffer);
  }

  /** Sets entry `index` to watch `fd` for `events`, clearing its result. */
  set(index: number, fd: number, events: number): void {
    const at = index * POLLFD_SIZE;
    this.#view.setInt32(at + _POLLFD.FD, fd, true);
    this.#view.setInt16(at + _POLLFD.EVENTS, events, true);
    this.#view.setInt16(at + _POLLFD.REVENTS, 0, true);
  }

  /** The events reported for entry `index` by the last poll. */
  revents(index: number): number {
    return this.#view.getInt16(index * POLLFD_SIZE + _POLLFD.REVENTS, true) &
      0xffff;
  }
}

/**
 * poll() on the calling thread. EINTR is returned, not retried, so that
 * the caller retries with what is left of its own deadline.
 *
 * @returns the number of ready entries, 0 on timeout, or `-errno`
 */
export function pollBlocking(
  list: PollList,
  count: number,
  timeoutMs: number,
): number {
  const result = libc().symbols.poll(list.bytes, BigInt(count), timeoutMs);
  return result < 0 ? -lastErrno() : result;
}

/**
 * poll() on Deno's thread pool. Resolves to the number of ready entries,
 * or -1 (its errno is lost on that thread).
 */
export function pollAsync(
  list: PollList,
  count: number,
  timeoutMs: number,
): Promise<number> {
  return libc().symbols.poll_nonblocking(list.bytes, BigInt(count), timeoutMs);
}
