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
 *   deno task bench:driver --render=bench/results.json   redraw .md/.svg
 *
 * Shows one progress bar on a terminal (plain lines otherwise), prints a
 * table, and writes bench/results.json, bench/results.md and
 * bench/results.svg (the full run only, unless --out says where). Where
 * the results go is checked before anything is measured: a run takes
 * minutes, and a directory that is missing or not writable would lose it.
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import { ProgressBar } from "@std/cli/unstable-progress-bar";
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
import type { Session, Transport } from "./transports/_transport.ts";
import { fifoTransports } from "./transports/fifo.ts";
import { messageQueueTransports } from "./transports/message_queue.ts";
import { natsTransports } from "./transports/nats.ts";
import { pipeTransports } from "./transports/pipe.ts";
import { rpcTransports } from "./transports/rpc.ts";
import { sharedMemoryTransports } from "./transports/shared_memory.ts";
import { sharedMemorySpinTransports } from "./transports/shared_memory_spin.ts";
import { socketTransports } from "./transports/socket.ts";
import { zeromqTransports } from "./transports/zeromq.ts";
import { ensureZeromq } from "./zeromq/install.ts";

/** Every row, in table order; an alternative goes after the row it faces. */
const TRANSPORTS: Transport[] = [
  ...sharedMemoryTransports,
  ...sharedMemorySpinTransports,
  ...messageQueueTransports,
  ...fifoTransports,
  ...pipeTransports,
  ...socketTransports,
  ...zeromqTransports,
  ...rpcTransports,
  ...natsTransports,
];

const values = parseArgs(Deno.args, {
  boolean: ["quick", "no-install"],
  string: ["only", "out", "render"],
  unknown: (arg: string, key?: string) => {
    if (key === undefined) return true;
    console.error(`bench:driver: unknown option "${arg}"`);
    Deno.exit(2);
  },
});
if (values.render) {
  // Re-renders results.md and results.svg from a results.json, measuring nothing.
  const saved: Results = JSON.parse(await Deno.readTextFile(values.render));
  const dir = new URL(".", `file://${await Deno.realPath(values.render)}`);
  console.error(
    `wrote ${(await writeReports(saved, dir.pathname)).join(", ")}`,
  );
  Deno.exit(0);
}

const quick = values.quick;
/**
 * Totals per cell. A full run splits them over `rounds` passes through every
 * transport, so a change in the shared machine's load between minutes hits
 * every row alike instead of whichever rows ran at that moment.
 */
const plan = {
  rounds: quick ? 1 : 5,
  roundTrips: quick ? 1_000 : 10_000,
  warmUp: quick ? 100 : 500,
  samples: quick ? 3 : 15,
  count: quick ? 8 : 32,
};
/** What one pass asks of each cell (warm-up is per connection). */
const perRound = {
  roundTrips: plan.roundTrips / plan.rounds,
  warmUp: plan.warmUp,
  samples: plan.samples / plan.rounds,
  count: plan.count,
};
/** No cell may run longer than this per pass; a slower one stops early. */
const CELL_BUDGET_MS = quick ? 20_000 : 60_000;
const CONNECT_TIMEOUT_MS = 30_000;
const MiB = 1 << 20;

const selected = TRANSPORTS.filter((t) =>
  !values.only || t.name.toLowerCase().includes(values.only.toLowerCase())
);
const outBase = values.out ??
  (quick || values.only ? undefined : new URL("./", import.meta.url).pathname);
if (outBase !== undefined) await checkWritable(outBase);

/**
 * Exits with a clear message unless `dir` is a directory this run may write
 * (it tries: a file made and removed), so a long run cannot end in an
 * error that loses its results.
 */
async function checkWritable(dir: string): Promise<void> {
  const fail = (why: string): never => {
    console.error(`bench:driver: Cannot write the results to "${dir}": ${why}`);
    Deno.exit(2);
  };
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(dir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return fail(`it does not exist (create it with mkdir -p ${dir})`);
    }
    return fail((error as Error).message);
  }
  if (!info.isDirectory) fail("it is not a directory");
  try {
    await Deno.remove(
      await Deno.makeTempFile({ dir, prefix: ".ipckit-bench-write-check-" }),
    );
  } catch (error) {
    fail((error as Error).message);
  }
}

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
  for (let i = 0; i < perRound.warmUp; i++) await session.roundTrip(message);
  const samples: number[] = [];
  for (let i = 0; i < perRound.roundTrips && performance.now() < stopAt; i++) {
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
  for (let i = 0; i <= perRound.samples && performance.now() < stopAt; i++) {
    const start = performance.now();
    await session.sendOneWay!(message, perRound.count);
    const seconds = (performance.now() - start) / 1000;
    if (i > 0) rates.push((perRound.count * bytes) / MiB / seconds);
  }
  return rates;
}

/** One pass of one cell: its samples, or a note saying why there are none. */
async function measurePass(
  transport: Transport,
  key: SizeKey,
): Promise<number[] | string> {
  const bytes = SIZES[key].bytes;
  const reason = transport.unsupported?.(bytes);
  if (reason) return reason;
  const isOneWay = key === "oneWay1MiB";
  if (transport.measureElsewhere) {
    return await transport.measureElsewhere({ bytes, ...perRound });
  }
  const session = await withTimeout(
    transport.connect(bytes),
    CONNECT_TIMEOUT_MS,
    "connecting",
  );
  try {
    if (isOneWay && !session.sendOneWay) {
      return "this transport does not measure one-way sends";
    }
    return isOneWay
      ? await oneWay(session, bytes)
      : await roundTrips(session, bytes);
  } finally {
    await withTimeout(session.close(), CONNECT_TIMEOUT_MS, "closing");
  }
}

function show(samples: number[] | string, key: SizeKey): string {
  if (typeof samples === "string") return `— (${samples})`;
  if (samples.length === 0) return "no samples";
  const { median, p99 } = summarize(samples);
  return key === "oneWay1MiB"
    ? `${median.toFixed(0)} MiB/s`
    : `${median.toFixed(1)} µs (p99 ${p99.toFixed(1)})`;
}

const machine = machineFacts();
const keys = Object.keys(SIZES) as SizeKey[];
const cells = selected.length * keys.length * plan.rounds;
console.error(
  `ipckit benchmark${
    quick ? " (quick)" : ""
  }: ${selected.length} transports; ` +
    `per cell ${plan.roundTrips} round trips (${perRound.warmUp} warm-up per ` +
    `connection) or ${plan.samples} samples of ${plan.count} × 1 MiB one way, ` +
    `in ${plan.rounds} pass${plan.rounds > 1 ? "es" : ""} over every transport`,
);
const collected = new Map<string, number[]>();
const notes = new Map<string, string>();
const failed = new Map<Transport, string>();
let done = 0;
/** The cell being measured, for the progress bar. */
let current = "";
/** One bar on a terminal; plain lines, one per cell, in a log or a pipe. */
const bar = Deno.stderr.isTerminal()
  ? new ProgressBar({
    max: cells,
    barLength: 24,
    formatter: ({ styledTime, progressBar, value, max, time }) => {
      const left = value === 0
        ? ""
        : value >= max
        ? ", done"
        : `, ${_timeLeft((time / value) * (max - value))} left`;
      return `[${styledTime}] [${progressBar}] ${value}/${max}${left}: ${current}`;
    },
  })
  : undefined;

/** A rough estimate: cells differ, so minutes are all it can honestly say. */
function _timeLeft(ms: number): string {
  const minutes = Math.round(ms / 60_000);
  return minutes < 1 ? "under a minute" : `about ${minutes} min`;
}

for (let round = 1; round <= plan.rounds; round++) {
  for (const transport of selected) {
    for (const key of keys) {
      done++;
      const id = `${transport.name}\0${key}`;
      if (notes.has(id)) {
        if (bar) bar.value = done;
        continue;
      }
      current = `${
        plan.rounds > 1 ? `pass ${round}: ` : ""
      }${transport.name}, ${SIZES[key].label}`;
      const started = performance.now();
      let pass: number[] | string;
      try {
        pass = failed.get(transport) ?? await measurePass(transport, key);
      } catch (error) {
        pass = error instanceof Error ? error.message : String(error);
        failed.set(transport, pass);
      }
      if (typeof pass === "string") notes.set(id, pass);
      else collected.set(id, [...(collected.get(id) ?? []), ...pass]);
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      if (bar) bar.value = done;
      else {
        console.error(
          `[${String(done).padStart(3)}/${cells}] ${current}: ${
            show(pass, key)
          } in ${seconds} s`,
        );
      }
    }
  }
}
await bar?.stop();

function cellOf(transport: Transport, key: SizeKey): Cell {
  const id = `${transport.name}\0${key}`;
  const note = notes.get(id);
  if (note) return { note };
  const samples = collected.get(id) ?? [];
  if (samples.length === 0) return { note: "no samples" };
  const wanted = key === "oneWay1MiB" ? plan.samples : plan.roundTrips;
  return {
    ...summarize(samples),
    ...(samples.length < wanted
      ? { note: `stopped early: ${samples.length} of ${wanted} samples` }
      : {}),
  };
}

const rows: Row[] = selected.map((transport) => ({
  transport: transport.name,
  kind: transport.kind,
  ...(transport.versus ? { versus: transport.versus } : {}),
  rt64: cellOf(transport, "rt64"),
  rt4KiB: cellOf(transport, "rt4KiB"),
  oneWay1MiB: cellOf(transport, "oneWay1MiB"),
}));

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
