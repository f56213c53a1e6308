import {
  assert,
  assertEquals,
  assertRejects,
  assertStrictEquals,
  assertThrows,
} from "@std/assert";
import { Mutex, MUTEX_SIZE, SharedMemory } from "../mod.ts";
import {
  commandSucceeds,
  leakChecked,
  spawnFixture,
  testNeeding,
  uniqueName,
} from "./_helpers.ts";
import { bounded, LineReader } from "./_bounded.ts";

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
  // Release both children together once both stand at their start line
  // (each counts itself in): a fixed pause let a child that started late on
  // a loaded machine run alone, and the unlocked run then came out exact.
  const ready = memory.view(Int32Array, MUTEX_SIZE + 12, 1);
  const waitUntil = performance.now() + 30_000;
  while (Atomics.load(ready, 0) < 2) {
    assert(performance.now() < waitUntil, "the children never got ready");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  Atomics.store(memory.view(Int32Array, MUTEX_SIZE + 8, 1), 0, 1);
  const outputs = await Promise.all(children.map((child) => child.output()));
  for (const output of outputs) {
    assertEquals(output.code, 0, new TextDecoder().decode(output.stderr));
    assertEquals(new TextDecoder().decode(output.stdout), "done\n");
  }
  return memory.view(Float64Array, MUTEX_SIZE, 1)[0];
}

for (const mode of ["async", "sync"]) {
  Deno.test(
    `two processes incrementing a plain counter 200,000 times each under the Mutex (${mode}) get exactly 400,000`,
    leakChecked(async () => {
      assertEquals(await countInTwoProcesses(mode), 2 * ITERATIONS);
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
    assert(
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
      assertEquals(guard.recovered, false);
      assertEquals(mutex.owner, Deno.pid);
      assertEquals(mutex.locked, true);
      assertEquals(mutex.tryLock(), undefined);
    }
    assertEquals(mutex.locked, false);
    const error = await assertRejects(
      () =>
        mutex.withLock(() => {
          assertEquals(mutex.locked, true);
          throw new Error("inside");
        }),
      Error,
    );
    assertEquals(error.message, "inside");
    assertEquals(mutex.locked, false);
    assertEquals(await mutex.withLock(() => 42), 42);
    const guard = mutex.tryLock();
    assert(guard);
    guard.release();
    guard.release();
    assertEquals(guard.held, false);
    assertEquals(mutex.owner, undefined);
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
    assertEquals(order, ["first releases", "second"]);
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
      assertEquals((await reader.read()).value, "locked false\n");
      reader.releaseLock();
      const start = performance.now();
      const error = await assertRejects(
        () => mutex.lock({ timeout: 120 }),
        Deno.errors.TimedOut,
      );
      assertEquals(
        error.message,
        `Cannot lock mutex "${name}": timed out after 120 ms`,
      );
      assert(performance.now() - start >= 119);
      assertThrows(
        () => mutex.lockSync({ timeout: 60 }),
        Deno.errors.TimedOut,
      );
      const controller = new AbortController();
      const pending = mutex.lock({ signal: controller.signal });
      setTimeout(() => controller.abort(new Error("enough")), 30);
      const abortError = await assertRejects(() => pending, Error);
      assertEquals(abortError.message, "enough");
      assertEquals(mutex.tryLock(), undefined);
      assertEquals(mutex.recoveries, 0);
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
      assertEquals((await reader.read()).value, "locked false\n");
      reader.releaseLock();
      assertEquals(mutex.owner, holder.pid);
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
      assertEquals(guard.recovered, true);
      assertEquals(mutex.owner, Deno.pid);
      assertEquals(mutex.recoveries, 1);
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
    assertEquals((await reader.read()).value, "locked false\n");
    reader.releaseLock();
    holder.kill("SIGKILL");
    await holder.status;
    await holder.stderr.cancel();
    const guard = mutex.tryLock();
    assertStrictEquals(guard?.recovered, true);
    guard.release();
    using again = mutex.lockSync({ timeout: 0 });
    assertEquals(again.recovered, false);
  }),
);

Deno.test(
  "Mutex.close() releases the locks held through the handle and rejects later calls",
  leakChecked(async () => {
    const name = uniqueName("mutex-close");
    const mutex = Mutex.open(name, { create: true });
    using other = Mutex.open(name, { unlinkOnClose: true });
    const guard = await mutex.lock();
    assertEquals(other.locked, true);
    mutex.close();
    assertEquals(other.locked, false);
    guard.release();
    await assertRejects(() => mutex.lock(), Deno.errors.BadResource);
    assertThrows(() => mutex.tryLock(), Deno.errors.BadResource);
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
    assertEquals(watcher.locked, true);
    memory.close();
    assertEquals(mutex.closed, true);
    assertEquals(watcher.locked, false);
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
    assertThrows(() => Mutex.inMemory(memory, 4), RangeError);
    assertThrows(() => Mutex.inMemory(memory, 40), RangeError);
    assertThrows(() => Mutex.inMemory({} as SharedMemory, 0), TypeError);
    using readOnly = SharedMemory.open(name, { readOnly: true });
    assertThrows(() => Mutex.inMemory(readOnly, 0), TypeError);
    memory.view(Int32Array, 32, 1)[0] = 7;
    assertThrows(() => Mutex.inMemory(memory, 0), Error, "do not hold a mutex");
  }),
);

Deno.test(
  "A waiter that takes the lock while another waiter sleeps keeps the sleepers flag, so its unlock wakes the other",
  leakChecked(async () => {
    const name = uniqueName("mutex-sleepers");
    using memory = SharedMemory.open(name, {
      create: true,
      size: MUTEX_SIZE,
      unlinkOnClose: true,
    });
    using mutex = Mutex.inMemory(memory, 0);
    // The owner word follows the 32-byte sem_t and the state word (see
    // mechanisms/mutex.ts); bit 30 says "somebody may be sleeping".
    const owner = memory.view(Int32Array, 36, 1);
    const sleepers = 0x4000_0000;
    const held = await mutex.lock();
    const first = mutex.lock({ timeout: 5000 });
    const second = mutex.lock({ timeout: 5000 });
    await new Promise((resolve) => setTimeout(resolve, 50)); // both asleep
    held.release();
    const winner = await Promise.race([first, second]);
    assertEquals(
      Atomics.load(owner, 0) & sleepers,
      sleepers,
      "the winner dropped the flag: its unlock would leave the other asleep",
    );
    winner.release();
    const [a, b] = await Promise.all([first, second]);
    assertEquals(a === winner || b === winner, true);
    (a === winner ? b : a).release();
    assertEquals(mutex.locked, false);
  }),
);

Deno.test(
  "A waiter recovers the Mutex from a holder that was killed but is still a zombie",
  leakChecked(async () => {
    const name = uniqueName("mutex-zombie");
    using mutex = Mutex.open(name, { create: true, unlinkOnClose: true });
    const script = new URL("./fixtures/mutex_hold.ts", import.meta.url)
      .pathname;
    // sh starts the holder, then waits for a line on stdin before it reaps
    // it: killed meanwhile, the holder stays a zombie with its pid.
    const parent = new Deno.Command("sh", {
      args: [
        "-c",
        `"$0" run --quiet ${
          ALL.join(" ")
        } "$1" "$2" & echo $!; read line; wait`,
        Deno.execPath(),
        script,
        name,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const lines = new LineReader(parent.stdout);
    const stdin = parent.stdin.getWriter();
    try {
      const holder = Number(await lines.next());
      assertEquals(await lines.next(), "locked false");
      assertEquals(mutex.owner, holder);
      Deno.kill(holder, "SIGKILL");
      assertEquals(await stateOf(holder, "Z"), "Z");
      using guard = await mutex.lock({ timeout: 5000 });
      assertEquals(guard.recovered, true);
      assertEquals(mutex.recoveries, 1);
    } finally {
      await stdin.write(new TextEncoder().encode("reap\n"));
      await stdin.close();
      await bounded(parent.status, 10_000, "sh to reap the holder");
      await lines.cancel();
      await parent.stderr.cancel();
    }
  }),
);

/** Polls /proc/<pid>/stat (with cat) until the state is `want`, for up to 5 s. */
async function stateOf(pid: number, want: string): Promise<string> {
  let state = "";
  for (let i = 0; i < 100 && state !== want; i++) {
    const { stdout } = await new Deno.Command("cat", {
      args: [`/proc/${pid}/stat`],
      stderr: "null",
    }).output();
    const text = new TextDecoder().decode(stdout);
    state = text.slice(text.lastIndexOf(")") + 1).trim()[0] ?? "";
    if (state !== want) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return state;
}

const canSwitchUser = Deno.uid() === 0 &&
  await commandSucceeds("setpriv", ["--reuid=65534", "true"]);
const otherUserMissing = canSwitchUser
  ? undefined
  : "it needs root and setpriv(1) to run a waiter as nobody";

testNeeding(otherUserMissing, {
  name:
    "A Mutex held by a live process of another user (kill() answers EPERM) is not taken over",
  fn: leakChecked(async () => {
    const name = uniqueName("mutex-other-user");
    using mutex = Mutex.open(name, {
      create: true,
      unlinkOnClose: true,
      mode: 0o666,
    });
    // The umask may have narrowed the mode: nobody must be able to open it.
    const opened = await new Deno.Command("chmod", {
      args: ["0666", `/dev/shm${name}`],
    }).output();
    assert(opened.success, "chmod failed");
    using _held = await mutex.lock({ timeout: 1000 });
    const home = await Deno.makeTempDir({ prefix: "ipckit-test-nobody-" });
    try {
      await Deno.chmod(home, 0o777);
      const script = new URL("./fixtures/mutex_try.ts", import.meta.url)
        .pathname;
      const env = [`DENO_DIR=${home}/deno`, `HOME=${home}`];
      const jsr = Deno.env.get("JSR_URL");
      if (jsr) env.push(`JSR_URL=${jsr}`);
      const output = await bounded(
        new Deno.Command("setpriv", {
          args: [
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "env",
            ...env,
            Deno.execPath(),
            "run",
            "--quiet",
            "--allow-ffi",
            "--allow-read=/dev/shm,/proc",
            "--allow-write=/dev/shm",
            script,
            name,
            "300",
          ],
          stdout: "piped",
          stderr: "piped",
        }).output(),
        30_000,
        "the waiter running as nobody",
      );
      const stdout = new TextDecoder().decode(output.stdout).trim();
      assertEquals(
        stdout,
        "TimedOut",
        `the waiter ran as nobody: ${new TextDecoder().decode(output.stderr)}`,
      );
      assertEquals(mutex.owner, Deno.pid);
      assertEquals(mutex.recoveries, 0);
    } finally {
      await Deno.remove(home, { recursive: true });
    }
  }),
});
