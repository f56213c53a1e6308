/**
 * How the benchmark driver pools the passes of a cell (bench/_measure.ts):
 * samples joined, CPU time divided by what the passes did; and how a
 * session's one-way burst fails when its peer goes away.
 */

import { assertAlmostEquals, assertEquals, assertRejects } from "@std/assert";
import { Pool } from "../bench/_measure.ts";
import { channelSession } from "../bench/transports/_channel_session.ts";

Deno.test("Pool.cell() divides the CPU of every pass by their round trips", () => {
  const pool = new Pool();
  pool.add({
    samples: [1, 2, 3],
    cpuNanos: 9_000,
    peerCpuNanos: 4_000,
    operations: 3,
    bytes: 192,
    seconds: 0.000006,
  });
  pool.add({
    samples: [4, 5],
    cpuNanos: 6_000,
    peerCpuNanos: 1_000,
    operations: 2,
    bytes: 128,
    seconds: 0.000009,
  });
  const cell = pool.cell("round trip");
  assertEquals(cell.count, 5);
  assertEquals(cell.median, 3);
  assertEquals(cell.cpuMicros, 3); // 15 µs of CPU over 5 round trips
  assertAlmostEquals(cell.cores!, 1); // 15 µs of CPU in 15 µs
  assertEquals(pool.peerCpuMillis, 0.005);
});

Deno.test("Pool.cell() divides one-way CPU by the MiB moved", () => {
  const pool = new Pool();
  pool.add({
    samples: [900, 1100, 1000],
    cpuNanos: 6_000_000,
    operations: 3,
    bytes: 3 << 20,
    seconds: 0.003,
  });
  const cell = pool.cell("MiB");
  assertEquals(cell.median, 1000);
  assertEquals(cell.cpuMicros, 2000);
});

Deno.test("Pool.cell() counts the share of round trips over 1 ms, for round trips only", () => {
  const pool = new Pool();
  pool.add({ samples: [20, 30, 1500], operations: 3, seconds: 0.002 });
  pool.add({ samples: [1000, 2400], operations: 2, seconds: 0.004 });
  // 1000 µs is not over 1 ms; 1500 and 2400 are.
  assertEquals(pool.cell("round trip").overOneMs, 2 / 5);
  assertEquals(pool.cell("MiB").overOneMs, undefined);
});

Deno.test("Pool.cell() reports no CPU when a pass could not read it", () => {
  const pool = new Pool();
  pool.add({ samples: [1], cpuNanos: 1000, operations: 1, seconds: 1e-6 });
  pool.add({ samples: [2], operations: 1, seconds: 1e-6 });
  const cell = pool.cell("round trip");
  assertEquals(cell.cpuMicros, undefined);
  assertEquals(cell.cores, undefined);
  assertEquals(pool.peerCpuMillis, undefined);
});

Deno.test("Pool.add() takes passes of hundreds of thousands of samples", () => {
  // Concurrent cells of fast rows produce this many round trips in seconds.
  const pool = new Pool();
  const samples = Array.from({ length: 300_000 }, (_, i) => i % 100);
  pool.add({ samples, operations: samples.length, seconds: 1 });
  pool.add({ samples, operations: samples.length, seconds: 1 });
  assertEquals(pool.count, 600_000);
  assertEquals(pool.cell("round trip").median, 49);
});

Deno.test("Pool.cell() keeps the median of each pass beside the pooled one", () => {
  const pool = new Pool();
  pool.add({ samples: [80, 81, 79], operations: 3, seconds: 1 });
  pool.add({ samples: [260, 250, 270], operations: 3, seconds: 1 });
  const cell = pool.cell("round trip");
  assertEquals(cell.passMedians, [80, 260]);
  assertEquals(cell.median, 81);
});

Deno.test("Pool.cell() keeps a summary made elsewhere", () => {
  const pool = new Pool();
  pool.add({
    summary: { median: 2.5, p99: 9, count: 1000 },
    cpuNanos: 5_000_000,
    operations: 1000,
    seconds: 0.01,
  });
  const cell = pool.cell("round trip");
  assertEquals([cell.median, cell.p99, cell.count], [2.5, 9, 1000]);
  assertEquals(cell.cpuMicros, 5);
});

Deno.test("channelSession().sendOneWay() rejects when the peer goes away mid-burst", async () => {
  // The acknowledgements fail at once while the sends still take time: the
  // burst must fail with that error, not end the whole run with an
  // unhandled rejection.
  const channel = {
    send: () => new Promise<void>((resolve) => setTimeout(resolve, 5)),
    receive: () =>
      Promise.reject(new Deno.errors.UnexpectedEof("the other end closed it")),
  };
  const session = channelSession(channel, () => Promise.resolve());
  await assertRejects(
    async () => await session.sendOneWay!(new Uint8Array(8), 4),
    Deno.errors.UnexpectedEof,
    "the other end closed it",
  );
});
