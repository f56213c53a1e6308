/**
 * What the backing-off retry costs in latency: a child process sends a
 * message after the receiver has waited `idle` ms, and the receiver
 * records how long after the send it had the message, for a System V
 * queue (IPC_NOWAIT attempts on the shared timer, 1 ms doubling to 32 ms)
 * and, for comparison, a POSIX queue (parked on the reactor's epoll).
 *
 *   deno task bench:poll-latency [--samples=20] [--idle=0,5,50,500,2000]
 *
 * Times are `performance.timeOrigin + performance.now()` in both
 * processes (one machine, one clock). `spin: 0` on both queues, so the
 * numbers are those of the park alone.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { MessageQueue, SysvMessageQueue } from "../mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    samples: { type: "string", default: "20" },
    idle: { type: "string", default: "0,5,50,500,2000" },
    child: { type: "string" },
    key: { type: "string" },
  },
});
const SAMPLES = Number(values.samples);
const IDLE = values.idle.split(",").map(Number);

type Stamp = { sentAt: number };
const now = () => performance.timeOrigin + performance.now();

if (values.child) {
  // The sender: for each idle time, SAMPLES messages, each after waiting
  // that long once the receiver said it is waiting again ("go" on stdin).
  const send = values.child === "sysv"
    ? (() => {
      const queue = SysvMessageQueue.open<Stamp>(Number(values.key));
      return (stamp: Stamp) => queue.trySend(stamp);
    })()
    : (() => {
      const queue = MessageQueue.open<Stamp>(values.key!, { read: false });
      return (stamp: Stamp) => queue.trySend(stamp);
    })();
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
  let pending = "";
  for await (const chunk of lines) {
    pending += chunk;
    let end;
    while ((end = pending.indexOf("\n")) >= 0) {
      const idle = Number(pending.slice(0, end));
      pending = pending.slice(end + 1);
      if (idle < 0) Deno.exit(0);
      await new Promise((resolve) => setTimeout(resolve, idle));
      send({ sentAt: now() });
    }
  }
  Deno.exit(0);
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function measure(kind: "sysv" | "posix"): Promise<void> {
  const sysv = kind === "sysv"
    ? SysvMessageQueue.open<Stamp>(0x1b00_0000 | (Deno.pid & 0xff_ffff), {
      create: true,
      exclusive: true,
      unlinkOnClose: true,
      spin: 0,
    })
    : undefined;
  const name = `/ipckit-bench-latency-${Deno.pid}`;
  const posix = kind === "posix"
    ? MessageQueue.open<Stamp>(name, {
      create: true,
      exclusive: true,
      unlinkOnClose: true,
      spin: 0,
    })
    : undefined;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--allow-ffi",
      "--allow-read",
      "--allow-write=/dev/mqueue,/proc/sysvipc",
      new URL(import.meta.url).pathname,
      `--child=${kind}`,
      `--key=${sysv ? sysv.key : name}`,
    ],
    stdin: "piped",
  }).spawn();
  const stdin = child.stdin.getWriter();
  const encoder = new TextEncoder();
  try {
    for (const idle of IDLE) {
      const latencies: number[] = [];
      for (let i = 0; i < SAMPLES; i++) {
        const receiving = sysv
          ? sysv.receive({ timeout: idle + 10_000 })
          : posix!.receive({ timeout: idle + 10_000 });
        await stdin.write(encoder.encode(`${idle}\n`));
        const { value } = await receiving;
        latencies.push(now() - value.sentAt);
      }
      latencies.sort((a, b) => a - b);
      console.log(
        `${kind.padEnd(6)} idle ${String(idle).padStart(5)} ms: median ${
          quantile(latencies, 0.5).toFixed(2).padStart(6)
        } ms, p90 ${quantile(latencies, 0.9).toFixed(2).padStart(6)} ms, max ${
          latencies.at(-1)!.toFixed(2).padStart(6)
        } ms (${SAMPLES} samples)`,
      );
    }
    await stdin.write(encoder.encode("-1\n"));
    await stdin.close();
    await child.status;
  } finally {
    sysv?.close();
    posix?.close();
  }
}

console.log(
  "latency from a send in another process to the receive, after the receiver waited `idle` ms",
);
await measure("sysv");
await measure("posix");
