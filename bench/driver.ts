/**
 * The cross-process benchmark driver: for every ipckit mechanism, and for
 * what a Deno user would pick instead, in one run against a peer process:
 *
 * - the round trip of a 64-byte and of a 4 KiB message (median and p99 over
 *   many sequential round trips after a warm-up),
 * - one-way throughput of 1 MiB messages (median of timed samples, each a
 *   burst of messages the peer acknowledges one by one).
 *
 *   deno task bench:driver               full run (10,000 round trips per cell)
 *   deno task bench:driver --quick       under a minute, for development
 *   deno task bench:driver --only=unix   rows whose name contains "unix"
 *
 * Prints progress and a table, and writes bench/results.json,
 * bench/results.md and bench/results.svg (the full run only, unless --out
 * says where).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { summarize } from "./_stats.ts";
import { machineFacts } from "./_machine.ts";
import {
  type Cell,
  type Results,
  type Row,
  type SizeKey,
  SIZES,
  terminalTable,
  writeReports,
} from "./_report.ts";
import type { Plan, Session, Transport } from "./transports/_transport.ts";
import { fifoTransports } from "./transports/fifo.ts";
import { messageQueueTransports } from "./transports/message_queue.ts";
import { pipeTransports } from "./transports/pipe.ts";
import { rpcTransports } from "./transports/rpc.ts";
import { sharedMemorySpinTransports } from "./transports/shared_memory_spin.ts";
import { socketTransports } from "./transports/socket.ts";
import { zeromqTransports } from "./transports/zeromq.ts";
import { ensureZeromq } from "./zeromq/install.ts";

/** Every row, in table order; an alternative goes after the row it faces. */
const TRANSPORTS: Transport[] = [
  // Shared memory + semaphores registers here (bench/transports/shared_memory.ts):
  ...sharedMemorySpinTransports,
  ...messageQueueTransports,
  ...fifoTransports,
  ...pipeTransports,
  ...socketTransports,
  ...zeromqTransports,
  ...rpcTransports,
];

const { values } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    out: { type: "string" },
    "no-install": { type: "boolean", default: false },
  },
});
const quick = values.quick;
const plan = {
  roundTrips: quick ? 1_000 : 10_000,
  warmUp: quick ? 100 : 1_000,
  samples: quick ? 3 : 15,
  count: quick ? 8 : 32,
};
/** No cell may run longer than this; a slower one stops early and says so. */
const CELL_BUDGET_MS = quick ? 20_000 : 120_000;
const CONNECT_TIMEOUT_MS = 30_000;
const MiB = 1 << 20;

const selected = TRANSPORTS.filter((t) =>
  !values.only || t.name.toLowerCase().includes(values.only.toLowerCase())
);
const outBase = values.out ??
  (quick || values.only ? undefined : new URL("./", import.meta.url).pathname);

if (!values["no-install"] && selected.some((t) => t.name.includes("zeromq"))) {
  await ensureZeromq();
}

function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${what} took more than ${ms / 1000} s`)),
        ms,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Times sequential round trips; µs each. */
async function roundTrips(session: Session, bytes: number): Promise<number[]> {
  const message = new Uint8Array(bytes).fill(0x5a);
  const stopAt = performance.now() + CELL_BUDGET_MS;
  for (let i = 0; i < plan.warmUp; i++) await session.roundTrip(message);
  const samples: number[] = [];
  for (let i = 0; i < plan.roundTrips && performance.now() < stopAt; i++) {
    const start = performance.now();
    await session.roundTrip(message);
    samples.push((performance.now() - start) * 1000);
  }
  return samples;
}

/** Times bursts of one-way messages; MiB/s per burst, the first untimed. */
async function oneWay(session: Session, bytes: number): Promise<number[]> {
  const message = new Uint8Array(bytes).fill(0x5a);
  const stopAt = performance.now() + CELL_BUDGET_MS;
  const rates: number[] = [];
  for (let i = 0; i <= plan.samples && performance.now() < stopAt; i++) {
    const start = performance.now();
    await session.sendOneWay!(message, plan.count);
    const seconds = (performance.now() - start) / 1000;
    if (i > 0) rates.push((plan.count * bytes) / MiB / seconds);
  }
  return rates;
}

async function measureCell(
  transport: Transport,
  key: SizeKey,
): Promise<Cell> {
  const bytes = SIZES[key].bytes;
  const reason = transport.unsupported?.(bytes);
  if (reason) return { note: reason };
  const isOneWay = key === "oneWay1MiB";
  let samples: number[];
  if (transport.measureElsewhere) {
    const elsewhere: Plan = { bytes, ...plan };
    samples = await transport.measureElsewhere(elsewhere);
  } else {
    const session = await withTimeout(
      transport.connect(bytes),
      CONNECT_TIMEOUT_MS,
      "connecting",
    );
    try {
      if (isOneWay && !session.sendOneWay) {
        return { note: "this transport does not measure one-way sends" };
      }
      samples = isOneWay
        ? await oneWay(session, bytes)
        : await roundTrips(session, bytes);
    } finally {
      await withTimeout(session.close(), CONNECT_TIMEOUT_MS, "closing");
    }
  }
  const summary = summarize(samples);
  const wanted = isOneWay ? plan.samples : plan.roundTrips;
  return {
    ...summary,
    ...(summary.count < wanted
      ? { note: `stopped after ${CELL_BUDGET_MS / 1000} s` }
      : {}),
  };
}

function show(cell: Cell, key: SizeKey): string {
  if (cell.median === undefined) return `— (${cell.note})`;
  return key === "oneWay1MiB"
    ? `${cell.median.toFixed(0)} MiB/s`
    : `${cell.median.toFixed(1)} µs (p99 ${cell.p99!.toFixed(1)})`;
}

const machine = await machineFacts();
const cells = selected.length * Object.keys(SIZES).length;
console.error(
  `ipckit benchmark${
    quick ? " (quick)" : ""
  }: ${selected.length} transports, ` +
    `${plan.roundTrips} round trips per size after ${plan.warmUp} warm-up, ` +
    `${plan.samples} samples of ${plan.count} × 1 MiB one way`,
);
const rows: Row[] = [];
let done = 0;
for (const transport of selected) {
  const row: Row = {
    transport: transport.name,
    kind: transport.kind,
    ...(transport.versus ? { versus: transport.versus } : {}),
    rt64: {},
    rt4KiB: {},
    oneWay1MiB: {},
  };
  let failed: string | undefined;
  for (const key of Object.keys(SIZES) as SizeKey[]) {
    done++;
    const started = performance.now();
    try {
      row[key] = failed ? { note: failed } : await measureCell(transport, key);
    } catch (error) {
      failed = error instanceof Error ? error.message : String(error);
      row[key] = { note: failed };
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.error(
      `[${String(done).padStart(2)}/${cells}] ${transport.name}, ${
        SIZES[key].label
      }: ${show(row[key], key)} in ${seconds} s`,
    );
  }
  rows.push(row);
}

const results: Results = {
  date: new Date().toISOString(),
  command: `deno task bench:driver${Deno.args.length ? " " : ""}${
    Deno.args.join(" ")
  }`,
  machine,
  plan,
  rows,
};
console.log(terminalTable(results));
if (outBase) {
  const written = await writeReports(results, outBase);
  console.error(`wrote ${written.join(", ")}`);
} else {
  console.error("(quick or partial run: no files written; --out=DIR to write)");
}
