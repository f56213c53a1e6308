/**
 * What the System V tests share: the flags of their peer processes, and
 * the kernel's limits read as the tests expect ipckit to name them.
 *
 * @module
 */

import { readSmallFile } from "../ffi/file.ts";

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
