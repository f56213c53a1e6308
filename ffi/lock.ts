/**
 * Open-file-description record locks (`fcntl` with `F_OFD_SETLK`,
 * `F_OFD_SETLKW`, `F_OFD_GETLK`; Linux 3.15) and the layout of
 * `struct flock` on 64-bit Linux.
 *
 * An OFD lock belongs to the open file description (the `open()` call),
 * not to the process: two descriptors opened separately in one process
 * conflict as two processes would, a lock is released when the last
 * descriptor of that description closes (or the process dies), and it
 * conflicts with classic `fcntl` (`F_SETLK`) locks of other processes on
 * the same bytes. Callers check Deno's permissions first.
 *
 * @module
 */

import { ERRNO, lastErrno } from "./errno.ts";
import { libc } from "./load.ts";

/** fcntl(2) commands and lock types of OFD locks (Linux; the same on x86_64 and aarch64). */
export const OFD = {
  F_GETLK: 36,
  F_SETLK: 37,
  F_SETLKW: 38,
  F_RDLCK: 0,
  F_WRLCK: 1,
  F_UNLCK: 2,
  SEEK_SET: 0,
} as const;

/** `struct flock` on 64-bit Linux: 32 bytes. */
export const FLOCK = {
  TYPE: 0,
  WHENCE: 2,
  START: 8,
  LEN: 16,
  PID: 24,
  SIZE_OF: 32,
} as const;

/** A byte range, `length` 0 meaning "to the end of the file, however far it grows". */
export interface LockRange {
  start: number;
  length: number;
}

function _flock(type: number, range: LockRange): Uint8Array<ArrayBuffer> {
  const buffer = new Uint8Array(FLOCK.SIZE_OF);
  const view = new DataView(buffer.buffer);
  view.setInt16(FLOCK.TYPE, type, true);
  view.setInt16(FLOCK.WHENCE, OFD.SEEK_SET, true);
  view.setBigInt64(FLOCK.START, BigInt(range.start), true);
  view.setBigInt64(FLOCK.LEN, BigInt(range.length), true);
  // l_pid must be 0 for the OFD commands.
  return buffer;
}

/**
 * One `fcntl(fd, cmd, &flock)` with `type` on `range`: 0, or `-errno`
 * (EAGAIN when another lock conflicts, for F_OFD_SETLK). EINTR is
 * returned to the caller only for F_OFD_SETLKW, which may be interrupted
 * on purpose; other commands retry it.
 */
export function setLock(
  fd: number,
  cmd: number,
  type: number,
  range: LockRange,
): number {
  const buffer = _flock(type, range);
  const fcntl = libc().symbols.fcntl_lock;
  for (;;) {
    if (fcntl(fd, cmd, buffer) !== -1) return 0;
    const errno = lastErrno();
    // EACCES is how some systems say "conflicts" for F_SETLK.
    if (errno === ERRNO.EACCES) return -ERRNO.EAGAIN;
    if (errno !== ERRNO.EINTR) return -errno;
  }
}

/** Who holds a lock that conflicts with `type` on `range`. */
export interface LockHolder {
  /** `F_RDLCK` or `F_WRLCK`. */
  type: number;
  start: number;
  length: number;
  /** The holder's pid for a classic fcntl lock; -1 for an OFD lock (it has no process). */
  pid: number;
}

/**
 * `F_OFD_GETLK`: the first lock that would conflict with `type` on
 * `range`, `undefined` when none does, or `-errno`.
 */
export function getLock(
  fd: number,
  type: number,
  range: LockRange,
): LockHolder | undefined | number {
  const buffer = _flock(type, range);
  const fcntl = libc().symbols.fcntl_lock;
  for (;;) {
    if (fcntl(fd, OFD.F_GETLK, buffer) !== -1) break;
    const errno = lastErrno();
    if (errno !== ERRNO.EINTR) return -errno;
  }
  const view = new DataView(buffer.buffer);
  const found = view.getInt16(FLOCK.TYPE, true);
  if (found === OFD.F_UNLCK) return undefined;
  return {
    type: found,
    start: Number(view.getBigInt64(FLOCK.START, true)),
    length: Number(view.getBigInt64(FLOCK.LEN, true)),
    pid: view.getInt32(FLOCK.PID, true),
  };
}
