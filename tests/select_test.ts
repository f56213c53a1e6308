import {
  assert,
  assertEquals,
  assertRejects,
  assertStrictEquals,
} from "@std/assert";
import {
  bindDatagram,
  type Channel,
  duplex,
  Fifo,
  listen,
  type Message,
  MessageQueue,
  select,
  type Selectable,
  spawn,
} from "../mod.ts";
import { reactor } from "../mechanisms/_wait/reactor.ts";
import { inTempDir, leakChecked, uniqueName } from "./_helpers.ts";

type Note = { kind: string; seq: number };

Deno.test(
  "select() over every channel kind, with messages arriving in random order from another process, loses and duplicates none",
  leakChecked(() =>
    inTempDir("select", async (dir) => {
      const count = 150;
      const queueName = uniqueName("select-mq");
      const duplexName = uniqueName("select-duplex");
      const socketPath = `${dir}/select.sock`;
      await using queue = MessageQueue.open<Note>(queueName, {
        create: true,
        write: false,
        unlinkOnClose: true,
      });
      await using replies = MessageQueue.open<Note>(duplexName, {
        create: true,
        write: false,
        unlinkOnClose: true,
      });
      const unusedName = uniqueName("select-unused");
      await using requests = MessageQueue.open<Note>(unusedName, {
        create: true,
        read: false,
        unlinkOnClose: true,
      });
      await using both = duplex<Note, Message<Note>>(requests, replies);
      using fifo = Fifo.create(`${dir}/select.fifo`);
      await using fifoReader = await fifo.openReader<Note>();
      await using server = await listen<Note>({ path: socketPath });
      await using udp = await bindDatagram<Note>({
        hostname: "127.0.0.1",
        port: 0,
      });
      const script = new URL("./fixtures/select_sender.ts", import.meta.url)
        .pathname;
      await using child = spawn<never, Note>(Deno.execPath(), {
        args: [
          "run",
          "--quiet",
          "--allow-ffi",
          "--allow-read=/dev/mqueue,/proc/sys/fs/mqueue," + dir,
          "--allow-write=/dev/mqueue," + dir,
          `--allow-net=127.0.0.1,unix:${socketPath}`,
          script,
          queueName,
          duplexName,
          fifo.path,
          socketPath,
          String((udp.addr as Deno.NetAddr).port),
          String(count),
        ],
      });
      await using connection = await server.accept({ timeout: 10_000 });
      const channels: Record<
        string,
        Selectable & Channel<Note, Message<Note>>
      > = {
        mq: queue,
        duplex: both,
        fifo: fifoReader,
        socket: connection,
        udp,
      };
      const all = [...Object.values(channels), child];
      const kindOf = new Map<unknown, string>(
        [...Object.entries(channels), ["pipe", child] as const].map((
          [kind, channel],
        ) => [channel, kind]),
      );
      const seen = new Map<string, number[]>();
      const expected = 6 * count;
      let received = 0;
      while (received < expected) {
        const ready = await select(all, { timeout: 10_000 });
        // ready() promised that this receive does not wait.
        const { value } = await ready.receive({ timeout: 0 });
        assertEquals(
          value.kind,
          kindOf.get(ready),
          "came from another channel",
        );
        const list = seen.get(value.kind) ?? [];
        list.push(value.seq);
        seen.set(value.kind, list);
        received++;
      }
      for (const kind of ["mq", "duplex", "fifo", "socket", "udp", "pipe"]) {
        const list = seen.get(kind) ?? [];
        assertEquals(new Set(list).size, list.length, `${kind}: a duplicate`);
        assertEquals(
          [...list].sort((a, b) => a - b),
          [...Array(count).keys()],
          `${kind}: lost messages`,
        );
      }
      // Nothing more is ready anywhere: none was duplicated on the way.
      await assertRejects(
        () => select(all, { timeout: 100 }),
        Deno.errors.TimedOut,
      );
      await child.closeWrite();
      assertEquals((await child.status).code, 0);
    })
  ),
);

Deno.test(
  "select() takes no message, and stops waiting on the channels that were not ready",
  leakChecked(async () => {
    await using a = MessageQueue.open<number>(uniqueName("select-a"), {
      create: true,
      unlinkOnClose: true,
    });
    await using b = MessageQueue.open<number>(uniqueName("select-b"), {
      create: true,
      unlinkOnClose: true,
    });
    const waitersBefore = reactor().waiters;
    setTimeout(() => b.trySend(7), 20);
    const ready = await select([a, b], { timeout: 5000 });
    assertStrictEquals(ready, b);
    // The wait on `a` is gone; the message is still in `b`.
    assertEquals(reactor().waiters, waitersBefore);
    assertEquals(b.attributes().currentMessages, 1);
    await b.ready({ timeout: 0 });
    assertEquals(b.tryReceive().value, 7);
    await assertRejects(
      () => a.ready({ timeout: 30 }),
      Deno.errors.TimedOut,
      "wait for a message on message queue",
    );
  }),
);

Deno.test(
  "select() rejects on timeout, on abort, for a closed channel, and for bad input",
  leakChecked(async () => {
    await using a = MessageQueue.open<number>(uniqueName("select-t"), {
      create: true,
      unlinkOnClose: true,
    });
    const start = performance.now();
    const timedOut = await assertRejects(
      () => select([a], { timeout: 50 }),
      Deno.errors.TimedOut,
    );
    assertEquals(
      timedOut.message,
      "Cannot select a ready channel: timed out after 50 ms",
    );
    assert(performance.now() - start >= 49);
    const controller = new AbortController();
    const pending = select([a], { signal: controller.signal });
    setTimeout(() => controller.abort(new Error("enough")), 10);
    const aborted = await assertRejects(() => pending, Error);
    assertEquals(aborted.message, "enough");
    assertEquals(reactor().waiters, 0);

    const closed = MessageQueue.open<number>(uniqueName("select-c"), {
      create: true,
      unlinkOnClose: true,
    });
    const waiting = select([a, closed], { timeout: 5000 });
    setTimeout(() => closed.close(), 10);
    await assertRejects(() => waiting, Deno.errors.BadResource);
    await assertRejects(() => select([]), TypeError, "at least one channel");
    await assertRejects(
      () => select([a, {} as Selectable]),
      TypeError,
      "channels[1] has no ready() method",
    );
    await assertRejects(
      () => select([a], { timeout: -1 }),
      RangeError,
    );
  }),
);

Deno.test(
  "ready() on a stream channel reads a whole frame ahead without taking it, and counts the end of the stream as ready",
  leakChecked(() =>
    inTempDir("select", async (dir) => {
      using fifo = Fifo.create(`${dir}/ready.fifo`);
      await using reader = await fifo.openReader<string>();
      const writer = await fifo.openWriter<string>({ timeout: 1000 });
      await assertRejects(
        () => reader.ready({ timeout: 30 }),
        Deno.errors.TimedOut,
      );
      await writer.send("first");
      await reader.ready({ timeout: 1000 });
      await reader.ready({ timeout: 0 });
      assertEquals((await reader.receive({ timeout: 0 })).value, "first");
      await writer[Symbol.asyncDispose]();
      await reader.ready({ timeout: 1000 });
      await assertRejects(
        () => reader.receive({ timeout: 0 }),
        Deno.errors.UnexpectedEof,
      );
      reader.close();
      await assertRejects(() => reader.ready(), Deno.errors.BadResource);
    })
  ),
);

Deno.test(
  "ready() on a datagram socket waits for a datagram and leaves it for receive()",
  leakChecked(async () => {
    await using server = await bindDatagram<string>({
      hostname: "127.0.0.1",
      port: 0,
    });
    await using client = await bindDatagram<string>({
      hostname: "127.0.0.1",
      port: 0,
      peer: server.addr,
    });
    await assertRejects(
      () => server.ready({ timeout: 30 }),
      Deno.errors.TimedOut,
    );
    await client.send("hello");
    await server.ready({ timeout: 1000 });
    await server.ready({ timeout: 0 });
    assertEquals((await server.receive({ timeout: 0 })).value, "hello");
  }),
);
