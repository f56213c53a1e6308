/**
 * `struct timespec` as the timed C calls take it (`sem_clockwait`,
 * `sem_timedwait`): an absolute time on a clock, in seconds and
 * nanoseconds.
 *
 * @module
 */

import { TIMESPEC_SIZE } from "./c.ts";
import { libc } from "./load.ts";

/** A `struct timespec { time_t tv_sec; long tv_nsec; }` (LP64) that C reads. */
export class Timespec {
  /** The struct's bytes, to pass where C takes a `struct timespec *`. */
  readonly bytes: Uint8Array<ArrayBuffer>;
  #fields: BigInt64Array<ArrayBuffer>;

  constructor() {
    this.#fields = new BigInt64Array(TIMESPEC_SIZE / 8);
    this.bytes = new Uint8Array(this.#fields.buffer);
  }

  /** Sets it to `ms` milliseconds (0 or more) after now on `clock` (clock_gettime(2)). */
  setAfter(clock: number, ms: number): void {
    const fields = this.#fields;
    libc().symbols.clock_gettime(clock, this.bytes);
    const nanos = fields[1] + BigInt(Math.max(0, Math.round(ms * 1e6)));
    fields[0] += nanos / 1_000_000_000n;
    fields[1] = nanos % 1_000_000_000n;
  }
}
