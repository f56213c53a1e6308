import assert from "node:assert/strict";
import { Mutex, MUTEX_SIZE, SharedMemory } from "../mod.ts";
import { leakChecked, spawnFixture, uniqueName } from "./_helpers.ts";

const ALL = ["--allow-ffi", "--allow-read=/dev/shm", "--allow-write=/dev/shm"];
const ITERATIONS = 200_000;

/**
 * Two child processes each add 1 to a plain f64 counter ITERATIONS times
 * (`counter[0] = counter[0] + 1`, a separate load and store), in `mode`.
 * Returns the final count.
 */
async function countInTwoProcesses(mode: string): Promise<number> {
  const name = uniqueName(`mutex-count-${mode}`);
  using memory = SharedMemory.open(name, {
    create: true,
    size: MUTEX_SIZE + 16,
    unlinkOnClose: true,
  });
  using _mutex = Mutex.inMemory(memory, 0);
  const children = [0, 1].map(() =>
    spawnFixture("mutex_counter.ts", ALL, [name, String(ITERATIONS), mode])
  );
  // Let both children reach their start line, then release them together.
  await new Promise((resolve) => setTimeout(resolve, 300));
  Atomics.store(memory.view(Int32Array, MUTEX_SIZE + 8, 1), 0, 1);
  const outputs = await Promise.all(children.map((child) => child.output()));
  for (const output of outputs) {
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    assert.equal(new TextDecoder().decode(output.stdout), "done\n");
  }
  return memory.view(Float64Array, MUTEX_SIZE, 1)[0];
}

for (const mode of ["async", "sync"]) {
  Deno.test(
    `two processes incrementing a plain counter 200,000 times each under the Mutex (${mode}) get exactly 400,000`,
    leakChecked(async () => {
      assert.equal(await countInTwoProcesses(mode), 2 * ITERATIONS);
    }),
  );
}

Deno.test(
  "Without the Mutex the same two processes lose increments (so the test above can fail)",
  leakChecked(async () => {
    // One run can, rarely, see the children not overlap at all; three
    // runs all coming out exact would mean the race is not being exercised.
    const totals: number[] = [];
    for (let run = 0; run < 3; run++) {
      const total = await countInTwoProcesses("unlocked");
      totals.push(total);
      if (total < 2 * ITERATIONS) break;
    }
    assert.ok(
      totals.some((total) => total < 2 * ITERATIONS),
      `every unlocked run was exact: ${totals.join(", ")}`,
    );
  }),
);

Deno.test(
  "A MutexGuard releases the lock at the end of its scope, also when the block throws",
  leakChecked(async () => {
    const name = uniqueName("mutex-scope");
    using mutex = Mutex.open(name, { create: true, unlinkOnClose: true });
    {
      using guard = await mutex.lock();
      assert.equal(guard.recovered, false);
      assert.equal(mutex.owner, Deno.pid);
      assert.equal(mutex.locked, true);
      assert.equal(mutex.tryLock(), undefined);
    }
    assert.equal(mutex.locked, false);
    await assert.rejects(
      mutex.withLock(() => {
        assert.equal(mutex.locked, true);
        throw new Error("inside");
      }),
      { message: "inside" },
    );
    assert.equal(mutex.locked, false);
    assert.equal(await mutex.withLock(() => 42), 42);
    const guard = mutex.tryLock();
    assert.ok(guard);
    guard.release();
    guard.release();
    assert.equal(guard.held, false);
    assert.equal(mutex.owner, undefined);
  }),
);

Deno.test(
  "Mutex.lock() waits for another async holder in the same process and wakes when it releases",
  leakChecked(async () => {
    const name = uniqueName("mutex-wait");
    using mutex = Mutex.open(name, { create: true, unlinkOnClose: true });
    const first = await mutex.lock();
    const order: string[] = [];
    const second = mutex.lock({ timeout: 5000 }).then((guard) => {
      order.push("second");
      guard.release();
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    order.push("first releases");
    first.release();
    await second;
    assert.deepEqual(order, ["first releases", "second"]);
  }),
);

Deno.test(
  "Mutex.lock() times out and aborts while a live process holds the mutex",
  leakChecked(async () => {
    const name = uniqueName("mutex-timeout");
    using mutex = Mutex.open(name, { create: true, unlinkOnClose: true });
    const holder = spawnFixture("mutex_hold.ts", ALL, [name]);
    try {
      const reader = holder.stdout.pipeThrough(new TextDecoderStream())
        .getReader();
      assert.equal((await reader.read()).value, "locked false\n");
      reader.releaseLock();
      const start = performance.now();
      await assert.rejects(
        mutex.lock({ timeout: 120 }),
        (error: Error) =>
          error instanceof Deno.errors.TimedOut &&
          error.message ===
            `Cannot lock mutex "${name}": timed out after 120 ms`,
      );
      assert.ok(performance.now() - start >= 119);
      assert.throws(
        () => mutex.lockSync({ timeout: 60 }),
        Deno.errors.TimedOut,
      );
      const controller = new AbortController();
      const pending = mutex.lock({ signal: controller.signal });
      setTimeout(() => controller.abort(new Error("enough")), 30);
      await assert.rejects(pending, { message: "enough" });
      assert.equal(mutex.tryLock(), undefined);
      assert.equal(mutex.recoveries, 0);
    } finally {
      holder.kill("SIGKILL");
      await holder.status;
      await holder.stderr.cancel();
    }
  }),
);

for (const when of ["before", "while"]) {
  Deno.test(
    `a waiter recovers the Mutex from a holder killed with SIGKILL ${when} it waits`,
    leakChecked(async () => {
      const name = uniqueName("mutex-dead");
      using mutex = Mutex.open(name, { create: true, unlinkOnClose: true });
      const holder = spawnFixture("mutex_hold.ts", ALL, [name]);
      const reader = holder.stdout.pipeThrough(new TextDecoderStream())
        .getReader();
      assert.equal((await reader.read()).value, "locked false\n");
      reader.releaseLock();
      assert.equal(mutex.owner, holder.pid);
      let waiting: Promise<unknown> | undefined;
      if (when === "while") {
        waiting = mutex.lock({ timeout: 10_000 });
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      holder.kill("SIGKILL");
      await holder.status;
      await holder.stderr.cancel();
      using guard = waiting
        ? (await waiting) as Disposable & { recovered: boolean }
        : await mutex.lock({ timeout: 10_000 });
      assert.equal(guard.recovered, true);
      assert.equal(mutex.owner, Deno.pid);
      assert.equal(mutex.recoveries, 1);
    }),
  );
}

Deno.test(
  "A recovered Mutex works normally afterwards, and tryLock() recovers too",
  leakChecked(async () => {
    const name = uniqueName("mutex-after");
    using mutex = Mutex.open(name, { create: true, unlinkOnClose: true });
    const holder = spawnFixture("mutex_hold.ts", ALL, [name]);
    const reader = holder.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    assert.equal((await reader.read()).value, "locked false\n");
    reader.releaseLock();
    holder.kill("SIGKILL");
    await holder.status;
    await holder.stderr.cancel();
    const guard = mutex.tryLock();
    assert.equal(guard?.recovered, true);
    guard.release();
    using again = mutex.lockSync({ timeout: 0 });
    assert.equal(again.recovered, false);
  }),
);

Deno.test(
  "Mutex.close() releases the locks held through the handle and rejects later calls",
  leakChecked(async () => {
    const name = uniqueName("mutex-close");
    const mutex = Mutex.open(name, { create: true });
    using other = Mutex.open(name, { unlinkOnClose: true });
    const guard = await mutex.lock();
    assert.equal(other.locked, true);
    mutex.close();
    assert.equal(other.locked, false);
    guard.release();
    await assert.rejects(mutex.lock(), Deno.errors.BadResource);
    assert.throws(() => mutex.tryLock(), Deno.errors.BadResource);
    mutex.close();
  }),
);

Deno.test(
  "Closing the shared memory closes a Mutex inside it and releases its locks",
  leakChecked(async () => {
    const name = uniqueName("mutex-region");
    using keeper = SharedMemory.open(name, {
      create: true,
      size: MUTEX_SIZE * 2,
      unlinkOnClose: true,
    });
    using watcher = Mutex.inMemory(keeper, MUTEX_SIZE);
    const memory = SharedMemory.open(name);
    const mutex = Mutex.inMemory(memory, MUTEX_SIZE);
    await mutex.lock();
    assert.equal(watcher.locked, true);
    memory.close();
    assert.equal(mutex.closed, true);
    assert.equal(watcher.locked, false);
  }),
);

Deno.test(
  "Mutex.inMemory() rejects offsets that are unaligned or leave no room",
  leakChecked(() => {
    const name = uniqueName("mutex-offset");
    using memory = SharedMemory.open(name, {
      create: true,
      size: 100,
      unlinkOnClose: true,
    });
    assert.throws(() => Mutex.inMemory(memory, 4), RangeError);
    assert.throws(() => Mutex.inMemory(memory, 40), RangeError);
    assert.throws(() => Mutex.inMemory({} as SharedMemory, 0), TypeError);
    using readOnly = SharedMemory.open(name, { readOnly: true });
    assert.throws(() => Mutex.inMemory(readOnly, 0), TypeError);
    memory.view(Int32Array, 32, 1)[0] = 7;
    assert.throws(() => Mutex.inMemory(memory, 0), /do not hold a mutex/);
  }),
);
