/**
 * Which process holds each side of a shared-memory channel, and whether it
 * still runs: so a side waiting on a dead peer learns it within a bounded
 * time, as an error, instead of waiting forever.
 *
 * ## Memory format: one side (16 bytes, 8-byte aligned, native byte order)
 *
 * | offset | type | field |
 * | --- | --- | --- |
 * | 0 | i32 | pid of the process holding the side; 0: nobody |
 * | 4 | u32 | reserved, 0 |
 * | 8 | u64 | that process's start time, in clock ticks after boot (field 22 of `/proc/<pid>/stat`); 0: unknown |
 *
 * A process takes a side by writing the start time and then the pid with
 * a compare-and-swap from 0 (or from a dead holder's pid), and gives it
 * back by swapping its pid for 0. A pid alone is not enough: after a
 * crash the kernel may hand the same pid to an unrelated process, which
 * would then be taken for the peer forever. A pid with its start time
 * names one process for good.
 *
 * A waiting side checks its peer every {@linkcode LIVENESS_CHECK_MS}
 * while parked (a read of `/proc/<pid>/stat`: a few microseconds), never
 * while messages flow, so a SIGKILLed peer is noticed within about that
 * time. Without `--allow-read` on `/proc` only `kill(pid, 0)` is asked,
 * and a reused pid is not told apart.
 *
 * @module
 */

import {
  processStartTime,
  sameProcessAlive,
} from "../_kernel/process_state.ts";

/** The bytes of one side's record. */
export const SIDE_SIZE = 16;

/** How often a parked wait checks that its peer still runs, in ms. */
export const LIVENESS_CHECK_MS = 100;

let _ownStart: bigint | undefined;

/** This process's start time, 0n when it cannot be read. */
export function ownStartTime(): bigint {
  _ownStart ??= processStartTime(Deno.pid) ?? 0n;
  return _ownStart;
}

/** One side's record in shared memory. */
export class Side {
  #words: Int32Array<ArrayBuffer>;
  #start: BigInt64Array<ArrayBuffer>;

  /** The record at `byteOffset` (a multiple of 8) of `buffer`. */
  constructor(buffer: ArrayBuffer, byteOffset: number) {
    this.#words = new Int32Array(buffer, byteOffset, 2);
    this.#start = new BigInt64Array(buffer, byteOffset + 8, 1);
  }

  /** The pid holding it, 0 for nobody. */
  get pid(): number {
    return Atomics.load(this.#words, 0);
  }

  /**
   * Takes the side for this process when it is free or its holder died.
   * Returns 0 on success, else the pid of the live process holding it.
   */
  claim(): number {
    for (;;) {
      const holder = Atomics.load(this.#words, 0);
      if (holder === Deno.pid) return holder; // another handle here has it
      if (holder !== 0 && this.alive()) return holder;
      if (Atomics.compareExchange(this.#words, 0, holder, -1) !== holder) {
        continue; // another process got there first: look again
      }
      // -1 while the start time is written: nobody reads a half record.
      Atomics.store(this.#start, 0, ownStartTime());
      Atomics.store(this.#words, 0, Deno.pid);
      return 0;
    }
  }

  /** Gives the side back if this process holds it. */
  release(): void {
    Atomics.compareExchange(this.#words, 0, Deno.pid, 0);
  }

  /**
   * Whether the side is held by a process that still runs (the same one
   * that took it). A side being taken (-1) counts as alive.
   */
  alive(): boolean {
    const pid = Atomics.load(this.#words, 0);
    if (pid === 0) return false;
    if (pid === -1 || pid === Deno.pid) return true;
    return sameProcessAlive(pid, Atomics.load(this.#start, 0));
  }
}
