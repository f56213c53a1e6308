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
 * Each table names the script the process ran and gives each entry's share
 * of all sampled time and of the time the process was not idle. With
 * `--bucket`, a second table per process groups the functions into kinds
 * of work (bench/_cpu_profile.ts, `BUCKETS`): idle, libc calls through
 * FFI, the reactor, encoding, framing, Deno's runtime, ...
 *
 * A libc call made through `Deno.dlopen` shows up as the JavaScript
 * function that makes it (its time includes the system call); `(idle)` is
 * time the process waited with nothing to run.
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

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    top: { type: "string", default: "15" },
    bucket: { type: "boolean", default: false },
  },
});
const top = Number(values.top);
if (positionals.length === 0 || !Number.isInteger(top) || top < 1) {
  console.error(
    "usage: cpu_profile.ts <profile or directory>... [--top=N] [--bucket]",
  );
  Deno.exit(2);
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
