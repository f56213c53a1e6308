/**
 * The benchmark's C limit (bench/c/, bench/transports/c.ts): every mechanism
 * compiles and measures in both waiting policies, each mode reports what
 * the driver reads, and nothing is left behind. Skipped where there is no
 * C compiler. No speed is asserted: only that the numbers are there.
 */

import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertStringIncludes,
} from "@std/assert";
import { listDirectory } from "../ffi/dir.ts";
import type {
  Measurement,
  Plan,
  Transport,
} from "../bench/transports/_transport.ts";
import {
  C_MECHANISMS,
  cRowName,
  cTransports,
  haveCompiler,
  removeCPrograms,
} from "../bench/transports/c.ts";
import { BENCH_KEY_TAG } from "../bench/transports/sysv.ts";
import { leakChecked, testNeeding } from "./_helpers.ts";
import { added, benchSysvObjects } from "./_sysv.ts";

const compiler = await haveCompiler();
const noCompiler = compiler
  ? undefined
  : "no `cc` on PATH (apt-get install gcc)";

const PLAN: Plan = {
  bytes: 64,
  roundTrips: 40,
  warmUp: 10,
  samples: 2,
  count: 4,
};

function row(key: string, waiting: "busy" | "blocking"): Transport {
  const mechanism = C_MECHANISMS.find((m) => m.key === key)!;
  const cpus = waiting === "blocking" ? "one" : undefined;
  return cTransports.find((t) =>
    t.name === cRowName(mechanism, waiting, cpus)
  )!;
}

async function measure(
  transport: Transport,
  plan: Plan,
): Promise<Measurement> {
  const result = await transport.measureElsewhere!(plan);
  assert(
    typeof result === "object" && !Array.isArray(result),
    `${transport.name}: ${String(result)}`,
  );
  return result;
}

const sysvBefore = benchSysvObjects(BENCH_KEY_TAG);

/**
 * The C programs' names in /dev/shm and /dev/mqueue, and their System V
 * objects (by key) that were not there when this file started.
 */
function cObjects(): string[] {
  const found = added(sysvBefore, benchSysvObjects(BENCH_KEY_TAG));
  for (const dir of ["/dev/shm", "/dev/mqueue"]) {
    const entries = listDirectory(dir);
    if (typeof entries === "number") continue;
    for (const entry of entries) {
      if (entry.name.includes("ipckit-bench-c-")) {
        found.push(`${dir}/${entry.name}`);
      }
    }
  }
  return found;
}

testNeeding(noCompiler, {
  name:
    "C limit rows measure round trips of every mechanism, busy-waiting and blocking",
  fn: leakChecked(async () => {
    try {
      for (const transport of cTransports) {
        const result = await measure(transport, PLAN);
        assertEquals(result.samples?.length, PLAN.roundTrips, transport.name);
        assert(result.samples!.every((s) => s > 0), transport.name);
        assertEquals(result.operations, PLAN.roundTrips, transport.name);
        assert(result.cpuNanos! > 0, `${transport.name}: no CPU time`);
        assert(result.peerCpuNanos! <= result.cpuNanos!, transport.name);
      }
      assertEquals(cObjects(), []);
    } finally {
      await removeCPrograms();
    }
  }),
});

testNeeding(noCompiler, {
  name: "C limit rows report one-way bursts, concurrent pairs and idle CPU",
  fn: leakChecked(async () => {
    try {
      const pipe = row("pipe", "blocking");
      const oneWay = await measure(pipe, {
        ...PLAN,
        bytes: 256 * 1024,
        oneWay: true,
      });
      assertEquals(oneWay.samples?.length, PLAN.samples);
      assertEquals(oneWay.bytes, PLAN.samples * PLAN.count * 256 * 1024);

      const pairs = await measure(row("mq", "blocking"), {
        ...PLAN,
        pairs: 3,
        seconds: 0.2,
      });
      assert(pairs.summary!.count > 0);
      assertEquals(pairs.summary!.count, pairs.operations);
      assert(pairs.summary!.median <= pairs.summary!.p99);

      // An idle server that busy-waits burns CPU; one that blocks does not
      // wake up at all, so it uses less.
      const idle = { ...PLAN, idleSeconds: 0.3 };
      const spinning = await measure(row("pipe", "busy"), idle);
      const sleeping = await measure(pipe, idle);
      assertEquals(spinning.operations, 0);
      assert(
        spinning.peerCpuNanos! > sleeping.peerCpuNanos!,
        `busy ${spinning.peerCpuNanos} ns, blocking ${sleeping.peerCpuNanos} ns`,
      );
      assertEquals(cObjects(), []);
    } finally {
      await removeCPrograms();
    }
  }),
});

testNeeding(noCompiler, {
  name: "C limit rows say why a message is too large for one datagram",
  fn: async () => {
    try {
      const result = await row("udp", "busy").measureElsewhere!({
        ...PLAN,
        bytes: 70_000,
      });
      assertEquals(
        result,
        "a UDP datagram carries at most 65507 bytes over IPv4",
      );
      const sem = await row("sem", "blocking").measureElsewhere!({
        ...PLAN,
        bytes: 1 << 20,
      });
      assertMatch(String(sem), /round trips only/);
    } finally {
      await removeCPrograms();
    }
  },
});

Deno.test({
  name: "C limit rows reject with a clear message when there is no compiler",
  fn: async () => {
    // A fresh copy of the module, so the compiler is looked up again.
    const fresh: typeof import("../bench/transports/c.ts") = await import(
      `../bench/transports/c.ts?no-cc=${crypto.randomUUID()}`
    );
    const previous = Deno.env.get("CC");
    Deno.env.set("CC", "/nonexistent/ipckit-test-cc");
    try {
      assertEquals(await fresh.haveCompiler(), false);
      const error = await assertRejects(() =>
        fresh.cTransports[0].measureElsewhere!(PLAN)
      );
      assertStringIncludes(String(error), "no C compiler");
    } finally {
      if (previous === undefined) Deno.env.delete("CC");
      else Deno.env.set("CC", previous);
      await fresh.removeCPrograms();
    }
  },
});

/** Runs the driver as `deno task bench:driver` does, with `env` added. */
async function driver(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ success: boolean; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--allow-ffi",
      "--allow-read",
      "--allow-write=/dev/mqueue,/dev/shm,/tmp",
      "--allow-net",
      "--allow-run",
      "--allow-env",
      new URL("../bench/driver.ts", import.meta.url).pathname,
      ...args,
    ],
    env,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  return {
    success: output.success,
    stderr: new TextDecoder().decode(output.stderr),
  };
}

testNeeding(noCompiler, {
  name:
    "bench/driver.ts puts C rows, their CPU and the ratios into the results it writes",
  fn: leakChecked(async () => {
    const dir = await Deno.makeTempDir({ prefix: "ipckit-test-bench-" });
    try {
      const run = await driver([
        "--quick",
        "--only=message queue",
        "--sections=cells",
        `--out=${dir}`,
      ]);
      assert(run.success, run.stderr);
      const results = JSON.parse(
        await Deno.readTextFile(`${dir}/results.json`),
      );
      const names = results.rows.map((r: { transport: string }) => r.transport);
      const mq = C_MECHANISMS.find((m) => m.key === "mq")!;
      for (
        const name of [
          cRowName(mq, "busy"),
          cRowName(mq, "blocking", "two"),
          cRowName(mq, "blocking", "one"),
        ]
      ) {
        assert(names.includes(name), `${name} is not in ${names}`);
      }
      const c = results.rows.find((r: { kind: string }) => r.kind === "limit");
      assert(c.rt64.cpuMicros > 0, JSON.stringify(c.rt64));
      const markdown = await Deno.readTextFile(`${dir}/results.md`);
      assertMatch(
        markdown,
        /\| \*\*message queue, async\*\* \| C: POSIX message queue, busy-wait \| \d+\.\d\d× \|/,
      );
      // spin: 0 faces blocking C on one CPU, not the two-CPU context row.
      assertMatch(
        markdown,
        /\| \*\*message queue, async, spin: 0 \(always park\)\*\* \| C: POSIX message queue, blocking \(one CPU\) \| \d+\.\d\d× \|/,
      );
      for (const chart of ["results.svg", "results-cpu.svg"]) {
        assertStringIncludes(
          await Deno.readTextFile(`${dir}/${chart}`),
          "C: POSIX message queue, blocking (two CPUs)",
        );
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }),
});

Deno.test({
  name:
    "bench/driver.ts skips the C rows with a note when there is no compiler",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "ipckit-test-bench-" });
    try {
      const run = await driver(
        ["--quick", "--only=C: pipe", "--sections=cells", `--out=${dir}`],
        { CC: "/nonexistent/ipckit-test-cc" },
      );
      assert(run.success, run.stderr);
      assertStringIncludes(run.stderr, "No C compiler");
      const results = JSON.parse(
        await Deno.readTextFile(`${dir}/results.json`),
      );
      assertStringIncludes(results.notes.join(" "), "No C compiler");
      assertEquals(results.rows[0].rt64, { note: "no C compiler" });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
