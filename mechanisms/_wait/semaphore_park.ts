/**
 * Where an async semaphore wait sleeps between two `sem_trywait`s, without
 * holding a thread and without ever taking a count itself.
 *
 * On glibc the semaphore's own value word is a futex that `sem_post` wakes
 * when the semaphore's waiter count is non-zero (ffi/glibc_sem.ts). So a
 * handle with async waits parked registers itself once in that count, and
 * its waits sleep on the value word while it is 0, through the futex lanes
 * (futex.ts): one lane thread serves up to 127 semaphores of the process,
 * and an idle wait costs no CPU. When the last wait of the handle leaves it
 * takes itself off the count again, and if a count is available while
 * other waiters (of any process) are registered, it passes a wake-up on
 * (`FUTEX_WAKE` 1): a wake the lanes took for a wait that then gave up
 * would otherwise leave another process's sleeper asleep beside a count.
 * A spare wake-up costs a sleeper one look at the value.
 *
 * Elsewhere (musl, whose `sem_t` is laid out differently; no futex_waitv)
 * the wait retries `sem_trywait` on a timer backing off from 1 ms to
 * {@linkcode FALLBACK_MAX_MS}: correct and threadless, with up to that much
 * latency once a wait has lasted a while.
 *
 * Either way only `sem_trywait` on the main thread takes a count, so a
 * wait that is aborted, times out or is closed never takes one.
 *
 * @module
 */

import { GlibcSemaphore, isGlibc } from "../../ffi/glibc_sem.ts";
import { backoffPark, type ParkBounds } from "./retry.ts";
import {
  FALLBACK_MAX_MS,
  lanesAvailable,
  waitWord,
  wakeWord,
} from "./futex.ts";
import type { SemPointer } from "./semaphore_calls.ts";

export { FALLBACK_MAX_MS } from "./futex.ts";

/** The async waits of one semaphore handle. */
export class SemaphorePark {
  #glibc: GlibcSemaphore | undefined;
  /** Waits of this handle that have parked at least once and not ended. */
  #registered = 0;
  #closed = false;

  /** @param sem the `sem_t`, mapped until {@linkcode SemaphorePark.close} */
  constructor(sem: SemPointer) {
    if (isGlibc() && lanesAvailable()) this.#glibc = new GlibcSemaphore(sem);
  }

  /**
   * The park of one `wait()`: give it to `retryAsync` with the wait's plan,
   * and call the returned `end` once the wait is over, however it ended.
   */
  parkFor(
    plan: ParkBounds,
  ): { park: () => Promise<void>; end: () => void } {
    const glibc = this.#glibc;
    if (!glibc) {
      return {
        park: backoffPark(1, FALLBACK_MAX_MS, plan),
        end: () => {},
      };
    }
    let registered = false;
    return {
      park: () => {
        // Registered before the word is checked: a post from now on wakes.
        if (!registered) {
          registered = true;
          if (this.#registered++ === 0) glibc.addWaiter();
        }
        return waitWord(
          glibc.valueWord,
          0,
          plan.deadline,
          plan.signal,
          plan.action,
        );
      },
      end: () => {
        if (!registered || this.#closed) return;
        if (--this.#registered === 0) this.#unregister(glibc);
      },
    };
  }

  /**
   * Takes this handle off the waiter count at once (its waits are being
   * rejected by the caller), before the `sem_t` is released.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#glibc && this.#registered > 0) this.#unregister(this.#glibc);
    this.#registered = 0;
  }

  #unregister(glibc: GlibcSemaphore): void {
    if (glibc.removeWaiter()) wakeWord(glibc.valueWord, 1);
  }
}
