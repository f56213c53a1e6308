/**
 * Whether a process still runs, for recovering what a dead one held (a
 * mutex, an initialization it started).
 *
 * `kill(pid, 0)` says whether the kernel still has the pid: ESRCH means
 * gone, and EPERM means it exists but belongs to someone this process may
 * not signal (so it counts as alive). A zombie (dead, not yet reaped by its
 * parent) still has its pid, so kill() alone takes it for alive and a lock
 * it held would never be recovered. Its state in `/proc/<pid>/stat` is `Z`
 * (or `X` while being reaped): that is dead too. Deno's own file API
 * demands `--allow-all` under `/proc/<pid>`, so the file is read through
 * libc, where `--allow-read` grants `/proc`; without that grant the
 * zombie check is skipped and a zombie counts as alive until reaped.
 *
 * @module
 */

import { ERRNO, lastErrno } from "../../ffi/errno.ts";
import { readSmallFile } from "../../ffi/file.ts";
import { libc } from "../../ffi/load.ts";

/** Where Linux shows each process's state. */
const _PROC = "/proc";

/**
 * The state letter of `/proc/<pid>/stat` (`R`, `S`, `Z`, …), or undefined
 * when it cannot be read (no such process, no permission, not Linux).
 */
export function processState(pid: number): string | undefined {
  if (
    Deno.permissions.querySync({ name: "read", path: _PROC }).state !==
      "granted"
  ) {
    return undefined;
  }
  // "pid (comm) S ...": comm may hold spaces and parentheses, so the state
  // is the first field after the last ")".
  const stat = readSmallFile(`${_PROC}/${pid}/stat`, 512);
  if (stat === undefined) return undefined;
  const end = stat.lastIndexOf(")");
  if (end < 0) return undefined;
  return stat.slice(end + 1).trimStart()[0];
}

/**
 * Whether the process `pid` is alive: it exists (even as another user's,
 * which kill() answers with EPERM) and is not a zombie.
 */
export function processAlive(pid: number): boolean {
  if (pid === Deno.pid) return true;
  if (libc().symbols.kill(pid, 0) !== 0 && lastErrno() === ERRNO.ESRCH) {
    return false;
  }
  const state = processState(pid);
  return state !== "Z" && state !== "X";
}

/**
 * When process `pid` started, in clock ticks after boot (field 22 of
 * `/proc/<pid>/stat`), or undefined when it cannot be read (no such
 * process, no `--allow-read` on `/proc`, not Linux). A pid and its start
 * time name one process for good: a pid reused by a later process comes
 * with a later start time.
 */
export function processStartTime(pid: number): bigint | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  if (
    Deno.permissions.querySync({ name: "read", path: _PROC }).state !==
      "granted"
  ) {
    return undefined;
  }
  const stat = readSmallFile(`${_PROC}/${pid}/stat`, 1024);
  if (stat === undefined) return undefined;
  const end = stat.lastIndexOf(")");
  if (end < 0) return undefined;
  // After "(comm)" come field 3 (state) onwards: field 22 is the 20th.
  const field = stat.slice(end + 2).split(" ")[19];
  return field !== undefined && /^\d+$/.test(field) ? BigInt(field) : undefined;
}

/**
 * Whether the process recorded as `pid` with start time `started` (from
 * {@linkcode processStartTime}; `0n` when it could not be read) still
 * runs: its pid exists, is no zombie, and, when both start times are
 * known, started at that very time (a reused pid is another process).
 */
export function sameProcessAlive(pid: number, started: bigint): boolean {
  if (!processAlive(pid)) return false;
  if (started === 0n) return true;
  const now = processStartTime(pid);
  return now === undefined || now === started;
}
