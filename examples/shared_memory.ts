/**
 * Two processes share a typed record and a frame buffer in one shared memory
 * object: a producer (a child process) draws frames, the consumer (this
 * process) reads them in place, without copying them through the kernel.
 *
 * Hand-off protocol: the producer draws frame `n` only after the consumer
 * acknowledged frame `n - 1` (`ack`), then publishes it with an atomic store
 * of `seq`. Plain writes before an atomic store are visible to whoever sees
 * that store through an atomic load, so the consumer never sees a torn frame.
 * Each side sleeps on a futex over the word it waits for (`seq`, `ack`) and
 * the other wakes it after each store: no polling, no timers.
 *
 * Run: deno task example:shm
 */
import { Futex, layout, SharedMemory, utf8 } from "../mod.ts";

const WIDTH = 320;
const HEIGHT = 240;
const FRAMES = 30;

const header = layout({
  seq: "u32",
  ack: "u32",
  width: "u16",
  height: "u16",
  producerPid: "i32",
  label: utf8(24),
});

/** Sleeps on `word` until it holds `value` (a futex wait returns on any change). */
async function waitFor(word: Futex, value: number): Promise<void> {
  for (let now = word.load(); now !== value; now = word.load()) {
    await word.wait(now, { timeout: 10_000 });
  }
}

async function producer(name: string): Promise<void> {
  using memory = SharedMemory.open(name);
  const head = memory.struct(header);
  using seq = Futex.field(head, "seq");
  using ack = Futex.field(head, "ack");
  const pixels = memory.view(Uint8Array, header.size, head.width * head.height);
  head.producerPid = Deno.pid;
  for (let frame = 1; frame <= FRAMES; frame++) {
    await waitFor(ack, frame - 1);
    // A moving gradient: frame n has mean brightness close to n * 4.
    for (let y = 0; y < head.height; y++) {
      pixels.fill(
        (frame * 4 + (y % 3) - 1) & 0xff,
        y * head.width,
        (y + 1) * head.width,
      );
    }
    head.label = `frame ${frame} from ${Deno.pid}`;
    seq.store(frame);
    seq.wake();
  }
}

async function consumer(): Promise<void> {
  const name = `/ipckit-example-frames-${Deno.pid}`;
  using memory = SharedMemory.open(name, {
    create: true,
    size: header.size + WIDTH * HEIGHT,
    unlinkOnClose: true,
  });
  const head = memory.struct(header);
  using seq = Futex.field(head, "seq");
  using ack = Futex.field(head, "ack");
  head.width = WIDTH;
  head.height = HEIGHT;
  const pixels = memory.view(Uint8Array, header.size, WIDTH * HEIGHT);

  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-ffi",
      "--allow-read=/dev/shm",
      "--allow-write=/dev/shm",
      import.meta.filename!,
      "produce",
      name,
    ],
  }).spawn();

  const started = performance.now();
  for (let frame = 1; frame <= FRAMES; frame++) {
    await waitFor(seq, frame);
    let sum = 0;
    for (let i = 0; i < pixels.length; i++) sum += pixels[i];
    const mean = sum / pixels.length;
    if (frame % 10 === 0 || frame === 1) {
      console.log(
        `${
          head.label.padEnd(24)
        } ${head.width}x${head.height} mean brightness ${mean.toFixed(1)}`,
      );
    }
    ack.store(frame);
    ack.wake();
  }
  const elapsed = performance.now() - started;
  const status = await child.status;
  console.log(
    `${FRAMES} frames of ${WIDTH * HEIGHT} bytes shared in ${
      elapsed.toFixed(0)
    } ms (producer pid ${head.producerPid}, exit code ${status.code})`,
  );
}

if (Deno.args[0] === "produce") await producer(Deno.args[1]);
else await consumer();
