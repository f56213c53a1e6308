/**
 * stat(2), lstat(2), fstat(2), fstatat(2), fstatvfs(2) and statfs(2) through libc,
 * decoded into the fields ipckit reads. Callers check Deno's read permission for the path
 * first: these functions do not.
 *
 * @module
 */

import { AT, cString, requireSymbol, STAT, STATFS, STATVFS } from "./c.ts";
import { retryEintr } from "./errno.ts";
import { libc } from "./load.ts";

/** The fields of `struct stat` that ipckit uses. */
export interface FileStatus {
  /** `st_dev`, the device the file lives on. */
  dev: bigint;
  /** `st_ino`; with `dev`, identifies the file. */
  ino: bigint;
  /** `st_mode`: file type and permission bits. */
  mode: number;
  /** `st_nlink`, the number of hard links (names) the file has. */
  nlink: number;
  /** `st_uid`, the owner. */
  uid: number;
  /** `st_size` in bytes. */
  size: number;
  /**
   * Bytes the file system has allocated for it (`st_blocks` x 512): less
   * than `size` when the file is sparse (holes left by ftruncate).
   */
  allocated: number;
  /** `st_mtime` in milliseconds since the epoch. */
  mtimeMs: number;
}

/** Decodes the fields ipckit reads from a filled `struct stat`. */
function _decode(buffer: Uint8Array<ArrayBuffer>): FileStatus {
  const view = new DataView(buffer.buffer);
  return {
    dev: STAT.DEV_BYTES === 4
      ? BigInt(view.getInt32(STAT.DEV, true))
      : view.getBigUint64(STAT.DEV, true),
    ino: view.getBigUint64(STAT.INO, true),
    mode: STAT.MODE_BYTES === 2
      ? view.getUint16(STAT.MODE, true)
      : view.getUint32(STAT.MODE, true),
    nlink: STAT.NLINK_BYTES === 2
      ? view.getUint16(STAT.NLINK, true)
      : STAT.NLINK_BYTES === 4
      ? view.getUint32(STAT.NLINK, true)
      : Number(view.getBigUint64(STAT.NLINK, true)),
    uid: view.getUint32(STAT.UID, true),
    size: Number(view.getBigInt64(STAT.SIZE, true)),
    allocated: Number(view.getBigInt64(STAT.BLOCKS, true)) * 512,
    mtimeMs: Number(view.getBigInt64(STAT.MTIME, true)) * 1000 +
      Math.floor(Number(view.getBigInt64(STAT.MTIME + 8, true)) / 1e6),
  };
}

/**
 * Stats `path` (a string, or the exact bytes of a name that is not UTF-8),
 * following a final symbolic link unless `follow` is false. Returns `-errno`
 * when the call fails.
 */
export function statPath(
  path: string | Uint8Array,
  follow: boolean = true,
): FileStatus | number {
  const call = requireSymbol(follow ? "stat" : "lstat");
  const buffer = new Uint8Array(STAT.SIZE_OF);
  const cPath = cString(path);
  const result = retryEintr(() => call(cPath, buffer));
  return result < 0 ? result : _decode(buffer);
}

/** Stats the file open on `fd`. Returns `-errno` when the call fails. */
export function statFd(fd: number): FileStatus | number {
  const buffer = new Uint8Array(STAT.SIZE_OF);
  const result = retryEintr(() => libc().symbols.fstat(fd, buffer));
  return result < 0 ? result : _decode(buffer);
}

/**
 * Stats `name` in the directory open on `dirfd`, never following a final
 * symbolic link. Returns `-errno` when the call fails.
 */
export function statAt(dirfd: number, name: string): FileStatus | number {
  const fstatat = requireSymbol("fstatat");
  const buffer = new Uint8Array(STAT.SIZE_OF);
  const cName = cString(name);
  const result = retryEintr(() =>
    fstatat(dirfd, cName, buffer, AT.SYMLINK_NOFOLLOW)
  );
  return result < 0 ? result : _decode(buffer);
}

/** Whether two statuses describe the same file (device and inode). */
export function sameFile(
  a: Pick<FileStatus, "dev" | "ino">,
  b: Pick<FileStatus, "dev" | "ino">,
): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

/**
 * Bytes free for unprivileged users on the file system of `fd`
 * (fstatvfs(2): fragment size times available blocks), or `undefined` when
 * the call fails.
 */
export function freeBytes(fd: number): number | undefined {
  const stats = new Uint8Array(STATVFS.SIZE_OF);
  const fstatvfs = libc().symbols.fstatvfs;
  if (retryEintr(() => fstatvfs(fd, stats)) !== 0) return undefined;
  const view = new DataView(stats.buffer);
  const fragment = Number(view.getBigUint64(STATVFS.FRSIZE, true));
  const blocks = STATVFS.BLOCK_BYTES === 8
    ? Number(view.getBigUint64(STATVFS.BAVAIL, true))
    : view.getUint32(STATVFS.BAVAIL, true);
  return fragment * blocks;
}

/**
 * The `f_type` of the file system that holds `path` (statfs(2), Linux), or
 * `-errno`. Compare with the `*_MAGIC` constants in c.ts.
 */
export function fileSystemType(path: string | Uint8Array): number {
  const statfs = requireSymbol("statfs");
  const buffer = new Uint8Array(STATFS.SIZE_OF);
  const cPath = cString(path);
  const result = retryEintr(() => statfs(cPath, buffer));
  if (result < 0) return result;
  // f_type is a long; every magic number fits in 32 bits.
  return Number(
    new DataView(buffer.buffer).getBigInt64(STATFS.TYPE, true) & 0xffffffffn,
  );
}
