/**
 * NATS rows: a local `nats-server` per session (with JetStream for the work
 * queue rows) and a peer process, both on 127.0.0.1, so each row pays two
 * hops (client → server → peer) where the local mechanisms pay one.
 *
 * - request/reply through `Nats.client()`/`Nats.serve()` (NATS's own
 *   request/reply), against ipckit's RPC envelope over two subjects and
 *   against nats.js used directly; 1 MiB one way on a `Nats.channel()`;
 * - `WorkQueue.send()`: a publish the server has stored and acknowledged;
 * - a job through a durable consumer: `send()`, a worker's `for await`
 *   (acknowledging), and its answer on a plain subject.
 *
 * Rows are skipped with a note where `nats-server` is not installed.
 *
 * How they fit the driver's interface (bench/transports/_transport.ts):
 * - `peers` lists the peer and the server, so a row's CPU price, and the
 *   CPU of its idle receiver, include the broker's: a NATS message costs
 *   three processes' time where a local mechanism costs two.
 * - No `limit`: the C rows of bench/c/ are one mechanism between two
 *   processes, and a NATS round trip is two TCP round trips through a third
 *   process that parses, routes and (for JetStream) stores every message.
 *   A C TCP row would be a limit of half the work; the honest limit would
 *   be a C client against the same nats-server, which bench/c/ does not
 *   have. The rows are charted under "other", with no ratio.
 * - Not `concurrent` or `throughput`: every session starts its own server,
 *   so 64 pairs would be 64 brokers, which measures no deployment anyone
 *   runs; a NATS row's answer to "how does it grow" is one server with
 *   many clients, a different benchmark.
 *
 * @module
 */

import { connect as natsConnect } from "@nats-io/transport-node";
import { client, codecs, duplex, type RpcEnvelope } from "../../mod.ts";
import { Nats, NatsServer } from "../../mechanisms/nats.ts";
import {
  firstLine,
  type Session,
  spawnPeer,
  stopPeer,
  type Transport,
} from "./_transport.ts";

const _MISSING = await (async () => {
  try {
    const { success } = await new Deno.Command("nats-server", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).output();
    return success ? undefined : "nats-server does not run";
  } catch {
    return "nats-server is not installed (apt-get install nats-server)";
  }
})();

const REQUEST_ROW = "NATS request/reply, `Nats.client()`";
const _bytes = codecs.bytes();

/** A server (room for 1 MiB plus headers per message) and a peer. */
async function _start(
  jetstream: boolean,
  peerArgs: (url: string) => string[],
): Promise<{
  server: NatsServer;
  peer: Deno.ChildProcess;
  /** The peer's and the server's pids: the processes besides this one. */
  peers: number[];
  stop(): Promise<void>;
}> {
  const dir = await Deno.makeTempDir({ prefix: "ipckit-bench-nats-" });
  const config = `${dir}/nats.conf`;
  await Deno.writeTextFile(config, "max_payload: 2097152\n");
  let server: NatsServer;
  try {
    server = await NatsServer.start({
      jetstream,
      storeDir: jetstream ? `${dir}/js` : undefined,
      args: ["-c", config],
    });
  } catch (error) {
    await Deno.remove(dir, { recursive: true });
    throw error;
  }
  const peer = spawnPeer(
    "nats_echo.ts",
    [`--allow-net=127.0.0.1:${server.port}`],
    peerArgs(server.url),
    "piped",
  );
  const stop = async () => {
    try {
      peer.kill("SIGTERM");
    } catch { /* exited */ }
    await stopPeer(peer);
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  };
  try {
    await firstLine(peer);
  } catch (error) {
    await stop();
    throw error;
  }
  return { server, peer, peers: [peer.pid, server.pid], stop };
}

/** `Nats.client()` for round trips; a channel with per-message acks one way. */
async function _ipckitRequests(): Promise<Session> {
  const { server, peers, stop } = await _start(
    false,
    (url) => [url, "core"],
  );
  const nats = await Nats.connect({ servers: server.url });
  const calls = nats.client<Uint8Array, Uint8Array>("bench.rpc", {
    requestCodec: _bytes,
    responseCodec: _bytes,
  });
  const oneWay = await nats.channel<Uint8Array>("bench.oneway", {
    codec: _bytes,
    read: false,
  });
  const acks = await nats.channel<Uint8Array>("bench.oneway.ack", {
    codec: _bytes,
    write: false,
  });
  return {
    peers,
    roundTrip: async (message) => {
      await calls.request(message, { timeout: 10_000 });
    },
    sendOneWay: async (message, count) => {
      const acked = (async () => {
        for (let i = 0; i < count; i++) await acks.receive({ timeout: 30_000 });
      })();
      for (let i = 0; i < count; i++) await oneWay.send(message);
      await acked;
    },
    close: async () => {
      calls.close();
      await nats.close();
      await stop();
    },
  };
}

/** nats.js alone: `request()` and `publish()`, as a Deno user would. */
async function _natsJs(): Promise<Session> {
  const { server, peers, stop } = await _start(
    false,
    (url) => [url, "core"],
  );
  const nc = await natsConnect({ servers: server.url });
  let acked = 0;
  let wake: (() => void) | undefined;
  nc.subscribe("bench.raw.oneway.ack", {
    callback: () => {
      acked++;
      wake?.();
    },
  });
  await nc.flush();
  return {
    peers,
    roundTrip: async (message) => {
      await nc.request("bench.raw", message, { timeout: 10_000 });
    },
    sendOneWay: async (message, count) => {
      const target = acked + count;
      for (let i = 0; i < count; i++) nc.publish("bench.raw.oneway", message);
      while (acked < target) {
        await new Promise<void>((resolve) => (wake = resolve));
      }
      wake = undefined;
    },
    close: async () => {
      await nc.close();
      await stop();
    },
  };
}

/** The `serve()`/`client()` of the rpc module over two NATS subjects. */
async function _envelope(): Promise<Session> {
  const { server, peers, stop } = await _start(
    false,
    (url) => [url, "core"],
  );
  type Envelope = RpcEnvelope<string, string>;
  const nats = await Nats.connect({ servers: server.url });
  const inbox = nats.inbox();
  const calls = client<string, string>(duplex(
    await nats.channel<Envelope>("bench.envelope", {
      read: false,
      replyTo: inbox,
    }),
    await nats.channel<Envelope>(inbox, { write: false }),
  ));
  let payload = "";
  return {
    peers,
    roundTrip: async (message) => {
      if (payload.length !== message.byteLength) {
        payload = "x".repeat(message.byteLength);
      }
      await calls.request(payload, { timeout: 10_000 });
    },
    close: async () => {
      calls.close();
      await nats.close();
      await stop();
    },
  };
}

/**
 * A work queue and its worker. `answered` also waits for the worker's
 * answer (a job end to end); without it, a round trip is one stored,
 * acknowledged publish.
 */
async function _workQueue(answered: boolean): Promise<Session> {
  const name = `bench_${crypto.randomUUID().slice(0, 8)}`;
  const answersSubject = `${name}.answers`;
  const { server, peers, stop } = await _start(
    true,
    (url) => [url, "queue", name, answersSubject],
  );
  const nats = await Nats.connect({ servers: server.url });
  const jobs = await nats.workQueue<Uint8Array>(name, { codec: _bytes });
  const answers = await nats.channel<number>(answersSubject, {
    write: false,
  });
  const job = async (message: Uint8Array) => {
    await jobs.send(message, { timeout: 10_000 });
    if (answered) await answers.receive({ timeout: 10_000 });
  };
  return {
    peers,
    roundTrip: job,
    sendOneWay: async (message, count) => {
      if (!answered) {
        for (let i = 0; i < count; i++) await jobs.send(message);
        return;
      }
      // The consumer's rate: every job stored, then worked and answered.
      const done = (async () => {
        for (let i = 0; i < count; i++) {
          await answers.receive({ timeout: 30_000 });
        }
      })();
      await Promise.all(
        Array.from({ length: count }, () => jobs.send(message)),
      );
      await done;
    },
    close: async () => {
      answers.close();
      jobs.close();
      await nats.close();
      await stop();
    },
  };
}

const _skip = () => _MISSING;

/** The NATS rows of the driver. */
export const natsTransports: Transport[] = [
  {
    name: REQUEST_ROW,
    kind: "ipckit",
    unsupported: _skip,
    connect: _ipckitRequests,
  },
  {
    name: "nats.js `request()`/`publish()` alone",
    kind: "alternative",
    versus: REQUEST_ROW,
    unsupported: _skip,
    connect: _natsJs,
  },
  {
    name: "RPC envelope (`serve`/`client`) over NATS subjects",
    kind: "ipckit",
    unsupported: (bytes) =>
      _MISSING ??
        (bytes > 4096
          ? "request/response is measured for latency only"
          : undefined),
    connect: _envelope,
  },
  {
    name: "NATS JetStream publish with ack, `WorkQueue.send()`",
    kind: "ipckit",
    unsupported: _skip,
    connect: () => _workQueue(false),
  },
  {
    name: "NATS JetStream job through a durable consumer and back",
    kind: "ipckit",
    unsupported: _skip,
    connect: () => _workQueue(true),
  },
];
