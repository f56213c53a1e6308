/**
 * Request/response (`client().request` against `serve()`) to a peer process
 * over a Unix socket and over a message queue pair: what the RPC layer adds
 * on top of the channel it runs on. A JSON envelope carries a string of the
 * message's length.
 *
 * @module
 */

import {
  type Channel,
  client,
  connect,
  duplex,
  type Message,
  MessageQueue,
  type RpcEnvelope,
} from "../../mod.ts";
import {
  firstLine,
  orStopPeer,
  type Session,
  spawnPeer,
  stopPeer,
  tempDir,
  type Transport,
} from "./_transport.ts";

type Envelope = RpcEnvelope<string, string>;
type RpcChannel = Channel<Envelope, Message<Envelope>>;

function _session(
  channel: RpcChannel,
  stop: () => Promise<void>,
  peer: Deno.ChildProcess,
): Session {
  const calls = client<string, string>(channel);
  let payload = "";
  return {
    peers: [peer.pid],
    roundTrip: async (message) => {
      if (payload.length !== message.byteLength) {
        payload = "x".repeat(message.byteLength);
      }
      const answer = await calls.request(payload, { timeout: 10_000 });
      if (answer.length !== payload.length) throw new Error("wrong answer");
    },
    close: async () => {
      calls.close();
      await stop();
    },
  };
}

async function _unix(): Promise<Session> {
  const dir = await tempDir();
  const path = `${dir}/rpc.sock`;
  const peer = spawnPeer(
    "rpc_echo.ts",
    [
      "--allow-ffi",
      `--allow-net=unix:${path}`,
      `--allow-read=${dir}`,
      `--allow-write=${dir}`,
    ],
    ["unix", path],
    "piped",
  );
  const channel = await orStopPeer(
    peer,
    dir,
    async () => (await firstLine(peer), await connect<Envelope>({ path })),
  );
  return _session(channel, async () => {
    channel.close();
    await stopPeer(peer);
    await Deno.remove(dir, { recursive: true });
  }, peer);
}

async function _messageQueue(size: number): Promise<Session> {
  const suffix = `${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const requests = `/ipckit-bench-req-${suffix}`;
  const replies = `/ipckit-bench-rep-${suffix}`;
  const open = (name: string) =>
    MessageQueue.open<Envelope>(name, {
      create: true,
      unlinkOnClose: true,
      messageSize: size + 256,
    });
  const channel = duplex(open(requests), open(replies));
  const peer = spawnPeer(
    "rpc_echo.ts",
    [
      "--allow-ffi",
      "--allow-read=/dev/mqueue",
      "--allow-write=/dev/mqueue",
    ],
    ["mq", requests, replies],
    "piped",
  );
  await firstLine(peer);
  return _session(channel, async () => {
    peer.kill("SIGTERM");
    await stopPeer(peer);
    channel.close();
  }, peer);
}

const latencyOnly = (bytes: number) =>
  bytes > 4096 ? "request/response is measured for latency only" : undefined;

/** The request/response rows of the driver. */
export const rpcTransports: Transport[] = [
  {
    name: "RPC request over a Unix socket, async",
    kind: "ipckit",
    limit: { mechanism: "unix-stream", waiting: "busy" },
    unsupported: latencyOnly,
    connect: _unix,
  },
  {
    name: "RPC request over message queues, async",
    kind: "ipckit",
    limit: { mechanism: "mq", waiting: "busy" },
    unsupported: latencyOnly,
    connect: _messageQueue,
  },
];
