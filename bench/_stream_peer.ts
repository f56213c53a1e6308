/**
 * The far end of the stream benchmarks (bench/streams.ts), run as a child.
 *
 * - `fifo <base>`: joins Fifo.duplex as client. Echoes messages up to 64
 *   bytes; answers a larger one with an empty message (an ack).
 * - `pipe`: the same over parentChannel().
 * - `raw-echo`: baseline without ipckit: copies stdin to stdout as it comes.
 * - `raw-sink <bytes>`: baseline: writes one byte per that many bytes read.
 */
import { codecs, Fifo, parentChannel } from "../mod.ts";

const [mode, arg] = Deno.args;
const bytes = codecs.bytes();
const empty = new Uint8Array(0);

async function serve(
  channel: AsyncIterable<{ value: Uint8Array }> & {
    send(value: Uint8Array): Promise<void>;
  },
): Promise<void> {
  for await (const { value } of channel) {
    await channel.send(value.byteLength <= 64 ? value : empty);
  }
}

switch (mode) {
  case "fifo": {
    await using channel = await Fifo.duplex<Uint8Array>(arg, {
      role: "client",
      codec: bytes,
      timeout: 30_000,
    });
    await serve(channel);
    break;
  }
  case "pipe": {
    await using channel = parentChannel<Uint8Array, Uint8Array>({
      sendCodec: bytes,
      receiveCodec: bytes,
    });
    await serve(channel);
    break;
  }
  case "raw-echo": {
    await Deno.stdin.readable.pipeTo(Deno.stdout.writable);
    break;
  }
  case "raw-sink": {
    // One ack per `arg` bytes, until stdin ends.
    const perSample = Number(arg);
    const reader = Deno.stdin.readable.getReader();
    const writer = Deno.stdout.writable.getWriter();
    let got = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      got += value.byteLength;
      while (got >= perSample) {
        got -= perSample;
        await writer.write(new Uint8Array([1]));
      }
    }
    await writer.close();
    break;
  }
  default:
    throw new Error(`unknown mode ${mode}`);
}
