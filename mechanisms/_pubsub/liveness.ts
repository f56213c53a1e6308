/**
 * Whether the process that wrote a pid into a topic still runs: the pid
 * alone is not enough, since Linux hands a dead process's pid to a new one
 * sooner or later, so its start time is recorded beside it and compared.
 *
 * The start time is field 22 of `/proc/<pid>/stat`, in clock ticks since
 * boot: fixed for the life of a process, different for a later process
 * with the same pid (unless both start within one tick). It is read
 * through libc (Deno 2.9 wants `--allow-all` for its own API under
 * `/proc/<pid>`) where `--allow-read` grants `/proc`; without that grant
 * it is 0, "unknown", and only the pid is compared.
 *
 * @module
 */

import { readSmallFile } from "../../ffi/file.ts";
import { processAlive } from "../_kernel/process_state.ts";

let _own: bigint | undefined;

/** The start time of process `pid` in clock ticks since boot, or 0n when unknown. */
export function startTime(pid: number): bigint {
  if (
    Deno.permissions.querySync({ name: "read", path: "/proc" }).state !==
      "granted"
  ) {
    return 0n;
  }
  const stat = readSmallFile(`/proc/${pid}/stat`, 1024);
  if (stat === undefined) return 0n;
  // "pid (comm) S ppid …": comm may hold spaces and parentheses, so fields
  // are counted from the last ")": state is field 3, starttime field 22.
  const end = stat.lastIndexOf(")");
  if (end < 0) return 0n;
  const field = stat.slice(end + 1).trim().split(/\s+/)[22 - 3];
  return field !== undefined && /^\d+$/.test(field) ? BigInt(field) : 0n;
}

/** This process's start time, read once. */
export function ownStartTime(): bigint {
  _own ??= startTime(Deno.pid);
  return _own;
}

/**
 * Whether `pid`, recorded with start time `start` (0n: unknown), is still
 * the same live process: it exists, is not a zombie, and started when
 * recorded.
 */
export function sameProcessAlive(pid: number, start: bigint): boolean {
  if (pid === Deno.pid) return start === 0n || start === ownStartTime();
  if (!processAlive(pid)) return false;
  if (start === 0n) return true;
  const now = startTime(pid);
  return now === 0n || now === start;
}
