import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import {
  bindDatagram,
  type Channel,
  client,
  connect,
  duplex,
  Fifo,
  FramedChannel,
  type Message,
  MessageQueue,
  RemoteError,
  type RpcEnvelope,
  serve,
} from "../mod.ts";
import { leakChecked, spawnFixture, uniqueName } from "./_helpers.ts";
import { type Ask, handle } from "./fixtures/_rpc_handler.ts";

type Envelope = RpcEnvelope<Ask, unknown>;
type RpcChannel = Channel<Envelope, Message<Envelope>>;

/** One transport: a client-side channel to a server running `handle`. */
interface Transport {
  channel: RpcChannel;
  /** Stops the server and releases everything the transport made. */
  close(): Promise<void>;
}

/** The same checks, whatever carries the messages. */
async function exercise(channel: RpcChannel): Promise<void> {
  using calls = client<Ask, unknown>(channel);

  // Many requests in flight; the later ones finish first.
  const finished: number[] = [];
  const results = await Promise.all(
    Array.from({ length: 10 }, async (_, i) => {
      const value = await calls.request(
        { op: "echo", value: { i }, delay: (10 - i) * 30 },
        { timeout: 20_000 },
      );
      finished.push(i);
      return value;
    }),
  );
  assertEquals(results, Array.from({ length: 10 }, (_, i) => ({ i })));
  assert(
    finished.indexOf(9) < finished.indexOf(0),
    `responses came back in request order: ${finished}`,
  );

  // A handler's error arrives as an error, without the remote stack.
  const error = await assertRejects(
    () =>
      calls.request({ op: "fail", name: "RangeError", message: "no such job" }),
    RemoteError,
  );
  assertEquals(error.name, "RangeError");
  assertEquals(error.message, "no such job");
  assertEquals(error.remoteStack, undefined);
  assert(!error.stack?.includes("_rpc_handler"), error.stack);

  // A timeout and an abort leave nothing pending.
  await assertRejects(
    () =>
      calls.request({ op: "echo", value: "slow", delay: 300 }, { timeout: 20 }),
    Deno.errors.TimedOut,
  );
  assertEquals(calls.pending, 0);
  const stop = new AbortController();
  const aborted = calls.request({ op: "echo", value: "slow", delay: 300 }, {
    signal: stop.signal,
  });
  stop.abort(new Error("changed my mind"));
  await assertRejects(() => aborted, Error, "changed my mind");
  assertEquals(calls.pending, 0);

  // Late answers to those are dropped; the channel still serves.
  assertEquals(
    await calls.request({ op: "echo", value: "after", delay: 400 }),
    "after",
  );
  assertEquals(calls.pending, 0);
}

async function firstLine(child: Deno.ChildProcess): Promise<string> {
  const reader = child.stdout.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!text.includes("\n")) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`the server ended early: ${text}`);
    text += decoder.decode(value, { stream: true });
  }
  reader.releaseLock();
  return text.split("\n")[0];
}

async function finished(
  child: Deno.ChildProcess,
  killed = false,
): Promise<void> {
  if (killed) child.kill("SIGTERM");
  const [status, stderr] = await Promise.all([
    child.status,
    new Response(child.stderr).text(),
    child.stdout.cancel(),
  ]);
  if (!killed) assertEquals(status.code, 0, stderr);
}

const socketFlags = (dir: string, path = "") => [
  "--allow-ffi",
  "--allow-net=127.0.0.1" + (path ? `,unix:${path}` : ""),
  `--allow-read=${dir}`,
  `--allow-write=${dir}`,
];

const transports: Record<string, () => Promise<Transport>> = {
  async "a pair of message queues joined by duplex()"(): Promise<Transport> {
    const requests = uniqueName("rpc-requests");
    const replies = uniqueName("rpc-replies");
    const open = (name: string) =>
      MessageQueue.open<Envelope>(name, { create: true, unlinkOnClose: true });
    const channel = duplex(open(requests), open(replies));
    const server = spawnFixture(
      "rpc_server.ts",
      ["--allow-ffi", "--allow-read=/dev/mqueue", "--allow-write=/dev/mqueue"],
      ["mq", requests, replies],
    );
    assertEquals(await firstLine(server), "ready");
    return {
      channel,
      close: async () => {
        await finished(server, true);
        channel.close();
      },
    };
  },

  async "a FIFO pair"(): Promise<Transport> {
    const dir = await Deno.makeTempDir({ prefix: "ipckit-test-rpc-" });
    const base = `${dir}/rpc`;
    const server = spawnFixture("rpc_server.ts", [
      "--allow-ffi",
      `--allow-read=${dir}`,
      `--allow-write=${dir}`,
    ], ["fifo", base]);
    const channel = await Fifo.duplex<Envelope>(base, {
      role: "client",
      timeout: 30_000,
    });
    return {
      channel,
      close: async () => {
        await channel.closeWrite(); // the server's iteration ends, it exits
        channel.close();
        await finished(server);
        await Deno.remove(dir, { recursive: true });
      },
    };
  },

  "a pipe to a child's stdin and stdout"(): Promise<Transport> {
    const script =
      new URL("./fixtures/rpc_server.ts", import.meta.url).pathname;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", script, "stdio"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const channel = new FramedChannel<Envelope>({
      readable: child.stdout,
      writable: child.stdin,
    });
    return Promise.resolve({
      channel,
      close: async () => {
        await channel.closeWrite(); // end of stdin: the child's server ends
        const [status, stderr] = await Promise.all([
          child.status,
          new Response(child.stderr).text(),
        ]);
        channel.close();
        assertEquals(status.code, 0, stderr);
      },
    });
  },

  async "a Unix socket"(): Promise<Transport> {
    const dir = await Deno.makeTempDir({ prefix: "ipckit-test-rpc-" });
    const path = `${dir}/rpc.sock`;
    const server = spawnFixture("rpc_server.ts", socketFlags(dir, path), [
      "unix",
      path,
    ]);
    await firstLine(server);
    const channel = await connect<Envelope>({ path });
    return {
      channel,
      close: async () => {
        channel.close();
        await finished(server);
        await Deno.remove(dir, { recursive: true });
      },
    };
  },

  async "TCP"(): Promise<Transport> {
    const server = spawnFixture("rpc_server.ts", socketFlags("/nonexistent"), [
      "tcp",
    ]);
    const { port } = JSON.parse(await firstLine(server));
    const channel = await connect<Envelope>({ port });
    return {
      channel,
      close: async () => {
        channel.close();
        await finished(server);
      },
    };
  },

  async "Unix datagrams"(): Promise<Transport> {
    const dir = await Deno.makeTempDir({ prefix: "ipckit-test-rpc-" });
    const serverPath = `${dir}/server.dg`;
    const clientPath = `${dir}/client.dg`;
    const server = spawnFixture(
      "rpc_server.ts",
      [
        "--allow-ffi",
        `--allow-net=unix:${serverPath},unix:${clientPath}`,
        `--allow-read=${dir}`,
        `--allow-write=${dir}`,
      ],
      ["unix-datagram", serverPath],
    );
    await firstLine(server);
    // Receiving and sending overlap on both ends: Deno's own Unix datagram
    // sockets failed this with "Busy".
    const channel = await bindDatagram<Envelope>({
      path: clientPath,
      peer: { path: serverPath },
    });
    return {
      channel,
      close: async () => {
        channel.close();
        await finished(server, true);
        await Deno.remove(dir, { recursive: true });
      },
    };
  },
  async "a Unix seqpacket socket"(): Promise<Transport> {
    const dir = await Deno.makeTempDir({ prefix: "ipckit-test-rpc-" });
    const path = `${dir}/rpc.sock`;
    const server = spawnFixture("rpc_server.ts", socketFlags(dir, path), [
      "seqpacket",
      path,
    ]);
    await firstLine(server);
    const channel = await connect<Envelope>({ path, type: "seqpacket" });
    return {
      channel,
      close: async () => {
        channel.close();
        await finished(server);
        await Deno.remove(dir, { recursive: true });
      },
    };
  },
  async "UDP datagrams"(): Promise<Transport> {
    const server = spawnFixture("rpc_server.ts", socketFlags("/nonexistent"), [
      "udp",
    ]);
    const { port } = JSON.parse(await firstLine(server));
    const channel = await bindDatagram<Envelope>({ port: 0, peer: { port } });
    return {
      channel,
      close: async () => {
        channel.close();
        await finished(server, true);
      },
    };
  },
};

for (const [name, open] of Object.entries(transports)) {
  Deno.test(
    `Request/response works unchanged over ${name}`,
    leakChecked(async () => {
      const transport = await open();
      try {
        await exercise(transport.channel);
      } finally {
        await transport.close();
      }
    }),
  );
}

Deno.test("A server can send its handler's stack when asked", async () => {
  const pipe = [
    new TransformStream<Uint8Array, Uint8Array>(),
    new TransformStream<Uint8Array, Uint8Array>(),
  ];
  using serverSide = new FramedChannel<Envelope>({
    readable: pipe[0].readable,
    writable: pipe[1].writable,
  });
  using channel = new FramedChannel<Envelope>({
    readable: pipe[1].readable,
    writable: pipe[0].writable,
  });
  using _server = serve(serverSide, handle, { exposeStack: true });
  using calls = client<Ask, unknown>(channel);
  const error = await calls.request({ op: "fail", name: "E", message: "m" })
    .catch((error) => error);
  assert(error instanceof RemoteError);
  assertMatch(error.remoteStack ?? "", /_rpc_handler\.ts/);
});

Deno.test("A client closed with requests pending rejects them all", async () => {
  const pipe = new TransformStream<Uint8Array, Uint8Array>();
  // Nobody answers: requests go out and nothing comes back.
  using channel = new FramedChannel<Envelope>({
    readable: new ReadableStream(),
    writable: pipe.writable,
  });
  const calls = client<Ask, unknown>(channel);
  const waiting = [1, 2, 3].map((value) =>
    calls.request({ op: "echo", value })
  );
  assertEquals(calls.pending, 3);
  calls.close();
  for (const request of waiting) {
    await assertRejects(() => request, Deno.errors.BadResource);
  }
  assertEquals(calls.pending, 0);
  await pipe.readable.cancel();
});
