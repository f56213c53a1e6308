/**
 * The benchmark's System V rows (bench/transports/sysv.ts) and their C
 * limits (bench/c/sysv_msg.c, bench/c/sysv_sem.c): they measure, and they
 * leave no System V object and no process behind, however the run ends:
 * closed, its driver killed (SIGINT to everyone, or SIGKILL), its C program
 * killed. Where System V cannot be used they are skipped with the reason.
 * No speed is asserted.
 */

import {
  assert,
  assertEquals,
  assertMatch,
  assertStringIncludes,
} from "@std/assert";
import {
  cProgram,
  haveCompiler,
  removeCPrograms,
} from "../bench/transports/c.ts";
import { BENCH_KEY_TAG, sysvTransports } from "../bench/transports/sysv.ts";
import { readWholeFile } from "../ffi/file.ts";
import { leakChecked, testNeeding } from "./_helpers.ts";
import { runArgv } from "./_machine.ts";
import { added, benchSysvObjects } from "./_sysv.ts";

// Read through libc: Deno's own API wants --allow-all under /proc.
const noSysv = typeof readWholeFile("/proc/sysvipc/msg") === "string"
  ? undefined
  : "no /proc/sysvipc: this kernel has no System V IPC";
const noCompiler = await haveCompiler()
  ? undefined
  : "no `cc` on PATH (apt-get install gcc)";

const objects = () => benchSysvObjects(BENCH_KEY_TAG);

/** Waits up to `ms` for `done()`; returns its last answer. */
async function settle(done: () => boolean, ms = 10_000): Promise<boolean> {
  const until = performance.now() + ms;
  while (!done() && performance.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return done();
}

/** Whether process `pid` exists (a zombie counts as gone). */
function alive(pid: number): boolean {
  const stat = readWholeFile(`/proc/${pid}/stat`);
  return typeof stat === "string" && !/^\d+ \(.*\) Z /.test(stat);
}

testNeeding(noSysv, {
  name:
    "System V driver rows make round trips, and one-way bursts where they offer them, and leave no object behind",
  fn: leakChecked(async () => {
    const before = objects();
    for (const transport of sysvTransports) {
      const session = await transport.connect(4096);
      try {
        for (let i = 0; i < 20; i++) {
          await session.roundTrip(new Uint8Array(4096).fill(i));
        }
        assertEquals(session.peers?.length, 1, transport.name);
        assert(added(before, objects()).length > 0, transport.name);
      } finally {
        await session.close();
      }
      assertEquals(added(before, objects()), [], transport.name);
      assert(!alive(session.peers![0]), `${transport.name}: peer left`);
    }
    // A 1 MiB message is more than msgmax: it travels in pieces.
    const queue = sysvTransports.find((t) =>
      t.name === "System V message queue, sync"
    )!;
    const session = await queue.connect(1 << 20, { oneWay: true });
    try {
      await session.sendOneWay!(new Uint8Array(1 << 20), 3);
    } finally {
      await session.close();
    }
    assertEquals(added(before, objects()), []);
  }),
});

for (
  const [row, signal] of [
    ["System V message queue, sync", "SIGKILL"],
    ["System V shared memory + semaphores, async", "SIGINT"],
  ] as const
) {
  testNeeding(noSysv, {
    name:
      `A System V driver row's peer removes its objects and exits when the driver dies of ${signal}`,
    fn: leakChecked(async () => {
      const before = objects();
      const driver = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--quiet",
          "--allow-ffi",
          "--allow-read",
          "--allow-write=/proc/sysvipc",
          "--allow-run",
          "--allow-env",
          new URL("./fixtures/bench_sysv_session.ts", import.meta.url)
            .pathname,
          row,
        ],
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      const reader = driver.stdout.getReader();
      const { value } = await reader.read();
      reader.releaseLock();
      await driver.stdout.cancel();
      const peer = Number(new TextDecoder().decode(value).trim());
      assert(alive(peer), "no peer");
      // Two queues; or a semaphore set (the segment was marked for removal
      // once both had it attached, which takes its key away).
      assertEquals(
        added(before, objects()).length,
        row.includes("queue") ? 2 : 1,
      );
      // A Ctrl-C reaches the driver and the peer alike; the peer must
      // outlive it to clean up after the driver.
      if (signal === "SIGINT") Deno.kill(peer, "SIGINT");
      driver.kill(signal);
      await driver.status;
      assert(
        await settle(() => added(before, objects()).length === 0),
        `left: ${added(before, objects())}`,
      );
      assert(await settle(() => !alive(peer)), "the peer is still running");
    }),
  });
}

for (const key of ["sysv-msg", "sysv-sem"]) {
  testNeeding(noSysv ?? noCompiler, {
    name:
      `The C ${key} program's objects are removed when the program is killed mid-run`,
    fn: leakChecked(async () => {
      const before = objects();
      try {
        const program = new Deno.Command(await cProgram(key), {
          args: [
            "--waiting=blocking",
            "--mode=concurrent",
            "--pairs=2",
            "--seconds=60",
            "--bytes=64",
          ],
          stdout: "null",
          stderr: "null",
        }).spawn();
        const made = key === "sysv-msg" ? 4 : 2;
        assert(
          await settle(() => added(before, objects()).length === made),
          `made: ${added(before, objects())}`,
        );
        program.kill("SIGKILL");
        await program.status;
        assert(
          await settle(() => added(before, objects()).length === 0),
          `left: ${added(before, objects())}`,
        );
      } finally {
        await removeCPrograms();
      }
    }),
  });
}

Deno.test({
  name:
    "bench/driver.ts skips the System V rows with the reason when /proc/sysvipc may not be written",
  fn: leakChecked(async () => {
    const run = await runArgv([
      Deno.execPath(),
      "run",
      "--quiet",
      "--allow-ffi",
      "--allow-read",
      "--allow-write=/tmp",
      "--allow-run",
      "--allow-env",
      new URL("../bench/driver.ts", import.meta.url).pathname,
      "--quick",
      "--only=System V message queue, async",
      "--sections=cells",
      "--cells=rt64",
      "--no-install",
    ]);
    assertEquals(run.code, 0, run.stderr);
    assertMatch(
      run.stderr,
      /System V message queue, async · 64 B round trip: — \(System V IPC is not available here: .*--allow-write=\/proc\/sysvipc/,
    );
    assertStringIncludes(
      run.stdout,
      "System V message queue, async (64 B round trip): System V IPC is not available here",
    );
  }),
});
