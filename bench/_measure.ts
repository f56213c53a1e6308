/**
 * Measuring sessions inside the driver: round trips, one-way bursts, an
 * idle wait (one receiver per row, right after its round trips; for many
 * waits in one process and no traffic at all, see bench/idle_wait.ts) and
 * many sessions at once, each with the CPU time the driver
 * and its peers used during the timed part, read from their process CPU
 * clocks (ffi/cpu_clock.ts). Also the pooling of passes into a cell.
 *
 * @module
 */

import { processCpuNanos } from "../ffi/cpu_clock.ts";
import { summarize } from "./_stats.ts";
import type { Cell } from "./_results.ts";
import type { Measurement, Session } from "./transports/_transport.ts";

const MiB = 1 << 20;

interface CpuSnapshot {
  self: number;
  peers: number[];
}

/** The CPU clocks of this process and of `peers` now, if all readable. */
function _cpuNow(
  peers: readonly number[] | undefined,
): CpuSnapshot | undefined {
  if (!peers) return undefined;
  const self = processCpuNanos();
  const theirs = peers.map((pid) => processCpuNanos(pid));
  if (self === undefined || theirs.some((value) => value === undefined)) {
    return undefined;
  }
  return { self, peers: theirs as number[] };
}

/** CPU used since `start`: everything, and the peers' share. */
function _cpuSince(
  start: CpuSnapshot | undefined,
  peers: readonly number[] | undefined,
): Pick<Measurement, "cpuNanos" | "peerCpuNanos"> {
  const end = start && _cpuNow(peers);
  if (!start || !end) return {};
  const peerCpuNanos = end.peers.reduce(
    (sum, value, i) => sum + value - start.peers[i],
    0,
  );
  return { cpuNanos: end.self - start.self + peerCpuNanos, peerCpuNanos };
}

/** Times sequential round trips after a warm-up; µs each. */
export async function timeRoundTrips(
  session: Session,
  bytes: number,
  plan: { roundTrips: number; warmUp: number; budgetMs: number },
): Promise<Measurement> {
  const message = new Uint8Array(bytes).fill(0x5a);
  for (let i = 0; i < plan.warmUp; i++) await session.roundTrip(message);
  const samples: number[] = [];
  const cpu = _cpuNow(session.peers);
  const began = performance.now();
  const stopAt = began + plan.budgetMs;
  for (let i = 0; i < plan.roundTrips && performance.now() < stopAt; i++) {
    const start = performance.now();
    await session.roundTrip(message);
    samples.push((performance.now() - start) * 1000);
  }
  const seconds = (performance.now() - began) / 1000;
  return {
    samples,
    ..._cpuSince(cpu, session.peers),
    operations: samples.length,
    bytes: samples.length * bytes,
    seconds,
  };
}

/** Times bursts of one-way messages after an untimed one; MiB/s per burst. */
export async function timeOneWay(
  session: Session,
  bytes: number,
  plan: { samples: number; count: number; budgetMs: number },
): Promise<Measurement> {
  const message = new Uint8Array(bytes).fill(0x5a);
  await session.sendOneWay!(message, plan.count);
  const rates: number[] = [];
  const cpu = _cpuNow(session.peers);
  const began = performance.now();
  const stopAt = began + plan.budgetMs;
  for (let i = 0; i < plan.samples && performance.now() < stopAt; i++) {
    const start = performance.now();
    await session.sendOneWay!(message, plan.count);
    const seconds = (performance.now() - start) / 1000;
    rates.push((plan.count * bytes) / MiB / seconds);
  }
  const seconds = (performance.now() - began) / 1000;
  return {
    samples: rates,
    ..._cpuSince(cpu, session.peers),
    operations: rates.length * plan.count,
    bytes: rates.length * plan.count * bytes,
    seconds,
  };
}

/**
 * After a warm-up, sends nothing for `seconds` while the peer waits for
 * the next message; reports the CPU it used meanwhile (`peerCpuNanos`).
 */
export async function timeIdle(
  session: Session,
  plan: { warmUp: number; seconds: number },
): Promise<Measurement> {
  const message = new Uint8Array(64).fill(0x5a);
  for (let i = 0; i < plan.warmUp; i++) await session.roundTrip(message);
  const cpu = _cpuNow(session.peers);
  const began = performance.now();
  await new Promise((resolve) => setTimeout(resolve, plan.seconds * 1000));
  return {
    ..._cpuSince(cpu, session.peers),
    operations: 0,
    seconds: (performance.now() - began) / 1000,
  };
}

/**
 * Runs round trips on every session at once for `seconds`, after each has
 * warmed up: one event loop serving many peers, as a Deno server would.
 */
export async function timeConcurrent(
  sessions: readonly Session[],
  plan: { warmUp: number; seconds: number },
): Promise<Measurement> {
  const message = new Uint8Array(64).fill(0x5a);
  await Promise.all(sessions.map(async (session) => {
    for (let i = 0; i < plan.warmUp; i++) await session.roundTrip(message);
  }));
  const peers = sessions.every((s) => s.peers)
    ? sessions.flatMap((s) => s.peers!)
    : undefined;
  const samples: number[] = [];
  const cpu = _cpuNow(peers);
  const began = performance.now();
  const stopAt = began + plan.seconds * 1000;
  await Promise.all(sessions.map(async (session) => {
    while (performance.now() < stopAt) {
      const start = performance.now();
      await session.roundTrip(message);
      samples.push((performance.now() - start) * 1000);
    }
  }));
  const seconds = (performance.now() - began) / 1000;
  return {
    samples,
    ..._cpuSince(cpu, peers),
    operations: samples.length,
    bytes: samples.length * 64,
    seconds,
  };
}

/**
 * A cell's passes, pooled: samples joined, CPU and counts added up, and
 * each pass's own median kept.
 */
export class Pool {
  #samples: number[] = [];
  #passMedians: number[] = [];
  #summary: Measurement["summary"];
  #cpuNanos = 0;
  #peerCpuNanos = 0;
  #operations = 0;
  #bytes = 0;
  #seconds = 0;
  #cpuKnown = true;

  /** Adds one pass. */
  add(measurement: Measurement): void {
    // One by one: a spread of 100,000 samples would overflow the stack.
    for (const sample of measurement.samples ?? []) this.#samples.push(sample);
    if (measurement.samples?.length) {
      this.#passMedians.push(summarize(measurement.samples).median);
    }
    if (measurement.summary) this.#summary = measurement.summary;
    if (measurement.cpuNanos === undefined) this.#cpuKnown = false;
    this.#cpuNanos += measurement.cpuNanos ?? 0;
    this.#peerCpuNanos += measurement.peerCpuNanos ?? 0;
    this.#operations += measurement.operations ?? 0;
    this.#bytes += measurement.bytes ?? 0;
    this.#seconds += measurement.seconds ?? 0;
  }

  /** How many samples (or summarized round trips) it holds. */
  get count(): number {
    return this.#summary?.count ?? this.#samples.length;
  }

  /** Wall time of every pass's timed part, in seconds. */
  get seconds(): number {
    return this.#seconds;
  }

  /** Operations (round trips or messages) of every pass. */
  get operations(): number {
    return this.#operations;
  }

  /** CPU ms of the peers over every pass, if every pass could read it. */
  get peerCpuMillis(): number | undefined {
    return this.#cpuKnown ? this.#peerCpuNanos / 1e6 : undefined;
  }

  /**
   * The pooled cell. `per`: what the CPU is divided by, a round trip or a
   * MiB moved one way.
   */
  cell(per: "round trip" | "MiB"): Cell {
    const stats = this.#summary ??
      (this.#samples.length ? summarize(this.#samples) : undefined);
    if (!stats) return { note: "no samples" };
    const cell: Cell = { ...stats };
    if (this.#passMedians.length) cell.passMedians = [...this.#passMedians];
    if (per === "round trip" && this.#samples.length) {
      let over = 0;
      for (const sample of this.#samples) if (sample > 1000) over++;
      cell.overOneMs = over / this.#samples.length;
    }
    const units = per === "MiB" ? this.#bytes / MiB : this.#operations;
    if (this.#cpuKnown && units > 0) {
      cell.cpuMicros = this.#cpuNanos / 1000 / units;
      if (this.#seconds > 0) cell.cores = this.#cpuNanos / 1e9 / this.#seconds;
    }
    return cell;
  }
}
