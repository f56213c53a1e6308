/**
 * Waiting on a 32-bit word of shared memory: a futex (`futex(2)`), the
 * primitive every lock, event and channel over shared memory sleeps on.
 *
 * A {@linkcode Futex} names one 4-byte-aligned word of a `SharedMemory`
 * object or a shared `MappedFile`, or a `u32`/`i32` field of a `layout`
 * record bound in one. `wait(expected)` sleeps while the word holds
 * `expected` and returns once it was woken or no longer holds it;
 * `wake(count)` wakes waiters in every process that maps the word. As with
 * C's futex, a return says "look again", not "it changed": callers loop
 * on their own condition, and a waker changes the word first, then wakes.
 *
 * Async waits do not take a thread each: they share at most four parked
 * `futex_waitv` calls for the whole process (see
 * `mechanisms/_wait/futex.ts`), so 10,000 waits in flight cost four pool
 * threads. Where `futex_waitv` is missing (Linux before 5.16, a seccomp
 * filter) they fall back to checking the word on a timer, which sees a
 * change of value but not a bare wake. `waitSync` blocks the calling
 * thread in `FUTEX_WAIT`, like C.
 *
 * Permissions: only `--allow-ffi`, beyond what opening the memory needed.
 *
 * @example Sleep until another process bumps a word
 * ```ts
 * import { Futex, SharedMemory } from "@ipckit/ipckit";
 *
 * using memory = SharedMemory.open(`/ready-${Deno.pid}`, {
 *   create: true,
 *   size: 64,
 *   unlinkOnClose: true,
 * });
 * using ready = Futex.at(memory, 0);
 * setTimeout(() => {
 *   ready.store(1); // another process would do this
 *   ready.wake();
 * }, 10);
 * while (ready.load() === 0) await ready.wait(0, { timeout: 1000 });
 * console.log(ready.load()); // 1
 * ```
 *
 * @module
 */

import type { WaitOptions } from "./channel.ts";
import type { IntegerFieldsOf, LayoutSpec, StructView } from "./layout.ts";
import type { MappedFile } from "./mapped_file.ts";
import type { SharedMemory } from "./shared_memory.ts";
import { checkOptionKeys } from "./_common/checks.ts";
import { Lifecycle, untilClosed } from "./_common/lifecycle.ts";
import { closedError } from "./_common/system_error.ts";
import type { Mapping } from "./_memory/mapping.ts";
import {
  placeIn,
  PLACEMENT,
  type PlacementRegion,
} from "./_memory/placement.ts";
import { deadlineOf, SYNC_WAIT_KEYS, WAIT_KEYS } from "./_wait/deadline.ts";
import { waitWord, waitWordSync, wakeWord } from "./_wait/futex.ts";
import { NATIVE_LITTLE_ENDIAN } from "./_record/struct.ts";

/** The size of a futex word in bytes, which is also its alignment. */
export const FUTEX_SIZE = 4;

/** The most waiters `wake()` can name: all of them. */
const _ALL = 0x7fff_ffff;

/**
 * The `u32` and `i32` fields of a layout: those a {@linkcode Futex} can be
 * made on.
 *
 * @example Which fields a futex can wait on
 * ```ts
 * import { layout, type FutexFieldsOf } from "@ipckit/ipckit";
 *
 * const state = layout({ seq: "u32", flags: "u8" });
 * const field: FutexFieldsOf<typeof state.spec> = "seq"; // "flags" would not compile
 * ```
 *
 * @category Shared memory
 */
export type FutexFieldsOf<S extends LayoutSpec> = {
  [K in IntegerFieldsOf<S>]: S[K] extends "u32" | "i32" ? K
    : S[K] extends { type: "u32" | "i32" } ? K
    : never;
}[IntegerFieldsOf<S>];

/**
 * One 32-bit word of shared memory to wait on and wake; see the module
 * documentation. Closing it ends its pending waits with `BadResource`; it
 * closes with the memory it lives in, first.
 *
 * @example Wait on a field of a record
 * ```ts
 * import { Futex, layout, SharedMemory } from "@ipckit/ipckit";
 *
 * using state = SharedMemory.openStruct(`/state-${Deno.pid}`, layout({ seq: "u32" }), {
 *   create: true,
 *   unlinkOnClose: true,
 * });
 * using seq = Futex.field(state, "seq");
 * state.$atomic.seq.add(1);
 * seq.wake();
 * await seq.wait(0, { timeout: 1000 }); // returns at once: seq is 1, not 0
 * ```
 *
 * @category Shared memory
 */
export class Futex implements Disposable, AsyncDisposable {
  #mapping: Mapping;
  #byteOffset: number;
  #word: Int32Array<ArrayBuffer>;
  #signed: boolean;
  #what: string;
  #life: Lifecycle;
  #closing = new AbortController();
  #forget: () => void = () => {};

  private constructor(
    mapping: Mapping,
    byteOffset: number,
    signed: boolean,
    what: string,
  ) {
    this.#mapping = mapping;
    this.#byteOffset = byteOffset;
    this.#word = mapping.view(Int32Array, byteOffset, 1);
    this.#signed = signed;
    this.#what = what;
    this.#life = new Lifecycle(what);
  }

  /**
   * A futex on the word at `byteOffset` (a multiple of 4) of `memory`.
   * Values read as unsigned (`u32`).
   *
   * @throws {TypeError} when `memory` is not a `SharedMemory` or `MappedFile`,
   * or is mapped privately (read-only), so other processes would not see it
   * @throws {RangeError} for an offset that is misaligned or out of range
   * @throws {Deno.errors.BadResource} when `memory` is closed
   *
   * @example A word after a 60-byte header
   * ```ts
   * import { Futex, SharedMemory } from "@ipckit/ipckit";
   *
   * using memory = SharedMemory.open(`/words-${Deno.pid}`, { create: true, size: 64, unlinkOnClose: true });
   * using word = Futex.at(memory, 60);
   * console.log(word.load()); // 0
   * ```
   */
  static at(memory: SharedMemory | MappedFile, byteOffset: number): Futex {
    return Futex.#place(memory, byteOffset, false, "make a futex");
  }

  /**
   * A futex on the `u32` or `i32` field `field` of a record bound in shared
   * memory or a shared mapped file (`memory.struct(layout)`,
   * `SharedMemory.openStruct`). An `i32` field reads as signed.
   *
   * @throws {TypeError} for a record not bound in shared memory, an unknown
   * field, a field of another type, or a field not in this machine's byte order
   * @throws {Deno.errors.BadResource} when the record's memory is closed
   *
   * @example A sequence number to sleep on
   * ```ts
   * import { Futex, layout, SharedMemory } from "@ipckit/ipckit";
   *
   * const header = layout({ seq: "u32", width: "u16", height: "u16" });
   * using memory = SharedMemory.open(`/frames-${Deno.pid}`, { create: true, size: 4096, unlinkOnClose: true });
   * using seq = Futex.field(memory.struct(header), "seq");
   * console.log(seq.byteOffset); // 0
   * ```
   */
  static field<S extends LayoutSpec>(
    record: StructView<S>,
    field: FutexFieldsOf<S>,
  ): Futex {
    const action = `make a futex on field "${String(field)}"`;
    const host = (record as unknown as Partial<PlacementRegion> | null)
      ?.[PLACEMENT];
    const layout = (record as StructView<S> | null)?.$layout;
    if (typeof host !== "function" || !layout) {
      throw new TypeError(
        `Cannot ${action}: expected a record bound in shared memory or a mapped file (memory.struct(layout))`,
      );
    }
    const info = layout.fields.find((each) => each.name === field);
    if (!info) {
      throw new TypeError(
        `Cannot ${action}: the layout has no such field; it has ${
          layout.fields.map((each) => each.name).join(", ")
        }`,
      );
    }
    if (
      info.kind !== "scalar" || (info.scalar !== "u32" && info.scalar !== "i32")
    ) {
      throw new TypeError(
        `Cannot ${action}: it is ${
          info.kind === "scalar" ? info.scalar : info.kind
        }, and a futex waits on a u32 or i32 field`,
      );
    }
    if ((layout.endian === "little") !== NATIVE_LITTLE_ENDIAN) {
      throw new TypeError(
        `Cannot ${action}: the layout is ${layout.endian}-endian, and the kernel compares futex words in this machine's byte order`,
      );
    }
    const region = { [PLACEMENT]: host } as PlacementRegion;
    return Futex.#place(
      region,
      record.$byteOffset + info.offset,
      info.scalar === "i32",
      action,
    );
  }

  static #place(
    region: unknown,
    byteOffset: number,
    signed: boolean,
    action: string,
  ): Futex {
    if (
      typeof (region as Partial<PlacementRegion> | null)?.[PLACEMENT] !==
        "function"
    ) {
      throw new TypeError(
        `Cannot ${action}: expected a SharedMemory or a MappedFile`,
      );
    }
    const placement = placeIn(region, byteOffset, {
      size: FUTEX_SIZE,
      align: FUTEX_SIZE,
      typeName: "a futex word",
    }, action);
    const futex = new Futex(
      placement.mapping,
      placement.byteOffset,
      signed,
      `futex at byte ${placement.byteOffset} of ${placement.what}`,
    );
    futex.#forget = placement.own(futex);
    return futex;
  }

  /** Where the word is in its memory, in bytes. */
  get byteOffset(): number {
    return this.#byteOffset;
  }

  /** Whether `close()` has been called (directly or by closing the memory). */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * Reads the word atomically.
   *
   * @example
   * ```ts
   * import { Futex, SharedMemory } from "@ipckit/ipckit";
   *
   * using memory = SharedMemory.open(`/load-${Deno.pid}`, { create: true, size: 4, unlinkOnClose: true });
   * using word = Futex.at(memory, 0);
   * console.log(word.load()); // 0
   * ```
   */
  load(): number {
    const value = Atomics.load(this.#live("read"), 0);
    return this.#signed ? value : value >>> 0;
  }

  /**
   * Writes the word atomically (it does not wake anyone: call `wake`).
   * Returns the value written.
   *
   * @throws {RangeError} for a value that is not a 32-bit integer
   *
   * @example
   * ```ts
   * import { Futex, SharedMemory } from "@ipckit/ipckit";
   *
   * using memory = SharedMemory.open(`/store-${Deno.pid}`, { create: true, size: 4, unlinkOnClose: true });
   * using word = Futex.at(memory, 0);
   * word.store(7);
   * console.log(word.load()); // 7
   * ```
   */
  store(value: number): number {
    const raw = this.#raw(value, "store into");
    Atomics.store(this.#live("store into"), 0, raw);
    return value;
  }

  /**
   * Adds `value` atomically (wrapping at 32 bits) and returns the old value;
   * the usual way to say "something happened" before `wake()`.
   *
   * @example
   * ```ts
   * import { Futex, SharedMemory } from "@ipckit/ipckit";
   *
   * using memory = SharedMemory.open(`/add-${Deno.pid}`, { create: true, size: 4, unlinkOnClose: true });
   * using word = Futex.at(memory, 0);
   * console.log(word.add(1), word.load()); // 0 1
   * ```
   */
  add(value: number): number {
    const raw = this.#raw(value, "add to");
    const old = Atomics.add(this.#live("add to"), 0, raw);
    return this.#signed ? old : old >>> 0;
  }

  /**
   * Waits while the word holds `expected`: resolves once it was woken or
   * holds something else (at once if it already does). Loop on your own
   * condition around it, since a wake may come from anyone.
   *
   * @throws {RangeError} for an `expected` that is not a 32-bit integer, or a negative timeout
   * @throws {Deno.errors.TimedOut} when `timeout` ms pass first
   * @throws {Deno.errors.BadResource} when the futex or its memory is closed, also while waiting
   *
   * @example Wait with a deadline
   * ```ts
   * import { Futex, SharedMemory } from "@ipckit/ipckit";
   *
   * using memory = SharedMemory.open(`/wait-${Deno.pid}`, { create: true, size: 4, unlinkOnClose: true });
   * using word = Futex.at(memory, 0);
   * try {
   *   await word.wait(0, { timeout: 20 }); // nobody wakes it
   * } catch (error) {
   *   console.log(error instanceof Deno.errors.TimedOut); // true
   * }
   * ```
   */
  async wait(expected: number, options: WaitOptions = {}): Promise<void> {
    const action = `wait on ${this.#what}`;
    checkOptionKeys(options, WAIT_KEYS, action);
    const deadline = deadlineOf(options, action);
    const raw = this.#raw(expected, "wait on");
    const word = this.#live("wait on");
    if (Atomics.load(word, 0) !== raw) return;
    using link = untilClosed(options.signal, this.#closing.signal);
    const signal = link.signal;
    // The mapping stays put (no resize, no unmap) while a lane may read it.
    const letGo = this.#mapping.retain();
    try {
      await waitWord(word, raw, deadline, signal, action);
    } finally {
      letGo();
    }
  }

  /**
   * Blocks the calling thread while the word holds `expected` (like C's
   * `FUTEX_WAIT`), for Workers and scripts; see {@linkcode Futex.wait}.
   *
   * @throws {Deno.errors.TimedOut} when `timeout` ms pass first
   *
   * @example Give up after 10 ms
   * ```ts
   * import { Futex, SharedMemory } from "@ipckit/ipckit";
   *
   * using memory = SharedMemory.open(`/sync-${Deno.pid}`, { create: true, size: 4, unlinkOnClose: true });
   * using word = Futex.at(memory, 0);
   * word.store(1);
   * word.waitSync(0, { timeout: 10 }); // returns at once: the word holds 1
   * ```
   */
  waitSync(
    expected: number,
    options: Pick<WaitOptions, "timeout"> = {},
  ): void {
    const action = `wait on ${this.#what}`;
    checkOptionKeys(options, SYNC_WAIT_KEYS, action);
    const deadline = deadlineOf(options, action);
    const raw = this.#raw(expected, "wait on");
    waitWordSync(this.#live("wait on"), raw, deadline, action);
  }

  /**
   * Wakes up to `count` waiters (default: all) in every process that maps
   * the word, and returns how many were woken. Change the word first.
   *
   * @throws {RangeError} for a count that is not a positive integer
   *
   * @example
   * ```ts
   * import { Futex, SharedMemory } from "@ipckit/ipckit";
   *
   * using memory = SharedMemory.open(`/wake-${Deno.pid}`, { create: true, size: 4, unlinkOnClose: true });
   * using word = Futex.at(memory, 0);
   * word.add(1);
   * console.log(word.wake(1)); // 0: nobody was waiting
   * ```
   */
  wake(count: number = Infinity): number {
    if (
      typeof count !== "number" || Number.isNaN(count) || count < 1 ||
      (count !== Infinity && !Number.isInteger(count))
    ) {
      throw new RangeError(
        `Cannot wake ${this.#what}: count must be a positive integer or Infinity, got ${
          String(count)
        }`,
      );
    }
    const word = this.#live("wake");
    const woken = wakeWord(word, Math.min(count, _ALL));
    // FUTEX_WAKE only fails for a bad address, which a live view rules out.
    return Math.max(0, woken);
  }

  /**
   * Ends pending waits with `BadResource` and lets go of the memory;
   * idempotent. The word itself stays as it is.
   *
   * @example
   * ```ts
   * import { Futex, SharedMemory } from "@ipckit/ipckit";
   *
   * using memory = SharedMemory.open(`/close-${Deno.pid}`, { create: true, size: 4, unlinkOnClose: true });
   * const word = Futex.at(memory, 0);
   * word.close();
   * console.log(word.closed); // true
   * ```
   */
  close(): void {
    this.#life.close(() => {
      this.#forget();
      this.#closing.abort(closedError(this.#what, "wait on"));
    });
  }

  /** Closes the futex; see {@linkcode Futex.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes the futex; see {@linkcode Futex.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.#life.closeAsync(() => this.close());
  }

  /** The word's view, taken again after a `MappedFile.resize()`. */
  #live(verb: string): Int32Array<ArrayBuffer> {
    this.#life.check(verb);
    if (this.#mapping.closed) throw closedError(this.#what, verb);
    if (this.#word.length === 0) {
      this.#word = this.#mapping.view(Int32Array, this.#byteOffset, 1);
    }
    return this.#word;
  }

  /** A 32-bit value as the word stores it. */
  #raw(value: unknown, verb: string): number {
    if (
      typeof value !== "number" || !Number.isInteger(value) ||
      value < -0x8000_0000 || value > 0xffff_ffff
    ) {
      throw new RangeError(
        `Cannot ${verb} ${this.#what}: expected a 32-bit integer, got ${
          String(value)
        }`,
      );
    }
    return value | 0;
  }
}
