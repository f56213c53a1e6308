/**
 * System V rows: a message queue pair (`SysvMessageQueue`) and shared
 * memory + a semaphore set (`SysvSharedMemory`, `SysvSemaphoreSet`) to a
 * peer process, each with `await` (async) and with `*Sync`, beside their
 * C limits (bench/c/sysv_msg.c, bench/c/sysv_sem.c).
 *
 * How the async rows wait: System V gives nothing to poll, so an async
 * receive or wait tries `IPC_NOWAIT` on the main thread, spins for the
 * `spin` budget (50 µs by default), and then retries on a timer that
 * starts at 1 ms after activity and doubles to 32 ms while nothing changes
 * (mechanisms/_wait/poll_group.ts). An answer that comes within the spin
 * costs what the sync row costs; one that comes later waits for the next
 * tick. The sync rows spin, then block in `msgrcv` or `semop` as C does.
 *
 * What a full run measures of them is bounded by time: an async round
 * trip that waits for the timer takes milliseconds, so 10,000 of them take
 * most of a minute per cell. The async rows are measured at 64 B only (a
 * larger message waits for the same timer), and there is no `spin: 0` row
 * (it would measure the timer alone, which the async rows' share of round
 * trips over 1 ms already shows). With both, the System V rows alone
 * took 9 min 12 s of a full run on the development VM; without, 4 min 7 s
 * (`deno task bench:driver --only="System V"`, at a load average of 6 to 8).
 *
 * Cleaning up: System V objects outlive every process and cannot be removed
 * while in use (`IPC_RMID` destroys them at once), so the peer creates them
 * and removes them when it stops, and a watchdog in the peer removes them
 * when the driver is gone, however it ended (bench/fixtures/_sysv_watchdog.ts).
 * The driver's handles remove them too when closed, in case the peer died.
 *
 * Where System V is not available (a kernel without it, or a run without
 * `--allow-write=/proc/sysvipc`), every row is skipped and says why.
 *
 * @module
 */

import { readSmallFile } from "../../ffi/file.ts";
import {
  codecs,
  SysvMessageQueue,
  SysvSemaphoreSet,
  SysvSharedMemory,
} from "../../mod.ts";
import {
  type ConnectOptions,
  firstLine,
  type Session,
  spawnPeer,
  stopPeer,
  type Transport,
} from "./_transport.ts";

export { BENCH_KEY_TAG } from "../fixtures/_sysv_peer.ts";

const FLAGS = [
  "--allow-ffi",
  // The checkout too: the peer's watchdog is a worker, loaded from a file.
  `--allow-read=/proc/sysvipc,/proc/sys/kernel,${
    new URL("../..", import.meta.url).pathname
  }`,
  "--allow-write=/proc/sysvipc",
];
/** Where the message starts in the segment (the length is at 64). */
const DATA = 128;
/** Acknowledgements a one-way sender leaves unread, as the C harness's WINDOW. */
const WINDOW = 8;
/** Linux's default `msgmax`, where /proc/sys/kernel cannot be read. */
const DEFAULT_MSGMAX = 8192;

/**
 * The largest System V message, `/proc/sys/kernel/msgmax` (read through
 * libc: Deno's own API wants --allow-all under /proc/sys).
 */
function _msgmax(): number {
  const path = "/proc/sys/kernel/msgmax";
  const readable =
    Deno.permissions.querySync({ name: "read", path }).state === "granted";
  const text = readable ? readSmallFile(path, 64) : undefined;
  const value = Number(text?.trim());
  return Number.isSafeInteger(value) && value > 0 ? value : DEFAULT_MSGMAX;
}

/** How this side waits for the answer. */
type Style = "sync" | "async";

let _unavailable: string | undefined | null = null;

/**
 * Why System V IPC cannot be measured here, or undefined when it can: one
 * private queue, semaphore set and segment are made and removed, once per
 * run.
 */
export function sysvUnavailable(): string | undefined {
  if (_unavailable !== null) return _unavailable;
  _unavailable = undefined;
  try {
    SysvMessageQueue.open("private", { create: true }).remove();
    SysvSemaphoreSet.open("private", { create: true, count: 1 }).remove();
    using segment = SysvSharedMemory.open("private", {
      create: true,
      size: 4096,
    });
    segment.remove();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    _unavailable = `System V IPC is not available here: ${message}`;
  }
  return _unavailable;
}

/** Starts a System V peer and reads the keys of the objects it made. */
async function _start(
  fixture: string,
  args: string[],
): Promise<{ peer: Deno.ChildProcess; keys: number[] }> {
  const why = sysvUnavailable();
  if (why) throw new Error(why);
  const peer = spawnPeer(fixture, FLAGS, args, "piped", "piped");
  try {
    const keys = (await firstLine(peer)).split(" ").map(Number);
    if (keys.length !== 2 || !keys.every(Number.isInteger)) {
      throw new Error(`the peer printed no keys: "${keys.join(" ")}"`);
    }
    return { peer, keys };
  } catch (error) {
    await _stop(peer);
    throw error;
  }
}

/**
 * Ends a peer that does not stop when asked: its stdin ends, so its
 * watchdog removes its objects and it exits (SIGKILL after 5 s).
 */
async function _stop(peer: Deno.ChildProcess): Promise<void> {
  await peer.stdin.close().catch(() => {});
  await stopPeer(peer);
}

async function _connectQueues(
  size: number,
  style: Style,
  connectOptions: ConnectOptions = {},
): Promise<Session> {
  const sync = style === "sync";
  const { peer, keys: [there, back] } = await _start("sysv_msg_echo.ts", [
    String(size),
    "50",
    ...(connectOptions.oneWay ? ["--ack"] : []),
  ]);
  let out: SysvMessageQueue<Uint8Array> | undefined;
  let input: SysvMessageQueue<Uint8Array> | undefined;
  try {
    const options = { codec: codecs.bytes(), unlinkOnClose: true };
    out = SysvMessageQueue.open(there, { ...options, read: false });
    input = SysvMessageQueue.open(back, { ...options, write: false });
  } catch (error) {
    out?.close();
    await _stop(peer);
    throw error;
  }
  const o = out, i = input;
  const piece = Math.min(size, _msgmax());
  return {
    peers: [peer.pid],
    roundTrip: sync
      ? (message) => {
        o.sendSync(message);
        i.receiveSync();
      }
      : async (message) => {
        await o.send(message);
        await i.receive();
      },
    // One way in the sync form only: an async send to a full queue (16 KiB
    // by default, two 8 KiB pieces) waits for the poll timer every time.
    ...(sync
      ? {
        sendOneWay: (message: Uint8Array, count: number) => {
          let acked = 0;
          for (let n = 0; n < count; n++) {
            for (let at = 0; at < message.byteLength; at += piece) {
              o.sendSync(message.subarray(at, at + piece));
            }
            if (n + 1 - acked >= WINDOW) (i.receiveSync(), acked++);
          }
          for (; acked < count; acked++) i.receiveSync();
        },
      }
      : {}),
    close: async () => {
      try {
        await o.send(new Uint8Array(0), { timeout: 5_000 });
        await stopPeer(peer);
      } finally {
        await _stop(peer);
        o.close();
        i.close();
      }
    },
  };
}

async function _connectSemaphores(
  size: number,
  style: Style,
): Promise<Session> {
  const { peer, keys: [memoryKey, setKey] } = await _start(
    "sysv_sem_echo.ts",
    [String(size), "50"],
  );
  let memory: SysvSharedMemory | undefined;
  let set: SysvSemaphoreSet | undefined;
  try {
    memory = SysvSharedMemory.open(memoryKey);
    // Both processes have it attached now: the kernel removes it when the
    // last one detaches or dies.
    memory.remove();
    set = SysvSemaphoreSet.open(setKey, { unlinkOnClose: true });
  } catch (error) {
    memory?.close();
    await _stop(peer);
    throw error;
  }
  const m = memory, s = set;
  const PING = 0, PONG = 1;
  const length = m.view(Uint32Array, 64, 1);
  const data = m.view(Uint8Array, DATA);
  const reply = new Uint8Array(size);
  const send = (message: Uint8Array) => {
    data.set(message);
    length[0] = message.byteLength;
    s.post(PING);
  };
  const receive = () => reply.set(data.subarray(0, length[0]));
  return {
    peers: [peer.pid],
    roundTrip: style === "sync"
      ? (message) => {
        send(message);
        s.waitSync(PONG);
        receive();
      }
      : async (message) => {
        send(message);
        await s.wait(PONG);
        receive();
      },
    close: async () => {
      try {
        length[0] = 0xffff_ffff;
        s.post(PING);
        await stopPeer(peer);
      } finally {
        await _stop(peer);
        s.close();
        m.close();
      }
    },
  };
}

function _unsupported(style: Style): (bytes: number) => string | undefined {
  return (bytes) =>
    sysvUnavailable() ??
      (style === "async" && bytes > 64
        ? "the async rows are measured at 64 B only: a larger message waits for the same poll timer, and each further cell would add about a minute to a full run"
        : undefined);
}

/** The System V rows of the driver. */
export const sysvTransports: Transport[] = [
  {
    name: "System V message queue, sync",
    kind: "ipckit",
    limit: { mechanism: "sysv-msg", waiting: "busy" },
    unsupported: _unsupported("sync"),
    connect: (size) => _connectQueues(size, "sync"),
  },
  {
    name: "System V message queue, async",
    kind: "ipckit",
    limit: { mechanism: "sysv-msg", waiting: "busy" },
    unsupported: _unsupported("async"),
    connect: (size, options) => _connectQueues(size, "async", options),
  },
  {
    name: "System V shared memory + semaphores, async",
    kind: "ipckit",
    limit: { mechanism: "sysv-sem", waiting: "busy" },
    unsupported: _unsupported("async"),
    connect: (size) => _connectSemaphores(size, "async"),
  },
  {
    name: "System V shared memory + semaphores, sync",
    kind: "ipckit",
    limit: { mechanism: "sysv-sem", waiting: "busy" },
    unsupported: _unsupported("sync"),
    connect: (size) => _connectSemaphores(size, "sync"),
  },
];
