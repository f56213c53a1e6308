/**
 * Where the time goes: the self time of the functions in V8 CPU profiles
 * (`deno run --cpu-prof`), one table per process, largest first.
 *
 *   dir=$(mktemp -d)
 *   IPCKIT_BENCH_PEER_FLAGS="--cpu-prof --cpu-prof-dir=$dir" \
 *     deno run --cpu-prof --cpu-prof-dir=$dir <bench:driver flags> bench/driver.ts \
 *     --quick "--only=message queue, async" --sections=cells --cells=rt64 --round-trips=20000
 *   deno run --allow-read bench/cpu_profile.ts $dir [--top=15] [--bucket]
 *
 *   perf record -F 999 -o $dir/perf.data -- deno run <the same driver run>
 *   deno run --allow-read --allow-run=perf bench/cpu_profile.ts --perf=$dir/perf.data
 *
 * Each table names the script the process ran and gives each entry's share
 * of all sampled time and of the time the process was not idle. With
 * `--bucket`, a second table per process groups the functions into kinds
 * of work (bench/_cpu_profile.ts, `BUCKETS`): idle, libc calls through
 * FFI, the reactor, encoding, framing, Deno's runtime, ...
 *
 * A libc call made through `Deno.dlopen` shows up as the JavaScript
 * function that makes it (its time includes the system call); `(idle)` is
 * time the process waited with nothing to run. `--perf` reads a `perf
 * record` of a run instead and splits each process's on-CPU time into the
 * kernel, libc, the deno binary (V8 and Deno's Rust) and JIT-compiled
 * JavaScript (bench/_perf_split.ts), which is what a V8 profile cannot
 * tell apart inside those functions.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  bucketOf,
  frameName,
  mainModule,
  type Profile,
  table,
  tally,
} from "./_cpu_profile.ts";
import {
  describe,
  parsePerfScript,
  PERF_FIELDS,
  splitByProcess,
} from "./_perf_split.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    top: { type: "string", default: "15" },
    bucket: { type: "boolean", default: false },
    perf: { type: "string" },
  },
});
const top = Number(values.top);
if (
  (positionals.length === 0 && values.perf === undefined) ||
  !Number.isInteger(top) || top < 1
) {
  console.error(
    "usage: cpu_profile.ts <profile or directory>... [--top=N] [--bucket]\n" +
      "       cpu_profile.ts --perf=<perf.data> [--top=N]",
  );
  Deno.exit(2);
}

if (values.perf !== undefined) {
  const { success, stdout, stderr } = await new Deno.Command("perf", {
    args: ["script", "-i", values.perf, "-F", PERF_FIELDS],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!success) {
    console.error(
      `cpu_profile.ts: perf script failed: ${new TextDecoder().decode(stderr)}`,
    );
    Deno.exit(1);
  }
  const splits = splitByProcess(
    parsePerfScript(new TextDecoder().decode(stdout)),
  );
  for (const split of splits) console.log(describe(split, 5).join("\n"));
}

/** Every .cpuprofile among the arguments (files, or directories of them). */
async function profiles(paths: string[]): Promise<string[]> {
  const found: string[] = [];
  for (const path of paths) {
    if ((await Deno.stat(path)).isDirectory) {
      for await (const entry of Deno.readDir(path)) {
        if (entry.name.endsWith(".cpuprofile")) {
          found.push(`${path}/${entry.name}`);
        }
      }
    } else found.push(path);
  }
  return found.sort();
}

for (const path of await profiles(positionals)) {
  const profile: Profile = JSON.parse(await Deno.readTextFile(path));
  const functions = tally(profile, frameName);
  const main = mainModule(profile)?.split("/").slice(-2).join("/") ?? "?";
  console.log(
    `${path} (${main}): ${(functions.total / 1e6).toFixed(2)} s sampled`,
  );
  console.log("   % all % busy");
  console.log(table(functions, top).join("\n"));
  if (values.bucket) {
    console.log("  by kind of work:");
    console.log(table(tally(profile, bucketOf), top).join("\n"));
  }
}
