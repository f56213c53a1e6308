/**
 * What the reactor (reactor.ts) needs from the system call it parks:
 * epoll on Linux (reactor_epoll.ts), poll() elsewhere (reactor_poll.ts).
 *
 * @module
 */

/** Readiness bits a backend reports and is armed with (poll's and epoll's values). */
export const READY = {
  READ: 0x1,
  WRITE: 0x4,
  ERROR: 0x8,
  HANGUP: 0x10,
} as const;

/** One event a backend reports: the token a descriptor was armed with, and what fired. */
export interface ReadyEvent {
  /** The token given to {@linkcode ReactorBackend.arm}. */
  token: bigint;
  /** {@linkcode READY} bits. */
  events: number;
}

/**
 * How the reactor waits: epoll on Linux, poll() elsewhere. Every method
 * but `wait` runs on the main thread; `wait` parks one call on the pool.
 */
export interface ReactorBackend {
  /**
   * Arms `fd` to report once, for `events`, tagged with `token`; `known`
   * says whether it was armed before. Returns 0 or an errno.
   */
  arm(fd: number, events: number, token: bigint, known: boolean): number;
  /** Stops watching `fd` (it is about to be closed). */
  forget(fd: number): void;
  /** Parks one wait on the pool; resolves with what fired (maybe nothing). */
  wait(): Promise<ReadyEvent[]>;
  /** Makes the parked wait return soon; harmless when none is parked. */
  wake(): void;
  /** Closes the backend's own descriptors; only while no wait is parked. */
  close(): void;
}
