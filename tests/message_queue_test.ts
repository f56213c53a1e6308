import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "@std/assert";
import {
  codecs,
  DecodeError,
  MessageQueue,
  type MessageQueueOptions,
} from "../mod.ts";
import {
  IPC_DIRS,
  leakChecked,
  MQ_FLAGS,
  runFixture,
  spawnFixture,
  uniqueName,
} from "./_helpers.ts";
import { rejectsBeforeAnySystemCall } from "./_syscalls.ts";
import { bounded } from "./_bounded.ts";

/** Reads a limit with coreutils, independently of ipckit's own reader. */
async function readLimit(name: string): Promise<number> {
  const { stdout } = await bounded(
    new Deno.Command("cat", { args: [`/proc/sys/fs/mqueue/${name}`] })
      .output(),
    10_000,
    "cat",
  );
  return Number(new TextDecoder().decode(stdout));
}

Deno.test(
  "MessageQueue carries 10,000 messages to another process, none lost or duplicated, order kept within a priority",
  leakChecked(async () => {
    const name = uniqueName("mq-cross");
    await using queue = MessageQueue.open<{ seq: number }>(name, {
      create: true,
      unlinkOnClose: true,
    });
    const count = 10_000;
    const consumer = spawnFixture("mq_peer.ts", MQ_FLAGS, [
      "consume",
      name,
      String(count),
    ]);
    for (let seq = 0; seq < count; seq++) {
      await queue.send({ seq }, { priority: seq % 4, timeout: 30_000 });
    }
    const output = await bounded(consumer.output(), 30_000, "the consumer");
    assertEquals(output.code, 0, new TextDecoder().decode(output.stderr));
    const received: [number, number][] = JSON.parse(
      new TextDecoder().decode(output.stdout),
    );
    assertEquals(received.length, count);
    assertEquals(
      received.map(([seq]) => seq).sort((a, b) => a - b),
      Array.from({ length: count }, (_, i) => i),
    );
    const lastSeqByPriority = new Map<number, number>();
    for (const [seq, priority] of received) {
      assertEquals(priority, seq % 4);
      assert(
        seq > (lastSeqByPriority.get(priority) ?? -1),
        `seq ${seq} of priority ${priority} arrived out of order`,
      );
      lastSeqByPriority.set(priority, seq);
    }
  }),
);

Deno.test(
  "MessageQueue receives 10,000 messages from another process with receive() and the iterator",
  leakChecked(async () => {
    const name = uniqueName("mq-from-child");
    await using queue = MessageQueue.open<{ seq: number }>(name, {
      create: true,
      unlinkOnClose: true,
    });
    const count = 10_000;
    const producer = spawnFixture("mq_peer.ts", MQ_FLAGS, [
      "produce",
      name,
      String(count),
    ]);
    const seen = new Set<number>();
    // receive() with a timeout, then the iterator: both forms, each bounded.
    while (seen.size < count / 2) {
      const { value } = await queue.receive({ timeout: 30_000 });
      assert(!seen.has(value.seq), `seq ${value.seq} arrived twice`);
      seen.add(value.seq);
    }
    const iterator = queue[Symbol.asyncIterator]();
    while (seen.size < count) {
      const step = await bounded(iterator.next(), 30_000, "the iterator");
      assert(!step.done, "the iteration ended early");
      const { value } = step.value;
      assert(!seen.has(value.seq), `seq ${value.seq} arrived twice`);
      seen.add(value.seq);
    }
    await iterator.return?.();
    const status = await bounded(producer.status, 30_000, "the producer");
    await producer.stdout.cancel();
    await producer.stderr.cancel();
    assertEquals(status.code, 0);
    assertEquals(seen.size, count);
  }),
);

Deno.test(
  "MessageQueue.receiveSync() and sendSync() round-trip through an echoing process",
  leakChecked(async () => {
    const there = uniqueName("mq-there");
    const back = uniqueName("mq-back");
    using out = MessageQueue.open<number[]>(there, {
      create: true,
      unlinkOnClose: true,
    });
    using input = MessageQueue.open<number[]>(back, {
      create: true,
      unlinkOnClose: true,
    });
    const echo = spawnFixture("mq_peer.ts", MQ_FLAGS, [
      "echo",
      there,
      back,
      "100",
    ]);
    for (let i = 0; i < 100; i++) {
      out.sendSync([i, i * 2], { timeout: 10_000 });
      assertEquals(input.receiveSync({ timeout: 10_000 }).value, [
        i,
        i * 2,
      ]);
    }
    const output = await bounded(echo.output(), 30_000, "the echo process");
    assertEquals(output.code, 0, new TextDecoder().decode(output.stderr));
  }),
);

Deno.test(
  "MessageQueue delivers a higher priority sent later first",
  leakChecked(async () => {
    using queue = MessageQueue.open<string>(uniqueName("mq-prio"), {
      create: true,
      unlinkOnClose: true,
    });
    await queue.send("low", { priority: 1, timeout: 1000 });
    await queue.send("high", { priority: 30, timeout: 1000 });
    await queue.send("low again", { priority: 1, timeout: 1000 });
    assertEquals(await queue.receive({ timeout: 1000 }), {
      value: "high",
      priority: 30,
    });
    assertEquals(await queue.receive({ timeout: 1000 }), {
      value: "low",
      priority: 1,
    });
    assertEquals(queue.tryReceive(), { value: "low again", priority: 1 });
  }),
);

Deno.test(
  "MessageQueue.receive() keeps the event loop running while it waits",
  leakChecked(async () => {
    using queue = MessageQueue.open<string>(uniqueName("mq-loop"), {
      create: true,
      unlinkOnClose: true,
    });
    let ticks = 0;
    const interval = setInterval(() => ticks++, 10);
    const sender = setTimeout(() => queue.trySend("late"), 300);
    try {
      const { value } = await queue.receive({ timeout: 10_000 });
      assertEquals(value, "late");
      // A blocked loop would fire no interval tick at all before the sender.
      assert(ticks >= 5, `only ${ticks} timer ticks while receive() waited`);
    } finally {
      clearInterval(interval);
      clearTimeout(sender);
    }
  }),
);

Deno.test(
  "MessageQueue.receive() waits the same way with spinning on and off",
  leakChecked(async () => {
    for (const spin of [0, 1000]) {
      using queue = MessageQueue.open<number>(uniqueName("mq-spin"), {
        create: true,
        unlinkOnClose: true,
        spin,
      });
      const late = setTimeout(() => queue.trySend(spin), 30);
      assertEquals((await queue.receive({ timeout: 5000 })).value, spin);
      clearTimeout(late);
      await assertRejects(
        () => queue.receive({ timeout: 5 }),
        Deno.errors.TimedOut,
      );
      queue.trySend(1);
      assertEquals(queue.receiveSync({ timeout: 1000 }).value, 1);
    }
  }),
);

Deno.test(
  "MessageQueue.receive() lets promise continuations run while it spins",
  leakChecked(async () => {
    using queue = MessageQueue.open<string>(uniqueName("mq-yield"), {
      create: true,
      unlinkOnClose: true,
      spin: 1000,
    });
    const order: string[] = [];
    const received = queue.receive({ timeout: 5000 }).then(({ value }) =>
      order.push(value)
    );
    // Sent by a promise continuation, as an RPC client sends its next request.
    Promise.resolve().then(() => queue.trySend("from a microtask"));
    // A long chain of continuations: a spin that held the thread would miss
    // the message, park, and be woken only after this whole chain has run.
    const chain = (async () => {
      for (let i = 0; i < 1000; i++) await undefined;
      order.push("chain done");
    })();
    await Promise.all([received, chain]);
    assertEquals(order, ["from a microtask", "chain done"]);
  }),
);

Deno.test(
  "MessageQueue.receive() rejects after its timeout",
  leakChecked(async () => {
    using queue = MessageQueue.open(uniqueName("mq-timeout"), {
      create: true,
      unlinkOnClose: true,
    });
    const error: Error & { code?: string } = await assertRejects(
      () => queue.receive({ timeout: 50 }),
      Deno.errors.TimedOut,
      "timed out after 50 ms",
    );
    assertEquals(error.code, "ETIMEDOUT");
    await assertRejects(
      () => queue.receive({ timeout: 0 }),
      Deno.errors.TimedOut,
    );
    assertThrows(
      () => queue.receiveSync({ timeout: 20 }),
      Deno.errors.TimedOut,
    );
  }),
);

Deno.test(
  "MessageQueue.receive() rejects with the abort reason and a later send still arrives",
  leakChecked(async () => {
    using queue = MessageQueue.open<number>(uniqueName("mq-abort"), {
      create: true,
      unlinkOnClose: true,
    });
    const controller = new AbortController();
    const pending = queue.receive({ signal: controller.signal, timeout: 5000 });
    setTimeout(() => controller.abort(new Error("cancelled")), 20);
    await assertRejects(() => pending, Error, "cancelled");
    queue.trySend(7);
    assertEquals((await queue.receive({ timeout: 1000 })).value, 7);
  }),
);

Deno.test(
  "MessageQueue.send() waits while the queue is full and resumes when a slot frees",
  leakChecked(async () => {
    using queue = MessageQueue.open<number>(uniqueName("mq-full"), {
      create: true,
      unlinkOnClose: true,
      maxMessages: 2,
      messageSize: 64,
    });
    queue.trySend(1);
    queue.trySend(2);
    assertThrows(() => queue.trySend(3), Deno.errors.WouldBlock);
    await assertRejects(
      () => queue.send(3, { timeout: 30 }),
      Deno.errors.TimedOut,
    );
    const blocked = queue.send(3, { timeout: 5000 });
    assertEquals(queue.tryReceive().value, 1);
    await blocked;
    assertEquals(queue.attributes(), {
      maxMessages: 2,
      messageSize: 64,
      currentMessages: 2,
    });
  }),
);

Deno.test(
  "MessageQueue.tryReceive() throws WouldBlock on an empty queue",
  leakChecked(() => {
    using queue = MessageQueue.open(uniqueName("mq-empty"), {
      create: true,
      unlinkOnClose: true,
    });
    assertThrows(
      () => queue.tryReceive(),
      Deno.errors.WouldBlock,
      "the queue is empty",
    );
  }),
);

Deno.test(
  "MessageQueue.close() rejects a pending receive() with BadResource",
  leakChecked(async () => {
    const queue = MessageQueue.open(uniqueName("mq-close"), {
      create: true,
      unlinkOnClose: true,
    });
    const pending = queue.receive({ timeout: 5000 });
    queue.close();
    queue.close();
    await assertRejects(() => pending, Deno.errors.BadResource);
    assertEquals(queue.closed, true);
  }),
);

Deno.test(
  "A process exits by itself after closing a queue with a parked receive()",
  leakChecked(async () => {
    const result = await bounded(
      runFixture("mq_pending_close.ts", MQ_FLAGS, [uniqueName("mq-exit")]),
      20_000,
      "the child to exit by itself",
    );
    assertEquals(result.code, 0, result.stderr);
    assertEquals(result.stdout.trim(), "BadResource");
  }),
);

Deno.test(
  "MessageQueue hands undecodable bytes back in a DecodeError and receives the next message",
  leakChecked(async () => {
    const name = uniqueName("mq-raw");
    using queue = MessageQueue.open<{ seq: number }>(name, {
      create: true,
      unlinkOnClose: true,
    });
    const sender = await bounded(
      runFixture("mq_peer.ts", MQ_FLAGS, ["raw", name]),
      20_000,
      "the sender",
    );
    assertEquals(sender.code, 0, sender.stderr);
    const error = await assertRejects(
      () => queue.receive({ timeout: 5000 }),
      DecodeError,
    );
    assertEquals(new TextDecoder().decode(error.bytes), "{not json");
    assertEquals((await queue.receive({ timeout: 5000 })).value, {
      seq: 1,
    });
  }),
);

Deno.test(
  "MessageQueue carries structured clones with the v8 codec",
  leakChecked(async () => {
    using queue = MessageQueue.open<Map<string, bigint>>(
      uniqueName("mq-v8"),
      { create: true, unlinkOnClose: true, codec: codecs.v8() },
    );
    await queue.send(new Map([["big", 2n ** 80n]]), { timeout: 1000 });
    const { value } = await queue.receive({ timeout: 1000 });
    assertEquals(value.get("big"), 2n ** 80n);
  }),
);

Deno.test(
  "MessageQueue.open() rejects invalid names before any system call",
  leakChecked(async () => {
    const cases: [unknown, RegExp, typeof TypeError | typeof RangeError][] = [
      ["", /it is empty/, TypeError],
      ["jobs", /must start with "\/"/, TypeError],
      ["/", /needs characters/, TypeError],
      ["/a/b", /must not contain "\/" after the first/, TypeError],
      ["/a\0b", /NUL/, TypeError],
      ["/" + "x".repeat(256), /256 bytes long, the limit is 255/, RangeError],
      [42, /expected a string/, TypeError],
    ];
    for (const [name, message, ErrorClass] of cases) {
      const what = `name ${JSON.stringify(name)}`;
      const error = assertThrows(
        () => MessageQueue.open(name as string, { create: true }),
        ErrorClass,
        undefined,
        what,
      );
      assertMatch(error.message, message, what);
      await rejectsBeforeAnySystemCall(
        () => MessageQueue.open(name as string, { create: true }),
        ErrorClass,
        IPC_DIRS,
        what,
      );
    }
  }),
);

Deno.test(
  "MessageQueue.send() refuses a message larger than messageSize and sends nothing",
  leakChecked(async () => {
    using queue = MessageQueue.open<string>(uniqueName("mq-big"), {
      create: true,
      unlinkOnClose: true,
      messageSize: 16,
    });
    await assertRejects(
      () => queue.send("x".repeat(32)),
      Error,
      "the message is 34 bytes, the queue's messageSize is 16",
    );
    assertThrows(() => queue.trySend("x".repeat(32)), RangeError);
    assertEquals(queue.attributes().currentMessages, 0);
  }),
);

Deno.test(
  "MessageQueue.open() names the system limit that maxMessages exceeds",
  async () => {
    const limit = await readLimit("msg_max");
    const sizeLimit = await readLimit("msgsize_max");
    assertThrows(
      () =>
        MessageQueue.open(uniqueName("mq-limit"), {
          create: true,
          maxMessages: limit + 1,
        }),
      RangeError,
      `/proc/sys/fs/mqueue/msg_max = ${limit}`,
    );
    assertThrows(
      () =>
        MessageQueue.open(uniqueName("mq-limit"), {
          create: true,
          messageSize: sizeLimit + 1,
        }),
      Error,
      "msgsize_max",
    );
    assertThrows(
      () =>
        MessageQueue.open(uniqueName("mq-limit"), {
          create: true,
          maxMessages: 0,
        }),
      Error,
      "maxMessages must be a positive integer",
    );
  },
);

Deno.test(
  "MessageQueue.open() without create fails with NotFound for a missing queue",
  () => {
    const name = uniqueName("mq-missing");
    const error: Error & { code?: string; syscall?: string } = assertThrows(
      () => MessageQueue.open(name),
      Deno.errors.NotFound,
    );
    assertEquals(
      error.message,
      `Cannot open message queue "${name}": it does not exist`,
    );
    assertEquals(error.code, "ENOENT");
    assertEquals(error.syscall, "mq_open");
  },
);

Deno.test(
  "MessageQueue.open() with exclusive fails with AlreadyExists on an existing queue",
  leakChecked(() => {
    const name = uniqueName("mq-excl");
    using first = MessageQueue.open(name, {
      create: true,
      exclusive: true,
      unlinkOnClose: true,
    });
    assertEquals(first.name, name);
    assertThrows(
      () => MessageQueue.open(name, { create: true, exclusive: true }),
      Deno.errors.AlreadyExists,
    );
  }),
);

Deno.test(
  "A closed MessageQueue refuses every operation with BadResource",
  leakChecked(async () => {
    const queue = MessageQueue.open(uniqueName("mq-closed"), {
      create: true,
      unlinkOnClose: true,
    });
    queue.close();
    assertThrows(() => queue.trySend(1), Deno.errors.BadResource);
    assertThrows(() => queue.tryReceive(), Deno.errors.BadResource);
    assertThrows(() => queue.attributes(), Deno.errors.BadResource);
    await assertRejects(
      () => queue.send(1, { timeout: 1000 }),
      Deno.errors.BadResource,
    );
    await assertRejects(
      () => queue.receive({ timeout: 1000 }),
      Deno.errors.BadResource,
    );
  }),
);

Deno.test(
  "MessageQueue.unlink() removes the name and reports a missing one as NotFound",
  leakChecked(() => {
    const name = uniqueName("mq-unlink");
    MessageQueue.open(name, { create: true }).close();
    MessageQueue.unlink(name);
    assertThrows(() => MessageQueue.open(name), Deno.errors.NotFound);
    assertThrows(() => MessageQueue.unlink(name), Deno.errors.NotFound);
  }),
);

Deno.test(
  "MessageQueue options are checked before any system call",
  leakChecked(async () => {
    const name = uniqueName("mq-options");
    const cases: [
      MessageQueueOptions<unknown>,
      typeof TypeError | typeof RangeError,
      string,
    ][] = [
      [
        { read: false, write: false },
        TypeError,
        "read and write are both false",
      ],
      [{ exclusive: true }, TypeError, "exclusive needs create"],
      [{ create: true, mode: 0o1777 }, RangeError, ""],
      [{ create: true, messageSize: 1.5 }, RangeError, "positive integer"],
      [{ create: true, maxMessages: 0 }, RangeError, "positive integer"],
      [
        { create: true, spin: 5000 },
        RangeError,
        "spin must be 0 to 1000 microseconds, got 5000",
      ],
      [{ create: true, spin: -1 }, RangeError, ""],
    ];
    for (const [options, ErrorClass, message] of cases) {
      const what = JSON.stringify(options);
      assertThrows(
        () => MessageQueue.open(name, options),
        ErrorClass,
        message,
        what,
      );
      await rejectsBeforeAnySystemCall(
        () => MessageQueue.open(name, options),
        ErrorClass,
        IPC_DIRS,
        what,
      );
    }
    // Nothing was created under the name either.
    assertThrows(() => MessageQueue.open(name), Deno.errors.NotFound);
  }),
);

Deno.test(
  "MessageQueue.send() checks priority and timeout before any system call",
  leakChecked(async () => {
    using queue = MessageQueue.open(uniqueName("mq-args"), {
      create: true,
      unlinkOnClose: true,
    });
    const cases: [
      string,
      () => unknown,
      typeof TypeError | typeof RangeError,
    ][] = [
      [
        "priority 32768",
        () => queue.trySend(1, { priority: 32768 }),
        RangeError,
      ],
      ["priority -1", () => queue.trySend(1, { priority: -1 }), RangeError],
      ["timeout -5", () => queue.send(1, { timeout: -5 }), RangeError],
      ["timeout NaN", () => queue.receive({ timeout: Number.NaN }), TypeError],
      ["signal", () => queue.receive({ signal: {} as AbortSignal }), TypeError],
    ];
    for (const [what, attempt, ErrorClass] of cases) {
      await rejectsBeforeAnySystemCall(attempt, ErrorClass, IPC_DIRS, what);
    }
    assertEquals(queue.attributes().currentMessages, 0);
  }),
);

Deno.test(
  "MessageQueue.open() without --allow-read names the flag to add",
  async () => {
    const name = uniqueName("mq-perm");
    const result = await bounded(
      runFixture("mq_open_only.ts", ["--allow-ffi"], [name, "read"]),
      20_000,
      "the child",
    );
    assertEquals(
      result.stdout.trim(),
      `NotCapable: Requires read access to "/dev/mqueue${name}", run again with --allow-read=/dev/mqueue`,
    );
  },
);

Deno.test(
  "MessageQueue.open() with create and without --allow-write names the flag to add",
  async () => {
    const name = uniqueName("mq-perm");
    const result = await bounded(
      runFixture(
        "mq_open_only.ts",
        ["--allow-ffi", "--allow-read=/dev/mqueue"],
        [name, "write"],
      ),
      20_000,
      "the child",
    );
    assertEquals(
      result.stdout.trim(),
      `NotCapable: Requires write access to "/dev/mqueue${name}", run again with --allow-write=/dev/mqueue`,
    );
  },
);
