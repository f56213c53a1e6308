/**
 * Where the time goes: the self time of the functions in V8 CPU profiles
 * (`deno run --cpu-prof`), one table per process, largest first.
 *
 *   dir=$(mktemp -d)
 *   IPCKIT_BENCH_PEER_FLAGS="--cpu-prof --cpu-prof-dir=$dir" \
 *     deno run --cpu-prof --cpu-prof-dir=$dir <bench:driver flags> bench/driver.ts \
 *     --quick "--only=message queue, async" --sections=cells --cells=rt64 --round-trips=20000
 *   deno run --allow-read bench/cpu_profile.ts $dir [--top=15]
 *
 * A libc call made through `Deno.dlopen` shows up as the JavaScript
 * function that makes it (its time includes the system call); `(idle)` is
 * time the process waited with nothing to run.
 *
 * @module
 */

import { parseArgs } from "node:util";

/** The parts of a .cpuprofile this script reads. */
interface Profile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
  }[];
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: { top: { type: "string", default: "15" } },
});
const top = Number(values.top);

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

function summarize(path: string, profile: Profile): string[] {
  const frames = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const self = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const frame = frames.get(id)!;
    const file = frame.url.split("/").at(-1);
    const name = `${frame.functionName || "(anonymous)"}${
      file ? ` ${file}:${frame.lineNumber + 1}` : ""
    }`;
    const delta = profile.timeDeltas[i] ?? 0;
    self.set(name, (self.get(name) ?? 0) + delta);
    total += delta;
  });
  const lines = [`${path}: ${(total / 1e6).toFixed(2)} s sampled`];
  for (
    const [name, micros] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)
  ) {
    lines.push(`  ${(100 * micros / total).toFixed(1).padStart(5)}%  ${name}`);
  }
  return lines;
}

if (positionals.length === 0) {
  console.error("usage: cpu_profile.ts <profile or directory>... [--top=N]");
  Deno.exit(2);
}
for (const path of await profiles(positionals)) {
  const profile: Profile = JSON.parse(await Deno.readTextFile(path));
  console.log(summarize(path, profile).join("\n"));
}
