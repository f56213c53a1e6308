/**
 * Shared memory with no system call at all: the message is copied into a
 * SharedMemory region and both processes spin on atomic counters in a typed
 * record (`$atomic`). The floor under every other mechanism here, paid for
 * with two busy cores; there is no async form, a spin never yields.
 *
 * @module
 */

import { SharedMemory } from "../../mod.ts";
import { control, DATA, spinUntil, STOP } from "../fixtures/_shm_spin.ts";
import {
  type ConnectOptions,
  type Session,
  spawnPeer,
  stopPeer,
  type Transport,
} from "./_transport.ts";

function _connect(
  size: number,
  options: ConnectOptions = {},
): Promise<Session> {
  const name = `/ipckit-bench-spin-${Deno.pid}-${
    crypto.randomUUID().slice(0, 8)
  }`;
  const memory = SharedMemory.open(name, {
    create: true,
    exclusive: true,
    size: DATA + size,
  });
  const head = memory.struct(control);
  head.$atomic.ack.store(1);
  const data = memory.view(Uint8Array, DATA);
  const reply = new Uint8Array(size);
  const peer = spawnPeer("shm_spin_echo.ts", [
    "--allow-ffi",
    "--allow-read=/dev/shm",
    "--allow-write=/dev/shm",
  ], [name, ...(options.oneWay ? ["--ack"] : [])]);
  let seq = 0;
  const post = (message: Uint8Array) => {
    data.set(message);
    head.length = message.byteLength;
    head.$atomic.seq.store(++seq);
  };
  const acked = () => head.$atomic.ack.load() === seq;
  try {
    // The peer stores seq (0) into ack when it has mapped the region.
    spinUntil(() => head.$atomic.ack.load() === 0, 30_000);
  } catch (error) {
    memory.unlink();
    memory.close();
    throw error;
  }
  memory.unlink(); // both have it mapped: nothing can leak now
  return Promise.resolve({
    peers: [peer.pid],
    roundTrip: (message) => {
      post(message);
      spinUntil(acked);
      reply.set(data.subarray(0, message.byteLength));
    },
    sendOneWay: (message, count) => {
      for (let i = 0; i < count; i++) {
        post(message);
        spinUntil(acked);
      }
    },
    close: async () => {
      head.length = STOP;
      head.$atomic.seq.store(++seq);
      await stopPeer(peer);
      memory.close();
    },
  });
}

/** The spin-on-atomics shared memory row of the driver. */
export const sharedMemorySpinTransports: Transport[] = [
  {
    name: "shared memory, spin on atomics (sync)",
    kind: "ipckit",
    limit: { mechanism: "shm", waiting: "busy" },
    throughput: true,
    connect: _connect,
  },
];
