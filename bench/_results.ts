/**
 * What a driver run produces (bench/results.json), and the lookups every
 * report of it shares: rows in table order, a row's C limit, groups by
 * mechanism.
 *
 * @module
 */

import type { Machine } from "./_machine.ts";
import type { Limit } from "./transports/_transport.ts";
import { C_MECHANISMS } from "./transports/c.ts";

/** The measured sizes of the main table, by key. */
export const SIZES = {
  rt64: { bytes: 64, label: "64 B round trip" },
  rt4KiB: { bytes: 4096, label: "4 KiB round trip" },
  oneWay1MiB: { bytes: 1 << 20, label: "1 MiB one way" },
} as const;
/** A key of {@linkcode SIZES}. */
export type SizeKey = keyof typeof SIZES;

/**
 * One measurement: µs for round trips, MiB/s for one way; or why not.
 * `cpuMicros` is the CPU time of both processes (user + system) per round
 * trip, or per MiB one way, in µs; `cores` is that CPU time over the wall
 * time it took (2 means two cores busy all along).
 */
export interface Cell {
  median?: number;
  p99?: number;
  mean?: number;
  count?: number;
  cpuMicros?: number;
  cores?: number;
  /**
   * The median of each pass on its own, in the order measured (a full run
   * makes five, each with its own session): how far a row moves between
   * sessions, which the pooled median hides.
   */
  passMedians?: number[];
  /**
   * Round trips only: the share (0 to 1) that took longer than 1 ms. A
   * wait that outlasts its spin and sleeps on a timer (System V queues and
   * semaphore sets: the first tick comes 1 ms after activity) lands there,
   * which the median alone does not say.
   */
  overOneMs?: number;
  note?: string;
}

/** What the waiting peer used while nothing arrived. */
export interface IdleCell {
  seconds?: number;
  /** CPU time of the waiting process over `seconds`, in ms. */
  cpuMillis?: number;
  note?: string;
}

/** One transport's cells. */
export interface Row {
  transport: string;
  kind: "ipckit" | "alternative" | "limit";
  versus?: string;
  /** For a C row: which it is; for any other: the C row it is compared with. */
  limit?: Limit;
  rt64: Cell;
  rt4KiB: Cell;
  oneWay1MiB: Cell;
  idle?: IdleCell;
}

/** Round trips with many pairs at once, for one number of pairs. */
export interface ScalingCell {
  pairs: number;
  /** µs per round trip, over every pair's round trips. */
  median?: number;
  p99?: number;
  /** Round trips per second, all pairs together. */
  rate?: number;
  /** CPU µs (every process) per round trip. */
  cpuMicros?: number;
  note?: string;
}

/** One transport's concurrency cells. */
export interface ScalingRow {
  transport: string;
  kind: Row["kind"];
  limit?: Limit;
  cells: ScalingCell[];
}

/** One way at one message size. */
export interface SweepCell {
  bytes: number;
  /** Median burst rate, MiB/s. */
  median?: number;
  /** CPU µs (both processes) per MiB moved. */
  cpuMicros?: number;
  note?: string;
}

/** One transport's throughput-against-size cells. */
export interface SweepRow {
  transport: string;
  kind: Row["kind"];
  limit?: Limit;
  cells: SweepCell[];
}

/** How much the run measured. */
export interface RunPlan {
  rounds: number;
  roundTrips: number;
  warmUp: number;
  samples: number;
  count: number;
  idleSeconds?: number;
  pairs?: number[];
  concurrentSeconds?: number;
  sizes?: number[];
  sizeSamples?: number;
}

/** Everything a run produced. */
export interface Results {
  date: string;
  command: string;
  machine: Machine;
  plan: RunPlan;
  rows: Row[];
  concurrency?: ScalingRow[];
  throughput?: SweepRow[];
  /** What the run could not do at all (no C compiler, …). */
  notes?: string[];
}

/** The row named `name`, if measured. */
export function byName<T extends { transport: string }>(
  rows: readonly T[],
  name: string,
): T | undefined {
  return rows.find((row) => row.transport === name);
}

/**
 * Whether C row `c` is the limit `wanted` names: the same mechanism and
 * waiting; the two-CPU blocking row is context, never the limit.
 */
export function sameLimit(c?: Limit, wanted?: Limit): boolean {
  return !!c && !!wanted && c.mechanism === wanted.mechanism &&
    c.waiting === wanted.waiting && c.cpus !== "two";
}

/** The C row a row is compared with (same mechanism, same waiting). */
export function limitRowOf<T extends { kind: Row["kind"]; limit?: Limit }>(
  rows: readonly T[],
  row: T,
): T | undefined {
  if (row.kind === "limit") return undefined;
  return rows.find((r) => r.kind === "limit" && sameLimit(r.limit, row.limit));
}

/** The busy-waiting C row of a row's mechanism: the fastest it can be. */
export function floorRowOf<T extends { kind: Row["kind"]; limit?: Limit }>(
  rows: readonly T[],
  row: T,
): T | undefined {
  const mechanism = row.limit?.mechanism;
  return rows.find((r) =>
    r.kind === "limit" && r.limit?.mechanism === mechanism &&
    r.limit?.waiting === "busy"
  );
}

/** The C mechanism label of a key ("mq" -> "POSIX message queue"). */
export function mechanismLabel(key: string | undefined): string {
  return C_MECHANISMS.find((m) => m.key === key)?.label ?? "other";
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

/** A group of rows about one mechanism, for the charts. */
export interface Group {
  mechanism: string;
  label: string;
  rows: Row[];
}

/**
 * Rows grouped by the mechanism of their C limit, in bench/c/'s order:
 * ipckit rows and their alternatives first, then the C rows; rows with no
 * limit last, under "other".
 */
export function groups(rows: readonly Row[]): Group[] {
  const keys = [...C_MECHANISMS.map((m) => m.key), undefined];
  const out: Group[] = [];
  const sorted = ordered(rows);
  for (const key of keys) {
    const members = sorted.filter((row) => row.limit?.mechanism === key);
    if (members.length === 0) continue;
    const c = members.filter((row) => row.kind === "limit");
    const others = members.filter((row) => row.kind !== "limit");
    out.push({
      mechanism: key ?? "other",
      label: mechanismLabel(key),
      rows: [...others, ...c],
    });
  }
  return out;
}

/** `a / b` when both are measured. */
export function ratio(
  a: number | undefined,
  b: number | undefined,
): number | undefined {
  return a !== undefined && b !== undefined && b > 0 ? a / b : undefined;
}
