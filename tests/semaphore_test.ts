import {
  assert,
  assertEquals,
  assertRejects,
  assertStrictEquals,
  assertThrows,
} from "@std/assert";
import {
  IpcError,
  SEM_VALUE_MAX,
  Semaphore,
  SEMAPHORE_SIZE,
  SharedMemory,
} from "../mod.ts";
import { _tuneSemWait } from "../mechanisms/_wait/semaphore_calls.ts";
import {
  IPC_DIRS,
  leakChecked,
  runFixture,
  spawnFixture,
  testNeeding,
  uniqueName,
} from "./_helpers.ts";
import { rejectsBeforeAnySystemCall } from "./_syscalls.ts";
import { compileCPrograms, hasCompiler } from "./_c_programs.ts";
import { LIBC_PATH_ENV } from "../ffi/load.ts";

const noCompiler = hasCompiler ? undefined : "no cc (apt-get install gcc)";

async function withCPrograms(
  body: (programs: Awaited<ReturnType<typeof compileCPrograms>>) => Promise<
    void
  >,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ipckit-test-cc-" });
  try {
    await body(await compileCPrograms(dir));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const ALL = ["--allow-ffi", "--allow-read=/dev/shm", "--allow-write=/dev/shm"];

/** Mode bits of /dev/shm/sem.<name>, or null when it does not exist (asked of coreutils' stat). */
function semFileMode(name: string): number | null {
  const { success, stdout } = new Deno.Command("stat", {
    args: ["-c", "%a", `/dev/shm/sem.${name.slice(1)}`],
    stdout: "piped",
    stderr: "null",
  }).outputSync();
  return success ? parseInt(new TextDecoder().decode(stdout), 8) : null;
}

Deno.test(
  "Semaphore.open() creates /dev/shm/sem.<name> with mode 0600 and unlink() removes it",
  leakChecked(() => {
    const name = uniqueName("sem-file");
    const semaphore = Semaphore.open(name, { create: true, initial: 3 });
    assertEquals(semFileMode(name), 0o600);
    assertEquals(semaphore.value, 3);
    assertEquals(semaphore.name, name);
    using again = Semaphore.open(name);
    assertEquals(again.value, 3);
    semaphore.unlink();
    assertEquals(semFileMode(name), null);
    semaphore.close();
    assertThrows(() => Semaphore.open(name), Deno.errors.NotFound);
  }),
);

Deno.test(
  "Semaphore.open() with exclusive fails on an existing semaphore and keeps its value",
  leakChecked(() => {
    const name = uniqueName("sem-excl");
    using first = Semaphore.open(name, {
      create: true,
      initial: 2,
      unlinkOnClose: true,
      mode: 0o640,
    });
    assertEquals(semFileMode(name), 0o640);
    const error = assertThrows(
      () => Semaphore.open(name, { create: true, exclusive: true }),
      Deno.errors.AlreadyExists,
    );
    assertEquals(
      error.message,
      `Cannot open semaphore "${name}": it already exists`,
    );
    // Adopting it asks for a mode at least as wide as the one it has.
    assertThrows(
      () => Semaphore.open(name, { create: true }),
      Deno.errors.PermissionDenied,
      "with mode 0o640",
    );
    using second = Semaphore.open(name, {
      create: true,
      initial: 9,
      mode: 0o640,
    });
    assertEquals(second.value, 2);
    assertEquals(first.value, 2);
  }),
);

Deno.test(
  "Semaphore.tryWait() takes a count only while the value is above zero and post() gives one back",
  leakChecked(() => {
    const name = uniqueName("sem-try");
    using semaphore = Semaphore.open(name, {
      create: true,
      initial: 2,
      unlinkOnClose: true,
    });
    assertEquals(semaphore.tryWait(), true);
    assertEquals(semaphore.tryWait(), true);
    assertEquals(semaphore.tryWait(), false);
    assertEquals(semaphore.value, 0);
    semaphore.post();
    assertEquals(semaphore.value, 1);
  }),
);

Deno.test(
  "Semaphore.wait() and waitSync() time out after their timeout and leave the count alone",
  leakChecked(async () => {
    const name = uniqueName("sem-timeout");
    using semaphore = Semaphore.open(name, {
      create: true,
      unlinkOnClose: true,
    });
    let start = performance.now();
    const error = await assertRejects(
      () => semaphore.wait({ timeout: 60 }),
      Deno.errors.TimedOut,
    );
    assertEquals(
      error.message,
      `Cannot wait on semaphore "${name}": timed out after 60 ms`,
    );
    assert(performance.now() - start >= 59, "returned before the timeout");
    start = performance.now();
    assertThrows(
      () => semaphore.waitSync({ timeout: 40 }),
      Deno.errors.TimedOut,
    );
    assert(performance.now() - start >= 39, "returned before the timeout");
    await assertRejects(
      () => semaphore.wait({ timeout: 0 }),
      Deno.errors.TimedOut,
    );
    assertEquals(semaphore.value, 0);
    semaphore.post();
    await semaphore.wait({ timeout: 0 });
    semaphore.post();
    semaphore.waitSync({ timeout: 0 });
    assertEquals(semaphore.value, 0);
  }),
);

Deno.test(
  "An aborted Semaphore.wait() rejects with the signal's reason and never takes a count, even one posted as it is cancelled",
  leakChecked(async () => {
    const name = uniqueName("sem-abort");
    using semaphore = Semaphore.open(name, {
      create: true,
      unlinkOnClose: true,
    });
    const controller = new AbortController();
    const pending = semaphore.wait({ signal: controller.signal });
    await new Promise((resolve) => setTimeout(resolve, 20));
    const reason = new Error("stop waiting");
    const aborted = performance.now();
    controller.abort(reason);
    const error = await assertRejects(() => pending);
    assertStrictEquals(error, reason);
    // Cancellation is prompt: bounded by one park slice, not by a wake-up.
    assert(performance.now() - aborted < 1000, "abort was not noticed");
    assertEquals(semaphore.value, 0);
    // The race that matters: a count posted while the cancelled wait is
    // still parked on the thread pool may be taken by that park; it must be
    // given back before the rejection is seen. Repeat to hit both orders.
    for (let round = 0; round < 50; round++) {
      const control = new AbortController();
      const waiting = semaphore.wait({ signal: control.signal });
      await new Promise((resolve) => setTimeout(resolve, 1));
      control.abort();
      semaphore.post();
      const abortError = await assertRejects(() => waiting, Error);
      assertEquals(abortError.name, "AbortError");
      assertEquals(semaphore.value, 1, `round ${round}: the count was lost`);
      assertEquals(semaphore.tryWait(), true);
    }
    const early = await assertRejects(
      () => semaphore.wait({ signal: AbortSignal.abort("early") }),
    );
    assertStrictEquals(early, "early");
  }),
);

Deno.test(
  "Several async Semaphore waiters each get exactly one count",
  leakChecked(async () => {
    const name = uniqueName("sem-many");
    using semaphore = Semaphore.open(name, {
      create: true,
      unlinkOnClose: true,
    });
    const results: number[] = [];
    const waits = [0, 1, 2, 3, 4].map((i) =>
      semaphore.wait({ timeout: 5000 }).then(() => results.push(i))
    );
    await new Promise((resolve) => setTimeout(resolve, 20));
    for (let i = 0; i < 3; i++) semaphore.post();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assertEquals(results.length, 3);
    assertEquals(semaphore.value, 0);
    semaphore.post();
    semaphore.post();
    await Promise.all(waits);
    assertEquals(results.length, 5);
    assertEquals(semaphore.value, 0);
  }),
);

Deno.test(
  "Semaphore.close() rejects a parked wait() with BadResource and later calls too",
  leakChecked(async () => {
    const name = uniqueName("sem-close");
    const semaphore = Semaphore.open(name, {
      create: true,
      unlinkOnClose: true,
    });
    const pending = semaphore.wait();
    await new Promise((resolve) => setTimeout(resolve, 10));
    await semaphore[Symbol.asyncDispose]();
    const error = await assertRejects(
      () => pending,
      Deno.errors.BadResource,
    );
    assertEquals(
      error.message,
      `Cannot wait on semaphore "${name}": it is closed`,
    );
    assertEquals(semaphore.closed, true);
    const closed = { name: "BadResource" };
    const waitError = await assertRejects(() => semaphore.wait(), Error);
    assertEquals(waitError.name, closed.name);
    const waitSyncError = assertThrows(() => semaphore.waitSync(), Error);
    assertEquals(waitSyncError.name, closed.name);
    const tryWaitError = assertThrows(() => semaphore.tryWait(), Error);
    assertEquals(tryWaitError.name, closed.name);
    const postError = assertThrows(() => semaphore.post(), Error);
    assertEquals(postError.name, closed.name);
    const valueError = assertThrows(() => semaphore.value, Error);
    assertEquals(valueError.name, closed.name);
    semaphore.close();
  }),
);

for (const kind of ["named", "memory"]) {
  Deno.test(
    `a process exits by itself after close() while a wait() is parked (${kind})`,
    leakChecked(async () => {
      const name = uniqueName(`sem-exit-${kind}`);
      using _memory = kind === "memory"
        ? SharedMemory.open(name, {
          create: true,
          size: 64,
          unlinkOnClose: true,
        })
        : undefined;
      using semaphore = kind === "named"
        ? Semaphore.open(name, { create: true, unlinkOnClose: true })
        : Semaphore.inMemory(_memory!, 0, { initial: 0 });
      const child = spawnFixture("sem_pending_close.ts", ALL, [name, kind]);
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      const { code, stdout } = await child.output();
      clearTimeout(timer);
      assertEquals(code, 0, "the child was killed: it did not exit alone");
      assertEquals(new TextDecoder().decode(stdout), "rejected BadResource\n");
      assertEquals(semaphore.value, 0, "the closed wait took a count");
    }),
  );
}

for (const style of ["async", "sync"]) {
  for (const kind of ["named", "memory"]) {
    Deno.test(
      `two processes play ping-pong with ${kind} semaphores (${style})`,
      leakChecked(async () => {
        const name = uniqueName(`sem-pp-${kind}`);
        const rounds = 200;
        let memory: SharedMemory | undefined;
        let ping: Semaphore, pong: Semaphore;
        if (kind === "named") {
          const options = { create: true, exclusive: true };
          ping = Semaphore.open(`${name}-ping`, options);
          pong = Semaphore.open(`${name}-pong`, options);
        } else {
          memory = SharedMemory.open(name, {
            create: true,
            size: 2 * SEMAPHORE_SIZE,
          });
          ping = Semaphore.inMemory(memory, 0, { initial: 0 });
          pong = Semaphore.inMemory(memory, SEMAPHORE_SIZE, { initial: 0 });
        }
        const child = spawnFixture("sem_peer.ts", ALL, [
          name,
          kind,
          String(rounds),
          style,
        ]);
        try {
          for (let i = 0; i < rounds; i++) {
            ping.post();
            if (style === "sync") pong.waitSync({ timeout: 10_000 });
            else await pong.wait({ timeout: 10_000 });
          }
          const { code, stdout } = await child.output();
          assertEquals(code, 0);
          assertEquals(new TextDecoder().decode(stdout), "done\n");
          assertEquals(ping.value, 0);
          assertEquals(pong.value, 0);
        } finally {
          if (kind === "named") {
            ping.unlink();
            pong.unlink();
          }
          ping.close();
          pong.close();
          memory?.unlink();
          memory?.close();
        }
      }),
    );
  }
}

Deno.test(
  "The sem_timedwait fallback (musl has no sem_clockwait) waits, times out and cancels the same way",
  leakChecked(async () => {
    _tuneSemWait({ forceRealtime: true });
    try {
      const name = uniqueName("sem-realtime");
      using semaphore = Semaphore.open(name, {
        create: true,
        unlinkOnClose: true,
      });
      const start = performance.now();
      assertThrows(
        () => semaphore.waitSync({ timeout: 250 }),
        Deno.errors.TimedOut,
      );
      assert(performance.now() - start >= 249);
      await assertRejects(
        () => semaphore.wait({ timeout: 30 }),
        Deno.errors.TimedOut,
      );
      setTimeout(() => semaphore.post(), 20);
      await semaphore.wait({ timeout: 5000 });
      const controller = new AbortController();
      const pending = semaphore.wait({ signal: controller.signal });
      setTimeout(() => controller.abort(), 10);
      const error = await assertRejects(() => pending, Error);
      assertEquals(error.name, "AbortError");
      semaphore.post();
      semaphore.waitSync({ timeout: 1000 });
      assertEquals(semaphore.value, 0);
    } finally {
      _tuneSemWait({ forceRealtime: false });
    }
  }),
);

Deno.test(
  "A semaphore in shared memory is initialized by the handle given `initial` and shared with other handles",
  leakChecked(() => {
    const name = uniqueName("sem-mem");
    using memory = SharedMemory.open(name, {
      create: true,
      size: 128,
      unlinkOnClose: true,
    });
    using creator = Semaphore.inMemory(memory, 64, { initial: 5 });
    using other = SharedMemory.open(name);
    using attached = Semaphore.inMemory(other, 64);
    assertEquals(attached.value, 5);
    assertEquals(attached.tryWait(), true);
    assertEquals(creator.value, 4);
    assertEquals(creator.name, undefined);
    assertThrows(() => creator.unlink(), TypeError);
  }),
);

Deno.test(
  "Closing the shared memory closes its semaphores and rejects their parked waits before it unmaps them",
  leakChecked(async () => {
    const name = uniqueName("sem-unmap");
    const memory = SharedMemory.open(name, {
      create: true,
      size: 64,
      unlinkOnClose: true,
    });
    const semaphore = Semaphore.inMemory(memory, 0, { initial: 0 });
    const pending = semaphore.wait();
    await new Promise((resolve) => setTimeout(resolve, 10));
    memory.close();
    assertEquals(semaphore.closed, true);
    await assertRejects(() => pending, Deno.errors.BadResource);
    // Had anything read the sem_t after the unmap, the process would have
    // crashed by now; the next test would not run.
    await new Promise((resolve) => setTimeout(resolve, 20));
  }),
);

Deno.test(
  "Semaphore.post() at SEM_VALUE_MAX fails with EOVERFLOW and a clear message",
  leakChecked(() => {
    const name = uniqueName("sem-max");
    using semaphore = Semaphore.open(name, {
      create: true,
      initial: SEM_VALUE_MAX,
      unlinkOnClose: true,
    });
    assertEquals(semaphore.value, 2147483647);
    const error = assertThrows(() => semaphore.post(), IpcError);
    assertEquals(error.code, "EOVERFLOW");
    assertEquals(error.syscall, "sem_post");
    assertEquals(
      error.message,
      `Cannot post semaphore "${name}": its value is already SEM_VALUE_MAX (2147483647)`,
    );
    assertEquals(semaphore.value, SEM_VALUE_MAX);
  }),
);

Deno.test(
  "Semaphore.open() rejects bad input before any system call",
  leakChecked(async () => {
    const name = uniqueName("sem-bad");
    type Case = [string, () => unknown, typeof TypeError | typeof RangeError];
    const cases: Case[] = [
      ...[-1, 2147483648, 1.5, Infinity].map((initial): Case => [
        `initial ${initial}`,
        () => Semaphore.open(name, { create: true, initial }),
        RangeError,
      ]),
      [
        "initial '1'",
        () => Semaphore.open(name, { create: true, initial: "1" as never }),
        TypeError,
      ],
      [
        "initial without create",
        () => Semaphore.open(name, { initial: 1 }),
        TypeError,
      ],
      [
        "exclusive without create",
        () => Semaphore.open(name, { exclusive: true }),
        TypeError,
      ],
      [
        "mode 0o1000",
        () => Semaphore.open(name, { create: true, mode: 0o1000 }),
        RangeError,
      ],
      [
        "spin 1001",
        () => Semaphore.open(name, { create: true, spin: 1001 }),
        RangeError,
      ],
      ...["lock", "/", "/a/b", "/a\0b", "/..", 42].map((bad): Case => [
        `name ${JSON.stringify(bad)}`,
        () => Semaphore.open(bad as string),
        TypeError,
      ]),
      // Linux prefixes "sem.", so 251 bytes is the longest name.
      [
        "a 252-byte name",
        () => Semaphore.open("/" + "x".repeat(252)),
        RangeError,
      ],
      [
        "not a region",
        () => Semaphore.inMemory({} as SharedMemory, 0),
        TypeError,
      ],
    ];
    for (const [what, attempt, ErrorClass] of cases) {
      await rejectsBeforeAnySystemCall(attempt, ErrorClass, IPC_DIRS, what);
    }
    assertThrows(
      () => Semaphore.open("/" + "x".repeat(252)),
      RangeError,
      "the limit is 251",
    );
    assertThrows(
      () => Semaphore.open(name, { create: true, spin: 1001 }),
      RangeError,
      "spin must be 0 to 1000 microseconds",
    );
    // The longest valid name reaches the kernel, which has no such semaphore.
    assertThrows(
      () => Semaphore.open("/" + "x".repeat(251)),
      Deno.errors.NotFound,
    );
    assertThrows(() => Semaphore.open(name), Deno.errors.NotFound);
  }),
);

Deno.test(
  "Semaphore.inMemory() rejects unaligned offsets, offsets past the end and read-only memory",
  leakChecked(async () => {
    const name = uniqueName("sem-offset");
    using memory = SharedMemory.open(name, {
      create: true,
      size: 64,
      unlinkOnClose: true,
    });
    assertThrows(
      () => Semaphore.inMemory(memory, 4),
      Error,
      "not a multiple of 8, the alignment of sem_t",
    );
    assertThrows(() => Semaphore.inMemory(memory, 40), RangeError);
    assertThrows(() => Semaphore.inMemory(memory, -8), RangeError);
    assertThrows(
      () => Semaphore.inMemory(memory, 0, { initial: -1 }),
      RangeError,
    );
    using semaphore = Semaphore.inMemory(memory, 32, { initial: 0 });
    using readOnly = SharedMemory.open(name, { readOnly: true });
    assertThrows(() => Semaphore.inMemory(readOnly, 0), TypeError);
    await assertRejects(
      () => semaphore.wait({ timeout: 0 }),
      Deno.errors.TimedOut,
    );
    const closed = SharedMemory.open(name);
    closed.close();
    assertThrows(() => Semaphore.inMemory(closed, 0), Deno.errors.BadResource);
  }),
);

Deno.test(
  "Opening a semaphore without write permission on /dev/shm/sem.<name> names the flag to add",
  leakChecked(async () => {
    const name = uniqueName("sem-perm");
    using _semaphore = Semaphore.open(name, {
      create: true,
      unlinkOnClose: true,
    });
    const path = `/dev/shm/sem.${name.slice(1)}`;
    const readOnly = await runFixture(
      "sem_open_only.ts",
      ["--allow-ffi", "--allow-read=/dev/shm"],
      [name],
    );
    assertEquals(
      readOnly.stdout,
      `NotCapable: Requires write access to "${path}", run again with --allow-write=/dev/shm\n`,
    );
    const nothing = await runFixture("sem_open_only.ts", ["--allow-ffi"], [
      name,
    ]);
    assertEquals(
      nothing.stdout,
      `NotCapable: Requires read access to "${path}", run again with --allow-read=/dev/shm\n`,
    );
    const unlink = await runFixture(
      "sem_open_only.ts",
      ["--allow-ffi", "--allow-read=/dev/shm"],
      [name, "unlink"],
    );
    assertEquals(
      unlink.stdout,
      `NotCapable: Requires write access to "${path}", run again with --allow-write=/dev/shm\n`,
    );
    const allowed = await runFixture("sem_open_only.ts", ALL, [name]);
    assertEquals(allowed.stdout, "ok\n");
  }),
);

testNeeding(noCompiler, {
  name:
    "Semaphore timeouts run on the monotonic clock: a wall clock stepped an hour either way changes nothing",
  fn: leakChecked(() =>
    withCPrograms(async ({ clockShim }) => {
      const name = uniqueName("sem-clock");
      using _semaphore = Semaphore.open(name, {
        create: true,
        unlinkOnClose: true,
      });
      for (const offset of [3600, -3600]) {
        const child = new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--quiet",
            ...ALL,
            `--allow-env=${LIBC_PATH_ENV}`,
            new URL("./fixtures/sem_clock.ts", import.meta.url).pathname,
            name,
          ],
          env: {
            [LIBC_PATH_ENV]: clockShim,
            SHIM_REALTIME_OFFSET: String(offset),
          },
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        // A wait on the stepped clock would last an hour, or not at all.
        const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
        const output = await child.output();
        clearTimeout(timer);
        const stderr = new TextDecoder().decode(output.stderr);
        assertEquals(output.code, 0, `killed or failed: ${stderr}`);
        const report = JSON.parse(new TextDecoder().decode(output.stdout));
        // The shim is in effect: what ipckit reads as realtime is stepped.
        assert(
          Math.abs(report.shiftSeconds - offset) < 60,
          `the shim did not step the clock: ${report.shiftSeconds}`,
        );
        for (const form of ["syncMs", "asyncMs"]) {
          assert(
            report[form] >= 149 && report[form] < 5000,
            `offset ${offset}: ${form} lasted ${report[form]} ms`,
          );
        }
      }
    })
  ),
});

testNeeding(noCompiler, {
  name: "An async Semaphore.wait() is woken by sem_post in a C program",
  fn: leakChecked(() =>
    withCPrograms(async ({ semPost }) => {
      const name = uniqueName("sem-cpost");
      using semaphore = Semaphore.open(name, {
        create: true,
        unlinkOnClose: true,
        spin: 0,
      });
      const waiting = semaphore.wait({ timeout: 10_000 });
      // Long enough to be asleep in the kernel, not spinning.
      await new Promise((resolve) => setTimeout(resolve, 100));
      const started = performance.now();
      const { success } = await new Deno.Command(semPost, { args: [name] })
        .output();
      assert(success);
      await waiting;
      assert(performance.now() - started < 2000, "woken late");
      assertEquals(semaphore.value, 0);
    })
  ),
});

testNeeding(noCompiler, {
  name:
    "A wake-up the futex lanes took for a wait that then gave up is passed on to a C program asleep in sem_timedwait",
  fn: leakChecked(() =>
    withCPrograms(async ({ semPost, semWait }) => {
      const name = uniqueName("sem-passon");
      using semaphore = Semaphore.open(name, {
        create: true,
        unlinkOnClose: true,
        spin: 0,
      });
      // Ours sleeps first, so the kernel wakes our lane first.
      const controller = new AbortController();
      const ours = semaphore.wait({ signal: controller.signal });
      ours.catch(() => {});
      await new Promise((resolve) => setTimeout(resolve, 100));
      const sleeper = new Deno.Command(semWait, {
        args: [name, "5000"],
        stdout: "piped",
      }).spawn();
      const reader = sleeper.stdout.getReader();
      await reader.read(); // "waiting"
      await new Promise((resolve) => setTimeout(resolve, 100));
      // Without a turn of the event loop in between: the post wakes our
      // lane, and our wait gives up before it hears of it.
      const posted = new Deno.Command(semPost, { args: [name] }).outputSync();
      assert(posted.success);
      controller.abort();
      await assertRejects(() => ours);
      const started = performance.now();
      let said = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        said += new TextDecoder().decode(value);
      }
      await sleeper.status;
      assertEquals(said.trim(), "took", "the C sleeper was left asleep");
      assert(performance.now() - started < 2000, "the wake was not passed on");
      assertEquals(semaphore.value, 0);
    })
  ),
});
