import { assertEquals, assertRejects, assertThrows } from "@std/assert";
import { codecs, DecodeError, FramedChannel } from "../mod.ts";
import { leakChecked } from "./_helpers.ts";

const encoder = new TextEncoder();

type TestFraming = { framing?: "frames" | "lines"; maxMessageSize?: number };

function pipePair<T>(
  options: TestFraming = {},
): { writer: FramedChannel<T>; reader: FramedChannel<T> } {
  const pipe = new TransformStream<Uint8Array, Uint8Array>();
  return {
    writer: new FramedChannel<T>({ writable: pipe.writable, ...options }),
    reader: new FramedChannel<T>({ readable: pipe.readable, ...options }),
  };
}

function rawReader<T>(
  chunks: string[],
  options: TestFraming = {},
): FramedChannel<T> {
  const readable = ReadableStream.from(
    chunks.map((chunk) => encoder.encode(chunk)),
  );
  return new FramedChannel<T>({
    readable,
    codec: codecs.text() as never,
    ...options,
  });
}

Deno.test("FramedChannel carries a 10 MiB message intact", async () => {
  const big = new Uint8Array(10 * 1024 * 1024).map((_, i) => i % 251);
  const codec = codecs.bytes();
  const pipe = new TransformStream<Uint8Array, Uint8Array>();
  const out = new FramedChannel<Uint8Array>({ writable: pipe.writable, codec });
  const into = new FramedChannel<Uint8Array>({
    readable: pipe.readable,
    codec,
  });
  const received = into.receive();
  await out.send(big);
  assertEquals((await received).value, big);
  out.close();
  into.close();
});

Deno.test("FramedChannel splits lines across chunk boundaries and drops a CR", async () => {
  const reader = rawReader<string>(["hel", "lo\r\nwor", "ld\nlast"], {
    framing: "lines",
  });
  const values: string[] = [];
  for await (const { value } of reader) values.push(value);
  assertEquals(values, ["hello", "world", "last"]);
});

Deno.test("FramedChannel iteration ends cleanly when the writer closes", async () => {
  const { writer, reader } = pipePair<number>();
  const sent = (async () => {
    for (let i = 0; i < 100; i++) await writer.send(i);
    await writer.closeWrite();
  })();
  const values: number[] = [];
  for await (const { value } of reader) values.push(value);
  await sent;
  assertEquals(values, Array.from({ length: 100 }, (_, i) => i));
});

Deno.test("FramedChannel rejects a frame header above maxMessageSize and closes", async () => {
  const readable = ReadableStream.from([encoder.encode("GET / HTTP/1.1\r\n")]);
  const channel = new FramedChannel({ readable, maxMessageSize: 1024 });
  const error = await assertRejects(
    () => channel.receive(),
    DecodeError,
    "announces 1195725856 bytes, above maxMessageSize 1024",
  );
  assertEquals(error.bytes.length, 4);
  assertEquals(channel.closed, true);
});

Deno.test("FramedChannel reports a stream that ends inside a frame with the partial bytes", async () => {
  const frame = new Uint8Array([0, 0, 0, 10, 1, 2, 3]);
  const channel = new FramedChannel({ readable: ReadableStream.from([frame]) });
  await assertRejects(
    () => channel.receive(),
    DecodeError,
    "ended inside a message, after 7 bytes",
  );
});

Deno.test("FramedChannel keeps going after a payload the codec cannot decode", async () => {
  const frames = [encoder.encode("{bad"), encoder.encode('{"ok":1}')].map(
    (payload) => {
      const frame = new Uint8Array(4 + payload.length);
      new DataView(frame.buffer).setUint32(0, payload.length);
      frame.set(payload, 4);
      return frame;
    },
  );
  const channel = new FramedChannel<{ ok: number }>({
    readable: ReadableStream.from(frames),
  });
  await assertRejects(() => channel.receive(), DecodeError);
  assertEquals((await channel.receive()).value, { ok: 1 });
});

Deno.test("FramedChannel.receive() rejects after its timeout and the next receive gets the data", async () => {
  const { writer, reader } = pipePair<string>();
  await assertRejects(
    () => reader.receive({ timeout: 20 }),
    Deno.errors.TimedOut,
  );
  await writer.send("later");
  assertEquals((await reader.receive({ timeout: 1000 })).value, "later");
  writer.close();
  reader.close();
});

Deno.test("FramedChannel refuses to send a message that breaks its framing", async () => {
  const { writer, reader } = pipePair<string>({
    framing: "lines",
    maxMessageSize: 8,
  });
  const text = new FramedChannel<string>({
    writable: new WritableStream(),
    framing: "lines",
    codec: codecs.text(),
  });
  await assertRejects(
    () => text.send("two\nlines"),
    Error,
    "contains a newline",
  );
  await assertRejects(
    () => writer.send("much too long"),
    Error,
    "maxMessageSize is 8",
  );
  text.close();
  writer.close();
  reader.close();
});

Deno.test("FramedChannel.send() given up before its turn writes nothing and keeps the channel open", async () => {
  const { writer, reader } = pipePair<string>();
  const first = writer.send("first"); // waits: nobody reads the pipe yet
  const stop = new AbortController();
  const second = writer.send("second", { signal: stop.signal });
  stop.abort(new Error("not needed"));
  assertEquals((await reader.receive()).value, "first");
  await first;
  await assertRejects(() => second, Error, "not needed");
  assertEquals(writer.closed, false);
  const third = reader.receive();
  await writer.send("third");
  assertEquals((await third).value, "third");
  writer.close();
  reader.close();
});

Deno.test("FramedChannel over a ByteIO frames, half-closes and closes the resource", async () => {
  const sent: Uint8Array[] = [];
  let halfClosed = false;
  let closed = false;
  const incoming = [new Uint8Array([0, 0, 0, 2, 0x31, 0x32]), null];
  const channel = new FramedChannel<number>({
    io: {
      read: (buffer) => {
        const next = incoming.shift();
        if (!next) return Promise.resolve(null);
        buffer.set(next);
        return Promise.resolve(next.byteLength);
      },
      // Takes at most 3 bytes per call, so partial writes must be continued.
      write: (bytes) => {
        sent.push(bytes.slice(0, 3));
        return Promise.resolve(Math.min(3, bytes.byteLength));
      },
      closeWrite: () => Promise.resolve(void (halfClosed = true)),
      close: () => void (closed = true),
    },
  });
  assertEquals((await channel.receive()).value, 12);
  await channel.send(7);
  const written = new Uint8Array(sent.flatMap((chunk) => [...chunk]));
  assertEquals(written, new Uint8Array([0, 0, 0, 1, 0x37]));
  await channel.closeWrite();
  assertEquals(halfClosed, true);
  await assertRejects(() => channel.receive(), Deno.errors.UnexpectedEof);
  channel.close();
  assertEquals(closed, true);
  assertThrows(
    () =>
      new FramedChannel({
        io: channel as never,
        readable: new ReadableStream(),
      }),
    Error,
    "either io or streams",
  );
});

Deno.test("FramedChannel reassembles a large frame that arrives in many small chunks", async () => {
  const payload = new Uint8Array(300_000).map((_, i) => (i * 7) % 256);
  const frame = new Uint8Array(4 + payload.byteLength);
  new DataView(frame.buffer).setUint32(0, payload.byteLength);
  frame.set(payload, 4);
  // 3-byte chunks first, so the header itself is split, then 4 KiB ones.
  const chunks: Uint8Array[] = [frame.subarray(0, 3), frame.subarray(3, 6)];
  for (let at = 6; at < frame.byteLength; at += 4096) {
    chunks.push(frame.subarray(at, at + 4096));
  }
  const channel = new FramedChannel<Uint8Array>({
    readable: ReadableStream.from(chunks),
    codec: codecs.bytes(),
  });
  assertEquals((await channel.receive()).value, payload);
  await assertRejects(() => channel.receive(), Deno.errors.UnexpectedEof);
});

Deno.test(
  "FramedChannel rejects a line longer than maxMessageSize while it still arrives, as a DecodeError, and closes",
  leakChecked(async () => {
    const reader = rawReader<string>(["0123456789", "0123456789", "x\n"], {
      framing: "lines",
      maxMessageSize: 16,
    });
    const error = await assertRejects(
      () => reader.receive({ timeout: 5000 }),
      DecodeError,
      "a line is longer than maxMessageSize 16, so the channel is closed",
    );
    assertEquals(
      new TextDecoder().decode(error.bytes),
      "01234567890123456789",
    );
    assertEquals(reader.closed, true);
  }),
);

Deno.test(
  "FramedChannel rejects an over-long line that arrives whole with its newline",
  leakChecked(async () => {
    const reader = rawReader<string>(["short\n", "0123456789abcdefg\nnext\n"], {
      framing: "lines",
      maxMessageSize: 16,
    });
    assertEquals((await reader.receive({ timeout: 5000 })).value, "short");
    const error = await assertRejects(
      () => reader.receive({ timeout: 5000 }),
      DecodeError,
      "a line is longer than maxMessageSize 16",
    );
    assertEquals(
      new TextDecoder().decode(error.bytes).slice(0, 17),
      "0123456789abcdefg",
    );
    assertEquals(reader.closed, true);
  }),
);

Deno.test(
  "FramedChannel accepts a line of exactly maxMessageSize bytes, with or without a CR",
  leakChecked(async () => {
    const reader = rawReader<string>([
      "0123456789abcdef\r\n",
      "0123456789abcdef\n",
    ], {
      framing: "lines",
      maxMessageSize: 16,
    });
    assertEquals(
      (await reader.receive({ timeout: 5000 })).value,
      "0123456789abcdef",
    );
    assertEquals(
      (await reader.receive({ timeout: 5000 })).value,
      "0123456789abcdef",
    );
  }),
);
