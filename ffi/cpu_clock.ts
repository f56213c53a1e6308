/**
 * Process CPU clocks: the CPU time (user + system, every thread, the ones
 * that already exited included) a process has used, in nanoseconds.
 *
 * The benchmark driver reads them for itself and for its peer processes
 * around each measurement. /proc/<pid>/stat has the same times, but in
 * ticks of 10 ms, too coarse for a measurement that lasts 100 ms.
 *
 * @module
 */

import { libc } from "./load.ts";

/** `CLOCK_PROCESS_CPUTIME_ID`: the calling process's CPU clock. */
const _CLOCK_PROCESS_CPUTIME_ID = 2;
/** `CPUCLOCK_SCHED`: the scheduler's runtime, the clock `clock_getcpuclockid()` picks. */
const _CPUCLOCK_SCHED = 2;

/**
 * The clock id of another process's CPU clock. Linux encodes it as
 * `MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)`, `(~pid << 3) | 2` in a
 * 32-bit int (include/linux/posix-timers_types.h, a stable ABI that glibc's
 * and musl's `clock_getcpuclockid()` compute the same way).
 */
function _clockOf(pid: number): number {
  return ((~pid) << 3) | _CPUCLOCK_SCHED;
}

const _timespec = new BigInt64Array(2);

/**
 * The CPU time `pid` (or, without one, this process) has used so far, in
 * nanoseconds; undefined when it cannot be read (no such process, or not
 * Linux). Callers need `--allow-ffi`; Linux lets any process read another's
 * CPU clock.
 */
export function processCpuNanos(pid?: number): number | undefined {
  if (Deno.build.os !== "linux") return undefined;
  const clock = pid === undefined ? _CLOCK_PROCESS_CPUTIME_ID : _clockOf(pid);
  const result = libc().symbols.clock_gettime(
    clock,
    new Uint8Array(_timespec.buffer),
  );
  if (result !== 0) return undefined;
  return Number(_timespec[0]) * 1e9 + Number(_timespec[1]);
}
