/**
 * The cross-process benchmark driver: every ipckit mechanism, what a Deno
 * user would pick instead, and the same mechanisms in C (the limit), in one
 * run against peer processes.
 *
 * Sections:
 * - cells: the round trip of a 64-byte and of a 4 KiB message (median and
 *   p99 over many sequential round trips after a warm-up) and one-way
 *   throughput of 1 MiB messages, each with its CPU price: the CPU time of
 *   both processes per round trip (or per MiB);
 * - idle: the CPU a waiting peer uses while nothing arrives;
 * - concurrency: round trips with 1, 4, 16 and 64 pairs at once;
 * - throughput: one way at every size from 64 B to 4 MiB, for the rows that
 *   say `throughput: true` (the fastest mechanisms).
 *
 *   deno task bench:driver               full run (10,000 round trips per cell)
 *   deno task bench:driver --quick       under a minute, for development
 *   deno task bench:driver --only=unix   rows whose name contains "unix"
 *                                        (or the one row with exactly that name);
 *                                        several, separated by "|": rows any selects
 *   deno task bench:driver --sections=cells,idle,concurrency,throughput
 *   deno task bench:driver --render=bench/results.json   redraw .md/.svg
 *   deno task bench:driver --round-trips=100000   more per cell (profiling)
 *   deno task bench:driver --cells=rt64  only some cells: rt64, rt4KiB, oneWay1MiB
 *
 * To see where the time goes, run it under `deno run --cpu-prof` or
 * `strace -c -f`, with IPCKIT_BENCH_PEER_FLAGS="--cpu-prof
 * --cpu-prof-dir=DIR" for the peers.
 *
 * Shows one progress bar on a terminal (plain lines otherwise), prints a
 * table, and writes bench/results.json, bench/results.md, bench/results.svg
 * and bench/results-cpu.svg (the full run only, unless --out says where).
 * Where the results go is checked before anything is measured: a run takes
 * minutes, and a directory that is missing or not writable would lose it.
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import { machineFacts } from "./_machine.ts";
import {
  Pool,
  timeConcurrent,
  timeIdle,
  timeOneWay,
  timeRoundTrips,
} from "./_measure.ts";
import { Progress, type Step } from "./_progress.ts";
import {
  sizeLabel,
  terminalTable,
  whyUnwritable,
  writeReports,
} from "./_report.ts";
import {
  type Cell,
  type IdleCell,
  type Results,
  type Row,
  type ScalingRow,
  type SizeKey,
  SIZES,
  type SweepRow,
} from "./_results.ts";
import { summarize } from "./_stats.ts";
import type {
  Measurement,
  Plan,
  Session,
  Transport,
} from "./transports/_transport.ts";
import { cTransports, haveCompiler, removeCPrograms } from "./transports/c.ts";
import { fifoTransports } from "./transports/fifo.ts";
import { messageQueueTransports } from "./transports/message_queue.ts";
import { natsTransports } from "./transports/nats.ts";
import { pipeTransports } from "./transports/pipe.ts";
import { rpcTransports } from "./transports/rpc.ts";
import { sharedMemoryTransports } from "./transports/shared_memory.ts";
import { sharedMemorySpinTransports } from "./transports/shared_memory_spin.ts";
import { shmChannelTransports } from "./transports/shm_channel.ts";
import { socketTransports } from "./transports/socket.ts";
import { sysvTransports } from "./transports/sysv.ts";
import { zeromqTransports } from "./transports/zeromq.ts";
import { ensureZeromq } from "./zeromq/install.ts";

/** Every row, in table order; an alternative goes after the row it faces. */
const TRANSPORTS: Transport[] = [
  ...sharedMemoryTransports,
  ...sharedMemorySpinTransports,
  ...shmChannelTransports,
  ...messageQueueTransports,
  ...fifoTransports,
  ...pipeTransports,
  ...socketTransports,
  ...sysvTransports,
  ...zeromqTransports,
  ...rpcTransports,
  ...natsTransports,
  ...cTransports,
];

const SECTIONS = ["cells", "idle", "concurrency", "throughput"] as const;
type Section = typeof SECTIONS[number];

const values = parseArgs(Deno.args, {
  boolean: ["quick", "no-install"],
  string: ["only", "out", "render", "sections", "round-trips", "cells"],
  default: { sections: SECTIONS.join(",") },
  unknown: (arg: string, key?: string) => {
    if (key === undefined) return true;
    console.error(`bench:driver: unknown option "${arg}"`);
    Deno.exit(2);
  },
});
if (values.render) {
  // Re-renders the reports from a results.json, measuring nothing.
  const saved: Results = JSON.parse(await Deno.readTextFile(values.render));
  const dir = new URL(".", `file://${await Deno.realPath(values.render)}`);
  console.error(
    `wrote ${(await writeReports(saved, dir.pathname)).join(", ")}`,
  );
  Deno.exit(0);
}
const sections = new Set(values.sections.split(",") as Section[]);
for (const section of sections) {
  if (!SECTIONS.includes(section)) {
    throw new TypeError(
      `Cannot run the benchmark: unknown section "${section}", expected some of ${
        SECTIONS.join(", ")
      }`,
    );
  }
}

const quick = values.quick;
const KiB = 1024, MiB = 1 << 20;
/**
 * What the run measures. A full run splits each cell over `rounds` passes
 * through every transport, so a change in the shared machine's load between
 * minutes hits every row alike instead of whichever rows ran at that moment.
 */
const plan = {
  rounds: quick ? 1 : 5,
  roundTrips: Number(values["round-trips"] ?? (quick ? 1_000 : 10_000)),
  warmUp: quick ? 100 : 500,
  samples: quick ? 3 : 15,
  count: quick ? 8 : 32,
  idleSeconds: quick ? 0.5 : 10,
  pairs: quick ? [1, 8] : [1, 4, 16, 64],
  concurrentSeconds: quick ? 0.3 : 3,
  sizes: quick
    ? [64, 16 * KiB, 4 * MiB]
    : [64, 256, KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, MiB, 4 * MiB],
  sizeSamples: quick ? 2 : 5,
};
/** What one pass asks of each cell (warm-up is per connection). */
const perRound = {
  roundTrips: plan.roundTrips / plan.rounds,
  warmUp: plan.warmUp,
  samples: plan.samples / plan.rounds,
  count: plan.count,
};
/** A one-way burst in the throughput section: about 4 MiB, 4 to 4096 messages (1,024 when quick). */
const burstCount = (bytes: number) =>
  Math.min(quick ? 1024 : 4096, Math.max(4, Math.ceil((4 * MiB) / bytes)));
/** No cell may run longer than this per pass; a slower one stops early. */
const CELL_BUDGET_MS = quick ? 20_000 : 60_000;
const CONNECT_TIMEOUT_MS = 30_000;
/** Sessions opened at once when a concurrency cell starts its peers. */
const CONNECT_BATCH = 8;

const only = values.only?.toLowerCase();
// Several filters, separated by "|" (row names hold commas), select the rows any of them selects
// (an ipckit row and the C row it is compared with, in one run).
const _select = (filter: string) => {
  const exact = TRANSPORTS.filter((t) => t.name.toLowerCase() === filter);
  return exact.length
    ? exact
    : TRANSPORTS.filter((t) => t.name.toLowerCase().includes(filter));
};
const matching = only
  ? TRANSPORTS.filter((t) =>
    only.split("|").map((filter) => filter.trim()).filter(Boolean).some((
      filter,
    ) => _select(filter).includes(t))
  )
  : TRANSPORTS;
// A quick run leaves out the alternatives that run in their own process
// (npm:zeromq: an install and a 10 s timeout) unless --only names them.
const selected = quick && !only
  ? matching.filter((t) => !(t.kind === "alternative" && t.measureElsewhere))
  : matching;
const outBase = values.out ??
  (quick || values.only || values.cells || values["round-trips"] ||
      sections.size < SECTIONS.length
    ? undefined
    : new URL("./", import.meta.url).pathname);
if (outBase !== undefined) {
  const why = await whyUnwritable(outBase);
  if (why) {
    console.error(
      `bench:driver: Cannot write the results to "${outBase}": ${why}`,
    );
    Deno.exit(2);
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

/** Measures `plan` elsewhere; a string says why not. */
async function elsewhere(
  transport: Transport,
  plan: Plan,
): Promise<Measurement | string> {
  const result = await transport.measureElsewhere!(plan);
  return Array.isArray(result) ? { samples: result } : result;
}

/** Connects, runs `measure` on the session, and closes it. */
async function withSession(
  transport: Transport,
  bytes: number,
  measure: (session: Session) => Promise<Measurement | string>,
  oneWay = false,
): Promise<Measurement | string> {
  const session = await withTimeout(
    transport.connect(bytes, oneWay ? { oneWay } : undefined),
    CONNECT_TIMEOUT_MS,
    "connecting",
  );
  try {
    return await measure(session);
  } finally {
    await withTimeout(session.close(), CONNECT_TIMEOUT_MS, "closing");
  }
}

/** One pass of one main-table cell. */
function measureCell(
  transport: Transport,
  key: SizeKey,
): Promise<Measurement | string> {
  const bytes = SIZES[key].bytes;
  const reason = transport.unsupported?.(bytes);
  if (reason) return Promise.resolve(reason);
  if (transport.measureElsewhere) {
    return elsewhere(transport, { bytes, ...perRound });
  }
  return withSession(transport, bytes, (session) => {
    if (key !== "oneWay1MiB") {
      return timeRoundTrips(session, bytes, {
        ...perRound,
        budgetMs: CELL_BUDGET_MS,
      });
    }
    if (!session.sendOneWay) {
      return Promise.resolve("this transport does not measure one-way sends");
    }
    return timeOneWay(session, bytes, {
      ...perRound,
      budgetMs: CELL_BUDGET_MS,
    });
  });
}

function measureIdle(transport: Transport): Promise<Measurement | string> {
  if (transport.measureElsewhere) {
    return elsewhere(transport, {
      bytes: 64,
      ...perRound,
      idleSeconds: plan.idleSeconds,
    });
  }
  return withSession(
    transport,
    64,
    (session) =>
      timeIdle(session, { warmUp: plan.warmUp, seconds: plan.idleSeconds }),
  );
}

async function measureConcurrent(
  transport: Transport,
  pairs: number,
): Promise<Measurement | string> {
  const warmUp = Math.min(plan.warmUp, 100);
  if (transport.measureElsewhere) {
    return elsewhere(transport, {
      bytes: 64,
      ...perRound,
      warmUp,
      pairs,
      seconds: plan.concurrentSeconds,
    });
  }
  const sessions: Session[] = [];
  try {
    while (sessions.length < pairs) {
      const batch = Math.min(CONNECT_BATCH, pairs - sessions.length);
      const opened = await Promise.allSettled(
        Array.from(
          { length: batch },
          () =>
            withTimeout(
              transport.connect(64),
              CONNECT_TIMEOUT_MS,
              "connecting",
            ),
        ),
      );
      for (const result of opened) {
        if (result.status === "fulfilled") sessions.push(result.value);
      }
      const failure = opened.find((r) => r.status === "rejected");
      if (failure) throw (failure as PromiseRejectedResult).reason;
    }
    return await timeConcurrent(sessions, {
      warmUp,
      seconds: plan.concurrentSeconds,
    });
  } finally {
    await Promise.allSettled(
      sessions.map((s) =>
        withTimeout(s.close(), CONNECT_TIMEOUT_MS, "closing")
      ),
    );
  }
}

function measureSize(
  transport: Transport,
  bytes: number,
): Promise<Measurement | string> {
  const reason = transport.unsupported?.(bytes);
  if (reason) return Promise.resolve(reason);
  const burst = {
    samples: plan.sizeSamples,
    count: burstCount(bytes),
  };
  if (transport.measureElsewhere) {
    return elsewhere(transport, {
      bytes,
      ...perRound,
      ...burst,
      oneWay: true,
    });
  }
  return withSession(
    transport,
    bytes,
    (session) =>
      session.sendOneWay
        ? timeOneWay(session, bytes, { ...burst, budgetMs: CELL_BUDGET_MS })
        : Promise.resolve("this transport does not measure one-way sends"),
    true,
  );
}

function show(result: Measurement | string, unit: "µs" | "MiB/s"): string {
  if (typeof result === "string") return `— (${result})`;
  const stats = result.summary ??
    (result.samples?.length ? summarize(result.samples) : undefined);
  const cpu = result.cpuNanos !== undefined && result.operations
    ? `, CPU ${(result.cpuNanos / 1000 / result.operations).toFixed(1)} µs/op`
    : "";
  if (!stats) {
    return result.peerCpuNanos !== undefined
      ? `peer CPU ${(result.peerCpuNanos / 1e6).toFixed(1)} ms`
      : "no samples";
  }
  return unit === "MiB/s"
    ? `${stats.median.toFixed(0)} MiB/s${cpu}`
    : `${stats.median.toFixed(1)} µs (p99 ${stats.p99.toFixed(1)})${cpu}`;
}

// ---------------------------------------------------------------- the plan

const keys = (values.cells?.split(",") ?? Object.keys(SIZES)) as SizeKey[];
for (const key of keys) {
  if (!(key in SIZES)) {
    throw new TypeError(
      `Cannot run the benchmark: unknown cell "${key}", expected some of ${
        Object.keys(SIZES).join(", ")
      }`,
    );
  }
}
// Idle: rows measured in the driver, and C rows (whose program has an idle
// mode); a quick run measures ipckit's rows only.
const idleRows = selected.filter((t) =>
  quick ? t.kind === "ipckit" : !t.measureElsewhere || t.kind === "limit"
);
const concurrentRows = selected.filter((t) => t.concurrent);
const throughputRows = selected.filter((t) => t.throughput);
const isC = (t: Transport) => t.kind === "limit";

interface Work extends Step {
  run: () => Promise<string>;
}
const work: Work[] = [];
const runNotes: string[] = [];

if (selected.some(isC) && !(await haveCompiler())) {
  runNotes.push(
    "No C compiler (`cc`, or $CC) on this machine: the C rows were skipped. " +
      "Install gcc (`apt-get install gcc`) to measure them.",
  );
}
const cFailed = () => runNotes.length > 0;

// Cells: every pass through every transport, pooled per cell.
const cellPools = new Map<string, Pool>();
const cellNotes = new Map<string, string>();
const failed = new Map<Transport, string>();
for (let round = 1; round <= plan.rounds; round++) {
  for (const transport of sections.has("cells") ? selected : []) {
    for (const key of keys) {
      const id = `${transport.name}\0${key}`;
      work.push({
        id: `cell ${id}`,
        label: `${
          plan.rounds > 1 ? `pass ${round}/${plan.rounds} · ` : ""
        }${transport.name} · ${SIZES[key].label}`,
        estimateSeconds: isC(transport)
          ? 0.3
          : key === "oneWay1MiB"
          ? 1
          : 0.5 + perRound.roundTrips * 25e-6,
        run: async () => {
          if (cellNotes.has(id)) return cellNotes.get(id)!;
          let result: Measurement | string;
          try {
            result = failed.get(transport) ??
              (isC(transport) && cFailed()
                ? "no C compiler"
                : await measureCell(transport, key));
          } catch (error) {
            result = error instanceof Error ? error.message : String(error);
            failed.set(transport, result);
          }
          if (typeof result === "string") cellNotes.set(id, result);
          else {
            const pool = cellPools.get(id) ?? new Pool();
            pool.add(result);
            cellPools.set(id, pool);
          }
          return show(result, key === "oneWay1MiB" ? "MiB/s" : "µs");
        },
      });
    }
  }
}

// Idle: the CPU of a peer that waits for a message that does not come.
const idleCells = new Map<string, IdleCell>();
for (const transport of sections.has("idle") ? idleRows : []) {
  work.push({
    id: `idle ${transport.name}`,
    label: `idle ${plan.idleSeconds} s · ${transport.name}`,
    estimateSeconds: plan.idleSeconds + (isC(transport) ? 0.2 : 1),
    run: async () => {
      let result: Measurement | string;
      try {
        result = isC(transport) && cFailed()
          ? "no C compiler"
          : failed.get(transport) ?? await measureIdle(transport);
      } catch (error) {
        result = error instanceof Error ? error.message : String(error);
      }
      if (typeof result === "string") {
        idleCells.set(transport.name, { note: result });
      } else if (result.peerCpuNanos === undefined) {
        idleCells.set(transport.name, {
          note: "the peer's CPU clock could not be read",
        });
      } else {
        idleCells.set(transport.name, {
          seconds: result.seconds,
          cpuMillis: result.peerCpuNanos / 1e6,
        });
      }
      return show(result, "µs");
    },
  });
}

// Concurrency: many pairs at once.
const scaling = new Map<string, Map<number, Measurement | string>>();
for (const transport of sections.has("concurrency") ? concurrentRows : []) {
  for (const pairs of plan.pairs) {
    work.push({
      id: `pairs ${transport.name} ${pairs}`,
      label: `${pairs} pair${pairs > 1 ? "s" : ""} at once · ${transport.name}`,
      estimateSeconds: plan.concurrentSeconds +
        (isC(transport) ? 0.3 : 0.5 + pairs * 0.25),
      run: async () => {
        let result: Measurement | string;
        try {
          result = isC(transport) && cFailed()
            ? "no C compiler"
            : await measureConcurrent(transport, pairs);
        } catch (error) {
          result = error instanceof Error ? error.message : String(error);
        }
        const cells = scaling.get(transport.name) ?? new Map();
        cells.set(pairs, result);
        scaling.set(transport.name, cells);
        return show(result, "µs");
      },
    });
  }
}

// Throughput against message size.
const sweep = new Map<string, Map<number, Measurement | string>>();
for (const transport of sections.has("throughput") ? throughputRows : []) {
  for (const bytes of plan.sizes) {
    work.push({
      id: `size ${transport.name} ${bytes}`,
      label: `one way, ${sizeLabel(bytes)} · ${transport.name}`,
      estimateSeconds: isC(transport) ? 0.3 : 1,
      run: async () => {
        let result: Measurement | string;
        try {
          result = isC(transport) && cFailed()
            ? "no C compiler"
            : await measureSize(transport, bytes);
        } catch (error) {
          result = error instanceof Error ? error.message : String(error);
        }
        const cells = sweep.get(transport.name) ?? new Map();
        cells.set(bytes, result);
        sweep.set(transport.name, cells);
        return show(result, "MiB/s");
      },
    });
  }
}

// ----------------------------------------------------------------- the run

console.error(
  `ipckit benchmark${quick ? " (quick)" : ""}: ${selected.length} rows, ` +
    `${work.length} cells (${[...sections].join(", ")}); per cell ` +
    `${plan.roundTrips} round trips or ${plan.samples} bursts of ` +
    `${plan.count} × 1 MiB, in ${plan.rounds} pass${
      plan.rounds > 1 ? "es" : ""
    } over every row`,
);
const progress = new Progress(work);
for (const note of runNotes) progress.note(note);
try {
  for (const step of work) {
    progress.start();
    progress.done(await step.run());
  }
} finally {
  await progress.stop();
  await removeCPrograms();
}

// ------------------------------------------------------------- the results

function cellOf(transport: Transport, key: SizeKey): Cell {
  const id = `${transport.name}\0${key}`;
  const note = cellNotes.get(id);
  if (note) return { note };
  const pool = cellPools.get(id);
  if (!pool) return { note: "not measured" };
  const cell = pool.cell(key === "oneWay1MiB" ? "MiB" : "round trip");
  const wanted = key === "oneWay1MiB" ? plan.samples : plan.roundTrips;
  if (pool.count < wanted) {
    cell.note = `stopped early: ${pool.count} of ${wanted} samples`;
  }
  return cell;
}

const rows: Row[] = selected.map((transport) => ({
  transport: transport.name,
  kind: transport.kind,
  ...(transport.versus ? { versus: transport.versus } : {}),
  ...(transport.limit ? { limit: transport.limit } : {}),
  rt64: cellOf(transport, "rt64"),
  rt4KiB: cellOf(transport, "rt4KiB"),
  oneWay1MiB: cellOf(transport, "oneWay1MiB"),
  ...(idleCells.has(transport.name)
    ? { idle: idleCells.get(transport.name) }
    : {}),
}));

function pooled(result: Measurement | string): Pool | string {
  if (typeof result === "string") return result;
  const pool = new Pool();
  pool.add(result);
  return pool;
}

const concurrency: ScalingRow[] = concurrentRows
  .filter((t) => scaling.has(t.name))
  .map((transport) => ({
    transport: transport.name,
    kind: transport.kind,
    ...(transport.limit ? { limit: transport.limit } : {}),
    cells: [...scaling.get(transport.name)!].map(([pairs, result]) => {
      const pool = pooled(result);
      if (typeof pool === "string") return { pairs, note: pool };
      const cell = pool.cell("round trip");
      return {
        pairs,
        ...(cell.median !== undefined
          ? { median: cell.median, p99: cell.p99 }
          : {}),
        ...(pool.seconds > 0 ? { rate: pool.operations / pool.seconds } : {}),
        ...(cell.cpuMicros !== undefined ? { cpuMicros: cell.cpuMicros } : {}),
        ...(cell.note ? { note: cell.note } : {}),
      };
    }),
  }));

const throughput: SweepRow[] = throughputRows
  .filter((t) => sweep.has(t.name))
  .map((transport) => ({
    transport: transport.name,
    kind: transport.kind,
    ...(transport.limit ? { limit: transport.limit } : {}),
    cells: [...sweep.get(transport.name)!].map(([bytes, result]) => {
      const pool = pooled(result);
      if (typeof pool === "string") return { bytes, note: pool };
      const cell = pool.cell("MiB");
      return {
        bytes,
        ...(cell.median !== undefined ? { median: cell.median } : {}),
        ...(cell.cpuMicros !== undefined ? { cpuMicros: cell.cpuMicros } : {}),
        ...(cell.note ? { note: cell.note } : {}),
      };
    }),
  }));

const results: Results = {
  date: new Date().toISOString(),
  command: `deno task bench:driver${Deno.args.length ? " " : ""}${
    Deno.args.join(" ")
  }`,
  machine: machineFacts(),
  plan,
  rows,
  concurrency,
  throughput,
  ...(runNotes.length ? { notes: runNotes } : {}),
};
console.log(terminalTable(results));
if (outBase) {
  const written = await writeReports(results, outBase);
  console.error(`wrote ${written.join(", ")}`);
} else {
  console.error(
    "(quick or partial run: no files written; --out=DIR to write them)",
  );
}
