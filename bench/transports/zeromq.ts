/**
 * npm:zeromq REQ/REP over `ipc://` (a Unix socket underneath), measured by
 * bench/zeromq/run.mjs in its own Deno process: zeromq is an npm package
 * with a native addon, which Deno loads only with `--node-modules-dir=manual`
 * from a node_modules that npm installed (`deno task bench` runs
 * `npm install` in bench/zeromq first).
 *
 * @module
 */

import type { Plan, Transport } from "./_transport.ts";

const DIR = new URL("../zeromq/", import.meta.url).pathname;
const INSTALLED = `${DIR}node_modules/zeromq/package.json`;
const FLAGS = [
  "--allow-read",
  "--allow-write=/tmp",
  "--allow-env",
  "--allow-ffi",
  "--allow-sys",
  "--allow-run",
];

function _installed(): boolean {
  try {
    Deno.statSync(INSTALLED);
    return true;
  } catch {
    return false;
  }
}

async function _measure(plan: Plan): Promise<number[]> {
  const { stdout, success } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--node-modules-dir=manual",
      ...FLAGS,
      `${DIR}run.mjs`,
      JSON.stringify(plan),
      ...FLAGS,
    ],
    cwd: DIR,
    stderr: "inherit",
    signal: AbortSignal.timeout(300_000),
  }).output();
  const line = new TextDecoder().decode(stdout).trim().split("\n").at(-1);
  const result = line ? JSON.parse(line) : { error: "no output" };
  if (!success || result.error) {
    throw new Error(result.error ?? "bench/zeromq/run.mjs failed");
  }
  return result.samples;
}

/** The ZeroMQ row of the driver. */
export const zeromqTransports: Transport[] = [
  {
    name: "npm:zeromq REQ/REP over ipc://",
    kind: "alternative",
    versus: "Unix socket, async",
    limit: { mechanism: "unix-stream", waiting: "blocking" },
    unsupported: () =>
      _installed()
        ? undefined
        : "npm:zeromq is not installed: run `npm install` in bench/zeromq",
    connect: () => Promise.reject(new Error("measured in its own process")),
    measureElsewhere: _measure,
  },
];
