/**
 * Reading `perf script` output (`perf record` of a benchmark run): the
 * on-CPU time of each process split by where the CPU was, the part a V8
 * profile cannot see. The kernel is the system calls (and the scheduler);
 * libc is the user side of those calls; the vdso is clock reads; the deno binary is V8 (interpreter,
 * builtins, GC) and Deno's Rust (ops, FFI dispatch, the event loop); JIT
 * is JavaScript that V8 compiled to machine code.
 *
 * @module
 */

/** One `perf script -F comm,pid,tid,period,ip,sym,dso` sample. */
export interface PerfSample {
  comm: string;
  pid: number;
  tid: number;
  period: number;
  symbol: string;
  dso: string;
}

/** Where a sample's instruction was. */
export type Place =
  | "kernel"
  | "vdso (clock reads)"
  | "libc"
  | "deno binary"
  | "JIT"
  | "other";

/** The `perf script` fields {@linkcode parsePerfScript} reads, in order. */
export const PERF_FIELDS = "comm,pid,tid,period,ip,sym,dso";

const LINE =
  /^\s*(.*?)\s+(\d+)\/(\d+)\s+(\d+)\s+[0-9a-f]+\s+(.*?)\s*\(([^()]*)\)\s*$/;

/** The samples of `perf script -F comm,pid,tid,period,ip,sym,dso`. */
export function parsePerfScript(text: string): PerfSample[] {
  const samples: PerfSample[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const match = LINE.exec(line);
    if (match === null) {
      throw new TypeError(
        `Cannot read perf script output: expected "comm pid/tid period ip sym (dso)", got "${line}"`,
      );
    }
    const [, comm, pid, tid, period, symbol, dso] = match;
    samples.push({
      comm,
      pid: Number(pid),
      tid: Number(tid),
      period: Number(period),
      symbol: symbol === "[unknown]" ? "" : symbol,
      dso,
    });
  }
  return samples;
}

/** Where a shared object is, as {@linkcode Place}. */
export function placeOf(dso: string): Place {
  if (dso.startsWith("[kernel")) return "kernel";
  // The kernel's code run in user space: clock_gettime without a system call.
  if (dso === "[vdso]") return "vdso (clock reads)";
  if (/\/libc\.so/.test(dso)) return "libc";
  if (/\/deno$/.test(dso)) return "deno binary";
  // V8's code space: perf names it by the map file V8 may write, or as
  // anonymous executable memory.
  if (/\/perf-\d+\.map$|^\[JIT\]|^\/\/anon$|^\[unknown\]$/.test(dso)) {
    return "JIT";
  }
  return "other";
}

/** One process's on-CPU time. */
export interface ProcessSplit {
  pid: number;
  comm: string;
  /** Nanoseconds (the sum of the sample periods of a cpu-clock event). */
  total: number;
  /** On the main thread (tid = pid), where JavaScript runs. */
  mainThread: number;
  places: Map<Place, number>;
  kernelSymbols: Map<string, number>;
}

/** The samples grouped by process, in the order the processes appear. */
export function splitByProcess(samples: PerfSample[]): ProcessSplit[] {
  const byPid = new Map<number, ProcessSplit>();
  for (const sample of samples) {
    let split = byPid.get(sample.pid);
    if (split === undefined) {
      split = {
        pid: sample.pid,
        comm: sample.comm,
        total: 0,
        mainThread: 0,
        places: new Map(),
        kernelSymbols: new Map(),
      };
      byPid.set(sample.pid, split);
    }
    if (sample.tid === sample.pid) {
      split.comm = sample.comm;
      split.mainThread += sample.period;
    }
    split.total += sample.period;
    const place = placeOf(sample.dso);
    split.places.set(place, (split.places.get(place) ?? 0) + sample.period);
    if (place === "kernel") {
      const name = sample.symbol || "(unknown)";
      split.kernelSymbols.set(
        name,
        (split.kernelSymbols.get(name) ?? 0) + sample.period,
      );
    }
  }
  return [...byPid.values()];
}

/** Lines describing one process: places, then its top kernel symbols. */
export function describe(split: ProcessSplit, topSymbols: number): string[] {
  const percent = (part: number) =>
    `${(100 * part / split.total).toFixed(1)}%`.padStart(6);
  const lines = [
    `pid ${split.pid} (${split.comm}): ${
      (split.total / 1e6).toFixed(0)
    } ms on a CPU, ${percent(split.mainThread).trim()} on its main thread`,
  ];
  for (
    const [place, nanos] of [...split.places].sort((a, b) => b[1] - a[1])
  ) {
    lines.push(`  ${percent(nanos)}  ${place}`);
  }
  const symbols = [...split.kernelSymbols].sort((a, b) => b[1] - a[1])
    .slice(0, topSymbols);
  if (symbols.length > 0) {
    lines.push(
      `  kernel: ${
        symbols.map(([name, nanos]) => `${name} ${percent(nanos).trim()}`)
          .join(", ")
      }`,
    );
  }
  return lines;
}
