/**
 * What the System V tests share: the flags of their peer processes, and
 * the kernel's limits read as the tests expect ipckit to name them.
 *
 * @module
 */

import { readSmallFile, readWholeFile } from "../ffi/file.ts";

/** The flags tests/fixtures/sysv_peer.ts runs with. */
export const PEER_FLAGS = [
  "--allow-ffi",
  "--allow-read",
  "--allow-write=/proc/sysvipc,/tmp",
];

/** A number of /proc/sys/kernel/<name>, read through libc (Deno's API wants --allow-all there). */
export function kernelLimit(name: string, index = 0): number {
  const text = readSmallFile(`/proc/sys/kernel/${name}`, 128);
  if (text === undefined) {
    throw new Error(`cannot read /proc/sys/kernel/${name}`);
  }
  return Number(text.trim().split(/\s+/)[index]);
}

/**
 * The System V objects with a benchmark key (bench/c/_sysv.h and
 * bench/fixtures/_sysv_peer.ts put BENCH_KEY_TAG in the high half), as
 * `msg id 5 key 0x1bc0…`, read from /proc/sysvipc (empty without System V).
 * Another benchmark run on the machine may hold some: compare with a
 * snapshot taken before.
 */
export function benchSysvObjects(tag: number): Set<string> {
  const found = new Set<string>();
  for (const kind of ["msg", "shm", "sem"]) {
    const text = readWholeFile(`/proc/sysvipc/${kind}`, 1 << 20);
    if (typeof text === "number") continue;
    for (const line of text.split("\n").slice(1)) {
      const [key, id] = line.trim().split(/\s+/).map(Number);
      if (!Number.isInteger(id) || (key >>> 16) !== tag) continue;
      found.add(
        `${kind} id ${id} key 0x${(key >>> 0).toString(16).padStart(8, "0")}`,
      );
    }
  }
  return found;
}

/** What `now` holds that `before` did not. */
export function added(before: Set<string>, now: Set<string>): string[] {
  return [...now].filter((entry) => !before.has(entry));
}
