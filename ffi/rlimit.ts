/**
 * The process's descriptor limit (`RLIMIT_NOFILE`), read and raised with
 * getrlimit/setrlimit.
 *
 * @module
 */

import { RLIMIT } from "./c.ts";
import { lastErrno } from "./errno.ts";
import { libc } from "./load.ts";

/** A soft and a hard limit; `Infinity` for `RLIM_INFINITY`. */
export interface Limit {
  /** What the process may use now. */
  soft: number;
  /** How far an unprivileged process may raise `soft`. */
  hard: number;
}

const _INFINITY = 0xffff_ffff_ffff_ffffn;

function _number(value: bigint): number {
  return value === _INFINITY ? Infinity : Number(value);
}

/** The descriptor limit, or `-errno`. */
export function descriptorLimit(): Limit | number {
  const limit = new BigUint64Array(RLIMIT.SIZE_OF / 8);
  if (libc().symbols.getrlimit(RLIMIT.NOFILE, limit) !== 0) return -lastErrno();
  return {
    soft: _number(limit[RLIMIT.CUR / 8]),
    hard: _number(limit[RLIMIT.MAX / 8]),
  };
}

/**
 * Raises the soft descriptor limit to the hard one (the most a process may
 * open without privileges), and returns the limit now in force, or `-errno`.
 */
export function raiseDescriptorLimit(): Limit | number {
  const limit = new BigUint64Array(RLIMIT.SIZE_OF / 8);
  const symbols = libc().symbols;
  if (symbols.getrlimit(RLIMIT.NOFILE, limit) !== 0) return -lastErrno();
  limit[RLIMIT.CUR / 8] = limit[RLIMIT.MAX / 8];
  if (symbols.setrlimit(RLIMIT.NOFILE, limit) !== 0) return -lastErrno();
  return descriptorLimit();
}
