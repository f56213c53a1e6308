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
  name: string;
  type: number;
}

/** `d_type` of a regular file. */
export const DT_REG = 8;
/** `d_type` of a directory. */
export const DT_DIR = 4;

/**
 * The entries of a directory, without `.` and `..`, or `-errno` when it
 * cannot be opened (ENOENT, EACCES, …).
 */
export function listDirectory(path: string): DirectoryEntry[] | number {
  const { opendir, readdir, closedir } = libc().symbols;
  const cPath = cString(path);
  const dir = opendir(cPath);
  if (dir === null) return -lastErrno();
  const entries: DirectoryEntry[] = [];
  try {
    for (let entry = readdir(dir); entry !== null; entry = readdir(dir)) {
      const view = new Deno.UnsafePointerView(entry);
      const name = view.getCString(DIRENT.NAME);
      if (name === "." || name === "..") continue;
      entries.push({ name, type: view.getUint8(DIRENT.TYPE) });
    }
  } finally {
    closedir(dir);
  }
  return entries;
}
