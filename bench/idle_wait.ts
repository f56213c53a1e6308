/**
 * What an idle wait costs: the CPU time of a child process that holds 1,
 * 20 and 1,000 parked waits of each kind (message queue receive, FIFO
 * receive, pipe receive, semaphore wait), each on its own object, over
 * 10 s in which nothing arrives.
 *
 *   deno task bench:idle [--seconds=10] [--counts=1,20,1000] [--kinds=mq,fifo,pipe,semaphore]
 *   deno task bench:idle --kinds=sysv-mq,sysv-mq-one,sysv-sem,file-lock
 *
 * CPU time is utime + stime of the child (all its threads) from
 * /proc/<pid>/stat, read through libc (Deno wants --allow-all for its own
 * file API under /proc/<pid>), in clock ticks of 10 ms (USER_HZ is 100 on
 * Linux). It is sampled once the child says every wait is parked and
 * again `seconds` later; the child's start-up is not counted.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { readSmallFile } from "../ffi/file.ts";

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
/** Linux reports /proc times in USER_HZ ticks, fixed at 100 per second. */
const TICK_MS = 10;

function cpuMs(pid: number): number {
  const stat = readSmallFile(`/proc/${pid}/stat`, 4096);
  if (stat === undefined) throw new Error(`cannot read /proc/${pid}/stat`);
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) * TICK_MS;
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
      used.toFixed(0).padStart(6)
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
  `idle waits, CPU of the waiting process over ${SECONDS} s (utime+stime, 10 ms ticks)`,
);
for (const kind of KINDS) {
  for (const count of COUNTS) console.log(await measure(kind, count));
}
