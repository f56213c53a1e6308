/**
 * A producer process streams typed frames to a consumer through a
 * `ShmChannel`: a ring in one shared-memory object, so each frame is
 * encoded straight into shared memory and decoded straight out of it,
 * with no system call per frame while both sides keep up. The consumer
 * (this process) checks every frame and prints the rate.
 *
 * Run: deno task example:shm-channel
 */
import { array, codecs, layout, ShmChannel } from "../mod.ts";

const FRAMES = 100_000;

const frame = layout({
  seq: "u32",
  width: "u16",
  height: "u16",
  sentAt: "f64",
  pixels: array("u8", 4096),
});
const codec = codecs.struct(frame);

async function produce(name: string): Promise<void> {
  using channel = ShmChannel.open(name, { codec });
  const pixels = new Uint8Array(4096);
  for (let seq = 0; seq < FRAMES; seq++) {
    pixels.fill(seq & 0xff);
    await channel.send({
      seq,
      width: 64,
      height: 64,
      sentAt: performance.timeOrigin + performance.now(),
      pixels,
    });
  }
} // closing the producer ends the consumer's loop

async function consume(): Promise<void> {
  const name = `/ipckit-example-frames-${Deno.pid}`;
  using channel = ShmChannel.open(name, {
    create: true,
    capacity: 1 << 20,
    codec,
    unlinkOnClose: true,
  });
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-ffi",
      "--allow-read=/dev/shm,/proc",
      "--allow-write=/dev/shm",
      import.meta.filename!,
      "produce",
      name,
    ],
  }).spawn();

  let received = 0;
  let started = 0;
  let latency = 0;
  for await (const { value } of channel) {
    if (received === 0) started = performance.now();
    if (value.seq !== received || value.pixels[4095] !== (received & 0xff)) {
      throw new Error(`frame ${received} arrived as ${value.seq}, or torn`);
    }
    latency += performance.timeOrigin + performance.now() - value.sentAt;
    received++;
  }
  const seconds = (performance.now() - started) / 1000;
  const status = await child.status;
  console.log(
    `${received} frames of ${frame.size} bytes in ${seconds.toFixed(2)} s: ${
      Math.round(received / seconds).toLocaleString("en")
    } frames/s, ${
      (received * frame.size / seconds / 1e6).toFixed(0)
    } MB/s, mean age on arrival ${
      (latency / received * 1000).toFixed(0)
    } µs (producer exit code ${status.code})`,
  );
}

if (Deno.args[0] === "produce") await produce(Deno.args[1]);
else await consume();
