/**
 * One publisher, 4 subscriber processes, 64-byte messages: the aggregate
 * rate at which every subscriber receives every message, and the CPU a
 * parked subscriber uses while nothing is published.
 *
 *   deno task bench:pubsub [--subscribers=1,4] [--messages=200000] [--runs=5]
 *                          [--capacity=1024] [--idle-seconds=10] [--overflow=block]
 *
 * The publisher (this process) sends `messages` messages of 64 bytes
 * (`codecs.bytes()`) per run as fast as `send()` lets it; with overflow
 * "block" (the default) it waits for the slowest subscriber, so every
 * subscriber gets every message and the rate is the one they all keep up
 * with. A run lasts from the first send until every subscriber has said it
 * received the run's messages (its line through a pipe: well under a
 * millisecond of a run of about a second). The aggregate rate is
 * subscribers x messages / that time; the median of the runs is printed,
 * with the slowest and fastest.
 *
 * Each count of subscribers in `--subscribers` is a fan-out of its own,
 * in this order, and the ratio of the last to the first is printed (same
 * run, same machine load). Before them, one process publishes and
 * receives in turns, for the CPU a message costs with no other process.
 *
 * Idle CPU: after the last run each subscriber parks in `receive()`. The
 * process CPU clock of each (user + system, every thread; ffi/cpu_clock.ts,
 * the clock bench/idle_wait.ts and the driver read) is read when all say
 * they are parked and again `idle-seconds` later, and printed per
 * subscriber in ms and in % of one core.
 *
 * Wake-up latency: then `wakes` messages, 50 ms apart (each subscriber
 * is asleep again by the next), carry the time they were sent
 * (`performance.timeOrigin + performance.now()`, comparable between
 * processes of one machine to well under a microsecond's drift over a
 * run); each subscriber reports the median and the largest delay from
 * send to the return of its `receive()`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { codecs, Publisher, Subscriber } from "../mod.ts";
import { processCpuNanos } from "../ffi/cpu_clock.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    subscribers: { type: "string", default: "1,4" },
    messages: { type: "string", default: "200000" },
    runs: { type: "string", default: "5" },
    capacity: { type: "string", default: "1024" },
    "idle-seconds": { type: "string", default: "10" },
    overflow: { type: "string", default: "block" },
    wakes: { type: "string", default: "21" },
  },
});
const COUNTS = values.subscribers.split(",").map(Number);
const MESSAGES = Number(values.messages);
const RUNS = Number(values.runs);
const CAPACITY = Number(values.capacity);
const IDLE_SECONDS = Number(values["idle-seconds"]);
const OVERFLOW = values.overflow as "block" | "drop-oldest";
const WAKES = Number(values.wakes);

/** Reads a child's stdout line by line. */
class Lines {
  #reader: ReadableStreamDefaultReader<string>;
  #text = "";
  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  }
  async next(): Promise<string> {
    for (;;) {
      const newline = this.#text.indexOf("\n");
      if (newline >= 0) {
        const line = this.#text.slice(0, newline);
        this.#text = this.#text.slice(newline + 1);
        return line;
      }
      const { value, done } = await this.#reader.read();
      if (done) throw new Error(`a subscriber ended: ${this.#text}`);
      this.#text += value;
    }
  }
  cancel(): Promise<void> {
    return this.#reader.cancel();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2
    ? sorted[middle]
    : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** One fan-out to `SUBSCRIBERS` subscriber processes; returns the median aggregate rate. */
async function fanOut(SUBSCRIBERS: number): Promise<number> {
  const topic = `/ipckit-bench-pubsub-${Deno.pid}`;
  await using publisher = Publisher.open(topic, {
    codec: codecs.bytes(),
    create: true,
    exclusive: true,
    capacity: CAPACITY,
    maxMessageSize: 64,
    maxSubscribers: SUBSCRIBERS,
    overflow: OVERFLOW,
    unlinkOnClose: true,
  });
  const children = Array.from({ length: SUBSCRIBERS }, () => {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--allow-ffi",
        "--allow-read=/dev/shm,/proc",
        "--allow-write=/dev/shm",
        new URL("./fixtures/pubsub_subscriber.ts", import.meta.url).pathname,
        topic,
        String(MESSAGES),
        String(RUNS),
        String(WAKES),
      ],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    return { child, lines: new Lines(child.stdout) };
  });
  const rates: number[] = [];
  try {
    for (const { lines } of children) {
      const line = await lines.next();
      if (line !== "joined") throw new Error(`a subscriber said ${line}`);
    }
    console.log(
      `pubsub fan-out: 1 publisher -> ${SUBSCRIBERS} subscriber processes, 64 B messages, overflow "${OVERFLOW}", capacity ${CAPACITY}, ${MESSAGES} messages x ${RUNS} runs`,
    );
    const message = new Uint8Array(64).fill(7);
    let missedTotal = 0;
    for (let run = 0; run < RUNS; run++) {
      const started = performance.now();
      const finished = Promise.all(children.map(async ({ lines }) => {
        const [word, runText, received, missed] = (await lines.next()).split(
          " ",
        );
        if (word !== "done" || Number(runText) !== run) {
          throw new Error(`a subscriber said ${word} ${runText}`);
        }
        missedTotal += Number(missed);
        return Number(received) + Number(missed);
      }));
      for (let i = 0; i < MESSAGES; i++) await publisher.send(message);
      const counts = await finished;
      const seconds = (performance.now() - started) / 1000;
      if (counts.some((count) => count !== MESSAGES)) {
        throw new Error(`counts ${counts.join(", ")}`);
      }
      const rate = (SUBSCRIBERS * MESSAGES) / seconds;
      rates.push(rate);
      console.log(
        `  run ${run + 1}: ${(seconds * 1000).toFixed(0)} ms, ${
          (rate / 1e6).toFixed(3)
        } M messages/s received in all`,
      );
    }
    console.log(
      `aggregate rate: median ${
        (median(rates) / 1e6).toFixed(3)
      } M messages/s (${
        (median(rates) / SUBSCRIBERS / 1e6).toFixed(3)
      } M/s per subscriber; runs from ${
        (Math.min(...rates) / 1e6).toFixed(3)
      } to ${
        (Math.max(...rates) / 1e6).toFixed(3)
      }); messages missed in all: ${missedTotal}`,
    );

    for (const { lines } of children) {
      const line = await lines.next();
      if (line !== "parked") throw new Error(`a subscriber said ${line}`);
    }
    // Let the last receive() spin out and park.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const before = children.map(({ child }) => processCpuNanos(child.pid)!);
    await new Promise((resolve) => setTimeout(resolve, IDLE_SECONDS * 1000));
    const after = children.map(({ child }) => processCpuNanos(child.pid)!);
    const idleMs = after.map((end, i) => (end - before[i]) / 1e6);
    console.log(
      `idle parked subscriber, CPU over ${IDLE_SECONDS} s: ${
        idleMs.map((ms) => `${ms.toFixed(2)} ms`).join(", ")
      } (median ${median(idleMs).toFixed(2)} ms, ${
        (median(idleMs) / (IDLE_SECONDS * 10)).toFixed(3)
      }% of one core)`,
    );
    // Wake-up latency: one message at a time to sleeping subscribers.
    const stamped = new Uint8Array(64);
    const stamp = new DataView(stamped.buffer);
    for (let i = 0; i < WAKES; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      stamp.setFloat64(8, performance.timeOrigin + performance.now(), true);
      await publisher.send(stamped);
    }
    const wakes = await Promise.all(children.map(async ({ lines }) => {
      const [word, median, max] = (await lines.next()).split(" ");
      if (word !== "wake") throw new Error(`a subscriber said ${word}`);
      return { median: Number(median), max: Number(max) };
    }));
    console.log(
      `wake-up of a sleeping subscriber, send to receive, ${WAKES} messages 50 ms apart: median ${
        median(wakes.map((w) => w.median)).toFixed(0)
      } µs (per subscriber: ${
        wakes.map((w) => w.median).join(", ")
      } µs; slowest single wake ${Math.max(...wakes.map((w) => w.max))} µs)`,
    );
    for (const { child } of children) {
      const status = await child.status;
      if (!status.success) {
        throw new Error(`a subscriber failed: ${status.code}`);
      }
    }
  } finally {
    for (const { child, lines } of children) {
      try {
        child.kill("SIGKILL");
      } catch {
        // exited already
      }
      await lines.cancel().catch(() => {});
    }
  }
  return median(rates);
}

/**
 * The CPU cost of one message with no other process: trySend() and
 * tryReceive() in turns of 512 on one topic, 64 B, ns per message (the
 * median of 5 rounds). What a subscriber pays at least per message.
 */
function inProcessNanos(): number {
  const name = `/ipckit-bench-pubsub-local-${Deno.pid}`;
  using publisher = Publisher.open(name, {
    codec: codecs.bytes(),
    create: true,
    exclusive: true,
    capacity: 1024,
    maxMessageSize: 64,
    unlinkOnClose: true,
  });
  using subscriber = Subscriber.open(name, { codec: codecs.bytes() });
  const message = new Uint8Array(64);
  const rounds: number[] = [];
  for (let round = 0; round < 5; round++) {
    const started = performance.now();
    for (let turn = 0; turn < 200; turn++) {
      for (let i = 0; i < 512; i++) publisher.trySend(message);
      for (let i = 0; i < 512; i++) subscriber.tryReceive();
    }
    rounds.push(((performance.now() - started) * 1e6) / (200 * 512));
  }
  return median(rounds);
}

const local = inProcessNanos();
console.log(
  `in one process, trySend + tryReceive of one 64 B message: ${
    (local / 1000).toFixed(2)
  } µs (median of 5 rounds)`,
);
const medians: number[] = [];
for (const count of COUNTS) medians.push(await fanOut(count));
if (COUNTS.length > 1) {
  console.log(
    `aggregate rate with ${COUNTS.at(-1)} subscribers / with ${COUNTS[0]}: ${
      (medians.at(-1)! / medians[0]).toFixed(2)
    }x (same run)`,
  );
}
