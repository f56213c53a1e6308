/**
 * ipckit's sockets against their limit and their alternatives, all in one
 * run, with the ratios issue 13 sets as targets:
 *
 * - Unix stream socket, 64 B round trip: within 2x of C that busy-waits on
 *   the same kind of socket, and at least 2x faster than a hand-written
 *   `Deno.connect` frame loop;
 * - TCP on 127.0.0.1: within 2x of C busy-waiting;
 * - `spawn()` with a default child (one with `--allow-ffi`, which takes the
 *   socket): within 1.5x of ipckit's FIFO pair, at least 3x faster than
 *   `node:child_process` `fork()`;
 * - request/response over a Unix socket: within 1.5x of request/response
 *   over two message queues;
 * - 1 MiB one way over a Unix socket: at least the FIFO pair's rate.
 *
 *   deno task bench:sockets            5 passes of 3,000 round trips per row
 *   deno task bench:sockets --quick    1 pass of 1,000
 *
 * The passes interleave the rows, so a change in the shared machine's load
 * touches every row alike; each row's median is over all its samples.
 *
 * The C rows are the driver's (bench/transports/c.ts, the programs in
 * bench/c/): both ends C, busy-waiting on non-blocking descriptors, or
 * blocking with both processes on one CPU. `deno task bench:driver
 * --only=socket` measures the same rows with their CPU price; this task
 * is the short check of the socket targets alone.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { summarize } from "./_stats.ts";
import {
  C_MECHANISMS,
  cRowName,
  cTransports,
  removeCPrograms,
} from "./transports/c.ts";
import { fifoTransports } from "./transports/fifo.ts";
import { pipeTransports, SPAWN_SOCKET_ROW } from "./transports/pipe.ts";
import { rpcTransports } from "./transports/rpc.ts";
import { socketTransports } from "./transports/socket.ts";
import type { Plan, Transport } from "./transports/_transport.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { quick: { type: "boolean", default: false } },
});
const passes = values.quick ? 1 : 5;
const roundTrips = values.quick ? 1_000 : 3_000;
const warmUp = 300;
const MiB = 1 << 20;

/** The driver's C row of mechanism `key` with `waiting` (blocking: on one CPU). */
function cRow(key: string, waiting: "busy" | "blocking"): string {
  const mechanism = C_MECHANISMS.find((m) => m.key === key)!;
  return cRowName(
    mechanism,
    waiting,
    waiting === "blocking" ? "one" : undefined,
  );
}

const ROWS = {
  cUnix: cRow("unix-stream", "busy"),
  cUnixBlocking: cRow("unix-stream", "blocking"),
  cSeqpacket: cRow("unix-seqpacket", "busy"),
  cTcp: cRow("tcp", "busy"),
  cTcpBlocking: cRow("tcp", "blocking"),
  unix: "Unix socket, async",
  seqpacket: "Unix seqpacket socket, async",
  denoUnix: "Deno.connect Unix socket + hand-written frames",
  tcp: "TCP 127.0.0.1, async",
  spawn: SPAWN_SOCKET_ROW,
  spawnStdio: "pipe to a child (spawn), async",
  fifo: "FIFO pair, async",
  fork: "node:child_process fork() IPC",
  rpcUnix: "RPC request over a Unix socket, async",
  rpcQueues: "RPC request over message queues, async",
} as const;

const all = [
  ...cTransports,
  ...socketTransports,
  ...pipeTransports,
  ...fifoTransports,
  ...rpcTransports,
];
const byName = new Map(all.map((transport) => [transport.name, transport]));
const roundTripRows = Object.values(ROWS).map((name) => {
  const transport = byName.get(name);
  if (!transport) throw new Error(`no transport named "${name}"`);
  return transport;
});
const oneWayRows = [ROWS.unix, ROWS.fifo].map((name) => byName.get(name)!);

async function roundTripSamples(
  transport: Transport,
  bytes: number,
): Promise<number[]> {
  const plan: Plan = { bytes, roundTrips, warmUp, samples: 0, count: 0 };
  if (transport.measureElsewhere) {
    const result = await transport.measureElsewhere(plan);
    if (typeof result === "string") {
      console.error(`${transport.name}: not measured (${result})`);
      return [];
    }
    return Array.isArray(result) ? result : result.samples ?? [];
  }
  const session = await transport.connect(bytes);
  try {
    const message = new Uint8Array(bytes).fill(0x5a);
    for (let i = 0; i < warmUp; i++) await session.roundTrip(message);
    const samples: number[] = [];
    for (let i = 0; i < roundTrips; i++) {
      const start = performance.now();
      await session.roundTrip(message);
      samples.push((performance.now() - start) * 1000);
    }
    return samples;
  } finally {
    await session.close();
  }
}

async function oneWayRates(transport: Transport): Promise<number[]> {
  const session = await transport.connect(MiB);
  try {
    const message = new Uint8Array(MiB).fill(0x5a);
    const rates: number[] = [];
    for (let i = 0; i <= 5; i++) {
      const start = performance.now();
      await session.sendOneWay!(message, 16);
      const seconds = (performance.now() - start) / 1000;
      if (i > 0) rates.push(16 / seconds);
    }
    return rates;
  } finally {
    await session.close();
  }
}

const latency = new Map<string, number[]>();
const throughput = new Map<string, number[]>();
// The compiled C programs go when the run ends, however it ends.
try {
  for (let pass = 1; pass <= passes; pass++) {
    for (const transport of roundTripRows) {
      const samples = await roundTripSamples(transport, 64);
      latency.set(transport.name, [
        ...(latency.get(transport.name) ?? []),
        ...samples,
      ]);
      const { median } = summarize(samples.length ? samples : [NaN]);
      console.error(
        `[pass ${pass}/${passes}] ${transport.name}: ${median.toFixed(1)} µs`,
      );
    }
    for (const transport of oneWayRows) {
      const rates = await oneWayRates(transport);
      throughput.set(transport.name, [
        ...(throughput.get(transport.name) ?? []),
        ...rates,
      ]);
      const { median } = summarize(rates);
      console.error(
        `[pass ${pass}/${passes}] ${transport.name}, 1 MiB one way: ${
          median.toFixed(0)
        } MiB/s`,
      );
    }
  }
} finally {
  await removeCPrograms();
}

const median = (name: string) => {
  const samples = latency.get(name) ?? [];
  return samples.length ? summarize(samples).median : NaN;
};
const p99 = (name: string) => {
  const samples = latency.get(name) ?? [];
  return samples.length ? summarize(samples).p99 : NaN;
};
const rate = (name: string) => summarize(throughput.get(name) ?? [NaN]).median;

console.log(
  `\n64 B round trips, median and p99 (µs), ${passes} pass(es) of ${roundTrips}; ${
    new Date().toISOString()
  }`,
);
for (const transport of roundTripRows) {
  console.log(
    `  ${transport.name.padEnd(58)} ${
      median(transport.name).toFixed(1).padStart(8)
    } ${p99(transport.name).toFixed(1).padStart(9)}`,
  );
}
console.log("\n1 MiB one way, median (MiB/s)");
for (const transport of oneWayRows) {
  console.log(
    `  ${transport.name.padEnd(58)} ${
      rate(transport.name).toFixed(0).padStart(8)
    }`,
  );
}

const targets: [string, number, string, boolean][] = [];
const within = (what: string, row: string, limit: string, factor: number) => {
  const ratio = median(row) / median(limit);
  targets.push([
    `${what}: ${ratio.toFixed(2)}x of ${limit} (target <= ${factor}x)`,
    ratio,
    row,
    ratio <= factor,
  ]);
};
const faster = (what: string, row: string, other: string, factor: number) => {
  const ratio = median(other) / median(row);
  targets.push([
    `${what}: ${ratio.toFixed(2)}x faster than ${other} (target >= ${factor}x)`,
    ratio,
    row,
    ratio >= factor,
  ]);
};
within("Unix stream socket", ROWS.unix, ROWS.cUnix, 2);
faster("Unix stream socket", ROWS.unix, ROWS.denoUnix, 2);
within("TCP", ROWS.tcp, ROWS.cTcp, 2);
within("spawn(), child with --allow-ffi", ROWS.spawn, ROWS.fifo, 1.5);
faster("spawn(), child with --allow-ffi", ROWS.spawn, ROWS.fork, 3);
within("RPC over a Unix socket", ROWS.rpcUnix, ROWS.rpcQueues, 1.5);
const oneWay = rate(ROWS.unix) / rate(ROWS.fifo);
targets.push([
  `1 MiB one way over a Unix socket: ${
    oneWay.toFixed(2)
  }x the FIFO pair's rate (target >= 1x)`,
  oneWay,
  ROWS.unix,
  oneWay >= 1,
]);
console.log("\nTargets (issue 13)");
for (const [line, , , met] of targets) {
  console.log(`  ${met ? "met    " : "not met"}  ${line}`);
}
