/**
 * Renders the driver's results: a terminal table, bench/results.json,
 * bench/results.md and the two charts (bench/_charts.ts).
 *
 * @module
 */

import { cpuChart, latencyChart } from "./_charts.ts";
import {
  byName,
  floorRowOf,
  limitRowOf,
  ordered,
  ratio,
  type Results,
  type Row,
  type ScalingRow,
  type SizeKey,
  SIZES,
  type SweepRow,
} from "./_results.ts";

const fixed = (value: number | undefined, digits: number) =>
  value === undefined ? "—" : value.toFixed(digits);
const times = (value: number | undefined) =>
  value === undefined ? "—" : `${value.toFixed(2)}×`;
/** A number with thousands separators. */
const grouped = (value: number | undefined, digits = 0) =>
  value === undefined ? "—" : value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });

/** The sync row of an async one ("…, async" -> "…, sync"), if measured. */
function syncOf(rows: readonly Row[], row: Row): Row | undefined {
  if (!row.transport.endsWith(", async")) return undefined;
  return byName(rows, row.transport.replace(/, async$/, ", sync"));
}

/** Round trips: ipckit ÷ C. One way: C's rate ÷ ipckit's. Above 1: C is faster. */
export function limitRatios(rows: readonly Row[], row: Row): {
  rt64?: number;
  rt4KiB?: number;
  oneWay1MiB?: number;
  floor64?: number;
} {
  const c = limitRowOf(rows, row);
  const floor = floorRowOf(rows, row);
  return {
    rt64: ratio(row.rt64.median, c?.rt64.median),
    rt4KiB: ratio(row.rt4KiB.median, c?.rt4KiB.median),
    oneWay1MiB: ratio(c?.oneWay1MiB.median, row.oneWay1MiB.median),
    floor64: ratio(row.rt64.median, floor?.rt64.median),
  };
}

/** Percent of a core the idle peer used. */
export function idlePercent(row: Row): number | undefined {
  const idle = row.idle;
  return idle?.cpuMillis !== undefined && idle.seconds
    ? idle.cpuMillis / 10 / idle.seconds
    : undefined;
}

function _label(row: Row): string {
  return (row.kind === "alternative" ? "  ↳ " : "") + row.transport;
}

/** The table printed at the end of a run. */
export function terminalTable(results: Results): string {
  const rows = ordered(results.rows);
  if (rows.length === 0) return "(no rows)";
  const width = Math.max(...rows.map((row) => _label(row).length)) + 2;
  const head = [
    "transport".padEnd(width),
    "64 B µs".padStart(9),
    "p99".padStart(8),
    "CPU µs".padStart(8),
    "4 KiB µs".padStart(9),
    "CPU µs".padStart(8),
    "1 MiB MiB/s".padStart(12),
    "idle %".padStart(8),
    "  ÷ C (64 B)",
  ].join("");
  const lines = [head, "-".repeat(head.length)];
  for (const row of rows) {
    lines.push(
      [
        _label(row).padEnd(width),
        fixed(row.rt64.median, 1).padStart(9),
        fixed(row.rt64.p99, 1).padStart(8),
        fixed(row.rt64.cpuMicros, 1).padStart(8),
        fixed(row.rt4KiB.median, 1).padStart(9),
        fixed(row.rt4KiB.cpuMicros, 1).padStart(8),
        fixed(row.oneWay1MiB.median, 0).padStart(12),
        fixed(idlePercent(row), 2).padStart(8),
        "  " + times(limitRatios(results.rows, row).rt64),
      ].join(""),
    );
  }
  const notes = _notes(results);
  if (notes.length) lines.push("", ...notes.map((note) => `- ${note}`));
  return lines.join("\n");
}

function _notes(results: Results): string[] {
  const notes: string[] = [...(results.notes ?? [])];
  for (const row of ordered(results.rows)) {
    const said = new Set<string>();
    const cells: [string, string | undefined][] = [
      ...(Object.keys(SIZES) as SizeKey[]).map((k) =>
        [SIZES[k].label, row[k].note] as [string, string | undefined]
      ),
      ["idle", row.idle?.note],
    ];
    for (const [, note] of cells) {
      if (!note || said.has(note)) continue;
      said.add(note);
      const where = cells.filter(([, n]) => n === note).map(([label]) => label)
        .join(", ");
      notes.push(`${row.transport} (${where}): ${note}`);
    }
  }
  return notes;
}

function _machineLine(results: Results): string {
  const m = results.machine;
  const mq = m.mqueue
    ? `; message queues: msgsize_max ${m.mqueue.msgsizeMax} B, msg_max ${m.mqueue.msgMax}`
    : "";
  return `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Linux ${m.kernel} (${m.os}), Deno ${m.deno} (V8 ${m.v8})${mq}`;
}

function _name(row: Row): string {
  if (row.kind === "alternative") return `↳ *${row.transport}* (alternative)`;
  if (row.kind === "limit") return row.transport;
  return `**${row.transport}**`;
}

/** "64 B", "4 KiB", "4 MiB". */
export const sizeLabel = (bytes: number): string =>
  bytes >= 1 << 20
    ? `${bytes / (1 << 20)} MiB`
    : bytes >= 1024
    ? `${bytes / 1024} KiB`
    : `${bytes} B`;

function _method(results: Results): string {
  const { plan } = results;
  return [
    `Method: the run makes ${plan.rounds} pass${
      plan.rounds > 1 ? "es" : ""
    } over every row and pools each cell's samples, so a change in the ` +
    `machine's load hits every row alike; each pass of a cell starts a ` +
    `fresh peer process. A round trip sends a message and waits for the ` +
    `echo: ${plan.roundTrips} sequential round trips are timed per cell, ` +
    `after ${plan.warmUp} untimed ones per connection (median and p99, µs). ` +
    `One way: ${plan.samples} timed bursts of ${plan.count} messages of ` +
    `1 MiB, each pass after one untimed burst; the peer copies each message ` +
    `out and acknowledges it; the median burst rate is shown in MiB/s.`,
    "",
    "**The limit.** Every mechanism is also measured in C (bench/c/, " +
    "compiled by the run with the system's `cc`): a client and the server " +
    "it forks, both C, in two waiting policies. *Busy-wait* never sleeps: " +
    "it retries a non-blocking call, or re-reads a word of shared memory, " +
    "until it succeeds, at the price of a core per waiting process. " +
    "*Blocking* sleeps in the kernel (read, mq_receive, sem_wait, futex), " +
    "measured twice: with the client and the server pinned to one CPU " +
    "(the limit other rows are compared with: each wake-up is a context " +
    "switch) and to two. On a virtual machine the two differ: across CPUs " +
    "the kernel may first have to bring the other virtual CPU out of idle; " +
    "left to the scheduler, a blocking pair flips between the two from run " +
    "to run. " +
    "Busy-waiting C is left to the scheduler, which spreads two spinners " +
    "over two CPUs. " +
    "Each ipckit row is compared with the C row of the same mechanism and " +
    "the same policy: rows that spin before they sleep (ipckit's `spin`, " +
    "50 µs by default) with busy-wait, rows that sleep at once (`spin: 0`, " +
    "and every descriptor Deno's own runtime waits on) with blocking.",
    "",
    "**The CPU price.** Each cell also reports the CPU time (user + " +
    "system) of both processes during its timed part, read from the " +
    "kernel's process CPU clocks (nanosecond resolution; every thread, " +
    "Deno's included), divided by the round trips (µs per round trip) or " +
    "by the MiB moved; *cores* is that time over the wall time. The CPU " +
    "per round trip goes with the mean time, not the median: on a shared " +
    "machine a few round trips that wait for a descheduled peer (a " +
    "busy-waiting one above all) weigh in the mean and the CPU. *Idle* is " +
    `the CPU a peer waiting for a message uses over ${
      plan.idleSeconds ?? 10
    } s in which none comes, after a warm-up.`,
    "",
    `**Concurrency** runs ${(plan.pairs ?? []).join(", ")} pairs at once for ${
      plan.concurrentSeconds ?? "—"
    } s each, 64-byte ` +
    "round trips: ipckit rows as one Deno process with that many sessions " +
    "(one event loop, one peer process per session), C rows as that many " +
    "client processes, each with its own server. **Throughput** sends " +
    `bursts one way at each size (${plan.sizeSamples ?? "—"} timed bursts ` +
    "of about 4 MiB, 4 to 4096 messages, after an untimed one).",
  ].join("\n");
}

/** bench/results.md. */
export function markdown(results: Results): string {
  const rows = ordered(results.rows);
  const out: string[] = [];
  out.push(
    "# ipckit benchmark results",
    "",
    `Generated by \`${results.command}\` on ${results.date.slice(0, 10)} ` +
      `(${results.date}).`,
    "",
    `Machine: ${_machineLine(results)}. The machine is shared and noisy: ` +
      "compare rows of this run with each other, not with another run.",
    "",
    _method(results),
    "",
    "![64-byte round trip per mechanism beside its C limit, log scale](results.svg)",
    "",
    "![CPU per round trip and CPU of an idle waiter](results-cpu.svg)",
    "",
    "## Round trips and their CPU price",
    "",
    "| transport | 64 B median µs | 64 B p99 µs | 64 B mean µs | 64 B CPU µs | cores | 4 KiB median µs | 4 KiB p99 µs | 4 KiB CPU µs |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  );
  for (const row of rows) {
    out.push(
      `| ${_name(row)} | ${fixed(row.rt64.median, 1)} | ${
        fixed(row.rt64.p99, 1)
      } | ${fixed(row.rt64.mean, 1)} | ${fixed(row.rt64.cpuMicros, 1)} | ${
        fixed(row.rt64.cores, 2)
      } | ${fixed(row.rt4KiB.median, 1)} | ${fixed(row.rt4KiB.p99, 1)} | ${
        fixed(row.rt4KiB.cpuMicros, 1)
      } |`,
    );
  }
  out.push(
    "",
    "## ipckit against the limit",
    "",
    "Each row's time ÷ its C row's (the same mechanism, the same waiting); " +
      "for one way, C's rate ÷ the row's. 1.00× is the limit; above it, the " +
      "price of Deno and ipckit. The last column divides by the mechanism's " +
      "busy-waiting C row, the fastest it can go.",
    "",
    "| row | its C row | 64 B | 4 KiB | 1 MiB one way | 64 B ÷ C busy-wait |",
    "| --- | --- | ---: | ---: | ---: | ---: |",
  );
  for (const row of rows) {
    if (row.kind === "limit") continue;
    const c = limitRowOf(results.rows, row);
    const r = limitRatios(results.rows, row);
    out.push(
      `| ${_name(row)} | ${c?.transport ?? "—"} | ${times(r.rt64)} | ${
        times(r.rt4KiB)
      } | ${times(r.oneWay1MiB)} | ${times(r.floor64)} |`,
    );
  }
  out.push(
    "",
    "## One way and idle",
    "",
    `| transport | 1 MiB one way, MiB/s | CPU ms per MiB | idle: waiting peer's CPU, ms over ${
      results.plan.idleSeconds ?? 10
    } s | % of a core |`,
    "| --- | ---: | ---: | ---: | ---: |",
  );
  for (const row of rows) {
    const perMiB = row.oneWay1MiB.cpuMicros;
    out.push(
      `| ${_name(row)} | ${grouped(row.oneWay1MiB.median)} | ${
        fixed(perMiB === undefined ? undefined : perMiB / 1000, 2)
      } | ${fixed(row.idle?.cpuMillis, 1)} | ${fixed(idlePercent(row), 2)} |`,
    );
  }
  out.push(
    "",
    "## ipckit against the alternatives",
    "",
    "Round trips: the alternative's median time ÷ ipckit's (above 1: ipckit " +
      "is faster). Throughput: ipckit's rate ÷ the alternative's (above 1: " +
      "ipckit is faster).",
    "",
    "| alternative | ipckit row | 64 B | 4 KiB | 1 MiB one way |",
    "| --- | --- | ---: | ---: | ---: |",
  );
  for (const row of rows) {
    const ipckit = row.versus ? byName(rows, row.versus) : undefined;
    if (!ipckit) continue;
    out.push(
      `| ${row.transport} | ${ipckit.transport} | ${
        times(ratio(row.rt64.median, ipckit.rt64.median))
      } | ${times(ratio(row.rt4KiB.median, ipckit.rt4KiB.median))} | ${
        times(ratio(ipckit.oneWay1MiB.median, row.oneWay1MiB.median))
      } |`,
    );
  }
  const pairs = rows.filter((row) => syncOf(rows, row));
  if (pairs.length) {
    out.push(
      "",
      "## Crossing the event loop: async ÷ sync",
      "",
      "| mechanism | 64 B async ÷ sync | 4 KiB async ÷ sync | 1 MiB sync ÷ async rate |",
      "| --- | ---: | ---: | ---: |",
    );
    for (const row of pairs) {
      const sync = syncOf(rows, row)!;
      out.push(
        `| ${row.transport.replace(/, async$/, "")} | ${
          times(ratio(row.rt64.median, sync.rt64.median))
        } | ${times(ratio(row.rt4KiB.median, sync.rt4KiB.median))} | ${
          times(ratio(sync.oneWay1MiB.median, row.oneWay1MiB.median))
        } |`,
      );
    }
  }
  out.push(..._scalingTable(results.concurrency ?? []));
  out.push(..._sweepTables(results.throughput ?? []));
  const notes = _notes(results);
  if (notes.length) {
    out.push("", "## Cells not measured", "", ...notes.map((n) => `- ${n}`));
  }
  return out.join("\n") + "\n";
}

function _scalingTable(rows: readonly ScalingRow[]): string[] {
  if (rows.length === 0) return [];
  const counts = [...new Set(rows.flatMap((r) => r.cells.map((c) => c.pairs)))]
    .sort((a, b) => a - b);
  const out = [
    "",
    "## How cost grows with the number of pairs",
    "",
    "Each cell: median / p99 µs per 64-byte round trip · round trips per " +
    "second, all pairs together · CPU µs (every process) per round trip.",
    "",
    `| row | ${
      counts.map((n) => `${n} pair${n > 1 ? "s" : ""}`).join(" | ")
    } |`,
    `| --- |${counts.map(() => " ---: |").join("")}`,
  ];
  for (const row of rows) {
    const cells = counts.map((n) => {
      const cell = row.cells.find((c) => c.pairs === n);
      if (!cell) return "—";
      if (cell.median === undefined) return `— (${cell.note ?? "no samples"})`;
      return `${fixed(cell.median, 1)} / ${fixed(cell.p99, 0)} µs · ${
        grouped(cell.rate)
      }/s · ${fixed(cell.cpuMicros, 1)} µs CPU`;
    });
    const name = row.kind === "limit" ? row.transport : `**${row.transport}**`;
    out.push(`| ${name} | ${cells.join(" | ")} |`);
  }
  return out;
}

function _sweepTables(rows: readonly SweepRow[]): string[] {
  if (rows.length === 0) return [];
  const sizes = [...new Set(rows.flatMap((r) => r.cells.map((c) => c.bytes)))]
    .sort((a, b) => a - b);
  const head = [
    `| row | ${sizes.map(sizeLabel).join(" | ")} |`,
    `| --- |${sizes.map(() => " ---: |").join("")}`,
  ];
  const table = (value: (bytes: number, row: SweepRow) => string) =>
    rows.map((row) => {
      const name = row.kind === "limit"
        ? row.transport
        : `**${row.transport}**`;
      return `| ${name} | ${sizes.map((b) => value(b, row)).join(" | ")} |`;
    });
  const cellAt = (row: SweepRow, bytes: number) =>
    row.cells.find((c) => c.bytes === bytes);
  return [
    "",
    "## Throughput against message size",
    "",
    "One way, median MiB/s (the peer acknowledges every message).",
    "",
    ...head,
    ...table((bytes, row) => grouped(cellAt(row, bytes)?.median)),
    "",
    "CPU ms (both processes) per MiB moved, at each size.",
    "",
    ...head,
    ...table((bytes, row) => {
      const cpu = cellAt(row, bytes)?.cpuMicros;
      return fixed(cpu === undefined ? undefined : cpu / 1000, 2);
    }),
  ];
}

/** Writes results.json, results.md, results.svg and results-cpu.svg into `dir`. */
export async function writeReports(
  results: Results,
  dir: string,
): Promise<string[]> {
  const base = dir.endsWith("/") ? dir : `${dir}/`;
  await Deno.mkdir(base, { recursive: true });
  const files: [string, string][] = [
    ["results.json", JSON.stringify(results, null, 2) + "\n"],
    ["results.md", markdown(results)],
    ["results.svg", latencyChart(results)],
    ["results-cpu.svg", cpuChart(results)],
  ];
  for (const [name, text] of files) {
    await Deno.writeTextFile(base + name, text);
  }
  return files.map(([name]) => base + name);
}

/**
 * Why the reports cannot be written into `dir`, or undefined when they can.
 * It tries (a file made and removed) rather than reading modes, so the
 * driver can ask before a run of many minutes instead of losing it at the end.
 */
export async function whyUnwritable(dir: string): Promise<string | undefined> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(dir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return `it does not exist (create it with mkdir -p ${dir})`;
    }
    return (error as Error).message;
  }
  if (!info.isDirectory) return "it is not a directory";
  try {
    await Deno.remove(
      await Deno.makeTempFile({ dir, prefix: ".ipckit-bench-write-check-" }),
    );
  } catch (error) {
    return (error as Error).message;
  }
  return undefined;
}
