/**
 * What kind of file is at a path or behind a descriptor, read with lstat(2)
 * and fstat(2) through libc, so that a FIFO is told apart from a file, a
 * directory or a symbolic link without following links and without needing
 * `--allow-read` (creating a FIFO only needs `--allow-write`).
 *
 * @module
 */

import {
  cString,
  requireSymbol,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
  STAT,
} from "../../ffi/c.ts";
import { retryEintr } from "../../ffi/errno.ts";
import { libc } from "../../ffi/load.ts";

function _typeOf(stat: Uint8Array<ArrayBuffer>): number {
  const view = new DataView(stat.buffer);
  const mode = STAT.MODE_BYTES === 2
    ? view.getUint16(STAT.MODE, true)
    : view.getUint32(STAT.MODE, true);
  return mode & S_IFMT;
}

/**
 * The `S_IF*` type of the file at `path`, not following a final symbolic
 * link, or `-errno` when lstat fails.
 */
export function lstatType(path: string): number {
  const lstat = requireSymbol("lstat");
  const stat = new Uint8Array(STAT.SIZE_OF);
  const cPath = cString(path);
  const result = retryEintr(() => lstat(cPath, stat));
  return result < 0 ? result : _typeOf(stat);
}

/** The `S_IF*` type of the file open on `fd`, or `-errno` when fstat fails. */
export function fstatType(fd: number): number {
  const stat = new Uint8Array(STAT.SIZE_OF);
  const result = retryEintr(() => libc().symbols.fstat(fd, stat));
  return result < 0 ? result : _typeOf(stat);
}

/** Whether an `S_IF*` type is a FIFO. */
export function isFifoType(type: number): boolean {
  return type === S_IFIFO;
}

/** "a regular file", "a directory", … for messages. */
export function describeFileType(type: number): string {
  switch (type) {
    case S_IFIFO:
      return "a FIFO";
    case S_IFREG:
      return "a regular file";
    case S_IFDIR:
      return "a directory";
    case S_IFLNK:
      return "a symbolic link";
    case S_IFSOCK:
      return "a socket";
    case S_IFCHR:
      return "a character device";
    case S_IFBLK:
      return "a block device";
    default:
      return `a file of type 0o${type.toString(8)}`;
  }
}
