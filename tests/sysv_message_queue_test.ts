import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { codecs, select, SysvMessageQueue } from "../mod.ts";
import { bounded } from "./_bounded.ts";
import { leakChecked, runFixture, uniqueKey } from "./_helpers.ts";
import { kernelLimit, PEER_FLAGS } from "./_sysv.ts";

function queue<T = string>(
  options: Parameters<typeof SysvMessageQueue.open>[1] = {},
): SysvMessageQueue<T> {
  return SysvMessageQueue.open<T>(uniqueKey(), {
    create: true,
    exclusive: true,
    unlinkOnClose: true,
    ...options,
  } as never);
}

Deno.test(
  "SysvMessageQueue.receive() selects by type as the kernel does: any, one type, the lowest up to a bound, any but one",
  leakChecked(async () => {
    await using q = queue();
    for (const [value, type] of [["a", 5], ["b", 2], ["c", 9], ["d", 2]]) {
      await q.send(value as string, { type: type as number });
    }
    assertEquals(await q.receive({ type: 2 }), { value: "b", type: 2 });
    assertEquals(await q.receive({ type: -4 }), { value: "d", type: 2 });
    assertEquals(await q.receive({ type: 5, except: true }), {
      value: "c",
      type: 9,
    });
    assertEquals(await q.receive(), { value: "a", type: 5 });
    assertEquals(q.attributes().messages, 0);
  }),
);

Deno.test(
  "SysvMessageQueue: a message sent by another process is received selectively by type",
  leakChecked(async () => {
    await using q = queue<{ id: number; data: string }>();
    const waiting = q.receive({ type: 3, timeout: 10_000 });
    const sender = await runFixture("sysv_peer.ts", PEER_FLAGS, [
      "msg-send",
      String(q.key),
      '1:{"id":1,"data":"one"}',
      '3:{"id":3,"data":"three"}',
    ]);
    assertEquals(sender.code, 0, sender.stderr);
    assertEquals(await waiting, { value: { id: 3, data: "three" }, type: 3 });
    assertEquals(q.tryReceive(), { value: { id: 1, data: "one" }, type: 1 });
  }),
);

Deno.test(
  "SysvMessageQueue: another process receives what this one sends, by type",
  leakChecked(async () => {
    await using q = queue<string>();
    await q.send("skip me", { type: 1 });
    await q.send("for you", { type: 4 });
    const receiver = await runFixture("sysv_peer.ts", PEER_FLAGS, [
      "msg-receive",
      String(q.key),
      "4",
      "5000",
    ]);
    assertEquals(receiver.code, 0, receiver.stderr);
    assertEquals(JSON.parse(receiver.stdout), { value: "for you", type: 4 });
    assertEquals(q.attributes().messages, 1);
    assertEquals(q.attributes().lastReceivePid > 0, true);
  }),
);

Deno.test(
  "SysvMessageQueue.receive() rejects after its timeout and on abort, taking nothing",
  leakChecked(async () => {
    await using q = queue();
    await assertRejects(
      () => q.receive({ timeout: 30 }),
      Deno.errors.TimedOut,
      "timed out after 30 ms",
    );
    const controller = new AbortController();
    const pending = q.receive({ signal: controller.signal });
    controller.abort(new Error("stop"));
    await assertRejects(() => pending, Error, "stop");
    await q.send("kept");
    assertEquals(q.tryReceive().value, "kept");
  }),
);

Deno.test(
  "SysvMessageQueue.close() rejects pending receives with BadResource",
  leakChecked(async () => {
    const q = queue();
    const pending = q.receive({ timeout: 5000 });
    q.close();
    await assertRejects(() => pending, Deno.errors.BadResource, "closed");
    assertThrows(() => q.tryReceive(), Deno.errors.BadResource);
  }),
);

Deno.test(
  "SysvMessageQueue: concurrent receives each get their own message, and many waits share one timer",
  leakChecked(async () => {
    await using q = queue<number>();
    const receives = Array.from(
      { length: 50 },
      () => q.receive({ timeout: 10_000 }),
    );
    // Sent through another handle: the waits are found by the timer.
    using other = SysvMessageQueue.open<number>(q.key);
    for (let i = 0; i < 50; i++) other.trySend(i);
    const values = (await Promise.all(receives)).map((m) => m.value);
    assertEquals(values.sort((a, b) => a - b), [...Array(50).keys()]);
  }),
);

Deno.test(
  "SysvMessageQueue.send() waits while the queue is full and goes on once there is room",
  leakChecked(async () => {
    await using q = queue<string>({ maxBytes: 8, codec: codecs.text() });
    q.trySend("12345678");
    assertThrows(() => q.trySend("x"), Deno.errors.WouldBlock, "full");
    const sending = q.send("y", { timeout: 5000 });
    assertEquals(q.tryReceive().value, "12345678");
    await bounded(sending, 5000, "the send");
    assertEquals(q.tryReceive().value, "y");
  }),
);

Deno.test(
  "SysvMessageQueue: a message larger than the queue's maxBytes is a RangeError, not a wait for ever",
  leakChecked(async () => {
    await using q = queue<string>({ maxBytes: 4, codec: codecs.text() });
    await assertRejects(
      () => q.send("too long", { timeout: 1000 }),
      RangeError,
      "holds at most 4",
    );
  }),
);

Deno.test(
  "SysvMessageQueue.send() refuses a type of 0 or below before any system call",
  leakChecked(async () => {
    await using q = queue();
    for (const type of [0, -1, 1.5, NaN]) {
      await assertRejects(
        () => q.send("x", { type }),
        RangeError,
        "type must be an integer from 1",
      );
    }
    assertThrows(() => q.tryReceive({ type: 0, except: true }), TypeError);
    assertEquals(q.attributes().messages, 0);
  }),
);

Deno.test(
  "SysvMessageQueue: sizes above the kernel limits name the limit file and its value",
  leakChecked(async () => {
    const msgmax = kernelLimit("msgmax");
    assert(msgmax > 0);
    await using q = queue<string>({ codec: codecs.text() });
    await assertRejects(
      () => q.send("x".repeat(msgmax + 1)),
      RangeError,
      `above the kernel limit /proc/sys/kernel/msgmax = ${msgmax}`,
    );
    const msgmnb = kernelLimit("msgmnb");
    assertThrows(
      () => queue({ maxBytes: msgmnb + 1 }),
      RangeError,
      `/proc/sys/kernel/msgmnb = ${msgmnb}`,
    );
  }),
);

Deno.test(
  "SysvMessageQueue.open() refuses read and write both false, and either not a boolean, before any system call",
  leakChecked(() => {
    // A key that names no queue: a system call would say NotFound.
    const key = uniqueKey();
    assertThrows(
      () => SysvMessageQueue.open(key, { read: false, write: false }),
      TypeError,
      `Cannot open System V message queue 0x${
        key.toString(16).padStart(8, "0")
      }: read and write are both false`,
    );
    assertThrows(
      () => SysvMessageQueue.open(key, { write: "no" as never }),
      TypeError,
      "write must be a boolean, got string",
    );
  }),
);

Deno.test(
  "SysvMessageQueue.open() checks keys before any system call",
  leakChecked(() => {
    assertThrows(() => SysvMessageQueue.open(0), RangeError, '"private"');
    assertThrows(() => SysvMessageQueue.open(2 ** 33), RangeError, "32 bits");
    assertThrows(
      () => SysvMessageQueue.open("jobs" as never),
      TypeError,
      "key must be",
    );
    assertThrows(
      () => SysvMessageQueue.open({ path: "/tmp", id: 0 }),
      RangeError,
      "1 to 255",
    );
    assertThrows(
      () => SysvMessageQueue.open("private"),
      TypeError,
      "always makes a new queue",
    );
    assertThrows(
      () => SysvMessageQueue.open(uniqueKey()),
      Deno.errors.NotFound,
      "does not exist",
    );
    assertThrows(
      () => SysvMessageQueue.open({ path: "/nonexistent/ipckit", id: 1 }),
      Deno.errors.NotFound,
    );
  }),
);

Deno.test(
  "SysvMessageQueue.open() finds a queue by ftok(path, id) as C would",
  leakChecked(async () => {
    const dir = await Deno.makeTempDir({ prefix: "ipckit-test-ftok-" });
    try {
      await using a = SysvMessageQueue.open<string>({ path: dir, id: 7 }, {
        create: true,
        exclusive: true,
        unlinkOnClose: true,
      });
      using b = SysvMessageQueue.open<string>({ path: dir, id: 7 });
      assertEquals(a.id, b.id);
      assert(a.key !== 0);
      await a.send("hi");
      assertEquals((await b.receive({ timeout: 1000 })).value, "hi");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }),
);

Deno.test(
  "SysvMessageQueue: a queue removed meanwhile fails with NotFound, its waiters too",
  leakChecked(async () => {
    const q = queue();
    using other = SysvMessageQueue.open(q.key);
    const pending = q.receive({ timeout: 5000 });
    other.remove();
    await assertRejects(() => pending, Deno.errors.NotFound, "was removed");
    await assertRejects(() => q.send("x"), Deno.errors.NotFound, "was removed");
    q.close();
  }),
);

Deno.test(
  "SysvMessageQueue.open() with create adopts an existing queue only if it is ours and no wider than the mode",
  leakChecked(async () => {
    await using wide = queue({ mode: 0o666 });
    assertThrows(
      () => SysvMessageQueue.open(wide.key, { create: true }),
      Deno.errors.PermissionDenied,
      "mode 0o666",
    );
    using shared = SysvMessageQueue.open(wide.key, {
      create: true,
      adopt: "any-owner",
    });
    assertEquals(shared.id, wide.id);
    assertThrows(
      () => SysvMessageQueue.open(wide.key, { create: true, exclusive: true }),
      Deno.errors.AlreadyExists,
    );
    assertEquals(wide.attributes().mode, 0o666);
  }),
);

Deno.test(
  "SysvMessageQueue is a Channel: for await, ready() and select()",
  leakChecked(async () => {
    await using a = queue<string>();
    await using b = queue<string>();
    await assertRejects(() => a.ready({ timeout: 20 }), Deno.errors.TimedOut);
    setTimeout(() => b.trySend("from b", { type: 2 }), 20);
    const ready = await select([a, b], { timeout: 5000 });
    assertEquals(ready, b);
    await b.send("last");
    const seen: string[] = [];
    for await (const { value } of b) {
      seen.push(value);
      if (value === "last") break;
    }
    assertEquals(seen, ["from b", "last"]);
  }),
);

Deno.test(
  "SysvMessageQueue.receiveSync() and sendSync() block with a timeout",
  leakChecked(() => {
    using q = queue<number>();
    q.sendSync(1, { type: 3 });
    assertEquals(q.receiveSync({ type: 3, timeout: 100 }), {
      value: 1,
      type: 3,
    });
    const started = performance.now();
    assertThrows(
      () => q.receiveSync({ timeout: 50 }),
      Deno.errors.TimedOut,
    );
    assert(performance.now() - started >= 49);
    q.close();
  }),
);
