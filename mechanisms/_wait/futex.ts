/**
 * Waiting on 32-bit words in shared memory, which no descriptor can
 * announce: the futex lanes.
 *
 * {@linkcode waitWord} resolves once a process-shared word may no longer
 * hold the value it was expected to hold: it was woken (`FUTEX_WAKE` by any
 * process mapping it), or its value differs. The caller then retries its
 * own operation (`sem_trywait`, a compare-and-swap) on the main thread.
 * Semaphores wait this way on glibc; futex waits on shared memory
 * (issue 14) are to build on the same function.
 *
 * ## Lanes
 *
 * A lane is one `futex_waitv` call (Linux >= 5.16) parked on Deno's thread
 * pool, waiting on up to {@linkcode WORDS_PER_LANE} words at once plus its
 * own private control word in slot 0. Waiters of the same word and
 * expected value share a slot. When the set of words changes (a word is
 * added, or its last waiter leaves), the control word is bumped and woken,
 * so the lane returns and is issued again with the new set; changes made in
 * one turn of the event loop are gathered into one re-issue. When a lane
 * returns, for whatever reason (its errno is unreadable: it ran on another
 * thread), the main thread reads every word of it: the slot the kernel
 * named and every word that differs from its expected value wake their
 * waiters. When nobody waits any more the lane is not issued again, so an
 * abandoned wait never keeps the process alive.
 *
 * There are at most {@linkcode MAX_LANES} lanes, so at most that many pool
 * threads, whatever the number of waits: up to 508 distinct words at a
 * cost of four threads, and no CPU while nothing happens. A re-issue costs
 * two system calls and a hop to the pool and back. Words beyond the lanes'
 * capacity, and every word where `futex_waitv` is missing (ENOSYS on older
 * kernels, a seccomp filter, macOS), are checked on the main thread by a
 * timer instead, backing off from 1 ms to {@linkcode FALLBACK_MAX_MS}: no
 * thread, but up to that much latency, and a tiny periodic cost per word
 * (an atomic read every 50 ms once idle). Such a check only sees the value
 * change, not a wake that leaves the value as it was.
 *
 * ## Why unmapping a word a lane waits on is safe
 *
 * A waiter's owner stops reading the word before it unmaps it: the slot
 * is marked dead at once, and a dead slot's word is never read again. The
 * lane itself may still be in the kernel on it, and that is safe: the
 * kernel reads the value once, when the wait starts, and keys a shared
 * futex by the file and offset it maps (not by the address), so an unmap
 * afterwards leaves a sleeper that only the control word or a wake of that
 * file offset ends, touching no user memory. If the unmap comes before the
 * pool thread enters the kernel, the read faults inside the kernel
 * (EFAULT) and the call returns at once. The list of entries C reads is
 * held by its lane and only rewritten after the call returned.
 *
 * @module
 */

import {
  addressOf,
  FUTEX_WAITV_MAX,
  FutexWaitList,
  futexWaitSync,
  futexWaitvAsync,
  futexWake,
  hasFutexWaitv,
} from "../../ffi/futex.ts";
import { ERRNO } from "../../ffi/errno.ts";
import { timeoutError } from "../_common/system_error.ts";
import { bounded, type Deadline, expired, type Settle } from "./deadline.ts";

/** The most lanes (and pool threads) the process uses for futex waits. */
export const MAX_LANES = 4;

/** Words per lane: futex_waitv's limit minus the control word. */
export const WORDS_PER_LANE = FUTEX_WAITV_MAX - 1;

/** The longest pause between two checks of a word the lanes do not hold. */
export const FALLBACK_MAX_MS = 50;

const _FALLBACK_FIRST_MS = 1;

interface _Slot {
  key: string;
  word: Int32Array;
  address: bigint;
  expected: number;
  waiters: Set<Settle<void>>;
  /** Set once the last waiter left: the word must not be read again. */
  dead: boolean;
  lane: _Lane | undefined;
}

/** One parked futex_waitv and the words it waits on. */
class _Lane {
  slots: _Slot[] = [];
  /** Words were added or left since the call was issued. */
  dirty = false;
  #control = new Int32Array(1);
  #controlAddress = addressOf(this.#control);
  // C reads the list when the call starts: held here, rewritten only
  // once the call has returned.
  #list = new FutexWaitList(FUTEX_WAITV_MAX);
  #issued: _Slot[] = [];
  #parked = false;
  #bumped = false;

  get parked(): boolean {
    return this.#parked;
  }

  /** Makes a parked call return, so that it is issued with the new set. */
  bump(): void {
    if (!this.#parked || this.#bumped) return;
    this.#bumped = true;
    Atomics.add(this.#control, 0, 1);
    futexWake(this.#controlAddress, 1, false);
  }

  /** Parks the call on the pool with the live slots, if there are any. */
  issue(onReturn: (lane: _Lane, index: number) => void): void {
    this.slots = this.slots.filter((slot) => !slot.dead);
    if (this.#parked || this.slots.length === 0) return;
    const list = this.#list;
    list.set(0, this.#controlAddress, Atomics.load(this.#control, 0), false);
    this.slots.forEach((slot, i) => {
      list.set(i + 1, slot.address, slot.expected, true);
    });
    this.#issued = this.slots.slice();
    this.#parked = true;
    this.#bumped = false;
    this.dirty = false;
    // -1 for "no word named": the words are read afterwards either way.
    futexWaitvAsync(list, this.#issued.length + 1).catch(() => -1).then(
      (index) => {
        this.#parked = false;
        onReturn(this, index);
      },
    );
  }

  /** The slots of the call that just returned, with their index in it. */
  issued(): readonly _Slot[] {
    return this.#issued;
  }
}

/** The lanes, the fallback checks, and the slots of every waited word. */
class _FutexLanes {
  #slots = new Map<string, _Slot>();
  #lanes: _Lane[] = [];
  #fallback = new Set<_Slot>();
  #fallbackTimer: ReturnType<typeof setTimeout> | undefined;
  #fallbackDelay = _FALLBACK_FIRST_MS;
  #syncQueued = false;
  #useLanes: boolean;

  constructor(useLanes: boolean) {
    this.#useLanes = useLanes;
  }

  wait(
    word: Int32Array,
    expected: number,
    deadline: Deadline,
    signal: AbortSignal | undefined,
    action: string,
  ): Promise<void> {
    return bounded<void>(deadline, signal, action, (settle) => {
      if (Atomics.load(word, 0) !== expected) {
        settle.resolve();
        return;
      }
      const address = addressOf(word);
      const key = `${address}:${expected}`;
      let slot = this.#slots.get(key);
      if (!slot) {
        slot = {
          key,
          word,
          address,
          expected,
          waiters: new Set(),
          dead: false,
          lane: undefined,
        };
        this.#slots.set(key, slot);
        this.#place(slot);
      }
      slot.waiters.add(settle);
      const joined = slot;
      return () => {
        joined.waiters.delete(settle);
        if (joined.waiters.size > 0) return;
        // From here on nothing reads the word: its memory may go.
        joined.dead = true;
        this.#slots.delete(joined.key);
        if (joined.lane) {
          joined.lane.dirty = true;
          this.#queueSync();
        } else if (this.#fallback.delete(joined) && this.#fallback.size === 0) {
          this.#armFallback(); // nothing left to check: stops the timer
        }
      };
    });
  }

  /** How many words the lanes and the fallback hold (for tests). */
  get counts(): { lanes: number; laneWords: number; fallbackWords: number } {
    return {
      lanes: this.#lanes.filter((lane) => lane.parked).length,
      laneWords: this.#lanes.reduce(
        (sum, lane) => sum + lane.slots.filter((slot) => !slot.dead).length,
        0,
      ),
      fallbackWords: this.#fallback.size,
    };
  }

  #place(slot: _Slot): void {
    const lane = this.#laneWithRoom();
    if (lane) {
      slot.lane = lane;
      lane.slots.push(slot);
      lane.dirty = true;
      this.#queueSync();
      return;
    }
    this.#fallback.add(slot);
    this.#fallbackDelay = _FALLBACK_FIRST_MS;
    this.#armFallback();
  }

  #laneWithRoom(): _Lane | undefined {
    if (!this.#useLanes) return undefined;
    for (const lane of this.#lanes) {
      if (lane.slots.filter((slot) => !slot.dead).length < WORDS_PER_LANE) {
        return lane;
      }
    }
    if (this.#lanes.length >= MAX_LANES) return undefined;
    const lane = new _Lane();
    this.#lanes.push(lane);
    return lane;
  }

  /** Gathers the changes of this turn into one re-issue per lane. */
  #queueSync(): void {
    if (this.#syncQueued) return;
    this.#syncQueued = true;
    queueMicrotask(() => {
      this.#syncQueued = false;
      this.#sync();
    });
  }

  #sync(): void {
    for (const lane of this.#lanes) {
      lane.slots = lane.slots.filter((slot) => !slot.dead);
    }
    // Room freed in a lane: take words over from the fallback.
    for (const slot of [...this.#fallback]) {
      const lane = this.#laneWithRoom();
      if (!lane) break;
      this.#fallback.delete(slot);
      slot.lane = lane;
      lane.slots.push(slot);
      lane.dirty = true;
    }
    if (this.#fallback.size === 0) this.#armFallback();
    for (const lane of this.#lanes) {
      if (!lane.parked) {
        lane.issue((returned, index) => this.#afterWait(returned, index));
      } else if (lane.dirty) lane.bump();
    }
  }

  #afterWait(lane: _Lane, index: number): void {
    lane.issued().forEach((slot, i) => {
      if (slot.dead) return;
      if (i + 1 === index || Atomics.load(slot.word, 0) !== slot.expected) {
        this.#wake(slot);
      }
    });
    this.#queueSync();
  }

  /** Resolves a slot's waiters; each leaves it, which removes it. */
  #wake(slot: _Slot): void {
    for (const settle of [...slot.waiters]) settle.resolve();
  }

  #armFallback(): void {
    if (this.#fallbackTimer !== undefined) clearTimeout(this.#fallbackTimer);
    this.#fallbackTimer = undefined;
    if (this.#fallback.size === 0) return;
    this.#fallbackTimer = setTimeout(() => {
      this.#fallbackTimer = undefined;
      let woke = false;
      for (const slot of [...this.#fallback]) {
        if (Atomics.load(slot.word, 0) !== slot.expected) {
          woke = true;
          this.#wake(slot);
        }
      }
      this.#fallbackDelay = woke
        ? _FALLBACK_FIRST_MS
        : Math.min(this.#fallbackDelay * 2, FALLBACK_MAX_MS);
      this.#armFallback();
    }, this.#fallbackDelay);
  }
}

let _lanes: _FutexLanes | undefined;
let _forceFallback = false;

function _theLanes(): _FutexLanes {
  _lanes ??= new _FutexLanes(!_forceFallback && hasFutexWaitv());
  return _lanes;
}

/**
 * Waits until the 32-bit word `word[0]`, in memory shared between
 * processes, may no longer hold `expected`: resolves when it was woken or
 * differs (the caller retries its operation), rejects with `TimedOut` at
 * the deadline and with the signal's reason on abort. The word must stay
 * mapped until the promise settles; the caller aborts (through `signal`)
 * before it unmaps it.
 *
 * @param action what is being done, for the timeout message
 */
export function waitWord(
  word: Int32Array,
  expected: number,
  deadline: Deadline,
  signal: AbortSignal | undefined,
  action: string,
): Promise<void> {
  return _theLanes().wait(word, expected, deadline, signal, action);
}

/**
 * Blocks the calling thread until the 32-bit word `word[0]` may no longer
 * hold `expected` (woken, or it differs), like {@linkcode waitWord} but
 * with `FUTEX_WAIT` on this thread: for Workers and scripts. A signal that
 * interrupts the wait ends it too (the caller looks at the word again).
 *
 * @param sliceMs the longest single block, so a caller can check other
 * things (a peer's liveness) in between; the deadline still applies
 * @throws {Deno.errors.TimedOut} once the deadline has passed
 */
export function waitWordSync(
  word: Int32Array,
  expected: number,
  deadline: Deadline,
  action: string,
  sliceMs: number = Infinity,
): void {
  if (Atomics.load(word, 0) !== expected) return;
  if (expired(deadline)) throw timeoutError(action, deadline.timeout);
  const left = deadline.at === Infinity
    ? Infinity
    : deadline.at - performance.now();
  const block = Math.min(left, sliceMs);
  const result = futexWaitSync(
    addressOf(word),
    expected,
    block === Infinity ? undefined : block,
    true,
  );
  if (result === -ERRNO.ETIMEDOUT && block === left) {
    throw timeoutError(action, deadline.timeout);
  }
}

/**
 * Wakes up to `count` waiters of a process-shared word, in any process
 * (`FUTEX_WAKE`). Returns how many were woken, or `-errno`.
 */
export function wakeWord(word: Int32Array, count: number): number {
  return futexWake(addressOf(word), count, true);
}

/** Whether word waits run on lanes (futex_waitv) rather than on timers. */
export function lanesAvailable(): boolean {
  return !_forceFallback && hasFutexWaitv();
}

/** For tests: how many lanes are parked and how many words each path holds. */
export function _laneCounts(): {
  lanes: number;
  laneWords: number;
  fallbackWords: number;
} {
  return _theLanes().counts;
}

/**
 * For tests only: makes every word wait take the timer fallback, as where
 * futex_waitv is missing. Must run before the first wait of the process.
 */
export function _useWordFallback(): void {
  if (_lanes) {
    throw new Error("_useWordFallback() must run before the first word wait");
  }
  _forceFallback = true;
}
