/**
 * Which file backs a mapping of this process, read from `/proc/self/maps`
 * through libc (Deno's file API wants `--allow-all` under `/proc`; this only
 * describes the process's own memory).
 *
 * `sem_open(3)` maps the semaphore's file and closes its descriptor, so the
 * mapping is the only trace of which file it really opened.
 *
 * @module
 */

import { readWholeFile } from "./file.ts";
import type { FileStatus } from "./stat.ts";

/**
 * Major and minor device numbers of a `st_dev` (glibc's `gnu_dev_major` and
 * `gnu_dev_minor`, which also decode the kernel's 32-bit encoding).
 */
function _deviceNumbers(dev: bigint): { major: bigint; minor: bigint } {
  return {
    major: ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn),
    minor: (dev & 0xffn) | ((dev >> 12n) & ~0xffn),
  };
}

/**
 * Whether the mapping that contains `address` is backed by `file` (same
 * device and inode). `undefined` when that cannot be told: `/proc` is not
 * mounted, or no mapping contains the address.
 */
export function mappingBackedBy(
  address: bigint,
  file: Pick<FileStatus, "dev" | "ino">,
): boolean | undefined {
  const maps = readWholeFile("/proc/self/maps");
  if (typeof maps === "number") return undefined;
  // start-end perms offset major:minor inode [path]
  const line = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ ([0-9a-f]+):([0-9a-f]+) (\d+)/;
  for (const text of maps.split("\n")) {
    const match = line.exec(text);
    if (!match) continue;
    const start = BigInt(`0x${match[1]}`);
    const end = BigInt(`0x${match[2]}`);
    if (address < start || address >= end) continue;
    const { major, minor } = _deviceNumbers(file.dev);
    return BigInt(`0x${match[3]}`) === major &&
      BigInt(`0x${match[4]}`) === minor && BigInt(match[5]) === file.ino;
  }
  return undefined;
}
