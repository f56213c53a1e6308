/**
 * Request/response round trip with a 64-byte payload over each transport,
 * measured in one run against an echo server in another process (the
 * in-memory stream pair is the in-process floor).
 *
 *     deno task bench:rpc [--rounds 5000] [--warmup 500]
 *
 * Unix datagram sockets are not measured: Deno 2.9 cannot send on one while
 * a receive waits, which request/response needs (see datagram.ts).
 *
 * Prints the median, p90 and p99 round-trip time per transport. Requests
 * are sequential: each waits for the previous answer, so this is latency,
 * not throughput.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  bindDatagram,
  type Channel,
  client,
  connect,
  duplex,
  FramedChannel,
  type Message,
  MessageQueue,
  type RpcEnvelope,
  serve,
} from "../mod.ts";

type Envelope = RpcEnvelope<string, string>;
type RpcChannel = Channel<Envelope, Message<Envelope>>;

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "5000" },
    warmup: { type: "string", default: "500" },
  },
});
const rounds = Number(values.rounds);
const warmup = Number(values.warmup);
const payload = "x".repeat(64);
const serverScript = new URL("./_rpc_echo_server.ts", import.meta.url).pathname;
const dir = await Deno.makeTempDir({ prefix: "ipckit-bench-" });

function spawnServer(args: string[], flags: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...flags, serverScript, ...args],
    stdin: args[0] === "stdio" ? "piped" : "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
}

async function firstLine(child: Deno.ChildProcess): Promise<string> {
  const reader = child.stdout.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!text.includes("\n")) {
    const { done, value } = await reader.read();
    if (done) throw new Error("the server ended early");
    text += decoder.decode(value, { stream: true });
  }
  reader.releaseLock();
  return text.split("\n")[0];
}

const netFlags = (...paths: string[]) => [
  "--unstable-net",
  `--allow-net=${["127.0.0.1", ...paths.map((path) => `unix:${path}`)]}`,
  `--allow-read=${dir}`,
  `--allow-write=${dir}`,
];

interface Setup {
  channel: RpcChannel;
  stop(): Promise<void>;
}

const transports: [string, () => Promise<Setup>][] = [
  ["in-memory stream pair (same process)", () => {
    const up = new TransformStream<Uint8Array, Uint8Array>();
    const down = new TransformStream<Uint8Array, Uint8Array>();
    const server = new FramedChannel<Envelope>({
      readable: up.readable,
      writable: down.writable,
    });
    serve(server, (value: string) => value);
    const channel = new FramedChannel<Envelope>({
      readable: down.readable,
      writable: up.writable,
    });
    return Promise.resolve({
      channel,
      stop: () => {
        channel.close();
        server.close();
        return Promise.resolve();
      },
    });
  }],
  ["pipe to a child (stdin/stdout)", () => {
    const child = spawnServer(["stdio"], []);
    const channel = new FramedChannel<Envelope>({
      readable: child.stdout,
      writable: child.stdin,
    });
    return Promise.resolve({
      channel,
      stop: async () => {
        await channel.closeWrite();
        await child.status;
        channel.close();
      },
    });
  }],
  ["Unix stream socket", async () => {
    const path = `${dir}/bench.sock`;
    const child = spawnServer(["unix", path], netFlags(path));
    await firstLine(child);
    const channel = await connect<Envelope>({ path });
    return {
      channel,
      stop: async () => {
        channel.close();
        await child.stdout.cancel();
        await child.status;
      },
    };
  }],
  ["TCP 127.0.0.1", async () => {
    const child = spawnServer(["tcp"], netFlags());
    const { port } = JSON.parse(await firstLine(child));
    const channel = await connect<Envelope>({ port });
    return {
      channel,
      stop: async () => {
        channel.close();
        await child.stdout.cancel();
        await child.status;
      },
    };
  }],
  ["UDP 127.0.0.1", async () => {
    const child = spawnServer(["udp"], netFlags());
    const { port } = JSON.parse(await firstLine(child));
    const channel = await bindDatagram<Envelope>({ port: 0, peer: { port } });
    return {
      channel,
      stop: async () => {
        channel.close();
        child.kill("SIGTERM");
        await child.stdout.cancel();
        await child.status;
      },
    };
  }],
  ["POSIX message-queue pair", async () => {
    const suffix = `${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
    const requests = `/ipckit-bench-req-${suffix}`;
    const replies = `/ipckit-bench-rep-${suffix}`;
    const open = (name: string) =>
      MessageQueue.open<Envelope>(name, { create: true, unlinkOnClose: true });
    const channel = duplex(open(requests), open(replies));
    const child = spawnServer(["mq", requests, replies], [
      "--allow-ffi",
      "--allow-read=/dev/mqueue",
      "--allow-write=/dev/mqueue",
    ]);
    await firstLine(child);
    return {
      channel,
      stop: async () => {
        child.kill("SIGTERM");
        await child.stdout.cancel();
        await child.status;
        channel.close();
      },
    };
  }],
];

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

const format = (ms: number) => `${(ms * 1000).toFixed(1)} µs`;
console.log(
  `64-byte request/response, ${rounds} sequential round trips after ${warmup} warm-up, Deno ${Deno.version.deno}, ${Deno.build.os}/${Deno.build.arch}`,
);
console.log(
  "transport".padEnd(40),
  "median".padStart(10),
  "p90".padStart(10),
  "p99".padStart(10),
);
try {
  for (const [name, setup] of transports) {
    const { channel, stop } = await setup();
    const calls = client<string, string>(channel);
    try {
      for (let i = 0; i < warmup; i++) {
        await calls.request(payload, { timeout: 10_000 });
      }
      const samples = new Float64Array(rounds);
      for (let i = 0; i < rounds; i++) {
        const start = performance.now();
        const answer = await calls.request(payload, { timeout: 10_000 });
        samples[i] = performance.now() - start;
        if (answer !== payload) throw new Error(`${name}: wrong answer`);
      }
      const sorted = [...samples].sort((a, b) => a - b);
      console.log(
        name.padEnd(40),
        format(quantile(sorted, 0.5)).padStart(10),
        format(quantile(sorted, 0.9)).padStart(10),
        format(quantile(sorted, 0.99)).padStart(10),
      );
    } finally {
      calls.close();
      await stop();
    }
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}
