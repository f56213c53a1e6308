/**
 * What kind of file is at a path or behind a descriptor, read with lstat(2)
 * and fstat(2) through libc, so that a FIFO is told apart from a file, a
 * directory or a symbolic link without following links and without needing
 * `--allow-read` (creating a FIFO only needs `--allow-write`).
 *
 * @module
 */

import {
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
} from "../../ffi/c.ts";
import { statFd, statPath } from "../../ffi/stat.ts";

/**
 * The `S_IF*` type of the file at `path`, not following a final symbolic
 * link, or `-errno` when lstat fails.
 */
export function lstatType(path: string): number {
  const status = statPath(path, false);
  return typeof status === "number" ? status : status.mode & S_IFMT;
}

/** The `S_IF*` type of the file open on `fd`, or `-errno` when fstat fails. */
export function fstatType(fd: number): number {
  const status = statFd(fd);
  return typeof status === "number" ? status : status.mode & S_IFMT;
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
