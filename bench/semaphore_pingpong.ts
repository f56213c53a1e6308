/**
 * Semaphore numbers that `deno bench` cannot take:
 *
 * 1. Cross-process ping-pong: this process posts "ping" and waits on
 *    "pong"; a child (bench/fixtures/shm_echo.ts, blocking in waitSync)
 *    waits on "ping" and posts "pong". No payload. Measured with this side
 *    waiting in `waitSync()` and in `await wait()`.
 * 2. A parked async `wait()`: how long an abort takes to settle it, and
 *    how much CPU it burns per second while idle (see also
 *    `deno task bench:idle` for many waits of every kind).
 *
 * Run: deno task bench:sem [--rounds=N]
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { Semaphore, SharedMemory } from "../mod.ts";
import { summarize } from "./_stats.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { rounds: { type: "string", default: "20000" } },
});
const ROUNDS = Number(values.rounds);

async function pingPong(sync: boolean): Promise<void> {
  const name = `/ipckit-bench-pp-${Deno.pid}-${sync ? "sync" : "async"}`;
  using memory = SharedMemory.open(name, {
    create: true,
    exclusive: true,
    size: 128,
  });
  using ping = Semaphore.inMemory(memory, 0, { initial: 0 });
  using pong = Semaphore.inMemory(memory, 32, { initial: 0 });
  const length = memory.view(Uint32Array, 64, 1);
  const peer = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-ffi",
      "--allow-read=/dev/shm",
      "--allow-write=/dev/shm",
      new URL("./fixtures/shm_echo.ts", import.meta.url).pathname,
      name,
    ],
  }).spawn();
  try {
    await pong.wait({ timeout: 30_000 });
  } finally {
    memory.unlink();
  }
  const samples = new Float64Array(ROUNDS);
  const warmUp = ROUNDS / 10;
  for (let i = -warmUp; i < ROUNDS; i++) {
    const start = performance.now();
    ping.post();
    if (sync) pong.waitSync();
    else await pong.wait();
    if (i >= 0) samples[i] = (performance.now() - start) * 1000;
  }
  length[0] = 0xffff_ffff;
  ping.post();
  await peer.status;
  const { median, p99 } = summarize([...samples]);
  console.log(
    `ping-pong, this side ${sync ? "waitSync()" : "await wait()"}`.padEnd(40),
    `median ${median.toFixed(1)} µs`.padStart(18),
    `p99 ${p99.toFixed(1)} µs`.padStart(16),
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function parkedWait(): Promise<void> {
  const name = `/ipckit-bench-slice-${Deno.pid}`;
  using semaphore = Semaphore.open(name, { create: true, exclusive: true });
  semaphore.unlink();
  // Abort latency: from abort() to the rejection being seen.
  const latencies: number[] = [];
  for (let i = 0; i < 40; i++) {
    const controller = new AbortController();
    const pending = semaphore.wait({ signal: controller.signal }).catch(
      () => performance.now(),
    );
    await sleep(7 + (i % 5));
    const aborted = performance.now();
    controller.abort();
    latencies.push((await pending as number) - aborted);
  }
  // Idle cost: CPU time of this process while one wait is parked for 2 s.
  const controller = new AbortController();
  const pending = semaphore.wait({ signal: controller.signal }).catch(() => {});
  await sleep(50);
  const before = process.cpuUsage();
  await sleep(2000);
  const used = process.cpuUsage(before);
  controller.abort();
  await pending;
  const cpuMsPerSecond = (used.user + used.system) / 1000 / 2;
  const { median, p99 } = summarize(latencies);
  console.log(
    "parked wait()".padEnd(14),
    `abort median ${median.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms`
      .padEnd(48),
    `idle CPU ${cpuMsPerSecond.toFixed(1)} ms/s`,
  );
}

console.log(`cross-process ping-pong, ${ROUNDS} round trips after warm-up`);
await pingPong(true);
await pingPong(false);
console.log("async wait() parked: abort latency and idle cost");
await parkedWait();
