/**
 * Message queue pair to a peer process, measured with the async and the
 * thread-blocking API. A message larger than the queue's message size
 * (`/proc/sys/fs/mqueue/msgsize_max`, 8 KiB by default) travels in pieces
 * of that size, as it must.
 *
 * @module
 */

import { readMqLimit } from "../../mechanisms/_kernel/mq_limits.ts";
import { codecs, MessageQueue } from "../../mod.ts";
import {
  type ConnectOptions,
  type Session,
  spawnPeer,
  type Transport,
} from "./_transport.ts";

const MQ_FLAGS = [
  "--allow-ffi",
  "--allow-read=/dev/mqueue",
  "--allow-write=/dev/mqueue",
];
/** Queue depth: the default `/proc/sys/fs/mqueue/msg_max`. */
const DEPTH = 10;

function _limit(file: "msgsize_max", fallback: number): number {
  return readMqLimit(file) ?? fallback;
}

/**
 * How each row waits: `sync` and `async` as a user gets them (both spin up to
 * 50 µs before sleeping, the default); `parked` turns spinning off on both
 * sides (`spin: 0`), to show what sleeping and waking alone cost.
 */
type Style = "sync" | "async" | "parked";

async function _connect(
  size: number,
  style: Style,
  connectOptions: ConnectOptions = {},
): Promise<Session> {
  const sync = style === "sync";
  const suffix = `${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const there = `/ipckit-bench-there-${suffix}`;
  const back = `/ipckit-bench-back-${suffix}`;
  const messageSize = Math.min(size, _limit("msgsize_max", 8192));
  const codec = codecs.bytes();
  const spin = style === "parked" ? 0 : undefined;
  const options = {
    create: true,
    exclusive: true,
    codec,
    messageSize,
    maxMessages: DEPTH,
    spin,
  };
  const out = MessageQueue.open(there, options);
  const input = MessageQueue.open(back, options);
  const peer = spawnPeer("mq_echo.ts", MQ_FLAGS, [
    there,
    back,
    String(size),
    style === "parked" ? "0" : "50",
    ...(connectOptions.oneWay ? ["--ack"] : []),
  ]);
  try {
    await input.receive({ timeout: 30_000 });
  } finally {
    // Both processes hold the queues now: drop the names so nothing leaks.
    MessageQueue.unlink(there);
    MessageQueue.unlink(back);
  }
  // A peer that dies mid-cell must fail the row, not leave the driver
  // waiting for ever (seen: a peer killed by an error). An async wait ends
  // when the peer's exit closes the queue; a sync one, which blocks the
  // event loop, has a timeout (free for a blocking poll: no timer).
  const answer = { timeout: PEER_TIMEOUT_MS };
  let closing = false;
  peer.status.then(() => {
    if (!closing) input.close();
  });
  // Acknowledgements may wait in the reply queue while we send; never let
  // more pile up than it holds, or both sides would block.
  const window = DEPTH - 1;
  return {
    peers: [peer.pid],
    roundTrip: sync
      ? (message) => {
        out.sendSync(message);
        input.receiveSync(answer);
      }
      : async (message) => {
        await out.send(message);
        await input.receive();
      },
    sendOneWay: sync
      ? (message, count) => {
        let acked = 0;
        for (let i = 0; i < count; i++) {
          for (let at = 0; at < message.byteLength; at += messageSize) {
            out.sendSync(message.subarray(at, at + messageSize));
          }
          if (i + 1 - acked >= window) (input.receiveSync(answer), acked++);
        }
        for (; acked < count; acked++) input.receiveSync(answer);
      }
      : async (message, count) => {
        let acked = 0;
        for (let i = 0; i < count; i++) {
          for (let at = 0; at < message.byteLength; at += messageSize) {
            await out.send(message.subarray(at, at + messageSize));
          }
          if (i + 1 - acked >= window) (await input.receive(), acked++);
        }
        for (; acked < count; acked++) await input.receive();
      },
    close: async () => {
      closing = true;
      await out.send(new Uint8Array(0));
      await peer.status;
      out.close();
      input.close();
    },
  };
}

/** How long a round trip may wait for the peer before the row fails. */
const PEER_TIMEOUT_MS = 30_000;

/** The message queue rows of the driver. */
export const messageQueueTransports: Transport[] = [
  {
    name: "message queue, sync",
    kind: "ipckit",
    limit: { mechanism: "mq", waiting: "busy" },
    connect: (size) => _connect(size, "sync"),
  },
  {
    name: "message queue, async",
    kind: "ipckit",
    limit: { mechanism: "mq", waiting: "busy" },
    concurrent: true,
    throughput: true,
    connect: (size, options) => _connect(size, "async", options),
  },
  {
    name: "message queue, async, spin: 0 (always park)",
    kind: "ipckit",
    limit: { mechanism: "mq", waiting: "blocking" },
    concurrent: true,
    unsupported: (bytes) =>
      bytes > 4096 ? "spinning changes round trips only" : undefined,
    connect: (size) => _connect(size, "parked"),
  },
];
