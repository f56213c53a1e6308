/**
 * Cross-process benchmark driver: moves 1 MiB and 64 MiB from this process
 * to a child process through shared memory and through a POSIX message
 * queue, and times opening views. Prints medians.
 *
 * One round = the parent copies the payload from its own buffer into the
 * channel, the child copies it out into its own buffer and acknowledges.
 * - shared memory: a `seq`/`ack` pair of atomic u32s next to the data; both
 *   sides spin on `Atomics.load` (no system call at all).
 * - message queue: the payload in messages of the queue's largest size
 *   (`/proc/sys/fs/mqueue/msgsize_max`, 8 KiB by default), one acknowledgement
 *   message back through a second queue; both sides use the blocking
 *   `sendSync`/`receiveSync`.
 *
 * Run: deno task bench:shm
 */
import { codecs, layout, MessageQueue, SharedMemory } from "../mod.ts";

const MiB = 1 << 20;
const control = layout({ seq: "u32", ack: "u32", size: "u32" });
const DATA = 64; // data starts here, past the control record

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function readLimit(file: string, fallback: number): number {
  try {
    return Number(Deno.readTextFileSync(`/proc/sys/fs/mqueue/${file}`).trim());
  } catch {
    return fallback;
  }
}

function spawnChild(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-ffi",
      "--allow-read=/dev/shm,/dev/mqueue,/proc/sys/fs/mqueue",
      "--allow-write=/dev/shm,/dev/mqueue",
      import.meta.filename!,
      ...args,
    ],
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
}

// ---- shared memory -------------------------------------------------------

function shmChild(name: string, rounds: number): void {
  using memory = SharedMemory.open(name);
  const head = memory.struct(control);
  const data = memory.view(Uint8Array, DATA);
  const mine = new Uint8Array(head.size);
  for (let round = 1; round <= rounds; round++) {
    while (head.$atomic.seq.load() !== round) { /* spin */ }
    mine.set(data.subarray(0, head.size));
    head.$atomic.ack.store(round);
  }
}

async function shmRounds(size: number, rounds: number): Promise<number[]> {
  const name = `/ipckit-bench-shm-${Deno.pid}`;
  using memory = SharedMemory.open(name, {
    create: true,
    size: DATA + size,
    unlinkOnClose: true,
  });
  const head = memory.struct(control);
  head.size = size;
  const data = memory.view(Uint8Array, DATA);
  const source = new Uint8Array(size).fill(7);
  const child = spawnChild(["shm-child", name, String(rounds + 1)]);
  const times: number[] = [];
  for (let round = 1; round <= rounds + 1; round++) {
    const start = performance.now();
    data.set(source);
    head.$atomic.seq.store(round);
    while (head.$atomic.ack.load() !== round) { /* spin */ }
    // Round 1 includes the child's start-up: drop it.
    if (round > 1) times.push(performance.now() - start);
  }
  await child.status;
  return times;
}

// ---- message queue -------------------------------------------------------

function mqChild(name: string, rounds: number, size: number): void {
  using data = MessageQueue.open<Uint8Array>(`${name}-data`, {
    codec: codecs.bytes(),
    write: false,
  });
  using acks = MessageQueue.open<Uint8Array>(`${name}-ack`, {
    codec: codecs.bytes(),
    read: false,
  });
  const mine = new Uint8Array(size);
  const ack = new Uint8Array(1);
  for (let round = 0; round < rounds; round++) {
    let received = 0;
    while (received < size) {
      const { value } = data.receiveSync();
      mine.set(value, received);
      received += value.byteLength;
    }
    acks.sendSync(ack);
  }
}

async function mqRounds(size: number, rounds: number): Promise<number[]> {
  const name = `/ipckit-bench-mq-${Deno.pid}`;
  const messageSize = readLimit("msgsize_max", 8192);
  const maxMessages = readLimit("msg_max", 10);
  using data = MessageQueue.open<Uint8Array>(`${name}-data`, {
    create: true,
    codec: codecs.bytes(),
    maxMessages,
    messageSize,
    read: false,
    unlinkOnClose: true,
  });
  using acks = MessageQueue.open<Uint8Array>(`${name}-ack`, {
    create: true,
    codec: codecs.bytes(),
    maxMessages: 1,
    messageSize: 1,
    write: false,
    unlinkOnClose: true,
  });
  const source = new Uint8Array(size).fill(7);
  const child = spawnChild([
    "mq-child",
    name,
    String(rounds + 1),
    String(size),
  ]);
  const times: number[] = [];
  for (let round = 0; round <= rounds; round++) {
    const start = performance.now();
    for (let offset = 0; offset < size; offset += messageSize) {
      data.sendSync(source.subarray(offset, offset + messageSize));
    }
    acks.receiveSync();
    if (round > 0) times.push(performance.now() - start);
  }
  await child.status;
  return times;
}

// ---- view cost ------------------------------------------------------------

function viewCost(): Record<string, number> {
  const name = `/ipckit-bench-view-${Deno.pid}`;
  using memory = SharedMemory.open(name, {
    create: true,
    size: MiB,
    unlinkOnClose: true,
  });
  const batch = 10_000;
  const nsPerOp = (op: () => unknown): number => {
    const samples: number[] = [];
    for (let i = 0; i < 30; i++) {
      const start = performance.now();
      for (let j = 0; j < batch; j++) op();
      samples.push(((performance.now() - start) * 1e6) / batch);
    }
    return median(samples);
  };
  const record = memory.struct(control);
  return {
    "view(Float32Array, 4096, 1024)": nsPerOp(() =>
      memory.view(Float32Array, 4096, 1024)
    ),
    "bytes()": nsPerOp(() => memory.bytes()),
    "struct(layout)": nsPerOp(() => memory.struct(control)),
    "record field read": nsPerOp(() => record.size),
    "$atomic.seq.add(1)": nsPerOp(() => record.$atomic.seq.add(1)),
    "SharedMemory.open()+close() of 1 MiB": nsPerOp(() =>
      SharedMemory.open(name).close()
    ),
  };
}

// ---- main ------------------------------------------------------------------

if (Deno.args[0] === "shm-child") {
  shmChild(Deno.args[1], Number(Deno.args[2]));
} else if (Deno.args[0] === "mq-child") {
  mqChild(Deno.args[1], Number(Deno.args[2]), Number(Deno.args[3]));
} else {
  console.log(`ipckit shared memory vs message queue, ${Deno.build.target}`);
  console.log(
    `message size ${readLimit("msgsize_max", 8192)} B, queue depth ${
      readLimit("msg_max", 10)
    }`,
  );
  for (const [size, rounds] of [[MiB, 50], [64 * MiB, 10]]) {
    for (
      const [label, run] of [["shared memory", shmRounds], [
        "message queue",
        mqRounds,
      ]] as const
    ) {
      const ms = median(await run(size, rounds));
      const throughput = size / MiB / (ms / 1000);
      console.log(
        `${String(size / MiB).padStart(2)} MiB via ${
          label.padEnd(13)
        }: median ${ms.toFixed(3).padStart(8)} ms per transfer, ${
          throughput.toFixed(0).padStart(6)
        } MiB/s (${rounds} rounds)`,
      );
    }
  }
  for (const [what, ns] of Object.entries(viewCost())) {
    console.log(`${what.padEnd(40)} median ${ns.toFixed(0).padStart(6)} ns`);
  }
}
