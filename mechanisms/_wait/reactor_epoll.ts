/**
 * The reactor's Linux backend: one epoll instance, an eventfd in it to
 * wake the parked `epoll_wait`, and the buffer of events that C fills.
 *
 * @module
 */

import { EFD } from "../../ffi/c.ts";
import {
  EPOLL,
  EPOLL_CTL,
  epollCreate,
  epollCtl,
  EpollEvents,
  epollWaitAsync,
} from "../../ffi/epoll.ts";
import { ERRNO, retryEintr } from "../../ffi/errno.ts";
import { libc } from "../../ffi/load.ts";
import { systemError } from "../_common/system_error.ts";
import type { ReactorBackend, ReadyEvent } from "./reactor_backend.ts";

/** The most events one `epoll_wait` reports; the rest come with the next. */
const _CAPACITY = 512;

/** The eventfd's epoll data; descriptor tokens never have all bits set. */
const _WAKE_TOKEN = 0xffff_ffff_ffff_ffffn;

/** See the module doc of reactor.ts. */
export class EpollBackend implements ReactorBackend {
  #epfd: number;
  #wakeFd: number;
  // C writes these on a pool thread while a wait is parked: held here.
  #events = new EpollEvents(_CAPACITY);
  #one = new BigUint64Array([1n]);
  #drain = new BigUint64Array(1);

  /** @throws {IpcError} when the kernel refuses an epoll instance or an eventfd */
  constructor() {
    const epfd = epollCreate();
    if (epfd < 0) {
      throw systemError("epoll_create1", "start waiting on descriptors", -epfd);
    }
    const eventfd = libc().symbols.eventfd!;
    const wakeFd = retryEintr(() => eventfd(0, EFD.NONBLOCK | EFD.CLOEXEC));
    if (wakeFd < 0) {
      libc().symbols.close(epfd);
      throw systemError("eventfd", "start waiting on descriptors", -wakeFd);
    }
    // Level-triggered: it stays ready until drained, so no wake is lost.
    const added = epollCtl(epfd, EPOLL_CTL.ADD, wakeFd, EPOLL.IN, _WAKE_TOKEN);
    if (added < 0) {
      libc().symbols.close(wakeFd);
      libc().symbols.close(epfd);
      throw systemError("epoll_ctl", "start waiting on descriptors", -added);
    }
    this.#epfd = epfd;
    this.#wakeFd = wakeFd;
  }

  arm(fd: number, events: number, token: bigint, known: boolean): number {
    const interest = events | EPOLL.ONESHOT;
    let op: number = known ? EPOLL_CTL.MOD : EPOLL_CTL.ADD;
    for (let attempt = 0; attempt < 2; attempt++) {
      const result = epollCtl(this.#epfd, op, fd, interest, token);
      if (result === 0) return 0;
      // The descriptor left the set behind our back (closed and reopened
      // without release), or is still in it under an old registration.
      if (-result === ERRNO.ENOENT && op === EPOLL_CTL.MOD) {
        op = EPOLL_CTL.ADD;
      } else if (-result === ERRNO.EEXIST && op === EPOLL_CTL.ADD) {
        op = EPOLL_CTL.MOD;
      } else return -result;
    }
    return ERRNO.EEXIST;
  }

  forget(fd: number): void {
    // ENOENT or EBADF: it is not watched any more, which is the goal.
    epollCtl(this.#epfd, EPOLL_CTL.DEL, fd, 0, 0n);
  }

  async wait(): Promise<ReadyEvent[]> {
    const count = await epollWaitAsync(this.#epfd, this.#events);
    const ready: ReadyEvent[] = [];
    for (let i = 0; i < count; i++) {
      const token = this.#events.data(i);
      if (token === _WAKE_TOKEN) {
        libc().symbols.read(this.#wakeFd, this.#drain, 8n);
        continue;
      }
      ready.push({ token, events: this.#events.events(i) });
    }
    return ready;
  }

  wake(): void {
    libc().symbols.write(this.#wakeFd, this.#one, 8n);
  }

  close(): void {
    libc().symbols.close(this.#wakeFd);
    libc().symbols.close(this.#epfd);
  }
}
