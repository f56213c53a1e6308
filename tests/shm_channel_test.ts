import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertThrows,
} from "@std/assert";
import {
  client,
  type Codec,
  codecs,
  DecodeError,
  duplex,
  layout,
  type RpcEnvelope,
  serve,
  SharedMemory,
  ShmChannel,
} from "../mod.ts";
import { RING } from "../mechanisms/_ring/ring.ts";
import { IDENTITY } from "../mechanisms/_ring/identity.ts";
import {
  commandSucceeds,
  leakChecked,
  skip,
  spawnFixture,
  uniqueName,
} from "./_helpers.ts";
import { checksum } from "./fixtures/_ring_messages.ts";
import { libcCallsDuring } from "./_syscalls.ts";

const FLAGS = ["--allow-ffi", "--allow-read", "--allow-write=/dev/shm"];
const DECODER = new TextDecoder();

function _open<T>(
  capacity = 4096,
  codec?: Codec<T>,
): [ShmChannel<T>, ShmChannel<T>] {
  const name = uniqueName("ring");
  const producer = ShmChannel.open<T>(name, {
    create: true,
    capacity,
    unlinkOnClose: true,
    ...(codec ? { codec } : {}),
  });
  const consumer = ShmChannel.open<T>(name, codec ? { codec } : {});
  return [producer, consumer];
}

/** Reads lines from a child's stdout until one equals `line`. */
async function _untilLine(
  child: Deno.ChildProcess,
  line: string,
): Promise<void> {
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!seen.split("\n").includes(line)) {
    const { value, done } = await reader.read();
    if (done) {
      throw new Error(`the child ended before printing ${line}: ${seen}`);
    }
    seen += value;
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
}

Deno.test(
  "ShmChannel delivers values in order, with many sends in flight on one handle",
  leakChecked(async () => {
    const [producer, consumer] = _open<{ n: number }>(256);
    using _p = producer;
    using _c = consumer;
    const sends = Array.from({ length: 500 }, (_, n) => producer.send({ n }));
    for (let n = 0; n < 500; n++) {
      assertEquals((await consumer.receive({ timeout: 5000 })).value, { n });
    }
    await Promise.all(sends);
    const receives = Array.from(
      { length: 50 },
      () => consumer.receive({ timeout: 5000 }),
    );
    for (let n = 0; n < 50; n++) await producer.send({ n });
    assertEquals((await Promise.all(receives)).map((m) => m.value.n), [
      ...Array(50).keys(),
    ]);
  }),
);

Deno.test(
  "ShmChannel.trySend() throws WouldBlock on a full ring and send() waits for room",
  leakChecked(async () => {
    const [producer, consumer] = _open<Uint8Array>(64, codecs.bytes());
    using _p = producer;
    using _c = consumer;
    let sent = 0;
    assertThrows(
      () => {
        for (;;) {
          producer.trySend(new Uint8Array(8).fill(sent));
          sent++;
        }
      },
      Deno.errors.WouldBlock,
      "the ring is full (64 of 64 bytes in use)",
    );
    assertEquals(sent, 4);
    let done = false;
    const waiting = producer.send(new Uint8Array(8).fill(9)).then(() =>
      done = true
    );
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert(!done, "send() waits while the ring is full");
    assertEquals((await consumer.receive()).value, new Uint8Array(8).fill(0));
    await waiting;
    await assertRejects(
      () => producer.send(new Uint8Array(8), { timeout: 20 }),
      Deno.errors.TimedOut,
    );
  }),
);

Deno.test(
  "ShmChannel refuses a message larger than half the ring before writing anything",
  leakChecked(async () => {
    const [producer, consumer] = _open<Uint8Array>(256, codecs.bytes());
    using _p = producer;
    using _c = consumer;
    assertEquals(producer.maxMessage, 120);
    await assertRejects(
      () => producer.send(new Uint8Array(121)),
      RangeError,
      "a message of 121 bytes is larger than the 120 bytes a ring of 256 carries",
    );
    assertThrows(() => producer.trySend(new Uint8Array(1000)), RangeError);
    await assertRejects(() => producer.loan(121), RangeError);
    assertThrows(() => consumer.tryReceive(), Deno.errors.WouldBlock);
    await producer.send(new Uint8Array(120).fill(1));
    assertEquals((await consumer.receive()).value.length, 120);
  }),
);

Deno.test(
  "ShmChannel.loan() and receiveView() move bytes with no copy",
  leakChecked(async () => {
    const [producer, consumer] = _open<Uint8Array>(4096, codecs.bytes());
    using _p = producer;
    using _c = consumer;
    const lent = await producer.loan(100);
    lent.fill(5);
    await assertRejects(
      () => producer.send(new Uint8Array(1)),
      TypeError,
      "a loan is outstanding",
    );
    producer.commit(10);
    assertThrows(() => producer.commit(), TypeError, "nothing was lent");
    const view = await consumer.receiveView({ timeout: 1000 });
    assertEquals(view, new Uint8Array(10).fill(5));
    assertEquals(view.buffer, lent.buffer, "both are views of the one mapping");
    await assertRejects(
      () => consumer.receiveView(),
      TypeError,
      "a view is outstanding",
    );
    await assertRejects(
      () => consumer.receive(),
      TypeError,
      "a view is outstanding",
      "the viewed message is not handed out twice",
    );
    consumer.release();
    assertThrows(() => consumer.release(), TypeError, "none is outstanding");
    const awaited = consumer.receiveView({ timeout: 1000 });
    await assertRejects(() => consumer.receiveView(), TypeError, "or awaited");
    await producer.send(new Uint8Array([1]));
    assertEquals(await awaited, new Uint8Array([1]));
    consumer.release();
  }),
);

Deno.test(
  "ShmChannel.receive() hands back an undecodable message raw in a DecodeError",
  leakChecked(async () => {
    const [producer, consumer] = _open<unknown>();
    using _p = producer;
    using _c = consumer;
    const lent = await producer.loan(4);
    lent.set(new TextEncoder().encode("{no "));
    producer.commit();
    await producer.send("fine");
    const error = await assertRejects(() => consumer.receive(), DecodeError);
    assertEquals(DECODER.decode(error.bytes), "{no ");
    assertEquals(
      (await consumer.receive()).value,
      "fine",
      "the bad one was taken",
    );
  }),
);

Deno.test(
  "Closing a ShmChannel producer ends the consumer's for await after what it sent",
  leakChecked(async () => {
    const [producer, consumer] = _open<number>();
    using _c = consumer;
    for (let i = 0; i < 3; i++) await producer.send(i);
    const values: number[] = [];
    const draining = (async () => {
      for await (const { value } of consumer) values.push(value);
    })();
    await new Promise((resolve) => setTimeout(resolve, 20));
    producer.close();
    await draining;
    assertEquals(values, [0, 1, 2]);
    await assertRejects(
      () => consumer.receive(),
      Deno.errors.UnexpectedEof,
      "its producer closed its end",
    );
  }),
);

Deno.test(
  "ShmChannel.send() after the consumer closed fails with BrokenPipe",
  leakChecked(async () => {
    const [producer, consumer] = _open<number>();
    using _p = producer;
    await producer.send(1);
    await consumer.receive();
    consumer.close();
    await assertRejects(
      () => producer.send(2),
      Deno.errors.BrokenPipe,
      "its consumer closed its end",
    );
  }),
);

Deno.test(
  "Closing a ShmChannel ends its pending receive() with BadResource",
  leakChecked(async () => {
    const [producer, consumer] = _open<number>();
    using _p = producer;
    const pending = consumer.receive();
    await new Promise((resolve) => setTimeout(resolve, 20));
    consumer.close();
    await assertRejects(() => pending, Deno.errors.BadResource, "is closed");
    await assertRejects(() => consumer.receive(), Deno.errors.BadResource);
  }),
);

Deno.test(
  "A ShmChannel has one producer: a second handle that sends gets Busy",
  leakChecked(async () => {
    const [producer, consumer] = _open<number>();
    using _p = producer;
    using _c = consumer;
    using other = ShmChannel.open<number>(producer.name);
    await producer.send(1);
    await assertRejects(
      () => other.send(2),
      Deno.errors.Busy,
      `process ${Deno.pid} is its producer`,
    );
  }),
);

Deno.test(
  "ShmChannel.open() refuses another codec, layout, format version or capacity, naming both",
  leakChecked(() => {
    const name = uniqueName("ring-identity");
    const tick = layout({ seq: "u32", price: "f64" });
    using _channel = ShmChannel.open(name, {
      create: true,
      capacity: 4096,
      codec: codecs.struct(tick),
      unlinkOnClose: true,
    });
    assertThrows(
      () => ShmChannel.open(name),
      TypeError,
      'it was made for "codec struct: seq:u32@0,price:f64@8;size=16;little", and this process uses "codec json"',
    );
    assertThrows(
      () =>
        ShmChannel.open(name, {
          create: true,
          capacity: 4096,
          unlinkOnClose: true,
        }),
      TypeError,
      "this process uses",
    );
    // A refused open with unlinkOnClose leaves the other's channel alone.
    ShmChannel.open(name, { codec: codecs.struct(tick) }).close();
    const other = layout({
      seq: "u32",
      price: "f32",
      volume: "u32",
      flags: "u32",
    });
    assertThrows(
      () => ShmChannel.open(name, { codec: codecs.struct(other) }),
      TypeError,
      "seq:u32@0,price:f32@4,volume:u32@8,flags:u32@12;size=16;little",
    );
    assertThrows(
      () =>
        ShmChannel.open(name, { codec: codecs.struct(tick), capacity: 8192 }),
      RangeError,
    );
    using memory = SharedMemory.open(name);
    new DataView(memory.buffer).setUint16(IDENTITY.VERSION, 2, true);
    assertThrows(
      () => ShmChannel.open(name, { codec: codecs.struct(tick) }),
      TypeError,
      "it is in format version 2, and this ipckit reads version 1",
    );
    assertThrows(
      () => ShmChannel.open(name, { capacity: 100 }),
      RangeError,
      "capacity must be a power of two",
    );
    assertThrows(
      // @ts-expect-error: an unknown option
      () => ShmChannel.open(name, { size: 10 }),
      TypeError,
    );
  }),
);

Deno.test(
  "A million random-size messages cross processes through ShmChannel, none lost or reordered",
  leakChecked(async () => {
    const count = 1_000_000;
    const name = uniqueName("ring-million");
    using consumer = ShmChannel.open<Uint8Array>(name, {
      create: true,
      capacity: 1 << 16,
      codec: codecs.bytes(),
      unlinkOnClose: true,
    });
    const child = spawnFixture("shm_channel_peer.ts", FLAGS, [
      "stream",
      name,
      String(count),
      "20261202",
    ]);
    let seq = 0;
    let bytes = 0;
    for (;;) {
      let view: Uint8Array;
      try {
        view = await consumer.receiveView({ timeout: 30_000 });
      } catch (error) {
        if (error instanceof Deno.errors.UnexpectedEof) break;
        throw error;
      }
      const header = new DataView(view.buffer, view.byteOffset, 8);
      if (header.getUint32(0, true) !== seq) {
        throw new Error(`message ${seq} came as ${header.getUint32(0, true)}`);
      }
      if (header.getUint32(4, true) !== checksum(view.subarray(8))) {
        throw new Error(`message ${seq} has a wrong checksum`);
      }
      bytes += view.length;
      seq++;
      consumer.release();
    }
    assertEquals(seq, count);
    assert(bytes > count * 8);
    const { code, stderr } = await child.output();
    assertEquals(code, 0, DECODER.decode(stderr));
  }),
);

Deno.test(
  "A ShmChannel consumer learns its producer was killed within a bounded time, after its messages",
  leakChecked(async () => {
    const name = uniqueName("ring-killed-producer");
    using consumer = ShmChannel.open<number>(name, {
      create: true,
      capacity: 4096,
      unlinkOnClose: true,
    });
    const child = spawnFixture("shm_channel_peer.ts", FLAGS, [
      "hold-producer",
      name,
      "3",
    ]);
    await _untilLine(child, "sent");
    for (let i = 0; i < 3; i++) {
      assertEquals((await consumer.receive()).value, i);
    }
    const pending = consumer.receive({ timeout: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const killed = performance.now();
    child.kill("SIGKILL");
    await child.status;
    const error = await assertRejects(
      () => pending,
      Deno.errors.ConnectionReset,
    );
    assert(
      error.message.includes(`its producer, process ${child.pid}, died`),
      error.message,
    );
    const took = performance.now() - killed;
    assert(took < 1000, `noticed after ${took.toFixed(0)} ms`);
    child.stderr.cancel().catch(() => {});
  }),
);

Deno.test(
  "A ShmChannel producer waiting on a full ring learns its consumer was killed within a bounded time",
  leakChecked(async () => {
    const name = uniqueName("ring-killed-consumer");
    using producer = ShmChannel.open<number>(name, {
      create: true,
      capacity: 64,
      unlinkOnClose: true,
    });
    const child = spawnFixture("shm_channel_peer.ts", FLAGS, [
      "hold-consumer",
      name,
    ]);
    await producer.send(0);
    await _untilLine(child, "took");
    while (true) {
      try {
        producer.trySend(1);
      } catch (error) {
        assertInstanceOf(error, Deno.errors.WouldBlock);
        break;
      }
    }
    const pending = producer.send(2, { timeout: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const killed = performance.now();
    child.kill("SIGKILL");
    await child.status;
    await assertRejects(
      () => pending,
      Deno.errors.BrokenPipe,
      `its consumer, process ${child.pid}, died`,
    );
    const took = performance.now() - killed;
    assert(took < 1000, `noticed after ${took.toFixed(0)} ms`);
    child.stderr.cancel().catch(() => {});
  }),
);

Deno.test(
  "serve() and client() run over two ShmChannels joined with duplex(), across processes",
  leakChecked(async () => {
    type Envelope = RpcEnvelope<number, number>;
    const requests = uniqueName("ring-requests");
    const replies = uniqueName("ring-replies");
    using toServer = ShmChannel.open<Envelope>(requests, {
      create: true,
      capacity: 4096,
      unlinkOnClose: true,
    });
    using fromServer = ShmChannel.open<Envelope>(replies, {
      create: true,
      capacity: 4096,
      unlinkOnClose: true,
    });
    const child = spawnFixture("shm_channel_peer.ts", FLAGS, [
      "serve",
      requests,
      replies,
    ]);
    {
      using link = duplex(toServer, fromServer);
      using doubler = client<number, number>(link);
      const answers = await Promise.all(
        Array.from(
          { length: 200 },
          (_, n) => doubler.request(n, { timeout: 10_000 }),
        ),
      );
      assertEquals(answers, Array.from({ length: 200 }, (_, n) => n * 2));
    }
    const { code, stderr } = await child.output();
    assertEquals(code, 0, DECODER.decode(stderr));
  }),
);

Deno.test(
  "serve() runs over ShmChannels in one process too",
  leakChecked(async () => {
    type Envelope = RpcEnvelope<string, string>;
    const [requestsOut, requestsIn] = _open<Envelope>();
    const [repliesOut, repliesIn] = _open<Envelope>();
    using server = serve<string, string>(
      duplex(repliesOut, requestsIn),
      (s) => s.toUpperCase(),
    );
    using shout = client<string, string>(duplex(requestsOut, repliesIn));
    assertEquals(await shout.request("hi", { timeout: 1000 }), "HI");
    server.close();
    for (const end of [requestsOut, requestsIn, repliesOut, repliesIn]) {
      end.close();
    }
  }),
);

const C_PRODUCER = `
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ipckit's ShmChannel memory format, as the README documents it. */
#define MAGIC 0x6b637069u
#define PRODUCER_PID 128
#define PRODUCER_START 136
#define PRODUCER_CLOSED 160
#define HEAD 192
#define CONSUMER_PARKED 196
#define TAIL 256
#define PRODUCER_PARKED 260
#define DATA 320
#define WRAP 0xffffffffu

static void fail(const char *what) { fprintf(stderr, "%s\\n", what); exit(1); }

static uint64_t start_time(void) {
  char buffer[1024];
  FILE *f = fopen("/proc/self/stat", "r");
  if (!f || !fgets(buffer, sizeof buffer, f)) fail("cannot read /proc/self/stat");
  fclose(f);
  char *p = strrchr(buffer, ')') + 2; /* field 3 */
  for (int field = 3; field < 22; field++) p = strchr(p, ' ') + 1;
  return strtoull(p, NULL, 10);
}

#define AT(type, offset) ((_Atomic type *)(base + (offset)))

int main(int argc, char **argv) {
  int fd = shm_open(argv[1], O_RDWR, 0);
  if (fd < 0) fail("shm_open");
  struct stat st;
  fstat(fd, &st);
  uint8_t *base = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) fail("mmap");
  if (*(uint32_t *)base != MAGIC || atomic_load(AT(int32_t, 4)) != 1) fail("not a channel");
  if (*(uint16_t *)(base + 8) != 1 || *(uint16_t *)(base + 10) != 1) fail("another version or kind");
  if (strcmp((char *)base + 32, "codec text") != 0) fail("not a text channel");
  uint32_t capacity = (uint32_t)*(uint64_t *)(base + 16);
  uint32_t mask = capacity - 1;
  uint8_t *data = base + DATA;

  int32_t nobody = 0;
  if (!atomic_compare_exchange_strong(AT(int32_t, PRODUCER_PID), &nobody, -1)) fail("producer side taken");
  atomic_store(AT(uint64_t, PRODUCER_START), start_time());
  atomic_store(AT(int32_t, PRODUCER_PID), getpid());
  atomic_store(AT(uint32_t, PRODUCER_CLOSED), 0);

  _Atomic uint32_t *head = AT(uint32_t, HEAD), *tail = AT(uint32_t, TAIL);
  uint32_t h = atomic_load(head);
  int count = atoi(argv[2]);
  for (int i = 0; i < count; i++) {
    char message[64];
    uint32_t n = (uint32_t)snprintf(message, sizeof message, "message %d", i);
    uint32_t size = 8 + ((n + 7) & ~7u), at = h & mask, contiguous = capacity - at;
    uint32_t need = size <= contiguous ? size : contiguous + size;
    while (capacity - (h - atomic_load(tail)) < need) {
      atomic_store(AT(uint32_t, PRODUCER_PARKED), 1);
      uint32_t t = atomic_load(tail);
      struct timespec slice = {0, 100000000};
      if (capacity - (h - t) < need) syscall(SYS_futex, tail, FUTEX_WAIT, t, &slice, NULL, 0);
      atomic_store(AT(uint32_t, PRODUCER_PARKED), 0);
    }
    if (size > contiguous) {
      *(uint32_t *)(data + at) = WRAP;
      h += contiguous;
      at = 0;
    }
    ((uint32_t *)(data + at))[0] = n;
    ((uint32_t *)(data + at))[1] = 0;
    memcpy(data + at + 8, message, n);
    h += size;
    atomic_store(head, h); /* publishes the record */
    if (atomic_load(AT(uint32_t, CONSUMER_PARKED))) syscall(SYS_futex, head, FUTEX_WAKE, 1, NULL, NULL, 0);
  }
  atomic_store(AT(uint32_t, PRODUCER_CLOSED), 1);
  atomic_store(AT(int32_t, PRODUCER_PID), 0);
  syscall(SYS_futex, head, FUTEX_WAKE, 1, NULL, NULL, 0);
  return 0;
}
`;

const hasCc = await commandSucceeds("cc", ["--version"]);

Deno.test({
  name:
    "A C program following the documented format produces into a ShmChannel",
  ignore: skip("C producer", hasCc ? undefined : "no cc (apt-get install gcc)"),
  fn: leakChecked(async () => {
    const dir = await Deno.makeTempDir({ prefix: "ipckit-test-ring-c-" });
    try {
      await Deno.writeTextFile(`${dir}/producer.c`, C_PRODUCER);
      const built = await new Deno.Command("cc", {
        args: ["-O2", "-std=c11", "-o", `${dir}/producer`, `${dir}/producer.c`],
        stderr: "piped",
      }).output();
      assert(built.success, DECODER.decode(built.stderr));
      const name = uniqueName("ring-c");
      using consumer = ShmChannel.open<string>(name, {
        create: true,
        capacity: 256,
        codec: codecs.text(),
        unlinkOnClose: true,
      });
      const count = 20_000;
      const child = new Deno.Command(`${dir}/producer`, {
        args: [name, String(count)],
        stderr: "piped",
      }).spawn();
      let i = 0;
      for await (const { value } of consumer) {
        assertEquals(value, `message ${i}`);
        i++;
      }
      assertEquals(i, count);
      const { code, stderr } = await child.output();
      assertEquals(code, 0, DECODER.decode(stderr));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }),
});

// RING is imported for the layout constants the C program spells out.
Deno.test("The documented ShmChannel offsets are the ones the ring uses", () => {
  assertEquals(RING, {
    PRODUCER_SIDE: 128,
    CONSUMER_SIDE: 144,
    PRODUCER_CLOSED: 160,
    CONSUMER_CLOSED: 164,
    HEAD: 192,
    CONSUMER_PARKED: 196,
    TAIL: 256,
    PRODUCER_PARKED: 260,
    DATA: 320,
  });
});

Deno.test(
  "ShmChannel makes no system call per message while neither side is parked",
  leakChecked(async () => {
    const [producer, consumer] = _open<number>(4096);
    using _p = producer;
    using _c = consumer;
    producer.trySend(0); // take the sides before watching
    consumer.tryReceive();
    const { calls, threw } = await libcCallsDuring(() => {
      for (let i = 0; i < 1000; i++) {
        producer.trySend(i);
        if (consumer.tryReceive().value !== i) throw new Error("out of order");
      }
    });
    assertEquals(threw, undefined);
    assertEquals(calls, []);
  }),
);

Deno.test(
  "Blocking ShmChannel round trips look up the peer's process once per slice, not per message",
  leakChecked(async () => {
    const requests = uniqueName("ring-echo-requests");
    const replies = uniqueName("ring-echo-replies");
    const options = {
      create: true,
      capacity: 4096,
      unlinkOnClose: true,
      spin: 0,
    };
    const toPeer = ShmChannel.open<number>(requests, options);
    using fromPeer = ShmChannel.open<number>(replies, options);
    const child = spawnFixture("shm_channel_peer.ts", FLAGS, [
      "echo-sync",
      requests,
      replies,
    ]);
    toPeer.sendSync(-1);
    assertEquals(fromPeer.receiveSync({ timeout: 10_000 }).value, -1);
    const started = performance.now();
    const { calls, threw } = await libcCallsDuring(() => {
      for (let i = 0; i < 300; i++) {
        toPeer.sendSync(i);
        if (fromPeer.receiveSync({ timeout: 10_000 }).value !== i) {
          throw new Error("out of order");
        }
      }
    });
    const slices = Math.ceil((performance.now() - started) / 100) + 1;
    assertEquals(threw, undefined);
    const lookups = calls.filter((name) => name === "kill").length;
    assert(
      lookups <= slices,
      `${lookups} lookups of the peer in ${slices} slices`,
    );
    toPeer.close();
    assertEquals((await child.output()).code, 0);
  }),
);
