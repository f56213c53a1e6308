import {
  assert,
  assertEquals,
  assertRejects,
  assertStrictEquals,
} from "@std/assert";
import { O } from "../ffi/c.ts";
import { libc } from "../ffi/load.ts";
import {
  Fifo,
  FramedChannel,
  MessageQueue,
  Semaphore,
  SharedMemory,
} from "../mod.ts";
import { fdReadable } from "../mechanisms/_stream/fd_streams.ts";
import { _laneCounts } from "../mechanisms/_wait/futex.ts";
import { reactor } from "../mechanisms/_wait/reactor.ts";
import { leakChecked, runFixture, uniqueName } from "./_helpers.ts";

/** One kind of parked wait: how to start it, satisfy it, and close its handle. */
interface Kind {
  name: string;
  /** Starts a wait that must park (nothing is there yet). */
  wait(options: { signal?: AbortSignal; timeout?: number }): Promise<unknown>;
  /** Makes one wait succeed. */
  deliver(): Promise<void> | void;
  close(): void;
  /** Removes what the kind made (after close). */
  cleanUp(): Promise<void> | void;
}

const encoder = new TextEncoder();
function frame(value: unknown): Uint8Array<ArrayBuffer> {
  const payload = encoder.encode(JSON.stringify(value));
  const bytes = new Uint8Array(4 + payload.byteLength);
  new DataView(bytes.buffer).setUint32(0, payload.byteLength);
  bytes.set(payload, 4);
  return bytes;
}

async function kinds(dir: string): Promise<Kind[]> {
  const queue = MessageQueue.open<number>(uniqueName("wait-mq"), {
    create: true,
    unlinkOnClose: true,
  });
  const fifo = Fifo.create(`${dir}/wait.fifo`);
  const fifoReader = await fifo.openReader<number>();
  const fifoWriter = await fifo.openWriter<number>({ timeout: 1000 });
  const fds = new Int32Array(2);
  assertEquals(
    libc().symbols.pipe2!(new Uint8Array(fds.buffer), O.NONBLOCK | O.CLOEXEC),
    0,
  );
  const pipeWriteFd = fds[1];
  const pipeReader = new FramedChannel<number>({
    readable: fdReadable({ fd: fds[0] }, "test pipe"),
  });
  const memory = SharedMemory.open(uniqueName("wait-sem"), {
    create: true,
    size: 64,
    unlinkOnClose: true,
  });
  const semaphore = Semaphore.inMemory(memory, 0, { initial: 0 });
  return [
    {
      name: "message queue",
      wait: (options) => queue.receive(options),
      deliver: () => queue.trySend(1),
      close: () => queue.close(),
      cleanUp: () => {},
    },
    {
      name: "FIFO",
      wait: (options) => fifoReader.receive(options),
      deliver: () => fifoWriter.send(1),
      close: () => fifoReader.close(),
      cleanUp: () => {
        fifoWriter.close();
        fifo[Symbol.dispose]();
      },
    },
    {
      name: "pipe",
      wait: (options) => pipeReader.receive(options),
      deliver: () => {
        const bytes = frame(1);
        libc().symbols.write(pipeWriteFd, bytes, BigInt(bytes.byteLength));
      },
      close: () => pipeReader.close(),
      cleanUp: () => {
        libc().symbols.close(pipeWriteFd);
      },
    },
    {
      name: "semaphore",
      wait: (options) => semaphore.wait(options),
      deliver: () => semaphore.post(),
      close: () => semaphore.close(),
      cleanUp: () => memory.close(),
    },
  ];
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test(
  "Parked waits of every kind reject on abort and on timeout, take nothing, and reject with BadResource on close",
  leakChecked(async () => {
    const dir = await Deno.makeTempDir({ prefix: "ipckit-test-wait-" });
    try {
      for (const kind of await kinds(dir)) {
        // Abort: the reason, at once; what arrives later is still there.
        const controller = new AbortController();
        const aborted = kind.wait({ signal: controller.signal });
        await pause(20);
        const reason = new Error("changed my mind");
        const abortedAt = performance.now();
        controller.abort(reason);
        assertStrictEquals(
          await assertRejects(() => aborted),
          reason,
          kind.name,
        );
        assert(performance.now() - abortedAt < 100, `${kind.name}: slow abort`);
        // Timeout: TimedOut after the time asked for.
        const start = performance.now();
        const timedOut = await assertRejects(
          () => kind.wait({ timeout: 40 }),
          Deno.errors.TimedOut,
        );
        assert(timedOut.message.endsWith("timed out after 40 ms"), kind.name);
        assert(performance.now() - start >= 39, `${kind.name}: early timeout`);
        // Neither took anything: one delivery serves the next wait.
        const next = kind.wait({ timeout: 5000 });
        await pause(10);
        await kind.deliver();
        await next;
        // Close: a parked wait rejects with the one "it is closed" error.
        const parked = kind.wait({});
        await pause(20);
        kind.close();
        const closed = await assertRejects(
          () => parked,
          Deno.errors.BadResource,
        );
        assert(closed.message.endsWith("it is closed"), closed.message);
        await kind.cleanUp();
      }
      assertEquals(reactor().waiters, 0);
      await pause(0);
      assertEquals(_laneCounts().laneWords, 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }),
);

Deno.test(
  "A descriptor number reused after close() starts clean in the reactor",
  leakChecked(async () => {
    const first = MessageQueue.open<number>(uniqueName("reuse-a"), {
      create: true,
      unlinkOnClose: true,
    });
    const pending = first.receive();
    await pause(10);
    first.close();
    await assertRejects(() => pending, Deno.errors.BadResource);
    // The kernel hands out the lowest free number: the one just closed.
    await using second = MessageQueue.open<number>(uniqueName("reuse-b"), {
      create: true,
      unlinkOnClose: true,
    });
    const waiting = second.receive({ timeout: 5000 });
    await pause(10);
    second.trySend(42);
    assertEquals((await waiting).value, 42);
    assertEquals(reactor().waiters, 0);
  }),
);

for (
  const [mode, what] of [
    [
      "poll",
      "the poll() backend of the reactor (used where there is no epoll)",
    ],
    [
      "fallback",
      "the timer fallback of semaphore waits (used where futex_waitv or glibc is missing)",
    ],
  ] as const
) {
  Deno.test(
    `Waits work, time out, abort and close on ${what}`,
    leakChecked(async () => {
      const dir = await Deno.makeTempDir({ prefix: "ipckit-test-backend-" });
      try {
        const result = await runFixture("wait_backend.ts", [
          "--allow-ffi",
          `--allow-read=/dev/mqueue,/dev/shm,${dir}`,
          `--allow-write=/dev/mqueue,/dev/shm,${dir}`,
        ], [mode, dir, uniqueName(`backend-${mode}`)]);
        assertEquals(result.code, 0, result.stderr);
        assertEquals(
          result.stdout,
          "message queue ok\nFIFO ok\nsemaphore ok\n",
        );
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    }),
  );
}

Deno.test(
  "A queue that takes over the descriptor number of one dropped without close() reports its own name when closed",
  leakChecked(async () => {
    const prefix = uniqueName("dropped");
    const result = await runFixture("mq_dropped.ts", [
      "--v8-flags=--expose-gc",
      "--allow-ffi",
      "--allow-read=/dev/mqueue",
      "--allow-write=/dev/mqueue",
    ], [prefix]);
    assertEquals(result.code, 0, result.stderr);
    assertEquals(
      result.stdout,
      `Cannot use message queue "${prefix}-second": it is closed\n`,
    );
  }),
);
