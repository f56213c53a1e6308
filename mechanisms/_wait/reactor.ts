/**
 * The reactor: one parked wait per process that hands readiness to every
 * async waiter on a descriptor (message queues, FIFOs, pipes, direct stdio).
 *
 * ## Why one
 *
 * Deno runs `nonblocking` FFI calls on its blocking thread pool, shared
 * with its own file-system operations and limited in size. A thread per
 * parked wait meant that the 33rd waiting `receive()` was never served and
 * that `Deno.readTextFile` stalled behind them. Here every descriptor wait
 * registers with one `epoll` instance, and exactly one `epoll_wait` is
 * parked on the pool while anyone waits: 10,000 waits cost one thread.
 *
 * ## How a wait goes
 *
 * A waiter has just failed its non-blocking operation (EAGAIN). It parks:
 * the descriptor is registered level-triggered with `EPOLLONESHOT`
 * (`EPOLL_CTL_ADD` the first time, `EPOLL_CTL_MOD` to re-arm later), for the
 * union of the directions that have waiters; all waiters of a descriptor
 * and direction share it. When `epoll_wait` returns, the main thread
 * resolves the waiters of every direction that fired (`EPOLLERR` and
 * `EPOLLHUP` wake both), re-arms what still has waiters, and parks
 * `epoll_wait` again if anyone waits. The woken waiters retry their
 * operation on the main thread, where errno is exact; the one that loses a
 * race parks again.
 *
 * An eventfd (a pipe on the poll backend) in the same set wakes the parked
 * call: when the last waiter leaves (success, timeout, abort, close) it is
 * written, the call returns and is not parked again, so a closed handle or
 * an abandoned wait never keeps the process alive.
 *
 * ## Releasing a descriptor
 *
 * A handle calls {@linkcode Reactor.release} before it closes a descriptor:
 * that descriptor's waiters reject with `BadResource` ("it is closed"), it
 * leaves the epoll set, and the reactor forgets it. Closing it right after
 * is safe even while `epoll_wait` is parked on the pool: that call holds no
 * reference to the descriptors it watches (only to the epoll instance), and
 * the buffer it fills belongs to the reactor. Descriptor numbers are
 * reused, so every registration carries a generation in its epoll data: an
 * event for a descriptor that was released (and maybe reopened under the
 * same number) while the call was out is recognised and dropped, and a
 * reused number starts with a fresh registration.
 *
 * The reactor holds its own descriptors (the epoll instance and the wake
 * eventfd) only while some descriptor is registered: once the last one is
 * released and no call is parked, it closes them, and the next park makes
 * new ones (two system calls). So a program, or a Worker that ends, whose
 * handles are all closed holds no descriptor of ipckit's.
 *
 * ## Where there is no epoll
 *
 * On macOS (no epoll) the same reactor runs over `poll()` of the whole set
 * on the pool, with a pipe as its wake descriptor (`reactor_poll.ts`).
 * Each change of the set while the poll is parked wakes it to be re-issued
 * with the new set: correct, one thread, but costing a wake-up per park
 * when many descriptors are busy. Linux always uses epoll.
 *
 * @module
 */

import { hasEpoll } from "../../ffi/epoll.ts";
import { closedError, systemError } from "../_common/system_error.ts";
import { bounded, type Deadline, type Settle } from "./deadline.ts";
import type { Direction } from "./poll_sync.ts";
import {
  type ReactorBackend,
  READY,
  type ReadyEvent,
} from "./reactor_backend.ts";
import { EpollBackend } from "./reactor_epoll.ts";
import { PollBackend } from "./reactor_poll.ts";

export type { Direction } from "./poll_sync.ts";

interface _Registration {
  fd: number;
  what: string;
  token: bigint;
  readers: Set<Settle<void>>;
  writers: Set<Settle<void>>;
  /** Whether the backend has seen this descriptor (ADD done). */
  known: boolean;
  /** What the backend is armed for now; 0 once a one-shot event fired. */
  armed: number;
}

/** The process's reactor; see the module doc. */
export class Reactor {
  #backend: ReactorBackend | undefined;
  #makeBackend: () => ReactorBackend;
  #registrations = new Map<number, _Registration>();
  #generation = 0;
  #waiters = 0;
  #parked = false;
  #woken = false;

  /** @param makeBackend creates the backend on the first park */
  constructor(makeBackend: () => ReactorBackend) {
    this.#makeBackend = makeBackend;
  }

  /** How many waiters are parked (for tests). */
  get waiters(): number {
    return this.#waiters;
  }

  /** Whether a wait is parked on the thread pool (for tests). */
  get parked(): boolean {
    return this.#parked;
  }

  /**
   * Waits until `fd` may be ready in `direction`: resolves when the caller
   * should retry its operation. Rejects with `TimedOut` at the deadline,
   * the signal's reason on abort, `BadResource` when the descriptor is
   * released, and an `IpcError` when the kernel refuses to watch it.
   *
   * @param what the object, for the "it is closed" message: `message queue "/jobs"`
   */
  park(
    fd: number,
    direction: Direction,
    what: string,
    deadline: Deadline,
    signal: AbortSignal | undefined,
    action: string,
  ): Promise<void> {
    return bounded<void>(deadline, signal, action, (settle) => {
      let registration = this.#registrations.get(fd);
      if (!registration) {
        registration = {
          fd,
          what,
          token: (BigInt(++this.#generation & 0xffff_ffff) << 32n) |
            BigInt(fd),
          readers: new Set(),
          writers: new Set(),
          known: false,
          armed: 0,
        };
        this.#registrations.set(fd, registration);
      }
      // A handle dropped without close() (its descriptor closed by the
      // safety net, not released) leaves its registration behind: the next
      // owner of the number takes it over under its own name.
      registration.what = what;
      const waiters = direction === "read"
        ? registration.readers
        : registration.writers;
      waiters.add(settle);
      this.#waiters++;
      const leave = () => {
        waiters.delete(settle);
        this.#waiters--;
        // Nobody is left to care about the parked call: release its thread.
        if (this.#waiters === 0 && this.#parked && !this.#woken) {
          this.#woken = true;
          this.#backend!.wake();
        }
      };
      const errno = this.#arm(registration);
      if (errno !== 0) {
        settle.reject(systemError("epoll_ctl", action, errno));
        return leave;
      }
      this.#park();
      return leave;
    });
  }

  /**
   * Forgets `fd` before its owner closes it: its waiters reject with
   * `BadResource`, and the backend stops watching it. Idempotent.
   */
  release(fd: number): void {
    const registration = this.#registrations.get(fd);
    if (!registration) return;
    this.#registrations.delete(fd);
    if (registration.known) this.#backend!.forget(fd);
    const error = closedError(registration.what);
    for (const settle of [...registration.readers, ...registration.writers]) {
      settle.reject(error);
    }
    this.#closeIfIdle();
  }

  /** Closes the backend once nothing is registered and no call is parked. */
  #closeIfIdle(): void {
    if (this.#registrations.size > 0 || this.#parked || !this.#backend) return;
    this.#backend.close();
    this.#backend = undefined;
  }

  /** Arms the registration for every direction that has waiters, if not already. */
  #arm(registration: _Registration): number {
    const wanted = (registration.readers.size > 0 ? READY.READ : 0) |
      (registration.writers.size > 0 ? READY.WRITE : 0);
    if (wanted === 0 || (registration.armed & wanted) === wanted) return 0;
    this.#backend ??= this.#makeBackend();
    const errno = this.#backend.arm(
      registration.fd,
      wanted,
      registration.token,
      registration.known,
    );
    if (errno !== 0) return errno;
    registration.known = true;
    registration.armed = wanted;
    return 0;
  }

  #park(): void {
    if (this.#parked || this.#waiters === 0) return;
    this.#parked = true;
    this.#woken = false;
    this.#backend!.wait().then(
      (events) => this.#dispatch(events),
      (error) => this.#fail(error),
    );
  }

  #dispatch(events: ReadyEvent[]): void {
    this.#parked = false;
    const touched: _Registration[] = [];
    for (const { token, events: fired } of events) {
      const fd = Number(token & 0xffff_ffffn);
      const registration = this.#registrations.get(fd);
      // Released (and maybe reopened under the same number) meanwhile.
      if (registration?.token !== token) continue;
      registration.armed = 0;
      touched.push(registration);
      const both = (fired & (READY.ERROR | READY.HANGUP)) !== 0;
      // Each resolve removes its waiter from the set, hence the copies.
      if (both || (fired & READY.READ)) {
        for (const settle of [...registration.readers]) settle.resolve();
      }
      if (both || (fired & READY.WRITE)) {
        for (const settle of [...registration.writers]) settle.resolve();
      }
    }
    // The other direction of a descriptor that fired still waits.
    for (const registration of touched) {
      const errno = this.#arm(registration);
      if (errno !== 0) this.#rejectAll(registration, errno);
    }
    this.#park();
    this.#closeIfIdle();
  }

  /** The backend failed in a way no retry mends: tell every waiter. */
  #fail(error: unknown): void {
    this.#parked = false;
    for (const registration of this.#registrations.values()) {
      for (const settle of [...registration.readers, ...registration.writers]) {
        settle.reject(error);
      }
    }
  }

  #rejectAll(registration: _Registration, errno: number): void {
    const error = systemError(
      "epoll_ctl",
      `wait on ${registration.what}`,
      errno,
    );
    for (const settle of [...registration.readers, ...registration.writers]) {
      settle.reject(error);
    }
  }
}

let _reactor: Reactor | undefined;
let _forcePoll = false;

/** The process's reactor, created on first use. */
export function reactor(): Reactor {
  _reactor ??= new Reactor(() =>
    !_forcePoll && hasEpoll() ? new EpollBackend() : new PollBackend()
  );
  return _reactor;
}

/**
 * For tests only: makes the reactor use the poll() backend even where
 * epoll exists. Must run before the first park of the process.
 */
export function _usePollBackend(): void {
  if (_reactor) {
    throw new Error("_usePollBackend() must run before the reactor is used");
  }
  _forcePoll = true;
}
