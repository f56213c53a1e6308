/**
 * Listing directories through libc, for the
 * places Deno's own file API refuses without `--allow-all` (`/dev/shm`,
 * `/dev/mqueue` and `/proc` in Deno 2.9). Callers check Deno's read
 * permission for the path first: these functions do not.
 *
 * @module
 */

import { cString, DIRENT } from "./c.ts";
import { lastErrno } from "./errno.ts";
import { libc } from "./load.ts";

/** One directory entry: its name and its `d_type` (`DT_*`, 0 when unknown). */
export interface DirectoryEntry {
  /**
   * The name decoded as UTF-8. A name that is not UTF-8 decodes with
   * U+FFFD in place of its bad bytes, so two such names can look alike:
   * match and open by {@linkcode DirectoryEntry.bytes} instead.
   */
  name: string;
  /** The name's exact bytes, as the kernel returned them. */
  bytes: Uint8Array;
  type: number;
}

/** `d_type` of a regular file. */
export const DT_REG = 8;
/** `d_type` of a directory. */
export const DT_DIR = 4;

const _decoder = new TextDecoder();

/**
 * The entries of a directory, without `.` and `..`, or `-errno` when it
 * cannot be opened (ENOENT, EACCES, …).
 */
export function listDirectory(
  path: string | Uint8Array,
): DirectoryEntry[] | number {
  const { opendir, readdir, closedir } = libc().symbols;
  const cPath = cString(path);
  const dir = opendir(cPath);
  if (dir === null) return -lastErrno();
  const entries: DirectoryEntry[] = [];
  try {
    for (let entry = readdir(dir); entry !== null; entry = readdir(dir)) {
      const view = new Deno.UnsafePointerView(entry);
      const bytes = _cStringBytes(view, DIRENT.NAME);
      const name = _decoder.decode(bytes);
      if (name === "." || name === "..") continue;
      entries.push({ name, bytes, type: view.getUint8(DIRENT.TYPE) });
    }
  } finally {
    closedir(dir);
  }
  return entries;
}

/** The bytes of the NUL-terminated string at `offset`, without the NUL. */
function _cStringBytes(
  view: Deno.UnsafePointerView,
  offset: number,
): Uint8Array {
  let length = 0;
  while (view.getUint8(offset + length) !== 0) length++;
  const bytes = new Uint8Array(length);
  view.copyInto(bytes, offset);
  return bytes;
}
