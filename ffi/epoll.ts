/**
 * epoll(7) from C: its constants, the `struct epoll_event` layout, and thin
 * wrappers over `epoll_create1`, `epoll_ctl` and `epoll_wait` (the last one
 * also as a `nonblocking` call on Deno's thread pool). Linux only: on other
 * systems {@linkcode hasEpoll} is false.
 *
 * @module
 */

import { requireSymbol } from "./c.ts";
import { retryEintr } from "./errno.ts";
import { libc } from "./load.ts";

/** Event bits of `struct epoll_event.events` (the same values as poll's, plus the flags). */
export const EPOLL = {
  IN: 0x001,
  OUT: 0x004,
  ERR: 0x008,
  HUP: 0x010,
  /** Report one event, then disarm until `EPOLL_CTL_MOD` re-arms it. */
  ONESHOT: 1 << 30,
  /** `epoll_create1` flag: close the epoll descriptor on exec. */
  CLOEXEC: 0o2000000,
} as const;

/** `epoll_ctl` operations. */
export const EPOLL_CTL = { ADD: 1, DEL: 2, MOD: 3 } as const;

/**
 * `struct epoll_event { uint32_t events; epoll_data_t data; }`. glibc and
 * musl declare it `__attribute__((packed))` on x86_64 only, so the 64-bit
 * `data` follows `events` directly there (12 bytes); on aarch64 it is
 * aligned to 8 (16 bytes).
 */
export const EPOLL_EVENT = Deno.build.arch === "x86_64"
  ? { EVENTS: 0, DATA: 4, SIZE_OF: 12 } as const
  : { EVENTS: 0, DATA: 8, SIZE_OF: 16 } as const;

/** Whether this system has epoll (Linux). */
export function hasEpoll(): boolean {
  return Deno.build.os === "linux" && libc().symbols.epoll_create1 !== null;
}

/** `epoll_create1(EPOLL_CLOEXEC)`: the new descriptor, or `-errno`. */
export function epollCreate(): number {
  const create = requireSymbol("epoll_create1");
  return retryEintr(() => create(EPOLL.CLOEXEC));
}

/**
 * `epoll_ctl(epfd, op, fd, &{ events, data })`: 0, or `-errno`. The event
 * is copied by the kernel during the call, so one scratch buffer serves.
 */
export function epollCtl(
  epfd: number,
  op: number,
  fd: number,
  events: number,
  data: bigint,
): number {
  const view = _ctlView;
  view.setUint32(EPOLL_EVENT.EVENTS, events >>> 0, true);
  view.setBigUint64(EPOLL_EVENT.DATA, data, true);
  const ctl = requireSymbol("epoll_ctl");
  return retryEintr(() => ctl(epfd, op, fd, _ctlBytes));
}

const _ctlBytes = new Uint8Array(16);
const _ctlView = new DataView(_ctlBytes.buffer);

/**
 * A buffer of `struct epoll_event`s that `epoll_wait` fills. It must stay
 * alive (it is held by its owner) while a `nonblocking` wait may write it.
 */
export class EpollEvents {
  /** The bytes C writes. */
  readonly bytes: Uint8Array<ArrayBuffer>;
  /** How many events fit. */
  readonly capacity: number;
  #view: DataView;

  /** @param capacity the most events one wait reports */
  constructor(capacity: number) {
    this.capacity = capacity;
    this.bytes = new Uint8Array(capacity * EPOLL_EVENT.SIZE_OF);
    this.#view = new DataView(this.bytes.buffer);
  }

  /** The event bits of entry `index`. */
  events(index: number): number {
    return this.#view.getUint32(
      index * EPOLL_EVENT.SIZE_OF + EPOLL_EVENT.EVENTS,
      true,
    );
  }

  /** The `data` (as registered) of entry `index`. */
  data(index: number): bigint {
    return this.#view.getBigUint64(
      index * EPOLL_EVENT.SIZE_OF + EPOLL_EVENT.DATA,
      true,
    );
  }
}

/**
 * `epoll_wait(epfd, events, capacity, -1)` on Deno's thread pool: resolves
 * to the number of events, or -1 (its errno, EINTR in practice, is lost on
 * that thread: callers treat -1 as "nothing happened, look again").
 */
export function epollWaitAsync(
  epfd: number,
  events: EpollEvents,
): Promise<number> {
  const wait = requireSymbol("epoll_wait_nonblocking");
  return wait(epfd, events.bytes, events.capacity, -1);
}
