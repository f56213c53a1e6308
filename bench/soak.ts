/**
 * The soak: every mechanism at full rate for N minutes, printing each
 * mechanism's throughput and this process's resident memory (RSS) and heap
 * every 10 seconds, so that a leak shows as a series that keeps rising.
 *
 *   deno task bench:soak --minutes 2              (reports every 10 s)
 *   deno task bench:soak --minutes 0.5 --every 5
 *
 * What runs, all at once, each a loop that waits for its previous message
 * before sending the next (so nothing queues up without bound):
 *
 * - a message queue, a shared FIFO, a pipe to a `cat` child, a Unix and a
 *   TCP socket, a UDP and a Unix datagram pair: send one, receive one;
 * - request/response over a Unix socket (a client with 100 requests in
 *   flight against serve());
 * - a semaphore ping-pong guarding a counter in shared memory, and a mutex;
 * - the patterns that used to leak: waits that time out (on an accept, a
 *   datagram socket, a stream and a queue) and distinct object names (a new
 *   queue, opened and removed, each time).
 *
 * Everything runs in this one process (both ends of each channel), so its
 * RSS is the number to watch. At the end it prints the RSS series and how
 * much the second half grew over the first: flat means a few MiB at most.
 * The rates are what each loop gets while it shares one thread with all the
 * others (the loops that never wait move in step, a macrotask turn every 64
 * rounds; the stream loops wait for I/O turns): they show that every
 * mechanism keeps moving, not how fast one is alone (`deno task bench`).
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import {
  bindDatagram,
  client,
  codecs,
  connect,
  Fifo,
  listen,
  MessageQueue,
  Mutex,
  type RpcEnvelope,
  Semaphore,
  serve,
  SharedMemory,
  spawn,
} from "../mod.ts";

const { minutes, every } = parseArgs(Deno.args, {
  string: ["minutes", "every"],
  default: { minutes: "2", every: "10" },
});
const durationMs = Number(minutes) * 60_000;
if (!(durationMs > 0)) {
  throw new RangeError(`--minutes must be a positive number, got ${minutes}`);
}
const REPORT_MS = Number(every) * 1000;
if (!(REPORT_MS > 0)) {
  throw new RangeError(
    `--every must be a positive number of seconds, got ${every}`,
  );
}

const counts = new Map<string, number>();
const count = (name: string, n = 1) =>
  counts.set(name, (counts.get(name) ?? 0) + n);
let running = true;
const cleanup: (() => void | Promise<void>)[] = [];
const tag = `/ipckit-soak-${Deno.pid}`;
const dir = await Deno.makeTempDir({ prefix: "ipckit-soak-" });
cleanup.push(() => Deno.remove(dir, { recursive: true }));

/**
 * Runs `step` until the soak ends, counting each round under `name`. A step
 * that completes at once (a free mutex) would make a loop of microtasks
 * only, which starves timers and I/O: every 64 rounds the loop yields a
 * macrotask turn.
 */
function loop(name: string, step: () => Promise<unknown>): Promise<void> {
  counts.set(name, 0);
  return guarded((async () => {
    for (let round = 1; running; round++) {
      await step();
      count(name);
      if (round % 64 === 0) await new Promise((resolve) => setTimeout(resolve));
    }
  })());
}

/** The first failure of any loop; it ends the soak (and is reported). */
let failure: unknown;
const failed = Promise.withResolvers<void>();
function guarded(work: Promise<void>): Promise<void> {
  return work.catch((error) => {
    failure ??= error;
    running = false;
    failed.resolve();
  });
}

/** A one-way channel pair's round: send a value, receive it. */
type Pair = {
  send: (value: number) => Promise<void>;
  receive: () => Promise<{ value: number }>;
};
function pingLoop(name: string, pair: Pair): Promise<void> {
  let n = 0;
  return loop(name, async () => {
    await pair.send(n++);
    await pair.receive();
  });
}

const loops: Promise<void>[] = [];
const series: number[] = [];
const mib = (bytes: number) => (bytes / 1048576).toFixed(1);
try {
  await soak();
} finally {
  running = false;
  await Promise.all(loops);
  // Newest first: what was made last may use what was made before it.
  for (const clean of cleanup.reverse()) {
    try {
      await clean();
    } catch (error) {
      console.error(`cleanup failed: ${error}`);
    }
  }
}
if (failure) throw failure;

/** Sets everything up, runs it for the duration, and reports. */
async function soak(): Promise<void> {
  const WAIT = { timeout: 10_000 };

  // Message queue.
  {
    // Small queues: RLIMIT_MSGQUEUE (800 KiB per user by default) is shared
    // by every queue of the user, and the default size takes 80 KiB each.
    const queue = MessageQueue.open<number>(`${tag}-mq`, {
      create: true,
      unlinkOnClose: true,
      maxMessages: 4,
      messageSize: 64,
    });
    cleanup.push(() => queue.close());
    loops.push(pingLoop("message queue", {
      send: (v) => queue.send(v, WAIT),
      receive: () => queue.receive(WAIT),
    }));
  }

  // Shared FIFO.
  {
    const fifo = Fifo.create(`${dir}/fifo`);
    const reader = await fifo.openReader<number>({ sharedWriters: true });
    const writer = await fifo.openWriter<number>({
      sharedWriters: true,
      timeout: 5000,
    });
    cleanup.push(() => (writer.close(), reader.close(), fifo.unlink()));
    loops.push(pingLoop("FIFO", {
      send: (v) => writer.send(v, WAIT),
      receive: () => reader.receive(WAIT),
    }));
  }

  // A pipe to a cat child, which echoes every line.
  {
    const child = spawn<number, number>("cat", { framing: "lines" });
    cleanup.push(async () => {
      child.close();
      await child.status;
    });
    loops.push(pingLoop("pipe (cat)", {
      send: (v) => child.send(v, WAIT),
      receive: () => child.receive(WAIT),
    }));
  }

  // Unix and TCP stream sockets.
  for (const transport of ["unix", "tcp"] as const) {
    const path = `${dir}/stream.sock`;
    const server = await listen<number>(
      transport === "unix" ? { path } : { port: 0 },
    );
    const accepted = server.accept({ timeout: 5000 });
    const near = await connect<number>(
      transport === "unix"
        ? { path, timeout: 5000 }
        : { port: (server.addr as Deno.NetAddr).port, timeout: 5000 },
    );
    const far = await accepted;
    cleanup.push(() => (near.close(), far.close(), server.close()));
    loops.push(pingLoop(`${transport} socket`, {
      send: (v) => near.send(v, WAIT),
      receive: () => far.receive(WAIT),
    }));
  }

  // UDP and Unix datagrams.
  for (const transport of ["udp", "unix datagram"] as const) {
    const a = await bindDatagram<number>(
      transport === "udp" ? { port: 0 } : { path: `${dir}/a.dg` },
    );
    const b = await bindDatagram<number>(
      transport === "udp"
        ? { port: 0, peer: a.addr }
        : { path: `${dir}/b.dg`, peer: a.addr },
    );
    cleanup.push(() => (a.close(), b.close()));
    loops.push(pingLoop(transport, {
      send: (v) => b.send(v, WAIT),
      receive: () => a.receive(WAIT),
    }));
  }

  // Request/response: 100 requests in flight over a Unix socket.
  {
    type Envelope = RpcEnvelope<number, number>;
    const path = `${dir}/rpc.sock`;
    const server = await listen<Envelope>({ path });
    const accepted = server.accept({ timeout: 5000 });
    const channel = await connect<Envelope>({ path, timeout: 5000 });
    const connection = await accepted;
    const rpc = serve(connection, (n: number) => n + 1);
    const calls = client<number, number>(channel);
    cleanup.push(() => {
      calls.close();
      rpc.close();
      channel.close();
      connection.close();
      server.close();
    });
    counts.set("rpc (100 in flight)", 0);
    for (let i = 0; i < 100; i++) {
      loops.push(guarded((async () => {
        for (let round = 1; running; round++) {
          await calls.request(i, WAIT);
          count("rpc (100 in flight)");
          if (round % 64 === 0) {
            await new Promise((resolve) => setTimeout(resolve));
          }
        }
      })()));
    }
  }

  // A semaphore ping-pong guarding a counter in shared memory; a mutex.
  {
    const memory = SharedMemory.open(`${tag}-shm`, {
      create: true,
      size: 4096,
      unlinkOnClose: true,
    });
    const ping = Semaphore.inMemory(memory, 0, { initial: 0 });
    const pong = Semaphore.inMemory(memory, 64, { initial: 0 });
    const counter = memory.view(Int32Array, 1024, 1);
    const mutex = Mutex.open(`${tag}-mutex`, {
      create: true,
      unlinkOnClose: true,
    });
    cleanup.push(() => {
      mutex.close();
      ping.close();
      pong.close();
      memory.close();
    });
    loops.push(loop("semaphore + shared memory", async () => {
      Atomics.add(counter, 0, 1);
      ping.post();
      await ping.wait(WAIT);
      pong.post();
      await pong.wait(WAIT);
    }));
    loops.push(loop("mutex", async () => {
      using _ = await mutex.lock(WAIT);
    }));
  }

  // What used to leak: waits given up on, and distinct names.
  {
    const idle = await listen({ path: `${dir}/idle.sock` });
    const idleDatagram = await bindDatagram({ port: 0 });
    const idleQueue = MessageQueue.open(`${tag}-idle`, {
      create: true,
      unlinkOnClose: true,
      maxMessages: 1,
      messageSize: 64,
    });
    const server = await listen({ path: `${dir}/quiet.sock` });
    const accepted = server.accept({ timeout: 5000 });
    const quiet = await connect({ path: `${dir}/quiet.sock`, timeout: 5000 });
    const quietFar = await accepted;
    cleanup.push(() => {
      idle.close();
      idleDatagram.close();
      idleQueue.close();
      quiet.close();
      quietFar.close();
      server.close();
    });
    const timedOut = async (wait: Promise<unknown>) => {
      try {
        await wait;
      } catch (error) {
        if (!(error instanceof Deno.errors.TimedOut)) throw error;
      }
    };
    loops.push(loop("timed-out waits (x4)", () =>
      Promise.all([
        timedOut(idle.accept({ timeout: 1 })),
        timedOut(idleDatagram.receive({ timeout: 1 })),
        timedOut(idleQueue.receive({ timeout: 1 })),
        timedOut(quietFar.receive({ timeout: 1 })),
      ])));
    let n = 0;
    loops.push(loop("distinct queue names", () => {
      const name = `${tag}-name-${n++}`;
      MessageQueue.open(name, {
        create: true,
        maxMessages: 1,
        messageSize: 64,
        codec: codecs.bytes(),
      }).close();
      MessageQueue.unlink(name);
      return Promise.resolve();
    }));
  }

  // Report every 10 s.
  const started = performance.now();
  let last = { at: started, counts: new Map(counts) };
  const report = () => {
    const now = performance.now();
    const { rss, heapUsed } = Deno.memoryUsage();
    series.push(rss);
    const seconds = (now - last.at) / 1000;
    const rates = [...counts].map(([name, total]) =>
      `${name} ${
        Math.round((total - (last.counts.get(name) ?? 0)) / seconds)
      }/s`
    );
    console.log(
      `${Math.round((now - started) / 1000)} s  RSS ${mib(rss)} MiB  heap ${
        mib(heapUsed)
      } MiB  |  ${rates.join(", ")}`,
    );
    last = { at: now, counts: new Map(counts) };
  };
  const timer = setInterval(report, REPORT_MS);
  await Promise.race([
    new Promise((resolve) => setTimeout(resolve, durationMs)),
    failed.promise,
  ]);
  clearInterval(timer);
  report();
  running = false;
  await Promise.all(loops);
}

const half = Math.floor(series.length / 2);
const firstHalfMax = Math.max(...series.slice(0, Math.max(1, half)));
const secondHalfMax = Math.max(...series.slice(half));
console.log(`RSS series (MiB): ${series.map(mib).join(", ")}`);
console.log(
  `RSS: second half's peak ${mib(secondHalfMax)} MiB vs first half's ${
    mib(firstHalfMax)
  } MiB (${secondHalfMax > firstHalfMax ? "+" : ""}${
    mib(secondHalfMax - firstHalfMax)
  } MiB)`,
);
