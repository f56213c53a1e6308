/**
 * errno: reading it right after a failing call, and naming it.
 *
 * errno is thread-local. It is only meaningful on the thread that made the
 * failing call, so it is read only after synchronous FFI calls on the calling
 * thread; `nonblocking` calls run elsewhere and must be designed so that their
 * result alone says what happened.
 *
 * @module
 */

import { libc } from "./load.ts";

/** errno values ipckit tells apart, by their POSIX names, for each OS. */
const _LINUX_ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  EFBIG: 27,
  ENOSPC: 28,
  ESPIPE: 29,
  EROFS: 30,
  EPIPE: 32,
  ERANGE: 34,
  EDEADLK: 35,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ELOOP: 40,
  ENOMSG: 42,
  EIDRM: 43,
  EOVERFLOW: 75,
  EILSEQ: 84,
  ENOTSOCK: 88,
  EDESTADDRREQ: 89,
  EMSGSIZE: 90,
  EPROTOTYPE: 91,
  EPROTONOSUPPORT: 93,
  EOPNOTSUPP: 95,
  EAFNOSUPPORT: 97,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
  ENETUNREACH: 101,
  ECONNABORTED: 103,
  ECONNRESET: 104,
  ENOBUFS: 105,
  EISCONN: 106,
  ENOTCONN: 107,
  ETOOMANYREFS: 109,
  ECONNREFUSED: 111,
  EHOSTUNREACH: 113,
  EALREADY: 114,
  EINPROGRESS: 115,
  ETIMEDOUT: 110,
  EOWNERDEAD: 130,
} as const;

/** The errno names ipckit knows. */
export type ErrnoName = keyof typeof _LINUX_ERRNO;

const _DARWIN_ERRNO: Record<ErrnoName, number> = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 35,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  EFBIG: 27,
  ENOSPC: 28,
  ESPIPE: 29,
  EROFS: 30,
  EPIPE: 32,
  ERANGE: 34,
  EDEADLK: 11,
  ENAMETOOLONG: 63,
  ENOSYS: 78,
  ELOOP: 62,
  ENOMSG: 91,
  EIDRM: 90,
  EOVERFLOW: 84,
  EILSEQ: 92,
  ENOTSOCK: 38,
  EDESTADDRREQ: 39,
  EMSGSIZE: 40,
  EPROTOTYPE: 41,
  EPROTONOSUPPORT: 43,
  EOPNOTSUPP: 102,
  EAFNOSUPPORT: 47,
  EADDRINUSE: 48,
  EADDRNOTAVAIL: 49,
  ENETUNREACH: 51,
  ECONNABORTED: 53,
  ECONNRESET: 54,
  ENOBUFS: 55,
  EISCONN: 56,
  ENOTCONN: 57,
  ETOOMANYREFS: 59,
  ECONNREFUSED: 61,
  EHOSTUNREACH: 65,
  EALREADY: 37,
  EINPROGRESS: 36,
  ETIMEDOUT: 60,
  EOWNERDEAD: 105,
};

/** errno numbers of this OS, by name: `ERRNO.EAGAIN`. */
export const ERRNO: Readonly<Record<ErrnoName, number>> =
  Deno.build.os === "darwin" ? _DARWIN_ERRNO : _LINUX_ERRNO;

const _NAMES = new Map<number, ErrnoName>(
  Object.entries(ERRNO).map(([name, value]) => [value, name as ErrnoName]),
);

/** The POSIX name of an errno value (`"ENOENT"`), or `"E<number>"` for one ipckit does not name. */
export function errnoName(errno: number): string {
  return _NAMES.get(errno) ?? `E${errno}`;
}

let _errnoCell: Int32Array | undefined;

/**
 * The calling thread's errno. Call it immediately after the failing call,
 * before anything else that could touch errno runs on this thread.
 */
export function lastErrno(): number {
  if (!_errnoCell) {
    // The cell's address is fixed for the lifetime of the thread, so one
    // lookup serves every later read on it (each Worker loads its own copy).
    // A typed array over it reads errno without an op call: the retry
    // loops read it after every attempt that would block.
    const symbols = libc().symbols;
    const locate = symbols.__errno_location ?? symbols.__error;
    const pointer = locate?.();
    if (!pointer) {
      throw new Deno.errors.NotSupported(
        `Cannot read errno on ${Deno.build.os}: neither __errno_location nor __error is exported by the C library`,
      );
    }
    _errnoCell = new Int32Array(
      Deno.UnsafePointerView.getArrayBuffer(pointer, 4),
    );
  }
  return _errnoCell[0];
}

/**
 * Runs a C call that returns -1 and sets errno on failure, retrying it while it
 * fails with EINTR, so callers never see an interrupted call.
 *
 * @returns the call's result when it succeeds, or `-errno` when it fails.
 */
export function retryEintr(call: () => number): number {
  for (;;) {
    const result = call();
    if (result !== -1) return result;
    const errno = lastErrno();
    if (errno !== ERRNO.EINTR) return -errno;
  }
}

/**
 * {@linkcode retryEintr} for `read(2)`, `write(2)`, `recv(2)` and
 * `send(2)` on a pipe, FIFO or socket, and `mq_send(3)`/`mq_receive(3)` on
 * an open queue, which also tries again, twice at most, a failure with an
 * errno those calls cannot produce (`ENOENT`).
 *
 * Why: errno is read back after the call has returned to JavaScript. In
 * the full test suite on a loaded two-core machine a `recv(2)` or `read(2)`
 * was seen, about once in ten runs, to fail with `ENOENT`, and once a
 * benchmark peer's `mq_receive` did; the kernel never returns it for them:
 * something on this thread wrote errno in between.
 * What does it was not found (six million failing reads under garbage
 * collection and SIGCHLD pressure never showed it). These calls are
 * non-blocking and take nothing when they fail, so a second try is harmless
 * and reads a fresh errno; a true failure fails again and is reported.
 *
 * @returns the call's result when it succeeds, or `-errno` when it fails.
 */
export function retryTransfer(call: () => number): number {
  for (let tries = 1;; tries++) {
    const result = retryEintr(call);
    if (result !== -ERRNO.ENOENT || tries === 3) return result;
  }
}
