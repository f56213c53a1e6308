/**
 * Cross-process benchmark of the stream mechanisms, all in one run:
 * a 64-byte round trip and 1 MiB-message streaming throughput over a FIFO
 * pair (Fifo.duplex) and over spawn() pipes, beside a baseline of plain
 * Deno.Command stdin/stdout without ipckit.
 *
 *   deno task bench:streams [--round-trips 5000] [--samples 7] [--messages 32]
 *
 * Round trips are timed one by one and the median is reported; throughput
 * is timed per sample (`--messages` messages of 1 MiB each way to the peer,
 * one ack back) and the median sample is reported.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { codecs, Fifo, type Message, spawn } from "../mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "round-trips": { type: "string", default: "5000" },
    samples: { type: "string", default: "7" },
    messages: { type: "string", default: "32" },
  },
});
const ROUND_TRIPS = Number(values["round-trips"]);
const SAMPLES = Number(values.samples);
const MESSAGES = Number(values.messages);
const WARMUP = 500;
const MIB = 1024 * 1024;

const PEER = new URL("./_stream_peer.ts", import.meta.url).pathname;
const bytes = codecs.bytes();

interface BytesChannel {
  send(value: Uint8Array): Promise<void>;
  receive(): Promise<Message<Uint8Array>>;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2
    ? sorted[middle]
    : (sorted[middle - 1] + sorted[middle]) / 2;
}

async function roundTrips(channel: BytesChannel): Promise<number> {
  const message = new Uint8Array(64).fill(7);
  const times: number[] = [];
  for (let i = 0; i < WARMUP + ROUND_TRIPS; i++) {
    const start = performance.now();
    await channel.send(message);
    const { value } = await channel.receive();
    if (value.byteLength !== 64) throw new Error("echo lost bytes");
    if (i >= WARMUP) times.push(performance.now() - start);
  }
  return median(times) * 1000;
}

async function throughput(channel: BytesChannel): Promise<number> {
  const message = new Uint8Array(MIB).fill(1);
  const rates: number[] = [];
  for (let sample = 0; sample < SAMPLES + 1; sample++) {
    const start = performance.now();
    const acks = (async () => {
      for (let i = 0; i < MESSAGES; i++) await channel.receive();
    })();
    for (let i = 0; i < MESSAGES; i++) await channel.send(message);
    await acks;
    const seconds = (performance.now() - start) / 1000;
    if (sample > 0) rates.push(MESSAGES / seconds); // sample 0 warms up
  }
  return median(rates);
}

/** Baseline: raw bytes over a Deno.Command child's stdin/stdout. */
async function baseline(): Promise<[number, number]> {
  const flags = ["run", "--quiet", PEER];
  const echo = new Deno.Command(Deno.execPath(), {
    args: [...flags, "raw-echo"],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const writer = echo.stdin.getWriter();
  const reader = echo.stdout.getReader();
  const message = new Uint8Array(64).fill(7);
  const times: number[] = [];
  for (let i = 0; i < WARMUP + ROUND_TRIPS; i++) {
    const start = performance.now();
    await writer.write(message);
    let got = 0;
    while (got < 64) {
      const { value, done } = await reader.read();
      if (done) throw new Error("echo ended");
      got += value.byteLength;
    }
    if (i >= WARMUP) times.push(performance.now() - start);
  }
  await writer.close();
  reader.releaseLock();
  await echo.stdout.cancel();
  await echo.status;

  const chunk = new Uint8Array(MIB).fill(1);
  const rates: number[] = [];
  const sink = new Deno.Command(Deno.execPath(), {
    args: [...flags, "raw-sink", String(MESSAGES * MIB)],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const sinkWriter = sink.stdin.getWriter();
  const acks = sink.stdout.getReader();
  for (let sample = 0; sample < SAMPLES + 1; sample++) {
    const start = performance.now();
    for (let i = 0; i < MESSAGES; i++) await sinkWriter.write(chunk);
    const { value } = await acks.read();
    if (value?.byteLength !== 1) throw new Error("sink did not ack");
    const seconds = (performance.now() - start) / 1000;
    if (sample > 0) rates.push(MESSAGES / seconds); // sample 0 warms up
  }
  await sinkWriter.close();
  acks.releaseLock();
  await sink.stdout.cancel();
  await sink.status;
  return [median(times) * 1000, median(rates)];
}

async function fifoPair(): Promise<[number, number]> {
  const dir = await Deno.makeTempDir({ prefix: "ipckit-bench-" });
  try {
    const base = `${dir}/bench`;
    const peer = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--allow-ffi",
        `--allow-read=${dir}`,
        `--allow-write=${dir}`,
        PEER,
        "fifo",
        base,
      ],
    }).spawn();
    let result: [number, number];
    {
      await using channel = await Fifo.duplex<Uint8Array>(base, {
        role: "server",
        codec: bytes,
        timeout: 30_000,
      });
      result = [await roundTrips(channel), await throughput(channel)];
    }
    await peer.status;
    return result;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function spawnPipes(): Promise<[number, number]> {
  await using child = spawn<Uint8Array, Uint8Array>(Deno.execPath(), [
    "run",
    "--quiet",
    PEER,
    "pipe",
  ], { sendCodec: bytes, receiveCodec: bytes });
  return [await roundTrips(child), await throughput(child)];
}

const rows: [string, number, number][] = [];
for (
  const [name, run] of [
    ["Deno.Command stdin/stdout (raw bytes, baseline)", baseline],
    ["ipckit spawn() pipes (frames)", spawnPipes],
    ["ipckit Fifo.duplex (frames)", fifoPair],
  ] as const
) {
  const [rtt, rate] = await run();
  rows.push([name, rtt, rate]);
}
console.log(
  `${ROUND_TRIPS} round trips of 64 bytes (median), ${SAMPLES} samples of ${MESSAGES} x 1 MiB (median)`,
);
console.log(
  "| channel | 64 B round trip, µs | 1 MiB messages/s (= MiB/s) |",
);
console.log("| --- | ---: | ---: |");
for (const [name, rtt, rate] of rows) {
  console.log(`| ${name} | ${rtt.toFixed(1)} | ${rate.toFixed(0)} |`);
}
