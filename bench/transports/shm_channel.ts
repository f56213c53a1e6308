/**
 * `ShmChannel` rows: one channel each way to an echoing peer. `send()`
 * copies the message into the ring (bytes codec, encoded in place), and the
 * receiving side takes it with `receiveView()`, copies it into a buffer of
 * its own and `release()`s it: one copy each way, as the other shared-memory
 * rows make. (`receive()` with `codecs.bytes()` returns a fresh copy, and
 * a fresh ArrayBuffer per message cost about 1.7 µs here, half of an
 * in-process send and receive: measured with `--cpu-prof`.)
 * Measured with both sides spinning (`spin: 1000` µs, so a round trip that
 * answers within a millisecond never sleeps; against C's spin on a counter)
 * and with both sides parking at once (`spin: 0`: every wait sleeps on the
 * futex and every send wakes the peer; against C's futex ping-pong).
 *
 * Two more rows wait with `sendSync()`/`receiveSync()` on both sides (their
 * receive copies the message with `codecs.bytes()`): spinning, and with
 * `spin: 0`, where every wait blocks its thread in `FUTEX_WAIT` as C does,
 * with no hop through Deno's thread pool and event loop. They show what
 * the async rows' promises and parks cost.
 *
 * One way (1 MiB): `count` messages back to back into a ring of 4 MiB,
 * each acknowledged by the peer with one byte on the other channel; the
 * burst ends when the last acknowledgement is in.
 *
 * @module
 */

import { codecs, ShmChannel } from "../../mod.ts";
import {
  type ConnectOptions,
  type Session,
  spawnPeer,
  stopPeer,
  type Transport,
} from "./_transport.ts";

const FLAGS = [
  "--allow-ffi",
  "--allow-read=/dev/shm,/proc",
  "--allow-write=/dev/shm",
];

/**
 * The smallest ring that carries a message of `size` (a message may take
 * half, less 8 bytes): 4 MiB for 1 MiB. Smallest is fastest for big
 * messages: a ring that fits in the caches is copied into at several times
 * the speed of one that cycles through DRAM (in-process, 1 MiB messages
 * sent, viewed and copied out: 4 MiB ring 2.0-6.5 GiB/s, 16 MiB ring
 * 1.2 GiB/s, on a loaded machine).
 */
function _capacity(size: number): number {
  let capacity = 4096;
  while (capacity / 2 - 8 < size) capacity *= 2;
  return capacity;
}

async function _connect(
  size: number,
  spin: number,
  options: ConnectOptions = {},
  sync = false,
): Promise<Session> {
  const base = `/ipckit-bench-ring-${Deno.pid}-${
    crypto.randomUUID().slice(0, 8)
  }`;
  const open = (name: string) =>
    ShmChannel.open<Uint8Array>(name, {
      create: true,
      exclusive: true,
      capacity: _capacity(size),
      codec: codecs.bytes(),
      spin,
    });
  const requests = open(`${base}-requests`);
  const replies = open(`${base}-replies`);
  const peer = spawnPeer("shm_channel_echo.ts", FLAGS, [
    requests.name,
    replies.name,
    String(spin),
    ...(sync ? ["--sync"] : options.oneWay ? ["--ack"] : []),
  ]);
  try {
    await replies.receive({ timeout: 30_000 }); // the peer has both open
  } finally {
    // Both processes have them mapped now: drop the names so nothing leaks.
    requests.unlink();
    replies.unlink();
  }
  const reply = new Uint8Array(Math.max(size, 1));
  const take = async () => {
    const view = await replies.receiveView();
    reply.set(view);
    replies.release();
  };
  if (sync) {
    return {
      peers: [peer.pid],
      roundTrip: (message) => {
        requests.sendSync(message);
        replies.receiveSync();
      },
      close: async () => {
        requests.close();
        await stopPeer(peer);
        replies.close();
      },
    };
  }
  return {
    peers: [peer.pid],
    roundTrip: async (message) => {
      await requests.send(message);
      await take();
    },
    sendOneWay: async (message, count) => {
      let acked = 0;
      for (let i = 0; i < count; i++) {
        await requests.send(message);
        // Take the acknowledgements that are in; wait only at the end.
        for (;;) {
          try {
            replies.tryReceive();
            acked++;
          } catch {
            break;
          }
        }
      }
      while (acked < count) {
        await take();
        acked++;
      }
    },
    close: async () => {
      requests.close(); // the peer's receive() ends: it exits
      await stopPeer(peer);
      replies.close();
    },
  };
}

/** The ShmChannel rows of the driver. */
export const shmChannelTransports: Transport[] = [
  {
    name: "ShmChannel, both sides spinning (async)",
    kind: "ipckit",
    limit: { mechanism: "shm", waiting: "busy" },
    throughput: true,
    connect: (size, options) => _connect(size, 1000, options),
  },
  {
    name: "ShmChannel, both sides parked (async, spin: 0)",
    kind: "ipckit",
    limit: { mechanism: "shm", waiting: "blocking" },
    connect: (size, options) => _connect(size, 0, options),
  },
  {
    name: "ShmChannel, both sides spinning (sync)",
    kind: "ipckit",
    limit: { mechanism: "shm", waiting: "busy" },
    unsupported: (bytes) =>
      bytes >= 64 * 1024 ? "round trips only (sync)" : undefined,
    connect: (size, options) => _connect(size, 1000, options, true),
  },
  {
    name: "ShmChannel, both sides blocking (sync, spin: 0)",
    kind: "ipckit",
    limit: { mechanism: "shm", waiting: "blocking" },
    unsupported: (bytes) =>
      bytes >= 64 * 1024 ? "round trips only (sync)" : undefined,
    connect: (size, options) => _connect(size, 0, options, true),
  },
];
