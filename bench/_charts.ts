/**
 * The two charts of a run, as SVG text: results.svg (the 64-byte round
 * trip of every row, grouped by mechanism, with its C limit) and
 * results-cpu.svg (the CPU price: CPU per round trip, and what a waiting
 * peer burns while idle).
 *
 * @module
 */

import {
  type Group,
  groups,
  limitRowOf,
  ratio,
  type Results,
  type Row,
} from "./_results.ts";

const COLORS = {
  ipckit: "#2563eb",
  alternative: "#ea580c",
  busy: "#374151",
  blocking: "#9ca3af",
} as const;

function _color(row: Row): string {
  if (row.kind !== "limit") return COLORS[row.kind];
  return row.limit?.waiting === "busy" ? COLORS.busy : COLORS.blocking;
}

const _escape = (text: string) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** One panel: a value per row on its own axis. */
interface Panel {
  title: string;
  scale: "log" | "linear";
  /** Axis tick label for a value. */
  tick: (value: number) => string;
  value: (row: Row) => number | undefined;
  /** The text after the bar. */
  label: (row: Row, value: number) => string;
  /** For a linear axis: its end. */
  max?: number;
}

interface Chart {
  title: string;
  subtitle: string;
  panels: Panel[];
  groups: Group[];
}

const LABEL_WIDTH = 400;
const PANEL_WIDTH = 330;
const PANEL_GAP = 120;
const ROW = 20;
const HEADING = 24;
const TOP = 96;

function _axis(panel: Panel, rows: Row[]): {
  ticks: number[];
  x: (value: number) => number;
} {
  const values = rows.map(panel.value).filter((v): v is number =>
    v !== undefined && v > 0
  );
  if (panel.scale === "linear") {
    const max = panel.max ?? Math.max(1, ...values);
    const step = max / 4;
    return {
      ticks: [0, step, 2 * step, 3 * step, max],
      x: (v) => (PANEL_WIDTH * Math.min(v, max)) / max,
    };
  }
  const low = 10 ** Math.floor(Math.log10(Math.min(...values, 1)));
  const high = 10 ** Math.ceil(Math.log10(Math.max(...values, 10)));
  const ticks: number[] = [];
  for (let t = low; t <= high * 1.0001; t *= 10) ticks.push(t);
  const span = Math.log10(high / low);
  return {
    ticks,
    x: (v) => (PANEL_WIDTH * Math.log10(Math.max(v, low) / low)) / span,
  };
}

function _render(chart: Chart): string {
  const rows = chart.groups.flatMap((g) => g.rows);
  const width = LABEL_WIDTH + chart.panels.length * (PANEL_WIDTH + PANEL_GAP);
  const height = TOP + chart.groups.length * HEADING + rows.length * ROW + 40;
  const bottom = height - 34;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="12" y="22" font-size="15" font-weight="bold">${
      _escape(chart.title)
    }</text>`,
    `<text x="12" y="40" fill="#555">${_escape(chart.subtitle)}</text>`,
  ];
  // Legend.
  const legend: [string, string][] = [
    ["ipckit", COLORS.ipckit],
    ["alternative", COLORS.alternative],
    ["C, busy-wait", COLORS.busy],
    ["C, blocking", COLORS.blocking],
  ];
  legend.forEach(([text, color], i) => {
    const x = 12 + i * 130;
    out.push(
      `<rect x="${x}" y="50" width="12" height="12" fill="${color}"/>`,
      `<text x="${x + 17}" y="60">${text}</text>`,
    );
  });
  chart.panels.forEach((panel, p) => {
    const left = LABEL_WIDTH + p * (PANEL_WIDTH + PANEL_GAP);
    const { ticks, x } = _axis(panel, rows);
    out.push(
      `<text x="${left}" y="${TOP - 8}" font-weight="bold">${
        _escape(panel.title)
      }</text>`,
    );
    for (const tick of ticks) {
      const tx = (left + x(tick)).toFixed(1);
      out.push(
        `<line x1="${tx}" y1="${TOP}" x2="${tx}" y2="${bottom}" stroke="#e5e7eb"/>`,
        `<text x="${tx}" y="${bottom + 14}" text-anchor="middle" fill="#555">${
          _escape(panel.tick(tick))
        }</text>`,
      );
    }
    let y = TOP;
    for (const group of chart.groups) {
      y += HEADING;
      for (const row of group.rows) {
        const value = panel.value(row);
        if (value === undefined) {
          out.push(
            `<text x="${left + 4}" y="${
              y + 14
            }" fill="#999">not measured</text>`,
          );
        } else {
          const end = Math.max(1, x(value));
          out.push(
            `<rect x="${left}" y="${y + 3}" width="${end.toFixed(1)}" height="${
              ROW - 6
            }" fill="${_color(row)}"/>`,
            `<text x="${(left + end + 5).toFixed(1)}" y="${y + 14}">${
              _escape(panel.label(row, value))
            }</text>`,
          );
        }
        y += ROW;
      }
    }
  });
  // Row labels and group headings.
  let y = TOP;
  for (const group of chart.groups) {
    out.push(
      `<text x="12" y="${y + 17}" font-weight="bold" fill="#111">${
        _escape(group.label)
      }</text>`,
      `<line x1="12" y1="${y + 21}" x2="${width - 12}" y2="${
        y + 21
      }" stroke="#d1d5db"/>`,
    );
    y += HEADING;
    for (const row of group.rows) {
      const text = row.kind === "alternative"
        ? `↳ ${row.transport}`
        : row.transport;
      out.push(
        `<text x="${LABEL_WIDTH - 10}" y="${y + 14}" text-anchor="end"${
          row.kind === "alternative" ? ' font-style="italic"' : ""
        }${row.kind === "limit" ? ' fill="#374151"' : ""}>${
          _escape(text)
        }</text>`,
      );
      y += ROW;
    }
  }
  out.push("</svg>");
  return out.join("\n") + "\n";
}

function _subtitle(results: Results): string {
  const m = results.machine;
  const quick = results.command.includes("--quick") ? " (a --quick run)" : "";
  return `${
    results.date.slice(0, 10)
  }${quick}: ${m.cpu}, ${m.cores} cores, Linux ${m.kernel}, Deno ${m.deno}; full tables in results.md`;
}

const _micros = (v: number) =>
  v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);

/** bench/results.svg: every row's 64-byte round trip beside its C limit. */
export function latencyChart(results: Results): string {
  const rows = results.rows;
  return _render({
    title:
      "64-byte round trip to another process, median µs (log scale, shorter is faster)",
    subtitle: _subtitle(results),
    groups: groups(rows),
    panels: [{
      title: "median µs per round trip; × = ipckit ÷ its C row (same waiting)",
      scale: "log",
      tick: (v) => `${v} µs`,
      value: (row) => row.rt64.median,
      label: (row, value) => {
        const c = limitRowOf(rows, row);
        const r = ratio(value, c?.rt64.median);
        return r === undefined
          ? _micros(value)
          : `${_micros(value)}  ${r.toFixed(1)}×`;
      },
    }],
  });
}

/** bench/results-cpu.svg: CPU per round trip, and CPU of an idle waiter. */
export function cpuChart(results: Results): string {
  const seconds = results.plan.idleSeconds ?? 10;
  const idlePercent = (row: Row) =>
    row.idle?.cpuMillis !== undefined && row.idle.seconds
      ? row.idle.cpuMillis / 10 / row.idle.seconds
      : undefined;
  return _render({
    title: "The CPU price: CPU time of both processes (user + system)",
    subtitle: _subtitle(results),
    groups: groups(results.rows),
    panels: [
      {
        title: "CPU µs per 64-byte round trip (log)",
        scale: "log",
        tick: (v) => `${v} µs`,
        value: (row) => row.rt64.cpuMicros,
        label: (row, value) =>
          `${_micros(value)}${
            row.rt64.cores !== undefined
              ? `  (${row.rt64.cores.toFixed(2)} cores)`
              : ""
          }`,
      },
      {
        title: `idle: a waiting peer's CPU over ${seconds} s, % of a core`,
        scale: "linear",
        max: 100,
        tick: (v) => `${v.toFixed(0)}%`,
        value: idlePercent,
        label: (_row, value) =>
          value < 0.1 ? value.toFixed(3) + "%" : value.toFixed(1) + "%",
      },
    ],
  });
}
