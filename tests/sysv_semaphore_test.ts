import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { SysvSemaphoreSet } from "../mod.ts";
import { LineReader } from "./_bounded.ts";
import { leakChecked, spawnFixture, uniqueKey } from "./_helpers.ts";
import { kernelLimit, PEER_FLAGS } from "./_sysv.ts";

function set(
  options: Parameters<typeof SysvSemaphoreSet.open>[1] = {},
): SysvSemaphoreSet {
  return SysvSemaphoreSet.open(uniqueKey(), {
    create: true,
    exclusive: true,
    count: 1,
    unlinkOnClose: true,
    ...options,
  });
}

Deno.test(
  "SysvSemaphoreSet.lock(): a holder killed with SIGKILL gives the lock back (SEM_UNDO)",
  leakChecked(async () => {
    using semaphores = set({ initial: 1 });
    const holder = spawnFixture("sysv_peer.ts", PEER_FLAGS, [
      "sem-hold",
      String(semaphores.key),
    ]);
    const lines = new LineReader(holder.stdout);
    try {
      assertEquals(await lines.next(), "held");
      assertEquals(semaphores.value(0), 0);
      assertEquals(semaphores.lastPid(0), holder.pid);
      await assertRejects(
        () => semaphores.lock(0, { timeout: 50 }),
        Deno.errors.TimedOut,
      );
      const waiting = semaphores.lock(0, { timeout: 10_000 });
      holder.kill("SIGKILL");
      using _held = await waiting;
      assertEquals(semaphores.value(0), 0);
    } finally {
      try {
        holder.kill("SIGKILL");
      } catch { /* already dead */ }
      await holder.status;
      await lines.cancel();
      await new Response(holder.stderr).text();
    }
    assertEquals(semaphores.value(0), 1);
  }),
);

Deno.test(
  "SysvSemaphoreSet.operate() applies several operations atomically, or none",
  leakChecked(async () => {
    using forks = set({ count: 2, initial: [1, 0] });
    assertEquals(
      forks.tryOperate([{ index: 0, delta: -1 }, { index: 1, delta: -1 }]),
      false,
    );
    assertEquals(forks.values(), [1, 0]);
    const both = forks.operate(
      [{ index: 0, delta: -1 }, { index: 1, delta: -1 }],
      { timeout: 5000 },
    );
    forks.post(1);
    await both;
    assertEquals(forks.values(), [0, 0]);
  }),
);

Deno.test(
  "SysvSemaphoreSet.wait() times out, aborts and closes without taking a count",
  leakChecked(async () => {
    const semaphores = set();
    await assertRejects(
      () => semaphores.wait(0, { timeout: 20 }),
      Deno.errors.TimedOut,
    );
    const controller = new AbortController();
    const aborted = semaphores.wait(0, { signal: controller.signal });
    controller.abort(new Error("stop"));
    await assertRejects(() => aborted, Error, "stop");
    const closing = semaphores.wait(0);
    semaphores.post(0);
    await closing;
    const pending = semaphores.wait(0);
    semaphores.close();
    await assertRejects(() => pending, Deno.errors.BadResource);
  }),
);

Deno.test(
  "SysvSemaphoreSet.waitSync() blocks in semtimedop with a timeout",
  leakChecked(() => {
    using semaphores = set({ initial: 1 });
    semaphores.waitSync(0, { timeout: 100 });
    const started = performance.now();
    assertThrows(
      () => semaphores.waitSync(0, { timeout: 50 }),
      Deno.errors.TimedOut,
    );
    assert(performance.now() - started >= 45);
    assertEquals(semaphores.value(), 0);
  }),
);

Deno.test(
  "SysvSemaphoreSet: bad input and kernel limits are refused before any system call",
  leakChecked(() => {
    const semmsl = kernelLimit("sem", 0);
    assertThrows(
      () => set({ count: semmsl + 1 }),
      RangeError,
      "/proc/sys/kernel/sem = ",
    );
    assertThrows(() => set({ count: 0 }), RangeError);
    assertThrows(() => set({ initial: 40000 }), RangeError, "32767");
    assertThrows(() => set({ count: 2, initial: [1] }), TypeError);
    using semaphores = set();
    assertThrows(() => semaphores.value(1), RangeError, "index must be");
    assertThrows(
      () => semaphores.tryOperate([{ delta: 40000 }]),
      RangeError,
      "delta",
    );
    assertThrows(() => semaphores.post(0, { count: 0 }), RangeError);
    semaphores.setValue(0, 32767);
    assertThrows(() => semaphores.post(0), RangeError, "SEMVMX");
  }),
);

Deno.test(
  "SysvSemaphoreSet: a set removed meanwhile fails its waiters with NotFound",
  leakChecked(async () => {
    const semaphores = set();
    using other = SysvSemaphoreSet.open(semaphores.key);
    const pending = semaphores.wait(0, { timeout: 5000 });
    other.remove();
    await assertRejects(() => pending, Deno.errors.NotFound, "was removed");
    semaphores.close();
  }),
);
