import {
  assert,
  assertEquals,
  assertGreater,
  assertInstanceOf,
  assertMatch,
  assertRejects,
  assertThrows,
} from "@std/assert";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect as natsConnect } from "@nats-io/transport-node";
import {
  client,
  codecs,
  DecodeError,
  duplex,
  RemoteError,
  type RpcEnvelope,
  serve,
  type StandardSchemaV1,
} from "../mod.ts";
import { resolveChannel } from "../mechanisms/_nats/options.ts";
import { Nats, NatsServer } from "../mechanisms/nats.ts";
import { leakChecked, runFixture, testNeeding } from "./_helpers.ts";
import { natsServerMissing, Peer, peerFlags, withNats } from "./_nats.ts";
import type { Ask } from "./fixtures/_rpc_handler.ts";

/** A port nothing listens on (bound, then released). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Polls `condition` every 10 ms; fails after `timeout` ms. */
async function until(
  condition: () => boolean,
  what: string,
  timeout = 10_000,
): Promise<void> {
  const deadline = performance.now() + timeout;
  while (!condition()) {
    if (performance.now() > deadline) {
      throw new Error(`${what} did not happen within ${timeout} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A subject no other test uses. */
function uniqueSubject(prefix: string): string {
  return `${prefix}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}`;
}

/** A stream name no other test uses. */
function uniqueQueue(prefix: string): string {
  return `${prefix}_${crypto.randomUUID().slice(0, 8)}`;
}

// --- Connecting ------------------------------------------------------------

Deno.test(
  "A NATS channel's options refuse read and write both false, and either not a boolean",
  () => {
    assertThrows(
      () => resolveChannel("jobs", { read: false, write: false }),
      TypeError,
      'Cannot open a channel on NATS subject "jobs": read and write are both false',
    );
    assertThrows(
      () => resolveChannel("jobs", { read: 1 as never }),
      TypeError,
      "read must be a boolean, got number",
    );
    // Receiving only: a wildcard subject is fine.
    assertEquals(resolveChannel("jobs.*", { write: false }).read, true);
  },
);

Deno.test(
  "Nats.connect() names the --allow-net flag to add before it dials",
  leakChecked(async () => {
    const port = freePort();
    const result = await runFixture(
      "nats_connect_only.ts",
      ["--allow-net=127.0.0.2"],
      [`nats://127.0.0.1:${port}`],
    );
    assertEquals(JSON.parse(result.stdout), {
      name: "NotCapable",
      message:
        `Requires net access to "127.0.0.1:${port}", run again with --allow-net=127.0.0.1:${port}`,
    });
  }),
);

Deno.test(
  "Nats.connect() checks every server of a cluster and names only the ones missing",
  leakChecked(async () => {
    const [granted, missing] = [freePort(), freePort()];
    const result = await runFixture(
      "nats_connect_only.ts",
      [`--allow-net=127.0.0.1:${granted}`],
      [`127.0.0.1:${granted},nats://127.0.0.1:${missing}`],
    );
    assertEquals(JSON.parse(result.stdout), {
      name: "NotCapable",
      message:
        `Requires net access to "127.0.0.1:${missing}", run again with --allow-net=127.0.0.1:${missing}`,
    });
  }),
);

Deno.test("Nats.connect() never puts a password in an error message", async () => {
  const error = await assertRejects(
    () => Nats.connect({ servers: "ws://alice:s3cret@127.0.0.1:1" }),
    TypeError,
  );
  assert(!error.message.includes("s3cret"), error.message);
  assertMatch(error.message, /"ws:\/\/127\.0\.0\.1:1"/);
});

Deno.test("Nats.connect() rejects bad options before it dials", async () => {
  await assertRejects(
    () => Nats.connect({ servers: [] }),
    TypeError,
    "servers must be a URL or a non-empty array",
  );
  await assertRejects(
    () => Nats.connect({ servers: "ws://127.0.0.1:8080" }),
    TypeError,
    "expected nats:// or tls://",
  );
  await assertRejects(
    () => Nats.connect({ servers: "127.0.0.1:70000" }),
    TypeError,
  );
  await assertRejects(
    () => Nats.connect({ reconnectWait: -1 }),
    RangeError,
    "reconnectWait must be from 0",
  );
  await assertRejects(
    // deno-lint-ignore no-explicit-any
    () => Nats.connect({ reconect: 1 } as any),
    TypeError,
    'unknown option "reconect"',
  );
});

Deno.test(
  "Nats.connect() rejects with ConnectionRefused when nothing listens",
  async () => {
    const port = freePort();
    await assertRejects(
      () => Nats.connect({ servers: `127.0.0.1:${port}` }),
      Deno.errors.ConnectionRefused,
      `Cannot connect to NATS at "127.0.0.1:${port}": the connection was refused`,
    );
  },
);

// --- Channels on subjects --------------------------------------------------

testNeeding(natsServerMissing, {
  name:
    "NatsChannel without a queue group gives every subscriber every message",
  fn: leakChecked(() =>
    withNats(async (server, nats) => {
      const subject = uniqueSubject("fanout");
      const peers = [0, 1].map(() =>
        new Peer("nats_peer.ts", peerFlags(server), [
          "subscribe",
          server.url,
          subject,
          "20",
        ])
      );
      try {
        for (const peer of peers) assertEquals(await peer.line(), "ready");
        using channel = await nats.channel<number>(subject, { read: false });
        for (let i = 0; i < 20; i++) await channel.send(i);
        for (const peer of peers) {
          assertEquals(
            await peer.json(),
            Array.from({ length: 20 }, (_, i) => i),
          );
          await peer.finished();
        }
      } finally {
        for (const peer of peers) await peer[Symbol.asyncDispose]();
      }
    })
  ),
});

testNeeding(natsServerMissing, {
  name: "NatsChannel in a queue group gives each message to one worker",
  fn: leakChecked(() =>
    withNats(async (server, nats) => {
      const jobs = uniqueSubject("jobs");
      const results = uniqueSubject("results");
      using answers = await nats.channel<{ worker: string; value: number }>(
        results,
        { write: false },
      );
      const workers = ["a", "b"].map((id) =>
        new Peer("nats_peer.ts", peerFlags(server), [
          "worker",
          server.url,
          jobs,
          results,
          id,
        ])
      );
      try {
        for (const worker of workers) {
          assertEquals(await worker.line(), "ready");
        }
        using send = await nats.channel<number>(jobs, { read: false });
        const count = 200;
        for (let i = 0; i < count; i++) await send.send(i);
        const byWorker = new Map<string, number[]>();
        for (let i = 0; i < count; i++) {
          const { value } = await answers.receive({ timeout: 10_000 });
          byWorker.set(value.worker, [
            ...(byWorker.get(value.worker) ?? []),
            value.value,
          ]);
        }
        const all = [...byWorker.values()].flat().sort((x, y) => x - y);
        assertEquals(all, Array.from({ length: count }, (_, i) => i));
        // Both competed: NATS spreads a queue group's messages at random.
        assertEquals([...byWorker.keys()].sort(), ["a", "b"]);
        using stop = await nats.channel<true>(`${jobs}.stop`, { read: false });
        await stop.send(true);
        for (const worker of workers) await worker.finished();
      } finally {
        for (const worker of workers) await worker[Symbol.asyncDispose]();
      }
    })
  ),
});

const positive: StandardSchemaV1<unknown, number> = {
  "~standard": {
    version: 1,
    vendor: "test",
    validate: (value) =>
      typeof value === "number" && value > 0
        ? { value }
        : { issues: [{ message: "expected a positive number" }] },
  },
};

testNeeding(natsServerMissing, {
  name:
    "NatsChannel.receive() throws DecodeError with the raw bytes, then receives the next message",
  fn: leakChecked(() =>
    withNats(async (_server, nats) => {
      const subject = uniqueSubject("decode");
      using typed = await nats.channel<number>(subject, {
        codec: codecs.json({ schema: positive }),
        write: false,
      });
      using raw = await nats.channel<Uint8Array>(subject, {
        codec: codecs.bytes(),
        read: false,
      });
      const garbage = new TextEncoder().encode("{not json");
      await raw.send(garbage);
      await raw.send(new TextEncoder().encode("-3"));
      await raw.send(new TextEncoder().encode("7"));
      const bad = await assertRejects(
        () => typed.receive({ timeout: 5000 }),
        DecodeError,
      );
      assertEquals(bad.bytes, garbage);
      const invalid = await assertRejects(
        () => typed.receive({ timeout: 5000 }),
        DecodeError,
        "expected a positive number",
      );
      assertEquals(invalid.issues, [{ message: "expected a positive number" }]);
      assertEquals((await typed.receive({ timeout: 5000 })).value, 7);
    })
  ),
});

testNeeding(natsServerMissing, {
  name:
    "NatsChannel gives concurrent receives one message each, times out, and rejects pending receives on close",
  fn: leakChecked(() =>
    withNats(async (_server, nats) => {
      const subject = uniqueSubject("concurrent");
      const channel = await nats.channel<number>(subject);
      const receives = Array.from({ length: 8 }, () =>
        channel.receive({ timeout: 5000 }));
      for (let i = 0; i < 8; i++) {
        await channel.send(i);
      }
      const values = (await Promise.all(receives)).map((m) =>
        m.value
      );
      assertEquals(values, [0, 1, 2, 3, 4, 5, 6, 7]);
      await assertRejects(
        () => channel.receive({ timeout: 50 }),
        Deno.errors.TimedOut,
        `Cannot receive on NATS subject "${subject}": timed out after 50 ms`,
      );
      const pending = channel.receive();
      channel.close();
      await assertRejects(() => pending, Deno.errors.BadResource);
      await assertRejects(() => channel.send(1), Deno.errors.BadResource);
    })
  ),
});

testNeeding(natsServerMissing, {
  name: "Nats.channel() rejects bad subjects and options before subscribing",
  fn: leakChecked(() =>
    withNats(async (_server, nats) => {
      await assertRejects(() => nats.channel(""), TypeError, "non-empty");
      await assertRejects(() => nats.channel("a..b"), TypeError, "empty token");
      await assertRejects(() => nats.channel("a b"), TypeError, "whitespace");
      await assertRejects(
        () => nats.channel("jobs.*"),
        TypeError,
        "has a wildcard",
      );
      // Receiving only, a wildcard is fine.
      using all = await nats.channel("jobs.*", { write: false });
      assertEquals(all.subject, "jobs.*");
      await assertRejects(
        () => nats.channel("jobs", { queue: "a.b" }),
        TypeError,
        'queue group "a.b"',
      );
      await assertRejects(
        // deno-lint-ignore no-explicit-any
        () => nats.channel("jobs", { group: "w" } as any),
        TypeError,
        'unknown option "group"',
      );
      using big = await nats.channel<Uint8Array>("big", {
        codec: codecs.bytes(),
        read: false,
      });
      await assertRejects(
        () => big.send(new Uint8Array(2 * 1024 * 1024)),
        RangeError,
        "max_payload",
      );
    })
  ),
});

testNeeding(natsServerMissing, {
  name:
    "Nats keeps sends made while the server restarts and sends them once it is back",
  fn: leakChecked(() =>
    withNats(async (server, nats) => {
      const subject = uniqueSubject("outage");
      using channel = await nats.channel<number>(subject);
      await server.kill();
      // What is sent before the client notices the loss is lost with the
      // socket; from then on, sends wait in the reconnect buffer.
      await until(() => !nats.connected, "noticing the server's death");
      for (let i = 0; i < 5; i++) await channel.send(i);
      await server.restart();
      const values = [];
      for (let i = 0; i < 5; i++) {
        values.push((await channel.receive({ timeout: 15_000 })).value);
      }
      assertEquals(values, [0, 1, 2, 3, 4]);
      assertEquals(nats.reconnects, 1);
    })
  ),
});

testNeeding(natsServerMissing, {
  name:
    "Nats bounds the reconnect buffer: a send past it waits for the server, within its timeout",
  fn: leakChecked(async () => {
    await using server = await NatsServer.start();
    await using nats = await Nats.connect({
      servers: server.url,
      reconnectWait: 100,
      reconnectBufferBytes: 64,
    });
    const subject = uniqueSubject("bounded");
    using channel = await nats.channel<string>(subject, {
      codec: codecs.text(),
    });
    await server.kill();
    await until(() => !nats.connected, "noticing the server's death");
    await channel.send("x".repeat(60)); // fits in 64 bytes
    await assertRejects(
      () => channel.send("y".repeat(10), { timeout: 100 }),
      Deno.errors.TimedOut,
      `Cannot send on NATS subject "${subject}": timed out after 100 ms`,
    );
    const waiting = channel.send("z", { timeout: 15_000 });
    await server.restart();
    await waiting;
    assertEquals(
      (await channel.receive({ timeout: 10_000 })).value,
      "x".repeat(60),
    );
    assertEquals((await channel.receive({ timeout: 10_000 })).value, "z");
  }),
});

testNeeding(natsServerMissing, {
  name:
    "Nats.close() drains: a message that arrived can still be received, and sends reject after",
  fn: leakChecked(async () => {
    await using server = await NatsServer.start();
    const nats = await Nats.connect({ servers: server.url });
    const subject = uniqueSubject("drain");
    const channel = await nats.channel<number>(subject);
    await channel.send(1);
    await channel.send(2);
    await nats.flush({ timeout: 5000 });
    await nats.close();
    assertEquals(nats.closed, true);
    const values = [];
    for await (const { value } of channel) values.push(value);
    assertEquals(values, [1, 2]);
    await assertRejects(() => channel.send(3), Deno.errors.BadResource);
    await nats.close(); // idempotent
  }),
});

// --- Request/reply ---------------------------------------------------------

testNeeding(natsServerMissing, {
  name:
    "Nats.serve() and Nats.client() across processes: concurrent requests, RemoteError, timeouts, no responders",
  fn: leakChecked(() =>
    withNats(async (server, nats) => {
      const subject = uniqueSubject("rpc");
      await using peer = new Peer("nats_peer.ts", peerFlags(server), [
        "serve",
        server.url,
        subject,
      ]);
      assertEquals(await peer.line(), "ready");
      using calls = nats.client<Ask, unknown>(subject);

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

      const error = await assertRejects(
        () =>
          calls.request({
            op: "fail",
            name: "RangeError",
            message: "no such job",
          }, {
            timeout: 10_000,
          }),
        RemoteError,
      );
      assertEquals(error.name, "RangeError");
      assertEquals(error.message, "no such job");
      assertEquals(error.remoteStack, undefined);

      await assertRejects(
        () =>
          calls.request({ op: "echo", value: "slow", delay: 300 }, {
            timeout: 20,
          }),
        Deno.errors.TimedOut,
      );
      const stop = new AbortController();
      const aborted = calls.request({ op: "echo", value: "slow", delay: 300 }, {
        signal: stop.signal,
      });
      stop.abort(new Error("changed my mind"));
      await assertRejects(() => aborted, Error, "changed my mind");
      assertEquals(calls.pending, 0);
      assertEquals(
        await calls.request({ op: "echo", value: "after", delay: 400 }, {
          timeout: 10_000,
        }),
        "after",
      );

      using nobody = nats.client<number, number>(uniqueSubject("nobody"));
      await assertRejects(
        () => nobody.request(1, { timeout: 5000 }),
        Deno.errors.ConnectionRefused,
        "no server subscribes to it",
      );
    })
  ),
});

testNeeding(natsServerMissing, {
  name:
    "Nats.serve() runs at most maxInFlight handlers and answers Busy past maxQueued",
  fn: leakChecked(() =>
    withNats(async (_server, nats) => {
      const subject = uniqueSubject("bounded-rpc");
      const gate = Promise.withResolvers<void>();
      let running = 0;
      let most = 0;
      using _rpc = await nats.serve<number, number>(subject, async (n) => {
        running++;
        most = Math.max(most, running);
        await gate.promise;
        running--;
        return n * 2;
      }, { maxInFlight: 2, maxQueued: 1 });
      using calls = nats.client<number, number>(subject);
      const requests = [1, 2, 3, 4, 5].map((n) =>
        calls.request(n, { timeout: 10_000 }).then(
          (value) => ({ value }),
          (error) => ({ error }),
        )
      );
      // The two past the bound are answered at once, before the gate opens.
      const early = await Promise.race([
        Promise.all(requests.slice(3)),
        new Promise((resolve) => setTimeout(resolve, 5_000, "too late")),
      ]);
      gate.resolve();
      const settled = await Promise.all(requests);
      assertEquals(settled.slice(0, 3), [{ value: 2 }, { value: 4 }, {
        value: 6,
      }]);
      assert(Array.isArray(early), "the refused requests waited for the gate");
      for (const { error } of settled.slice(3) as { error: RemoteError }[]) {
        assertInstanceOf(error, RemoteError);
        assertEquals(error.name, "Busy");
        assertMatch(error.message, /2 requests are running and 1 are waiting/);
      }
      assertEquals(most, 2);
    })
  ),
});

testNeeding(natsServerMissing, {
  name:
    "Nats.serve() answers any NATS client, with NATS service error headers on failure",
  fn: leakChecked(() =>
    withNats(async (server, nats) => {
      const subject = uniqueSubject("interop");
      using _server = await nats.serve<{ n: number }, number>(
        subject,
        ({ n }) => {
          if (n < 0) throw new RangeError("n must not be negative");
          return n + 1;
        },
      );
      // Plain nats.js, as any other NATS program would call it.
      const nc = await natsConnect({ servers: server.url });
      try {
        const ok = await nc.request(subject, JSON.stringify({ n: 41 }), {
          timeout: 5000,
        });
        assertEquals(ok.json(), 42);
        assertEquals(ok.headers, undefined);
        const failed = await nc.request(subject, JSON.stringify({ n: -1 }), {
          timeout: 5000,
        });
        assertEquals(
          failed.headers?.get("Nats-Service-Error"),
          "n must not be negative",
        );
        assertEquals(failed.headers?.get("Nats-Service-Error-Code"), "500");
        assertEquals(failed.json(), {
          name: "RangeError",
          message: "n must not be negative",
        });
        const garbage = await nc.request(subject, "{oops", { timeout: 5000 });
        assertEquals(garbage.headers?.get("Nats-Service-Error-Code"), "500");
        assertEquals((garbage.json() as { name: string }).name, "DecodeError");
      } finally {
        await nc.close();
      }
    })
  ),
});

testNeeding(natsServerMissing, {
  name:
    "serve() and client() from the rpc module work unchanged over NATS subjects",
  fn: leakChecked(() =>
    withNats(async (_server, nats) => {
      type Envelope = RpcEnvelope<number, number>;
      const subject = uniqueSubject("envelope");
      using serverSide = await nats.channel<Envelope>(subject, {
        queue: "calc",
      });
      using _rpc = serve(serverSide, (n: number) => n * 3);
      const inbox = nats.inbox();
      using channel = duplex(
        await nats.channel<Envelope>(subject, { read: false, replyTo: inbox }),
        await nats.channel<Envelope>(inbox, { write: false }),
      );
      using calls = client<number, number>(channel);
      assertEquals(
        await Promise.all(
          [1, 2, 3].map((n) => calls.request(n, { timeout: 5000 })),
        ),
        [3, 6, 9],
      );
    })
  ),
});

testNeeding(natsServerMissing, {
  name: "Nats.close() lets the requests a server took finish and be answered",
  fn: leakChecked(async () => {
    await using server = await NatsServer.start();
    await using callers = await Nats.connect({ servers: server.url });
    const serving = await Nats.connect({ servers: server.url });
    const subject = uniqueSubject("graceful");
    const started = Promise.withResolvers<void>();
    const rpc = await serving.serve<number, number>(subject, async (n) => {
      started.resolve();
      await new Promise((resolve) => setTimeout(resolve, 200));
      return n + 1;
    });
    using calls = callers.client<number, number>(subject);
    const answer = calls.request(1, { timeout: 10_000 });
    await started.promise;
    await serving.close();
    assertEquals(await answer, 2);
    await rpc.done;
  }),
});

// --- Durable work queues ---------------------------------------------------

testNeeding(natsServerMissing, {
  name: "WorkQueue.publish() stores a retried publish once (same message id)",
  fn: leakChecked(() =>
    withNats(async (_server, nats) => {
      await using jobs = await nats.workQueue<{ n: number }>(
        uniqueQueue("once"),
      );
      assertEquals(await jobs.publish({ n: 1 }, { id: "job-1" }), {
        sequence: 1,
        duplicate: false,
      });
      assertEquals(await jobs.publish({ n: 1 }, { id: "job-1" }), {
        sequence: 1,
        duplicate: true,
      });
      await jobs.send({ n: 2 }, { id: "job-2" });
      const first = await jobs.receive({ timeout: 5000 });
      assertEquals([first.value, first.id, first.deliveries], [
        { n: 1 },
        "job-1",
        1,
      ]);
      await first.ack();
      const second = await jobs.receive({ timeout: 5000 });
      assertEquals(second.id, "job-2");
      await second.ack();
      await assertRejects(
        () => jobs.receive({ timeout: 300 }),
        Deno.errors.TimedOut,
      );
    })
  ),
});

testNeeding(natsServerMissing, {
  name:
    "WorkQueue.publish() stores a resent id once across a server restart while its message waits, and again once it was acknowledged",
  fn: leakChecked(() =>
    withNats(async (server, nats) => {
      await using jobs = await nats.workQueue<{ n: number }>(
        uniqueQueue("restart-ids"),
      );
      const resend = () =>
        jobs.publish({ n: 1 }, { id: "job-1", timeout: 10_000 });
      assertEquals(await resend(), { sequence: 1, duplicate: false });
      // Waiting in the queue: the restarted server finds the id in it.
      await server.kill("SIGKILL");
      await server.restart();
      assertEquals(await resend(), { sequence: 1, duplicate: true });
      const job = await jobs.receive({ timeout: 10_000 });
      await job.ack();
      // Acknowledged, so removed: the running server still remembers it...
      assertEquals(await resend(), { sequence: 1, duplicate: true });
      // ...but a restart, even a clean one, forgets it: nats-server keeps no
      // ids on disk and rebuilds them from the messages still stored
      // (nats-io/nats-server#3272). The README and WorkQueue.send() say so.
      await server.kill("SIGTERM");
      await server.restart();
      assertEquals(await resend(), { sequence: 2, duplicate: false });
      const again = await jobs.receive({ timeout: 10_000 });
      assertEquals([again.id, again.sequence], ["job-1", 2]);
      await again.ack();
    })
  ),
});

testNeeding(natsServerMissing, {
  name:
    "WorkQueue delivers a message again when the worker that held it is killed",
  fn: leakChecked(() =>
    withNats(async (server, nats) => {
      const name = uniqueQueue("crash");
      await using jobs = await nats.workQueue<{ n: number }>(name, {
        ackWait: 1_000,
      });
      await jobs.send({ n: 1 }, { id: "only" });
      {
        await using holder = new Peer("nats_peer.ts", peerFlags(server), [
          "wq-hold",
          server.url,
          name,
        ]);
        assertEquals(await holder.line(), "ready");
        assertEquals(await holder.json(), { id: "only", deliveries: 1 });
        holder.kill("SIGKILL");
        await holder.exit();
      }
      // Unacknowledged: after ackWait it comes again, here.
      const again = await jobs.receive({ timeout: 15_000 });
      assertEquals([again.id, again.deliveries], ["only", 2]);
      await again.ack();
    })
  ),
});

testNeeding(natsServerMissing, {
  name:
    "WorkQueue.process() acknowledges after the handler; a handler that throws gets the message again, then it goes to the dead letters",
  fn: leakChecked(() =>
    withNats(async (_server, nats) => {
      await using jobs = await nats.workQueue<string>(uniqueQueue("poison"), {
        maxDeliveries: 3,
        retryDelay: 0,
      });
      for (const job of ["a", "poison", "b"]) await jobs.send(job);
      const calls: string[] = [];
      const errors: unknown[] = [];
      const worker = jobs.process((job, message) => {
        calls.push(`${job}#${message.deliveries}`);
        if (job === "poison") throw new Error(`cannot digest ${job}`);
      }, { onError: (error) => errors.push(error) });
      await using dead = await jobs.deadLetters();
      const letter = await dead.receive({ timeout: 15_000 });
      worker.close();
      await worker.done;
      assertEquals(letter.value, "poison");
      assertEquals(letter.deadLetter, {
        reason: "cannot digest poison",
        deliveries: 3,
        queue: jobs.name,
        sequence: 2,
      });
      await letter.ack();
      assertEquals(calls.filter((c) => c.startsWith("poison")), [
        "poison#1",
        "poison#2",
        "poison#3",
      ]);
      assertEquals(calls.filter((c) => !c.startsWith("poison")).sort(), [
        "a#1",
        "b#1",
      ]);
      assertEquals(errors.length, 3);
      // Acknowledged work left the queue; nothing comes again.
      await assertRejects(
        () => jobs.receive({ timeout: 500 }),
        Deno.errors.TimedOut,
      );
    })
  ),
});

testNeeding(natsServerMissing, {
  name:
    "WorkQueue iteration acknowledges when the loop body finishes and hands the message back when it throws",
  fn: leakChecked(() =>
    withNats(async (_server, nats) => {
      await using jobs = await nats.workQueue<number>(uniqueQueue("loop"), {
        retryDelay: 0,
      });
      for (const n of [1, 2]) await jobs.send(n);
      const seen: string[] = [];
      await assertRejects(
        async () => {
          for await (const job of jobs) {
            seen.push(`${job.value}#${job.deliveries}`);
            if (job.value === 2) throw new Error("body failed");
          }
        },
        Error,
        "body failed",
      );
      // 1 was acknowledged when the loop asked for 2; 2 came back.
      const again = await jobs.receive({ timeout: 10_000 });
      assertEquals([again.value, again.deliveries], [2, 2]);
      await again.ack();
      assertEquals(seen, ["1#1", "2#1"]);
    })
  ),
});

testNeeding(natsServerMissing, {
  name: "WorkQueue messages survive a SIGKILL of the server and its restart",
  fn: leakChecked(() =>
    withNats(async (server, nats) => {
      await using jobs = await nats.workQueue<number>(uniqueQueue("restart"));
      for (let n = 0; n < 20; n++) await jobs.send(n, { id: `n-${n}` });
      await server.kill("SIGKILL");
      await server.restart();
      const values: number[] = [];
      for (let n = 0; n < 20; n++) {
        const job = await jobs.receive({ timeout: 20_000 });
        values.push(job.value);
        await job.ack();
      }
      assertEquals(values, Array.from({ length: 20 }, (_, n) => n));
    })
  ),
});

testNeeding(natsServerMissing, {
  name:
    "WorkQueue rejects bad names and options, and needs a server with JetStream",
  fn: leakChecked(async () => {
    await using server = await NatsServer.start(); // no JetStream
    await using nats = await Nats.connect({ servers: server.url });
    await assertRejects(
      () => nats.workQueue("jobs.today"),
      TypeError,
      'the name "jobs.today" may not contain',
    );
    await assertRejects(
      () => nats.workQueue("jobs", { maxDeliveries: 0 }),
      RangeError,
      "maxDeliveries must be from 1",
    );
    await assertRejects(
      () => nats.workQueue("jobs", { deadLetter: "jobs" }),
      TypeError,
      "must differ",
    );
    await assertRejects(
      () => nats.workQueue("jobs"),
      Deno.errors.NotSupported,
      "the server has no JetStream (start nats-server with -js)",
    );
  }),
});

// --- Faults ----------------------------------------------------------------

/** The stream's counters, read with nats.js itself. */
async function streamState(
  url: string,
  stream: string,
): Promise<{ messages: number; lastSequence: number }> {
  const nc = await natsConnect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    const { state } = await jsm.streams.info(stream);
    return { messages: state.messages, lastSequence: state.last_seq };
  } finally {
    await nc.close();
  }
}

testNeeding(natsServerMissing, {
  name:
    "A JetStream work queue loses nothing when the server is SIGKILLed mid-stream, and stores twice only a send that spanned the restart",
  fn: leakChecked(async () => {
    await using server = await NatsServer.start({ jetstream: true });
    const name = uniqueQueue("fault");
    const count = 600;
    await using consumer = new Peer("nats_peer.ts", peerFlags(server), [
      "wq-consume",
      server.url,
      name,
      String(count),
    ]);
    assertEquals(await consumer.line(), "ready");
    await using producer = new Peer("nats_peer.ts", peerFlags(server), [
      "wq-produce",
      server.url,
      name,
      String(count),
    ]);
    assertEquals(await producer.line(), "ready");
    // Mid-stream: a third sent, then the server dies without a word.
    while ((await producer.json<{ sent: number }>()).sent < count / 3) {
      /* keep reading */
    }
    await server.kill("SIGKILL");
    await new Promise((resolve) => setTimeout(resolve, 300));
    await server.restart();

    let summary: {
      sent?: number;
      duplicates?: number;
      spanned?: string[];
      reconnects?: number;
    };
    do summary = await producer.json(60_000); while (summary.sent !== count);
    await producer.finished();

    const delivered = new Map<string, number>();
    const sequences = new Map<string, Set<number>>();
    for (;;) {
      const line = await consumer.json<
        { id?: string; sequence?: number; deliveries?: number; done?: number }
      >(60_000);
      if (line.done !== undefined) break;
      delivered.set(line.id!, (delivered.get(line.id!) ?? 0) + 1);
      const stored = sequences.get(line.id!) ?? new Set<number>();
      sequences.set(line.id!, stored.add(line.sequence!));
    }
    await consumer.finished();
    // Nothing lost: every id reached the worker.
    assertEquals(delivered.size, count);
    // The server remembers message ids only while it runs; after a restart
    // it rebuilds that memory from the messages it still holds. A send that
    // was stored, whose answer died with the server, and whose message was
    // acknowledged before the retry arrived is stored a second time (README,
    // "Beyond one machine"). Only a send that spanned the restart can be one.
    const storedTwice = [...sequences].filter(([, stored]) => stored.size > 1)
      .map(([id]) => id);
    for (const id of storedTwice) {
      assert(
        summary.spanned!.includes(id),
        `${id} was stored under ${[...sequences.get(id)!]} although its send ` +
          `did not span the restart (spanned: ${summary.spanned})`,
      );
    }
    // Every sequence the stream gave out is accounted for: one per id, and
    // one more for each id stored twice (delivered in order, the second copy
    // reached the worker before the last new id did).
    const state = await streamState(server.url, name);
    assertEquals(state.lastSequence, count + storedTwice.length);
    const redelivered = [...delivered.values()].filter((n) => n > 1).length;
    console.log(
      `  work queue across a SIGKILL: ${count} sent, ${state.lastSequence} stored ` +
        `(${storedTwice.length} twice: ${storedTwice.join(", ") || "none"}), ` +
        `${delivered.size} delivered, ${redelivered} delivered more than once, ` +
        `${summary.duplicates} publishes retried after they had been stored ` +
        `(answered as duplicates), ${
          summary.spanned!.length
        } sends spanned the restart, ` +
        `producer reconnects: ${summary.reconnects}`,
    );
  }),
});

testNeeding(natsServerMissing, {
  name:
    "A plain subject loses what is in flight when the server is SIGKILLed: counted, in order, no duplicates",
  fn: leakChecked(async () => {
    await using server = await NatsServer.start();
    const subject = uniqueSubject("plain-fault");
    const count = 600;
    await using receiver = new Peer("nats_peer.ts", peerFlags(server), [
      "count",
      server.url,
      subject,
    ]);
    assertEquals(await receiver.line(), "ready");
    await using sender = new Peer("nats_peer.ts", peerFlags(server), [
      "publish",
      server.url,
      subject,
      String(count),
      "2",
    ]);
    assertEquals(await sender.line(), "ready");
    while ((await sender.json<{ sent: number }>()).sent < count / 3) {
      /* keep reading */
    }
    await server.kill("SIGKILL");
    await new Promise((resolve) => setTimeout(resolve, 300));
    await server.restart();
    const received: number[] = [];
    for (;;) {
      const line = await receiver.json<{ seq?: number; end?: boolean }>(
        60_000,
      );
      if (line.end) break;
      received.push(line.seq!);
    }
    await receiver.finished();
    sender.kill("SIGTERM");
    await sender.exit();
    // What arrived arrived once and in order; what did not is counted.
    for (let i = 1; i < received.length; i++) {
      assertGreater(received[i], received[i - 1]);
    }
    assert(received.length <= count);
    const lost = count - received.length;
    console.log(
      `  plain subject across a SIGKILL: ${count} sent, ${received.length} received, ${lost} lost`,
    );
  }),
});

// --- Across hosts ----------------------------------------------------------

/** Runs a command and fails with its stderr when it fails. */
async function run(program: string, args: string[]): Promise<string> {
  const output = await new Deno.Command(program, {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  if (!output.success) {
    throw new Error(
      `${program} ${args.join(" ")} failed: ${text.decode(output.stderr)}`,
    );
  }
  return text.decode(output.stdout);
}

const canMakeNamespaces = Deno.uid() === 0 &&
  await (async () => {
    const probe = `ipckit-probe-${Deno.pid}`;
    try {
      await run("ip", ["netns", "add", probe]);
      await run("ip", ["netns", "delete", probe]);
      return true;
    } catch {
      return false;
    }
  })();
const namespacesMissing = natsServerMissing ??
  (canMakeNamespaces
    ? undefined
    : "it needs root and `ip netns` (apt-get install iproute2)");

testNeeding(namespacesMissing, {
  name:
    "NatsChannel and WorkQueue carry messages across a veth pair between two network namespaces",
  fn: leakChecked(async () => {
    const tag = crypto.getRandomValues(new Uint16Array(1))[0];
    const [serverNs, clientNs] = [`ipckit-s-${tag}`, `ipckit-c-${tag}`];
    // Interface names hold at most 15 bytes.
    const [serverIf, clientIf] = [`ipks${tag}`, `ipkc${tag}`];
    // A /30 of 10.231.0.0/16 picked by this test, on interfaces it creates.
    const block = (tag % 16_384) * 4;
    const octets = (n: number) => `10.231.${block >> 8}.${(block & 255) + n}`;
    const [serverIp, clientIp] = [octets(1), octets(2)];
    const created: string[] = [];
    try {
      for (const ns of [serverNs, clientNs]) {
        await run("ip", ["netns", "add", ns]);
        created.push(ns);
      }
      await run("ip", [
        "link",
        "add",
        serverIf,
        "netns",
        serverNs,
        "type",
        "veth",
        "peer",
        "name",
        clientIf,
        "netns",
        clientNs,
      ]);
      for (
        const [ns, dev, ip] of [
          [serverNs, serverIf, serverIp],
          [clientNs, clientIf, clientIp],
        ]
      ) {
        const inNs = ["netns", "exec", ns, "ip"];
        await run("ip", [...inNs, "addr", "add", `${ip}/30`, "dev", dev]);
        await run("ip", [...inNs, "link", "set", dev, "up"]);
        await run("ip", [...inNs, "link", "set", "lo", "up"]);
      }
      await using server = await NatsServer.start({
        host: serverIp,
        jetstream: true,
        prefix: ["ip", "netns", "exec", serverNs],
      });
      const inClient = ["ip", "netns", "exec", clientNs];
      const flags = peerFlags(server);
      const subject = uniqueSubject("veth");
      const results = uniqueSubject("veth-results");

      // A queue-group worker and a fan-out listener in the client namespace;
      // the producer is a third process there.
      await using worker = new Peer("nats_peer.ts", flags, [
        "worker",
        server.url,
        subject,
        results,
        "w",
      ], inClient);
      assertEquals(await worker.line(), "ready");
      await using listener = new Peer("nats_peer.ts", flags, [
        "subscribe",
        server.url,
        results,
        "50",
      ], inClient);
      assertEquals(await listener.line(), "ready");
      await using producer = new Peer("nats_peer.ts", flags, [
        "publish",
        server.url,
        subject,
        "50",
        "1",
      ], inClient);
      assertEquals(await producer.line(), "ready");
      // The worker answered each { seq } with { worker, value: { seq } }.
      const answers = await listener.json<{ value: { seq: number } }[]>(
        60_000,
      );
      assertEquals(
        answers.map((a) => a.value.seq),
        Array.from({ length: 50 }, (_, i) => i),
      );
      producer.kill("SIGTERM");

      // A durable work queue across the same wire.
      const queue = uniqueQueue("veth");
      await using consumer = new Peer("nats_peer.ts", flags, [
        "wq-consume",
        server.url,
        queue,
        "50",
      ], inClient);
      assertEquals(await consumer.line(), "ready");
      await using wqProducer = new Peer("nats_peer.ts", flags, [
        "wq-produce",
        server.url,
        queue,
        "50",
      ], inClient);
      assertEquals(await wqProducer.line(), "ready");
      let sent: { sent?: number; duplicates?: number };
      do sent = await wqProducer.json(60_000); while (
        sent.sent !== 50 || sent.duplicates === undefined
      );
      assertEquals(sent.duplicates, 0);
      await wqProducer.finished();
      let line: { done?: number };
      do line = await consumer.json(60_000); while (line.done === undefined);
      assertEquals(line.done, 50);

      // The bytes went through the veth, not a loopback.
      const received = Number(
        await run("ip", [
          "netns",
          "exec",
          serverNs,
          "cat",
          `/sys/class/net/${serverIf}/statistics/rx_packets`,
        ]),
      );
      assertGreater(received, 100);
    } finally {
      // Deleting a namespace deletes the veth end inside it, and its peer.
      for (const ns of created.reverse()) {
        await run("ip", ["netns", "delete", ns]).catch(() => {});
      }
      const left = await run("ip", ["netns", "list"]);
      assert(!left.includes(serverNs) && !left.includes(clientNs), left);
    }
  }),
});

Deno.test(
  "NatsServer.start() rejects bad options and a missing program",
  async () => {
    await assertRejects(
      () => NatsServer.start({ port: 70_000 }),
      RangeError,
      "port must be from 0 to 65535",
    );
    await assertRejects(
      () => NatsServer.start({ executable: "/nonexistent/nats-server" }),
      Deno.errors.NotFound,
      "is not installed",
    );
  },
);
