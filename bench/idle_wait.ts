/**
 * What an idle wait costs: the CPU time of a child process that holds 1,
 * 20 and 1,000 parked waits of each kind (message queue receive, FIFO
 * receive, pipe receive, semaphore wait), each on its own object, over
 * 10 s in which nothing arrives.
 *
 *   deno task bench:idle [--seconds=10] [--counts=1,20,1000] [--kinds=mq,fifo,pipe,semaphore]
 *   deno task bench:idle --kinds=sysv-mq,sysv-mq-one,sysv-sem,file-lock
 *
 * CPU time is the child's process CPU clock (user + system, all its
 * threads; ffi/cpu_clock.ts, the clock the driver reads too), sampled once
 * the child says every wait is parked and again `seconds` later; the
 * child's start-up is not counted.
 *
 * The driver's idle section (`deno task bench:driver --sections=idle`)
 * answers another question: one receiver per row of the driver (every
 * mechanism and API style, and C busy-waiting or blocking), waiting right
 * after a burst of round trips, so that rows can be compared with each
 * other and with C. This file holds one process with many waits and no
 * traffic at all, to show what the reactor and the futex lanes cost as
 * waits grow in number (one thread for 10,000 waits is the design).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { processCpuNanos } from "../ffi/cpu_clock.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "10" },
    counts: { type: "string", default: "1,20,1000" },
    kinds: { type: "string", default: "mq,fifo,pipe,semaphore" },
  },
});
const SECONDS = Number(values.seconds);
const COUNTS = values.counts.split(",").map(Number);
const KINDS = values.kinds.split(",");
function cpuMs(pid: number): number {
  const nanos = processCpuNanos(pid);
  if (nanos === undefined) {
    throw new Error(`Cannot read the CPU clock of process ${pid}`);
  }
  return nanos / 1e6;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function measure(kind: string, count: number): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "ipckit-idle-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--allow-ffi",
      "--allow-read",
      "--allow-write=/dev/mqueue,/dev/shm,/tmp,/proc/sysvipc",
      new URL("./fixtures/idle_waiter.ts", import.meta.url).pathname,
      kind,
      String(count),
      dir,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const stdin = child.stdin.getWriter();
  const killer = setTimeout(
    () => child.kill("SIGKILL"),
    (SECONDS + 120) * 1000,
  );
  try {
    const reader = child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the ${kind} child exited before it was ready`);
      text += value;
    }
    reader.releaseLock();
    await sleep(500);
    const before = cpuMs(child.pid);
    const started = performance.now();
    await sleep(SECONDS * 1000);
    const used = cpuMs(child.pid) - before;
    const elapsed = (performance.now() - started) / 1000;
    const perSecond = used / elapsed;
    return `${kind.padEnd(10)} ${String(count).padStart(5)} waits   ${
      used.toFixed(1).padStart(8)
    } ms CPU in ${elapsed.toFixed(1)} s   ${
      (perSecond / 10).toFixed(2).padStart(6)
    } % of a core`;
  } finally {
    await stdin.close().catch(() => {});
    const status = await child.status;
    clearTimeout(killer);
    await Deno.remove(dir, { recursive: true });
    if (!status.success) {
      console.error(`the ${kind} child ended with ${status.code}`);
    }
  }
}

console.log(
  `idle waits, CPU of the waiting process over ${SECONDS} s (user + system)`,
);
for (const kind of KINDS) {
  for (const count of COUNTS) console.log(await measure(kind, count));
}
