import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "@std/assert";
import {
  bindDatagram,
  type Channel,
  client,
  connect,
  DecodeError,
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
import { bounded } from "./_bounded.ts";
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
      calls.request(
        { op: "fail", name: "RangeError", message: "no such job" },
        { timeout: 20_000 },
      ),
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
    timeout: 20_000,
  });
  stop.abort(new Error("changed my mind"));
  await assertRejects(() => aborted, Error, "changed my mind");
  assertEquals(calls.pending, 0);

  // Late answers to those are dropped; the channel still serves.
  assertEquals(
    await calls.request({ op: "echo", value: "after", delay: 400 }, {
      timeout: 20_000,
    }),
    "after",
  );
  assertEquals(calls.pending, 0);
}

async function firstLine(child: Deno.ChildProcess): Promise<string> {
  const reader = child.stdout.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!text.includes("\n")) {
    const { done, value } = await bounded(
      reader.read(),
      20_000,
      "the server's first line",
    );
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
  const [status, stderr] = await bounded(
    Promise.all([
      child.status,
      new Response(child.stderr).text(),
      child.stdout.cancel(),
    ]),
    20_000,
    "the server to exit",
  );
  if (!killed) assertEquals(status.code, 0, stderr);
}

const socketFlags = (dir: string, path = "") => [
  "--allow-ffi",
  "--allow-net=127.0.0.1" + (path ? `,unix:${path}` : ""),
  `--allow-read=${dir}`,
  `--allow-write=${dir}`,
];

/**
 * The transport to a server child: `connect` runs on the child's first
 * line. A set-up that fails leaves no child and no `dir` behind; closing
 * closes the channel, waits for the child (stopping it first with `stop`,
 * for a server that does not end by itself) and removes `dir`.
 */
async function toServer(
  server: Deno.ChildProcess,
  dir: string | undefined,
  connect: (firstLine: string) => Promise<RpcChannel>,
  stop = false,
): Promise<Transport> {
  const removeDir = async () => {
    if (dir !== undefined) await Deno.remove(dir, { recursive: true });
  };
  let channel: RpcChannel;
  try {
    channel = await connect(await firstLine(server));
  } catch (error) {
    await finished(server, true);
    await removeDir();
    throw error;
  }
  return {
    channel,
    close: async () => {
      channel.close();
      await finished(server, stop);
      await removeDir();
    },
  };
}

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
        // The server's iteration ends, it exits.
        await bounded(channel.closeWrite(), 10_000, "the half-close");
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
        // End of stdin: the child's server ends.
        await bounded(channel.closeWrite(), 10_000, "the half-close");
        const [status, stderr] = await bounded(
          Promise.all([child.status, new Response(child.stderr).text()]),
          20_000,
          "the child to exit",
        );
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
    return toServer(
      server,
      dir,
      () => connect<Envelope>({ path, timeout: 10_000 }),
    );
  },

  "TCP"(): Promise<Transport> {
    const server = spawnFixture("rpc_server.ts", socketFlags("/nonexistent"), [
      "tcp",
    ]);
    return toServer(server, undefined, (line) => {
      const { port } = JSON.parse(line);
      return connect<Envelope>({ port, timeout: 10_000 });
    });
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
    // Receiving and sending overlap on both ends: Deno's own Unix
    // datagram sockets failed this with "Busy".
    return toServer(
      server,
      dir,
      () =>
        bindDatagram<Envelope>({
          path: clientPath,
          peer: { path: serverPath },
        }),
      true,
    );
  },
  async "a Unix seqpacket socket"(): Promise<Transport> {
    const dir = await Deno.makeTempDir({ prefix: "ipckit-test-rpc-" });
    const path = `${dir}/rpc.sock`;
    const server = spawnFixture("rpc_server.ts", socketFlags(dir, path), [
      "seqpacket",
      path,
    ]);
    return toServer(
      server,
      dir,
      () => connect<Envelope>({ path, type: "seqpacket", timeout: 10_000 }),
    );
  },
  "UDP datagrams"(): Promise<Transport> {
    const server = spawnFixture("rpc_server.ts", socketFlags("/nonexistent"), [
      "udp",
    ]);
    return toServer(server, undefined, (line) => {
      const { port } = JSON.parse(line);
      return bindDatagram<Envelope>({ port: 0, peer: { port } });
    }, true);
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
  const [serverSide, channel] = loopback();
  using _serverSide = serverSide;
  using _channel = channel;
  using _server = serve(serverSide, handle, { exposeStack: true });
  using calls = client<Ask, unknown>(channel);
  const error = await calls.request({ op: "fail", name: "E", message: "m" }, {
    timeout: 5000,
  }).catch((error) => error);
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
    calls.request({ op: "echo", value }, { timeout: 5000 })
  );
  assertEquals(calls.pending, 3);
  calls.close();
  for (const request of waiting) {
    await assertRejects(() => request, Deno.errors.BadResource);
  }
  assertEquals(calls.pending, 0);
  await bounded(pipe.readable.cancel(), 5000, "the pipe to cancel");
});

/** Two framed channels joined back to back in memory. */
function loopback(): [FramedChannel<Envelope>, FramedChannel<Envelope>] {
  const pipes = [
    new TransformStream<Uint8Array, Uint8Array>(),
    new TransformStream<Uint8Array, Uint8Array>(),
  ];
  return [
    new FramedChannel<Envelope>({
      readable: pipes[0].readable,
      writable: pipes[1].writable,
    }),
    new FramedChannel<Envelope>({
      readable: pipes[1].readable,
      writable: pipes[0].writable,
    }),
  ];
}

/** Sends values as they are, whatever their shape: a hostile peer. */
function rawSide(
  channel: FramedChannel<Envelope>,
): (value: unknown) => Promise<void> {
  return (value) => channel.send(value as Envelope, { timeout: 5000 });
}

Deno.test(
  "RpcClient rejects the request a malformed error response concerns with a DecodeError, and goes on",
  leakChecked(async () => {
    const [peer, channel] = loopback();
    using _peer = peer;
    using _channel = channel;
    using calls = client<Ask, unknown>(channel);
    const first = calls.request({ op: "echo", value: 1 }, { timeout: 5000 });
    const second = calls.request({ op: "echo", value: 2 }, { timeout: 5000 });
    const ids: number[] = [];
    for (let i = 0; i < 2; i++) {
      ids.push((await peer.receive({ timeout: 5000 })).value.id);
    }
    const send = rawSide(peer);
    await send({ kind: "error", id: ids[0], error: null });
    const error = await assertRejects(() => first, DecodeError);
    assertMatch(error.message, /its error is not an object/);
    assertEquals(error.value, { kind: "error", id: ids[0], error: null });
    await send({ kind: "response", id: ids[1], value: "fine" });
    assertEquals(await second, "fine");
    assertEquals(calls.pending, 0);
  }),
);

Deno.test(
  "RpcClient drops and reports every envelope that concerns no pending request",
  leakChecked(async () => {
    const [peer, channel] = loopback();
    using _peer = peer;
    using _channel = channel;
    const reported: unknown[] = [];
    using calls = client<Ask, unknown>(channel, {
      onError: (error) => reported.push(error),
    });
    const waiting = calls.request({ op: "echo", value: 0 }, { timeout: 5000 });
    const { id } = (await peer.receive({ timeout: 5000 })).value;
    const hostile: unknown[] = [
      null,
      42,
      "response",
      [],
      { kind: "bogus", id },
      { kind: "response" },
      { kind: "response", id: String(id), value: 1 },
      { kind: "response", id: 2 ** 60, value: 1 },
      { kind: "request", id, value: 1 },
      { kind: "error", id: id + 1000, error: { name: 1, message: "x" } },
    ];
    const send = rawSide(peer);
    for (const value of hostile) await send(value);
    await send({ kind: "response", id, value: "still served" });
    assertEquals(await waiting, "still served");
    assertEquals(reported.length, hostile.length);
    for (const [i, error] of reported.entries()) {
      assert(error instanceof DecodeError, `case ${i}: ${error}`);
      assertEquals(error.value, hostile[i], `case ${i}`);
    }
    assertEquals(calls.dropped, hostile.length);
    // A late answer is dropped quietly.
    await send({ kind: "response", id, value: "late" });
    await send({ kind: "response", id: -7, value: "unknown id" });
    const after = calls.request({ op: "echo", value: 1 }, { timeout: 5000 });
    const next = (await peer.receive({ timeout: 5000 })).value.id;
    await send({ kind: "response", id: next, value: 1 });
    assertEquals(await after, 1);
    assertEquals(calls.dropped, hostile.length + 2);
    assertEquals(reported.length, hostile.length);
  }),
);

Deno.test(
  "serve() reports malformed requests as DecodeErrors and keeps serving",
  leakChecked(async () => {
    const [serverSide, peer] = loopback();
    using _serverSide = serverSide;
    using _peer = peer;
    const reported: unknown[] = [];
    const server = serve(serverSide, handle, {
      onError: (error) => reported.push(error),
    });
    const hostile: unknown[] = [
      null,
      "request",
      { kind: "response", id: 1, value: 1 },
      { kind: "request" },
      { kind: "request", id: 1.5, value: 1 },
      { kind: "request", id: "7", value: 1 },
    ];
    const send = rawSide(peer);
    for (const value of hostile) await send(value);
    await send({ kind: "request", id: 9, value: { op: "echo", value: "ok" } });
    assertEquals((await peer.receive({ timeout: 5000 })).value, {
      kind: "response",
      id: 9,
      value: "ok",
    });
    assertEquals(reported.length, hostile.length);
    for (const [i, error] of reported.entries()) {
      assert(error instanceof DecodeError, `case ${i}: ${error}`);
      assertEquals(error.value, hostile[i], `case ${i}`);
    }
    server.close();
    await bounded(server.done, 5000, "the server to stop");
  }),
);

Deno.test(
  "serve() works on at most maxInFlight requests at once and stops receiving at the bound",
  leakChecked(async () => {
    const [serverSide, peer] = loopback();
    using _serverSide = serverSide;
    using _peer = peer;
    const gate = Promise.withResolvers<void>();
    let started = 0;
    const numbers = serverSide as unknown as Channel<
      RpcEnvelope<number, number>
    >;
    const server = serve(numbers, async (n: number) => {
      started++;
      await gate.promise;
      return n * 2;
    }, { maxInFlight: 3 });
    const send = rawSide(peer);
    // Not awaited one by one: once the server stops reading, the in-memory
    // pipe stops taking frames, and these sends wait (backpressure).
    const sends = Array.from(
      { length: 10 },
      (_, i) => send({ kind: "request", id: i + 1, value: i + 1 }),
    );
    // Give the server every chance to take more than it should.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assertEquals(started, 3);
    gate.resolve();
    const answered = new Set<number>();
    for (let i = 0; i < 10; i++) {
      const { value } = await peer.receive({ timeout: 5000 });
      assertEquals(value.kind, "response");
      answered.add(value.id);
    }
    await bounded(Promise.all(sends), 5000, "the requests to be sent");
    assertEquals(answered.size, 10);
    assertEquals(started, 10);
    server.close();
    await bounded(server.done, 5000, "the server to stop");
  }),
);

Deno.test("serve() checks maxInFlight and onError before it starts", () => {
  const [serverSide, peer] = loopback();
  for (const maxInFlight of [0, -1, 1.5, Number.NaN, "4" as never]) {
    assertThrows(
      () => serve(serverSide, handle, { maxInFlight }),
      RangeError,
      "maxInFlight must be a positive integer",
    );
  }
  assertThrows(
    () => serve(serverSide, handle, { onError: "log" as never }),
    TypeError,
  );
  serverSide.close();
  peer.close();
});
