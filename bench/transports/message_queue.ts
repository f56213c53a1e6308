/**
 * Message queue pair to an echoing process, measured with the async and the
 * thread-blocking API.
 *
 * @module
 */

import { codecs, MessageQueue } from "../../mod.ts";
import { type Session, spawnPeer, type Transport } from "./_transport.ts";

const MQ_FLAGS = [
  "--allow-ffi",
  "--allow-read=/dev/mqueue",
  "--allow-write=/dev/mqueue",
];

async function _connect(
  messageSize: number,
  sync: boolean,
): Promise<Session> {
  const suffix = `${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const there = `/ipckit-bench-there-${suffix}`;
  const back = `/ipckit-bench-back-${suffix}`;
  const codec = codecs.bytes();
  const options = {
    create: true,
    exclusive: true,
    codec,
    messageSize,
    maxMessages: 10,
  };
  const out = MessageQueue.open(there, options);
  const input = MessageQueue.open(back, options);
  const peer = spawnPeer("mq_echo.ts", MQ_FLAGS, [there, back]);
  try {
    await input.receive({ timeout: 30_000 });
  } finally {
    // Both processes hold the queues now: drop the names so nothing leaks.
    MessageQueue.unlink(there);
    MessageQueue.unlink(back);
  }
  return {
    roundTrip: sync
      ? (message) => {
        out.sendSync(message);
        input.receiveSync();
      }
      : async (message) => {
        await out.send(message);
        await input.receive();
      },
    close: async () => {
      await out.send(new Uint8Array(0));
      await peer.status;
      out.close();
      input.close();
    },
  };
}

/** The message queue rows of the driver. */
export const messageQueueTransports: Transport[] = [
  {
    name: "message queue, async",
    kind: "ipckit",
    connect: (size) => _connect(size, false),
  },
  {
    name: "message queue, sync",
    kind: "ipckit",
    connect: (size) => _connect(size, true),
  },
];
