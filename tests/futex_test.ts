import {
  assert,
  assertEquals,
  assertRejects,
  assertStrictEquals,
  assertThrows,
} from "@std/assert";
import { Futex, layout, MappedFile, SharedMemory } from "../mod.ts";
import {
  _laneCounts,
  lanesAvailable,
  MAX_LANES,
} from "../mechanisms/_wait/futex.ts";
import { readSmallFile } from "../ffi/file.ts";
import { leakChecked, spawnFixture, uniqueName } from "./_helpers.ts";

const FLAGS = [
  "--allow-ffi",
  "--allow-read=/dev/shm",
  "--allow-write=/dev/shm",
];

function _memory(size = 64): SharedMemory {
  return SharedMemory.open(uniqueName("futex"), {
    create: true,
    size,
    unlinkOnClose: true,
  });
}

/** This process's thread count, from /proc/self/status. */
function _threads(): number {
  // Deno's own file API wants --allow-all under /proc/self.
  const status = readSmallFile("/proc/self/status", 16384)!;
  return Number(/^Threads:\s+(\d+)/m.exec(status)![1]);
}

Deno.test(
  "Futex.wait() resolves when another process changes the word and wakes it",
  leakChecked(async () => {
    using memory = _memory();
    using word = Futex.at(memory, 0);
    const child = spawnFixture("futex_peer.ts", FLAGS, ["wake", memory.name]);
    const started = performance.now();
    while (word.load() === 0) await word.wait(0, { timeout: 5000 });
    assertEquals(word.load(), 1);
    assert(performance.now() - started >= 40, "it waited for the child");
    const { code, stderr } = await child.output();
    assertEquals(code, 0, new TextDecoder().decode(stderr));
  }),
);

Deno.test(
  "Futex.waitSync() in another process returns once this one wakes it",
  leakChecked(async () => {
    using memory = _memory();
    using first = Futex.at(memory, 0);
    using second = Futex.at(memory, 4);
    const child = spawnFixture("futex_peer.ts", FLAGS, [
      "wait-sync",
      memory.name,
    ]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assertEquals(second.load(), 0, "the child is still blocked");
    first.store(1);
    first.wake();
    while (second.load() === 0) await second.wait(0, { timeout: 5000 });
    assertEquals(second.load(), 2);
    assertEquals((await child.output()).code, 0);
  }),
);

Deno.test(
  "Futex.wait() returns at once when the word no longer holds the expected value",
  leakChecked(async () => {
    using memory = _memory();
    using word = Futex.at(memory, 8);
    word.store(3);
    await word.wait(0, { timeout: 0 });
    word.waitSync(0, { timeout: 0 });
  }),
);

Deno.test(
  "Futex.wait() and waitSync() reject with TimedOut when nobody wakes them",
  leakChecked(async () => {
    using memory = _memory();
    using word = Futex.at(memory, 0);
    await assertRejects(
      () => word.wait(0, { timeout: 20 }),
      Deno.errors.TimedOut,
      "timed out after 20 ms",
    );
    const started = performance.now();
    assertThrows(
      () => word.waitSync(0, { timeout: 30 }),
      Deno.errors.TimedOut,
    );
    assert(performance.now() - started >= 25);
  }),
);

Deno.test(
  "Futex.wait() rejects with the signal's reason on abort",
  leakChecked(async () => {
    using memory = _memory();
    using word = Futex.at(memory, 0);
    const stop = new AbortController();
    const waiting = word.wait(0);
    const aborted = word.wait(0, { signal: stop.signal });
    stop.abort(new Error("stop"));
    await assertRejects(() => aborted, Error, "stop");
    word.store(1);
    word.wake();
    await waiting;
  }),
);

Deno.test(
  "Closing the memory ends a pending Futex.wait() with BadResource",
  leakChecked(async () => {
    const memory = _memory();
    const word = Futex.at(memory, 0);
    const waiting = word.wait(0);
    memory.close();
    await assertRejects(() => waiting, Deno.errors.BadResource, "is closed");
    assert(word.closed);
    assertThrows(() => word.load(), Deno.errors.BadResource);
    assertThrows(() => word.wake(), Deno.errors.BadResource);
  }),
);

Deno.test(
  "Futex.wake() counts the waiters it woke",
  leakChecked(async () => {
    using memory = _memory();
    using word = Futex.at(memory, 0);
    assertEquals(word.wake(), 0);
    const waits = [word.wait(0), word.wait(0), word.wait(0)];
    // The lane parks on the next turn; the waits share one slot of it.
    await new Promise((resolve) => setTimeout(resolve, 50));
    word.store(1);
    // Without futex_waitv the waits poll the word and nobody sleeps on it.
    assertEquals(word.wake(), lanesAvailable() ? 1 : 0);
    await Promise.all(waits);
  }),
);

Deno.test(
  "10,000 parked Futex.wait() calls take no more than a handful of threads",
  leakChecked(async () => {
    const count = 10_000;
    using memory = _memory(count * 4);
    const words = Array.from(
      { length: count },
      (_, i) => Futex.at(memory, i * 4),
    );
    const before = _threads();
    const waits = words.map((word) => word.wait(0, { timeout: 30_000 }));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const counts = _laneCounts();
    assert(counts.lanes <= MAX_LANES, `${counts.lanes} lanes`);
    assertEquals(counts.laneWords + counts.fallbackWords, count);
    const grown = _threads() - before;
    assert(grown <= MAX_LANES + 4, `${grown} more threads for ${count} waits`);
    for (const word of words) word.store(1);
    for (const word of words) word.wake();
    await Promise.all(waits);
    for (const word of words) word.close();
    assertEquals(_laneCounts().fallbackWords, 0);
  }),
);

Deno.test(
  "Futex.field() waits on a u32 or i32 field of a record and reads i32 as signed",
  leakChecked(async () => {
    const state = layout({ flags: "u8", seq: "u32", level: "i32" });
    using record = SharedMemory.openStruct(uniqueName("futex-record"), state, {
      create: true,
      unlinkOnClose: true,
    });
    using seq = Futex.field(record, "seq");
    using level = Futex.field(record, "level");
    assertEquals(seq.byteOffset, 4);
    level.store(-5);
    assertStrictEquals(level.load(), -5);
    assertStrictEquals(record.level, -5);
    seq.store(0xffff_fffe);
    assertStrictEquals(seq.load(), 0xffff_fffe);
    const waiting = seq.wait(0xffff_fffe, { timeout: 5000 });
    setTimeout(() => {
      record.$atomic.seq.add(1);
      seq.wake();
    }, 10);
    await waiting;
    assertEquals(record.seq, 0xffff_ffff);
  }),
);

Deno.test(
  "Futex works on a word of a shared MappedFile",
  leakChecked(async () => {
    const path = await Deno.makeTempFile({ prefix: "ipckit-test-futex-" });
    using file = MappedFile.open(path, {
      create: true,
      size: 4096,
      unlinkOnClose: true,
    });
    using word = Futex.at(file, 100);
    const waiting = word.wait(0, { timeout: 5000 });
    setTimeout(() => {
      word.add(1);
      word.wake();
    }, 10);
    await waiting;
    assertEquals(new DataView(file.buffer).getUint32(100, true), 1);
  }),
);

Deno.test(
  "Futex refuses misaligned, out-of-range, closed, read-only and wrong-type words before any system call",
  leakChecked(() => {
    using memory = _memory();
    assertThrows(() => Futex.at(memory, 2), RangeError, "not a multiple of 4");
    assertThrows(() => Futex.at(memory, 64), RangeError, "do not fit");
    assertThrows(() => Futex.at(memory, -4), RangeError);
    assertThrows(
      () => Futex.at({} as SharedMemory, 0),
      TypeError,
      "expected a SharedMemory or a MappedFile",
    );
    using reader = SharedMemory.open(memory.name, { readOnly: true });
    assertThrows(() => Futex.at(reader, 0), TypeError, "readOnly");
    const record = memory.struct(
      layout({ small: "u16", big: "u64", float: "f32" }),
    );
    assertThrows(
      // @ts-expect-error: a u16 field is no futex word
      () => Futex.field(record, "small"),
      TypeError,
      "it is u16, and a futex waits on a u32 or i32 field",
    );
    assertThrows(
      // @ts-expect-error: nor is a u64
      () => Futex.field(record, "big"),
      TypeError,
      "it is u64",
    );
    assertThrows(
      // @ts-expect-error: no such field
      () => Futex.field(record, "missing"),
      TypeError,
      "has no such field",
    );
    const bigEndian = memory.struct(layout({ seq: "u32" }, { endian: "big" }));
    assertThrows(
      () => Futex.field(bigEndian, "seq"),
      TypeError,
      "big-endian",
    );
    using word = Futex.at(memory, 0);
    assertThrows(() => word.store(2 ** 32), RangeError, "32-bit integer");
    assertThrows(() => word.wake(0), RangeError, "positive integer");
    memory.close();
    assertThrows(() => Futex.at(memory, 0), Deno.errors.BadResource);
  }),
);
