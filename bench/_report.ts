/**
 * Renders the driver's results: a terminal table, bench/results.json,
 * bench/results.md and an SVG bar chart of the 64-byte round trips (log
 * scale, written as text).
 *
 * @module
 */

import type { Machine } from "./_machine.ts";

/** The measured sizes, by key. */
export const SIZES = {
  rt64: { bytes: 64, label: "64 B round trip" },
  rt4KiB: { bytes: 4096, label: "4 KiB round trip" },
  oneWay1MiB: { bytes: 1 << 20, label: "1 MiB one way" },
} as const;
/** A key of {@linkcode SIZES}. */
export type SizeKey = keyof typeof SIZES;

/** One measurement: µs for round trips, MiB/s for one way; or why not. */
export interface Cell {
  median?: number;
  p99?: number;
  count?: number;
  note?: string;
}

/** One transport's cells. */
export interface Row {
  transport: string;
  kind: "ipckit" | "alternative";
  versus?: string;
  rt64: Cell;
  rt4KiB: Cell;
  oneWay1MiB: Cell;
}

/** Everything a run produced. */
export interface Results {
  date: string;
  command: string;
  machine: Machine;
  plan: {
    rounds: number;
    roundTrips: number;
    warmUp: number;
    samples: number;
    count: number;
  };
  rows: Row[];
}

/** Rows in table order: each alternative right after the row it faces. */
export function ordered(rows: readonly Row[]): Row[] {
  const out = rows.filter((row) => !row.versus || !byName(rows, row.versus));
  for (const row of rows) {
    if (!row.versus || !byName(rows, row.versus)) continue;
    let at = out.findIndex((r) => r.transport === row.versus);
    while (out[at + 1]?.versus === row.versus) at++;
    out.splice(at + 1, 0, row);
  }
  return out;
}

function byName(rows: readonly Row[], name: string): Row | undefined {
  return rows.find((row) => row.transport === name);
}

/** The sync row of an async one ("…, async" -> "…, sync"), if measured. */
function syncOf(rows: readonly Row[], row: Row): Row | undefined {
  if (!row.transport.endsWith(", async")) return undefined;
  return byName(rows, row.transport.replace(/, async$/, ", sync"));
}

/** `a / b` when both are measured. */
function ratio(
  a: number | undefined,
  b: number | undefined,
): number | undefined {
  return a !== undefined && b !== undefined ? a / b : undefined;
}

const fixed = (value: number | undefined, digits: number) =>
  value === undefined ? "—" : value.toFixed(digits);
const times = (value: number | undefined) =>
  value === undefined ? "—" : `${value.toFixed(2)}×`;

/** What the last column says about a row: against ipckit, or async/sync. */
function comparison(rows: readonly Row[], row: Row): string {
  const versus = row.versus ? byName(rows, row.versus) : undefined;
  if (versus) {
    const r = ratio(row.rt64.median, versus.rt64.median);
    return r === undefined ? "" : `${times(r)} ipckit's time`;
  }
  const sync = syncOf(rows, row);
  const r = ratio(row.rt64.median, sync?.rt64.median);
  return r === undefined ? "" : `${times(r)} the sync time`;
}

/** The table printed at the end of a run. */
export function terminalTable(results: Results): string {
  const rows = ordered(results.rows);
  const width = Math.max(...rows.map((row) => row.transport.length)) + 4;
  const head = [
    "transport".padEnd(width),
    "64 B µs".padStart(9),
    "p99".padStart(8),
    "4 KiB µs".padStart(9),
    "p99".padStart(8),
    "1 MiB MiB/s".padStart(12),
    "  64 B vs",
  ].join("");
  const lines = [head, "-".repeat(head.length + 20)];
  for (const row of rows) {
    const name = (row.kind === "alternative" ? "  ↳ " : "") + row.transport;
    lines.push(
      [
        name.padEnd(width),
        fixed(row.rt64.median, 1).padStart(9),
        fixed(row.rt64.p99, 1).padStart(8),
        fixed(row.rt4KiB.median, 1).padStart(9),
        fixed(row.rt4KiB.p99, 1).padStart(8),
        fixed(row.oneWay1MiB.median, 0).padStart(12),
        "  " + comparison(results.rows, row),
      ].join(""),
    );
  }
  const notes = _notes(rows);
  if (notes.length) lines.push("", ...notes.map((note) => `- ${note}`));
  return lines.join("\n");
}

function _notes(rows: readonly Row[]): string[] {
  const notes: string[] = [];
  for (const row of rows) {
    const said = new Set<string>();
    for (const key of Object.keys(SIZES) as SizeKey[]) {
      const note = row[key].note;
      if (!note || said.has(note)) continue;
      said.add(note);
      const where = (Object.keys(SIZES) as SizeKey[])
        .filter((k) => row[k].note === note)
        .map((k) => SIZES[k].label).join(", ");
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

/** bench/results.md. */
export function markdown(results: Results): string {
  const rows = ordered(results.rows);
  const { plan } = results;
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
    `Method: the run makes ${plan.rounds} pass${
      plan.rounds > 1 ? "es" : ""
    } over every transport and pools each cell's samples, so a change in ` +
      `the machine's load hits every row alike; each pass of a cell starts ` +
      `a fresh peer process. A round trip sends a message and waits for the ` +
      `echo: ${plan.roundTrips} sequential round trips are timed per cell, ` +
      `after ${plan.warmUp} untimed ones per connection (median and p99, ` +
      `µs). One way: ${plan.samples} timed bursts of ${plan.count} messages ` +
      `of 1 MiB, each pass after one untimed burst; the peer copies each message out ` +
      `and acknowledges it; the median burst rate is shown in MiB/s. ` +
      `Every waiting process sleeps in the kernel unless a row says it ` +
      `spins, so each round trip pays at least two wake-ups: on a virtual ` +
      `machine whose idle cores halt, a wake-up costs tens of µs and the ` +
      `absolute numbers move with the host's load between runs.`,
    "",
    "![64-byte round trip per mechanism, log scale](results.svg)",
    "",
    "## Every mechanism",
    "",
    "| transport | 64 B median µs | 64 B p99 µs | 4 KiB median µs | 4 KiB p99 µs | 1 MiB one way, MiB/s |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
  );
  for (const row of rows) {
    const name = row.kind === "alternative"
      ? `↳ *${row.transport}* (alternative)`
      : `**${row.transport}**`;
    out.push(
      `| ${name} | ${fixed(row.rt64.median, 1)} | ${fixed(row.rt64.p99, 1)} | ${
        fixed(row.rt4KiB.median, 1)
      } | ${fixed(row.rt4KiB.p99, 1)} | ${fixed(row.oneWay1MiB.median, 0)} |`,
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
  const notes = _notes(rows);
  if (notes.length) {
    out.push("", "## Cells not measured", "", ...notes.map((n) => `- ${n}`));
  }
  return out.join("\n") + "\n";
}

const _escape = (text: string) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** bench/results.svg: 64 B round-trip medians as bars on a log scale. */
export function svgChart(results: Results): string {
  const rows = ordered(results.rows);
  const values = rows.map((row) => row.rt64.median).filter((v) =>
    v !== undefined
  ) as number[];
  const low = 10 ** Math.floor(Math.log10(Math.min(...values, 10)));
  const high = 10 ** Math.ceil(Math.log10(Math.max(...values, 100)));
  const labelWidth = 360, barWidth = 400, rowHeight = 24, top = 56;
  const width = labelWidth + barWidth + 90;
  const height = top + rows.length * rowHeight + 40;
  const x = (value: number) =>
    labelWidth +
    (barWidth * Math.log10(value / low)) / Math.log10(high / low);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="13">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="12" y="22" font-size="15" font-weight="bold">64-byte round trip to another process, median µs (log scale, shorter is faster)</text>`,
    `<text x="12" y="40" fill="#555">${
      _escape(
        `${
          results.date.slice(0, 10)
        }: ${results.machine.cpu}, ${results.machine.cores} cores, Linux ${results.machine.kernel}, Deno ${results.machine.deno}`,
      )
    }</text>`,
    `<rect x="${width - 250}" y="30" width="12" height="12" fill="#2563eb"/>`,
    `<text x="${width - 234}" y="40">ipckit</text>`,
    `<rect x="${width - 170}" y="30" width="12" height="12" fill="#ea580c"/>`,
    `<text x="${width - 154}" y="40">alternative</text>`,
  ];
  for (let tick = low; tick <= high; tick *= 10) {
    const tx = x(tick).toFixed(1);
    const bottom = top + rows.length * rowHeight;
    parts.push(
      `<line x1="${tx}" y1="${
        top - 4
      }" x2="${tx}" y2="${bottom}" stroke="#ddd"/>`,
      `<text x="${tx}" y="${
        bottom + 16
      }" text-anchor="middle" fill="#555">${tick} µs</text>`,
    );
  }
  rows.forEach((row, i) => {
    const y = top + i * rowHeight;
    const alternative = row.kind === "alternative";
    const label = alternative ? `↳ ${row.transport}` : row.transport;
    parts.push(
      `<text x="${labelWidth - 8}" y="${y + 16}" text-anchor="end"${
        alternative ? ' font-style="italic"' : ""
      }>${_escape(label)}</text>`,
    );
    const value = row.rt64.median;
    if (value === undefined) {
      parts.push(
        `<text x="${labelWidth + 4}" y="${
          y + 16
        }" fill="#999">not measured (see results.md)</text>`,
      );
      return;
    }
    const end = x(value);
    parts.push(
      `<rect x="${labelWidth}" y="${y + 4}" width="${
        Math.max(1, end - labelWidth).toFixed(1)
      }" height="${rowHeight - 8}" fill="${
        alternative ? "#ea580c" : "#2563eb"
      }"/>`,
      `<text x="${(end + 6).toFixed(1)}" y="${y + 16}">${
        value.toFixed(1)
      }</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}

/** Writes results.json, results.md and results.svg into `dir`. */
export async function writeReports(
  results: Results,
  dir: string,
): Promise<string[]> {
  const base = dir.endsWith("/") ? dir : `${dir}/`;
  const files: [string, string][] = [
    ["results.json", JSON.stringify(results, null, 2) + "\n"],
    ["results.md", markdown(results)],
    ["results.svg", svgChart(results)],
  ];
  for (const [name, text] of files) {
    await Deno.writeTextFile(base + name, text);
  }
  return files.map(([name]) => base + name);
}
