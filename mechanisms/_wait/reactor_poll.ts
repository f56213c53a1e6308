/**
 * The reactor's backend where there is no epoll (macOS): one `poll()` of
 * every armed descriptor on the pool, with a pipe as its wake descriptor.
 *
 * epoll keeps the set in the kernel and lets it change while a wait is
 * parked; poll() reads its array once, when it starts. So every change of
 * the set while a poll is parked (a descriptor armed or forgotten) wakes
 * it, and it is re-issued with the new set. One-shot arming is emulated:
 * a descriptor that fired leaves the set until it is armed again, as with
 * `EPOLLONESHOT`, so a ready descriptor nobody waits on does not spin.
 *
 * @module
 */

import { FCNTL, O } from "../../ffi/c.ts";
import { retryEintr } from "../../ffi/errno.ts";
import { libc } from "../../ffi/load.ts";
import { POLL, pollAsync, PollList } from "../../ffi/poll.ts";
import { systemError } from "../_common/system_error.ts";
import {
  type ReactorBackend,
  READY,
  type ReadyEvent,
} from "./reactor_backend.ts";

interface _Armed {
  events: number;
  token: bigint;
}

/** See the module doc. */
export class PollBackend implements ReactorBackend {
  #armed = new Map<number, _Armed>();
  #wakeRead: number;
  #wakeWrite: number;
  // C reads and writes the list on a pool thread while a poll is parked.
  #list = new PollList(16);
  #issued: { fd: number; token: bigint }[] = [];
  #parked = false;
  #byte = new Uint8Array([1]);
  #drain = new Uint8Array(64);

  /** @throws {IpcError} when no pipe can be made */
  constructor() {
    const fds = new Int32Array(2);
    const symbols = libc().symbols;
    if (symbols.pipe(new Uint8Array(fds.buffer)) !== 0) {
      throw systemError("pipe", "start waiting on descriptors");
    }
    for (const fd of fds) {
      const flags = retryEintr(() => symbols.fcntl(fd, FCNTL.F_GETFL, 0));
      retryEintr(() => symbols.fcntl(fd, FCNTL.F_SETFL, flags | O.NONBLOCK));
      retryEintr(() => symbols.fcntl(fd, FCNTL.F_SETFD, FCNTL.FD_CLOEXEC));
    }
    this.#wakeRead = fds[0];
    this.#wakeWrite = fds[1];
  }

  arm(fd: number, events: number, token: bigint): number {
    this.#armed.set(fd, { events, token });
    // The parked poll does not watch the new set: re-issue it.
    if (this.#parked) this.wake();
    return 0;
  }

  forget(fd: number): void {
    if (this.#armed.delete(fd) && this.#parked) this.wake();
  }

  async wait(): Promise<ReadyEvent[]> {
    const count = this.#armed.size + 1;
    if (count > this.#list.capacity) {
      this.#list = new PollList(Math.max(count, this.#list.capacity * 2));
    }
    const list = this.#list;
    list.set(0, this.#wakeRead, POLL.IN);
    this.#issued = [];
    for (const [fd, { events, token }] of this.#armed) {
      list.set(this.#issued.length + 1, fd, events);
      this.#issued.push({ fd, token });
    }
    this.#parked = true;
    let result: number;
    try {
      result = await pollAsync(list, count, -1);
    } finally {
      this.#parked = false;
    }
    const ready: ReadyEvent[] = [];
    if (result <= 0) return ready;
    if (list.revents(0) !== 0) {
      libc().symbols.read(this.#wakeRead, this.#drain, BigInt(64));
    }
    for (let i = 0; i < this.#issued.length; i++) {
      const revents = list.revents(i + 1);
      if (revents === 0) continue;
      const { fd, token } = this.#issued[i];
      // Fired once: out of the set until armed again (EPOLLONESHOT).
      if (this.#armed.get(fd)?.token === token) this.#armed.delete(fd);
      const events = (revents & (READY.READ | READY.WRITE | READY.HANGUP)) |
        ((revents & (POLL.ERR | POLL.NVAL)) ? READY.ERROR : 0);
      ready.push({ token, events });
    }
    return ready;
  }

  wake(): void {
    libc().symbols.write(this.#wakeWrite, this.#byte, 1n);
  }

  close(): void {
    libc().symbols.close(this.#wakeRead);
    libc().symbols.close(this.#wakeWrite);
  }
}
