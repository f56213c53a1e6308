/**
 * What glibc's `sem_t` looks like inside, so that an async wait can sleep
 * on the semaphore's own futex word instead of holding a thread in
 * `sem_wait`.
 *
 * On 64-bit glibc (since 2.21, `__HAVE_64B_ATOMICS`) a `sem_t` starts with
 * `uint64_t data`: the value in the low 32 bits, the number of possibly
 * blocked waiters in the high 32 bits (`SEM_NWAITERS_SHIFT`). The low half
 * is also the futex word (`SEM_VALUE_OFFSET` is 0 on little-endian).
 *
 * The protocol, from glibc's nptl/sem_post.c and sem_waitcommon.c:
 * - `sem_post` adds 1 to `data` with a CAS and, only if the waiter count it
 *   saw was non-zero, calls `FUTEX_WAKE` with count 1 on the value word
 *   (process-shared semaphores use shared futexes).
 * - a waiter adds `1 << 32` before it sleeps and sleeps with `FUTEX_WAIT`
 *   on the value word while the value is 0; when it takes a count it
 *   subtracts both.
 *
 * ipckit waits the same way without glibc's code: it adds itself to the
 * waiter count (once per semaphore handle, however many async waits it
 * has), sleeps on the value word while it is 0, and takes counts with
 * `sem_trywait`; when its last waiter leaves it subtracts itself again.
 * A process killed while registered leaves the count one too high, which
 * only makes later posts issue a wake nobody needs (glibc's own sleepers
 * leave the same behind when killed).
 *
 * musl's `sem_t` is different (an `int[4]` with a waiter count and a
 * negative value for "contended"), and macOS has none in shared memory:
 * there {@linkcode isGlibc} is false and callers do not use this file.
 *
 * @module
 */

import { libc } from "./load.ts";

/** One waiter in the high 32 bits of `sem_t.data`. */
const _ONE_WAITER = 1n << 32n;
const _VALUE_MASK = 0xffff_ffffn;

let _glibc: boolean | undefined;

/**
 * Whether the C library is glibc with the 64-bit semaphore layout above:
 * glibc exports `gnu_get_libc_version`; musl does not.
 */
export function isGlibc(): boolean {
  if (_glibc !== undefined) return _glibc;
  const symbols = libc().symbols;
  _glibc = Deno.build.os === "linux" &&
    (Deno.build.arch === "x86_64" || Deno.build.arch === "aarch64") &&
    symbols.gnu_get_libc_version !== null;
  return _glibc;
}

/**
 * A glibc `sem_t` seen as its `data` word: a 64-bit view for the waiter
 * count and a 32-bit view of the value, which is also the futex word.
 */
export class GlibcSemaphore {
  /** `data`, for atomic updates of the waiter count. */
  readonly data: BigUint64Array<ArrayBuffer>;
  /** The value word (low half of `data`), which `sem_post` wakes. */
  readonly valueWord: Int32Array<ArrayBuffer>;

  /**
   * @param sem a `sem_t *`, 8-byte aligned, that stays mapped while this
   * object is used (its owner stops using it before sem_close or munmap)
   */
  constructor(sem: Deno.PointerObject) {
    const buffer = Deno.UnsafePointerView.getArrayBuffer(sem, 8);
    this.data = new BigUint64Array(buffer, 0, 1);
    this.valueWord = new Int32Array(buffer, 0, 1);
  }

  /** Adds this process to the semaphore's waiter count. */
  addWaiter(): void {
    Atomics.add(this.data, 0, _ONE_WAITER);
  }

  /**
   * Takes this process off the waiter count again.
   *
   * @returns whether a wake-up should be passed on: a count is available
   * while other waiters are still registered, so a `FUTEX_WAKE` this
   * process's waits took without using may have left one of them asleep
   */
  removeWaiter(): boolean {
    const before = Atomics.sub(this.data, 0, _ONE_WAITER);
    const after = before - _ONE_WAITER;
    return (after & _VALUE_MASK) > 0n && (after >> 32n) > 0n;
  }
}
