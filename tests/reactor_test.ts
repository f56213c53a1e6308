import { assert, assertEquals } from "@std/assert";
import { O } from "../ffi/c.ts";
import { libc } from "../ffi/load.ts";
import { FramedChannel } from "../mod.ts";
import { fdReadable } from "../mechanisms/_stream/fd_streams.ts";
import { descriptorLimit } from "../ffi/rlimit.ts";
import {
  leakChecked,
  spawnFixture,
  testNeeding,
  uniqueName,
} from "./_helpers.ts";

/** Runs a fixture, killing it after `boundMs`; returns its code and output. */
async function runBounded(
  fixture: string,
  flags: string[],
  args: string[],
  boundMs: number,
): Promise<{ code: number; killed: boolean; stdout: string; stderr: string }> {
  const child = spawnFixture(fixture, flags, args);
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    child.kill("SIGKILL");
  }, boundMs);
  const output = await child.output();
  clearTimeout(timer);
  const decoder = new TextDecoder();
  return {
    code: output.code,
    killed,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

Deno.test(
  "A message to the 33rd and the 40th waiting FIFO reader arrives, and Deno.readTextFile still completes",
  leakChecked(async () => {
    for (const readers of [33, 40]) {
      const dir = await Deno.makeTempDir({ prefix: "ipckit-starve-" });
      try {
        await Deno.writeTextFile(`${dir}/note.txt`, "still here");
        const result = await runBounded(
          "reactor_starvation.ts",
          ["--allow-ffi", `--allow-read=${dir}`, `--allow-write=${dir}`],
          [dir, String(readers)],
          30_000,
        );
        assertEquals(
          result.killed,
          false,
          "the process did not exit by itself",
        );
        assertEquals(result.code, 0, result.stderr);
        const report = JSON.parse(result.stdout);
        assertEquals(report.readers, readers);
        assert(
          report.lastMs !== null && report.lastMs < 2000,
          `the last of ${readers} readers got nothing within 5 s`,
        );
        assert(
          report.readFileMs !== null && report.readFileMs < 2000,
          `Deno.readTextFile stalled behind ${readers} waiting readers`,
        );
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    }
  }),
);

/**
 * The descriptors reactor_many.ts needs for 2,500 waits of each kind (it
 * raises its soft limit to the hard one, which only root may raise).
 */
const MANY_DESCRIPTORS = 4 * 2500 + 200;
const hardLimit = descriptorLimit();
const descriptorsMissing = typeof hardLimit !== "number" &&
    hardLimit.hard < MANY_DESCRIPTORS
  ? `the hard descriptor limit is ${hardLimit.hard}; 10,000 waits need ${
    MANY_DESCRIPTORS.toLocaleString("en-US")
  } (ulimit -Hn)`
  : undefined;

testNeeding(descriptorsMissing, {
  name:
    "10,000 concurrent waits on queues, FIFOs, pipes and semaphores are all served, quickly to the last, and close releases them",
  fn: leakChecked(async () => {
    const dir = await Deno.makeTempDir({ prefix: "ipckit-many-" });
    const prefix = uniqueName("many");
    try {
      await Deno.writeTextFile(`${dir}/note.txt`, "still here");
      const result = await runBounded(
        "reactor_many.ts",
        [
          "--allow-ffi",
          `--allow-read=${dir},/dev/shm,/dev/mqueue`,
          `--allow-write=${dir},/dev/shm,/dev/mqueue`,
        ],
        [dir, prefix, "2500"],
        120_000,
      );
      assertEquals(result.killed, false, "the process did not exit by itself");
      assertEquals(result.code, 0, result.stderr);
      const steps = Object.fromEntries(
        result.stdout.trim().split("\n").map((line) => {
          const { step, ...details } = JSON.parse(line);
          return [step, details];
        }),
      );
      console.log(
        `descriptor limit raised to ${steps.limit.soft} (hard ${steps.limit.hard}); ${steps.limit.perKind} waits of each kind`,
      );
      // The machine must allow the full 10,000; say so if it does not.
      assertEquals(
        steps.limit.perKind,
        2500,
        "the descriptor limit is too low",
      );
      assertEquals(steps.parked.waits, 10_000);
      assertEquals(steps.parked.reactorWaiters, 7500);
      assertEquals(steps.parked.futex.lanes, 4);
      assertEquals(steps.parked.futex.laneWords, 4 * 127);
      assertEquals(steps.parked.futex.fallbackWords, 625 - 4 * 127);
      for (const kind of ["mq", "fifo", "pipe", "semaphore"]) {
        const { first, last } = steps.latency[kind];
        assert(first < 2000, `${kind}: the first wait took ${first} ms`);
        assert(last < 2000, `${kind}: the last wait took ${last} ms`);
      }
      assert(steps.readTextFile.ms < 2000, "Deno.readTextFile stalled");
      assertEquals(steps.served.unresolved, {
        mq: 0,
        fifo: 0,
        pipe: 0,
        semaphore: 0,
      });
      assertEquals(steps.served.resolved, 10_000);
      assertEquals(steps.closed.rejectedBadResource, 10_000);
      assertEquals(steps.closed.reactorWaiters, 0);
      assertEquals(steps.closed.futex.laneWords, 0);
      assertEquals(steps.closed.futex.fallbackWords, 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }),
});

Deno.test(
  "Pipes written in one synchronous burst each deliver their own message",
  leakChecked(async () => {
    const count = 64;
    const readers: FramedChannel<number>[] = [];
    const writeFds: number[] = [];
    const fds = new Int32Array(2);
    try {
      for (let i = 0; i < count; i++) {
        const made = libc().symbols.pipe2!(
          new Uint8Array(fds.buffer),
          O.NONBLOCK | O.CLOEXEC,
        );
        assertEquals(made, 0);
        readers.push(
          new FramedChannel<number>({
            readable: fdReadable({ fd: fds[0] }, `pipe ${i}`, {
              spinMicros: 0,
            }),
          }),
        );
        writeFds.push(fds[1]);
      }
      const receives = readers.map((reader) =>
        reader.receive({ timeout: 5000 })
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
      // All written before any reader runs: their reads then follow one
      // another, and each must keep its own bytes.
      for (let i = 0; i < count; i++) {
        const payload = new TextEncoder().encode(JSON.stringify(i));
        const frame = new Uint8Array(4 + payload.byteLength);
        new DataView(frame.buffer).setUint32(0, payload.byteLength);
        frame.set(payload, 4);
        libc().symbols.write(writeFds[i], frame, BigInt(frame.byteLength));
      }
      const values = (await Promise.all(receives)).map(({ value }) => value);
      assertEquals(values, [...Array(count).keys()]);
    } finally {
      for (const reader of readers) reader.close();
      for (const fd of writeFds) libc().symbols.close(fd);
    }
  }),
);
