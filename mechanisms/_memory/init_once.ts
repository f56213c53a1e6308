/**
 * Initializing an object in shared memory exactly once across processes,
 * whichever process comes first, and surviving the first one dying halfway.
 *
 * One 32-bit state word, beside the object and zero in fresh shared memory,
 * says where initialization stands:
 *
 * - `0`: fresh. A process that finds it so claims it with one
 *   compare-and-swap to `-pid`; exactly one wins, initializes the object,
 *   and stores `1`.
 * - `-pid`: process `pid` is initializing. Others wait for `1` (sleeping a
 *   millisecond at a time), and take the claim over with a compare-and-swap
 *   when that process has died (`kill(pid, 0)` answers ESRCH), so a crash
 *   in the middle does not leave the object unusable.
 * - `1`: ready. Everyone attaches to what is there.
 * - anything else: these bytes do not hold such an object, a `TypeError`.
 *
 * The seq-cst `Atomics` on the word order the initializer's writes before
 * `1` becomes visible (see the memory ordering notes of `SharedMemory`).
 *
 * @module
 */

import { timeoutError } from "../_common/system_error.ts";
import { processAlive } from "../_kernel/process_state.ts";

/** The state word of an object that is ready to use. */
export const INIT_READY = 1;

/**
 * How long a process waits for another one to finish initializing before it
 * gives up, in ms: initializing takes microseconds, so this passes only when
 * that process is stuck (stopped by a debugger, SIGSTOP) but not dead.
 */
export const INIT_TIMEOUT_MS = 1000;

// A word nobody changes, to sleep on for a millisecond.
const _pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * Runs `initialize` if this process is the first to claim the state word
 * `words[index]`, else waits until the object is ready and runs `attach`.
 * @throws {TypeError} when the state word holds something other than a state
 * @throws {Deno.errors.TimedOut} when another live process claimed it and did
 * not finish within {@linkcode INIT_TIMEOUT_MS}
 */
export function initOnce<R>(
  words: Int32Array<ArrayBuffer>,
  index: number,
  object: {
    /** Sets the object up; runs in exactly one process. */
    initialize: () => R;
    /** Uses the object another process (or handle) set up. */
    attach: () => R;
    /** The object, for messages: `mutex "/lock"`. */
    what: string;
    /** Its kind, for messages: `a mutex`. */
    kind: string;
  },
): R {
  const { initialize, attach, what } = object;
  const deadline = performance.now() + INIT_TIMEOUT_MS;
  for (;;) {
    const state = Atomics.load(words, index);
    if (state === INIT_READY) return attach();
    if (state === 0 || (state < 0 && !processAlive(-state))) {
      if (Atomics.compareExchange(words, index, state, -Deno.pid) === state) {
        const result = initialize();
        Atomics.store(words, index, INIT_READY);
        return result;
      }
      continue;
    }
    if (state > 0) {
      throw new TypeError(
        `Cannot use ${what}: its bytes do not hold ${object.kind} (state word ${state})`,
      );
    }
    if (performance.now() > deadline) {
      throw timeoutError(
        `use ${what}: process ${-state} started initializing it and did not finish`,
        INIT_TIMEOUT_MS,
      );
    }
    // Another process is between two instructions of initialization.
    Atomics.wait(_pause, 0, 0, 1);
  }
}
