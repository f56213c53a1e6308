import assert from "node:assert/strict";
import { codecs, DecodeError, FramedChannel } from "../mod.ts";

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
  assert.deepEqual((await received).value, big);
  out.close();
  into.close();
});

Deno.test("FramedChannel splits lines across chunk boundaries and drops a CR", async () => {
  const reader = rawReader<string>(["hel", "lo\r\nwor", "ld\nlast"], {
    framing: "lines",
  });
  const values: string[] = [];
  for await (const { value } of reader) values.push(value);
  assert.deepEqual(values, ["hello", "world", "last"]);
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
  assert.deepEqual(values, Array.from({ length: 100 }, (_, i) => i));
});

Deno.test("FramedChannel rejects a frame header above maxMessageSize and closes", async () => {
  const readable = ReadableStream.from([encoder.encode("GET / HTTP/1.1\r\n")]);
  const channel = new FramedChannel({ readable, maxMessageSize: 1024 });
  await assert.rejects(
    channel.receive(),
    (error: unknown) =>
      error instanceof DecodeError &&
      /announces 1195725856 bytes, above maxMessageSize 1024/.test(
        error.message,
      ) &&
      error.bytes.length === 4,
  );
  assert.equal(channel.closed, true);
});

Deno.test("FramedChannel reports a stream that ends inside a frame with the partial bytes", async () => {
  const frame = new Uint8Array([0, 0, 0, 10, 1, 2, 3]);
  const channel = new FramedChannel({ readable: ReadableStream.from([frame]) });
  await assert.rejects(
    channel.receive(),
    (error: unknown) =>
      error instanceof DecodeError &&
      /ended inside a message, after 7 bytes/.test(error.message),
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
  await assert.rejects(channel.receive(), DecodeError);
  assert.deepEqual((await channel.receive()).value, { ok: 1 });
});

Deno.test("FramedChannel.receive() rejects after its timeout and the next receive gets the data", async () => {
  const { writer, reader } = pipePair<string>();
  await assert.rejects(reader.receive({ timeout: 20 }), Deno.errors.TimedOut);
  await writer.send("later");
  assert.equal((await reader.receive({ timeout: 1000 })).value, "later");
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
  await assert.rejects(text.send("two\nlines"), /contains a newline/);
  await assert.rejects(writer.send("much too long"), /maxMessageSize is 8/);
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
  assert.equal((await reader.receive()).value, "first");
  await first;
  await assert.rejects(second, /not needed/);
  assert.equal(writer.closed, false);
  const third = reader.receive();
  await writer.send("third");
  assert.equal((await third).value, "third");
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
  assert.equal((await channel.receive()).value, 12);
  await channel.send(7);
  const written = new Uint8Array(sent.flatMap((chunk) => [...chunk]));
  assert.deepEqual(written, new Uint8Array([0, 0, 0, 1, 0x37]));
  await channel.closeWrite();
  assert.equal(halfClosed, true);
  await assert.rejects(channel.receive(), Deno.errors.UnexpectedEof);
  channel.close();
  assert.equal(closed, true);
  assert.throws(
    () =>
      new FramedChannel({
        io: channel as never,
        readable: new ReadableStream(),
      }),
    /either io or streams/,
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
  assert.deepEqual((await channel.receive()).value, payload);
  await assert.rejects(channel.receive(), Deno.errors.UnexpectedEof);
});
