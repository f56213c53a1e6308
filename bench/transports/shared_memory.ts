/**
 * Shared memory + two semaphores to an echoing process: the message is
 * copied into a SharedMemory region, "ping" is posted, the peer copies it
 * out and back and posts "pong". Measured with `await wait()` and with
 * `waitSync()` on this side (both spin 50 µs before they sleep, the
 * default), and with `await wait()` and `spin: 0` on both sides; the peer
 * waits with `waitSync()`.
 *
 * @module
 */

import { Semaphore, SharedMemory } from "../../mod.ts";
import { type Session, spawnPeer, type Transport } from "./_transport.ts";

const FLAGS = [
  "--allow-ffi",
  "--allow-read=/dev/shm",
  "--allow-write=/dev/shm",
];
const DATA = 128;

/** How this side waits for "pong"; `parked` also sets `spin: 0` on the peer. */
type Style = "sync" | "async" | "parked";

async function _connect(messageSize: number, style: Style): Promise<Session> {
  const name = `/ipckit-bench-shm-${Deno.pid}-${
    crypto.randomUUID().slice(0, 8)
  }`;
  const memory = SharedMemory.open(name, {
    create: true,
    exclusive: true,
    size: DATA + messageSize,
  });
  const spin = style === "parked" ? 0 : undefined;
  const ping = Semaphore.inMemory(memory, 0, { initial: 0, spin });
  const pong = Semaphore.inMemory(memory, 32, { initial: 0, spin });
  const length = memory.view(Uint32Array, 64, 1);
  const data = memory.view(Uint8Array, DATA);
  const reply = new Uint8Array(messageSize);
  const peer = spawnPeer("shm_echo.ts", FLAGS, [
    name,
    style === "parked" ? "0" : "50",
  ]);
  try {
    await pong.wait({ timeout: 30_000 });
  } finally {
    // Both processes have it mapped now: drop the name so nothing leaks.
    memory.unlink();
  }
  const send = (message: Uint8Array) => {
    data.set(message);
    length[0] = message.byteLength;
    ping.post();
  };
  const receive = () => reply.set(data.subarray(0, length[0]));
  return {
    peers: [peer.pid],
    roundTrip: style === "sync"
      ? (message) => {
        send(message);
        pong.waitSync();
        receive();
      }
      : async (message) => {
        send(message);
        await pong.wait();
        receive();
      },
    close: async () => {
      length[0] = 0xffff_ffff;
      ping.post();
      await peer.status;
      memory.close();
    },
  };
}

/** The shared memory + semaphores rows of the driver. */
export const sharedMemoryTransports: Transport[] = [
  {
    name: "shared memory + semaphores, async",
    kind: "ipckit",
    limit: { mechanism: "sem", waiting: "busy" },
    concurrent: true,
    connect: (size) => _connect(size, "async"),
  },
  {
    name: "shared memory + semaphores, sync",
    kind: "ipckit",
    limit: { mechanism: "sem", waiting: "busy" },
    connect: (size) => _connect(size, "sync"),
  },
  {
    name: "shared memory + semaphores, async, spin: 0 (always park)",
    kind: "ipckit",
    limit: { mechanism: "sem", waiting: "blocking" },
    unsupported: (bytes) =>
      bytes > 4096 ? "spinning changes round trips only" : undefined,
    connect: (size) => _connect(size, "parked"),
  },
];
