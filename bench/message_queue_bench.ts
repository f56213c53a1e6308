/**
 * Cross-process round trip through a pair of POSIX message queues: 64 bytes
 * to an echoing child process and back, waited for with the async
 * `receive()` and with the thread-blocking `receiveSync()`.
 *
 * Run: deno task bench (or deno bench <flags> bench/message_queue_bench.ts)
 *
 * @module
 */

import { codecs, MessageQueue } from "../mod.ts";

const there = `/ipckit-bench-there-${Deno.pid}`;
const back = `/ipckit-bench-back-${Deno.pid}`;
const codec = codecs.bytes();
const out = MessageQueue.open(there, { create: true, exclusive: true, codec });
const input = MessageQueue.open(back, { create: true, exclusive: true, codec });

new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "--allow-ffi",
    "--allow-read=/dev/mqueue",
    "--allow-write=/dev/mqueue",
    new URL("./fixtures/mq_echo.ts", import.meta.url).pathname,
    there,
    back,
  ],
}).spawn();
await input.receive({ timeout: 30_000 });
// Both processes hold the queues open now: drop the names at once, so even an
// interrupted run leaves nothing in /dev/mqueue.
MessageQueue.unlink(there);
MessageQueue.unlink(back);

const message = new Uint8Array(64).fill(7);

Deno.bench("mq 64 B round trip, async receive()", {
  group: "mq-round-trip",
  baseline: true,
}, async () => {
  await out.send(message);
  await input.receive();
});

Deno.bench("mq 64 B round trip, receiveSync()", {
  group: "mq-round-trip",
}, () => {
  out.sendSync(message);
  input.receiveSync();
});

const local = MessageQueue.open(`/ipckit-bench-local-${Deno.pid}`, {
  create: true,
  exclusive: true,
  codec,
});
local.unlink();

Deno.bench("mq trySend + tryReceive, 64 B, one process", {
  group: "mq-calls",
}, () => {
  local.trySend(message);
  local.tryReceive();
});

globalThis.addEventListener("unload", () => {
  // An empty message tells the echo process to stop.
  out.trySend(new Uint8Array(0));
  out.close();
  input.close();
  local.close();
});
