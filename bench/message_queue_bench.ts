/**
 * In-process cost of a message queue call: a `trySend` + `tryReceive` pair
 * on one queue (two `mq_*` calls through FFI, the bytes codec, no waiting),
 * beside the floor of any FFI call (`getpid()`) and the same pair through
 * the async API when nothing has to wait. The cross-process round trips,
 * async and sync, are in the driver (`deno task bench:driver`).
 *
 * Run: deno task bench (or deno bench <flags> bench/message_queue_bench.ts)
 *
 * @module
 */

import { libc } from "../ffi/load.ts";
import { codecs, MessageQueue } from "../mod.ts";

const message = new Uint8Array(64).fill(7);
const local = MessageQueue.open(`/ipckit-bench-local-${Deno.pid}`, {
  create: true,
  exclusive: true,
  codec: codecs.bytes(),
});
// deno bench has no teardown hook: the name goes now, the queue stays open.
local.unlink();
const symbols = libc().symbols;

Deno.bench("libc getpid() through FFI (the floor of any call)", {
  group: "mq-calls",
}, () => {
  symbols.getpid();
});

Deno.bench("mq trySend + tryReceive, 64 B, one process", {
  group: "mq-calls",
  baseline: true,
}, () => {
  local.trySend(message);
  local.tryReceive();
});

Deno.bench("mq await send + await receive, 64 B, nothing waits", {
  group: "mq-calls",
}, async () => {
  await local.send(message);
  await local.receive();
});
