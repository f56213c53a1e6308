/**
 * `deno task example:sysv`: the textbook System V scenario between two
 * Deno processes. The writer puts a greeting into a shared memory segment
 * made with `shmget((key_t)1234, 1024, IPC_CREAT|0600)` and sends
 * structured messages (id, type, data) through a System V message queue of
 * the same key, all before the reader starts: the "done" control message
 * (type 9) first, then the orders (type 1). The reader
 * (examples/sysv_reader.ts) reads the segment and receives with type -9,
 * "the lowest type up to 9", so it gets the orders before the control
 * message that was queued in front of them, and answers each on type 10.
 * A C program using key 1234 would see the same objects. Both are removed
 * at the end, also on Ctrl-C.
 *
 * @module
 */

import { SysvMessageQueue, SysvSharedMemory } from "../mod.ts";
import { KEY, type Order, type Wire } from "./sysv_types.ts";

await using queue = SysvMessageQueue.open<Wire>(KEY, {
  create: true,
  unlinkOnClose: true,
});
using segment = SysvSharedMemory.open(KEY, {
  create: true,
  size: 1024,
  unlinkOnClose: true,
});
const greeting = `hello from writer ${Deno.pid}`;
new TextEncoder().encodeInto(`${greeting}\0`, segment.bytes());
console.log(
  `writer: segment key ${KEY} (id ${segment.id}, ${segment.size} bytes) holds "${greeting}"`,
);

// Everything is queued before the reader starts: the control message first.
await queue.send({ kind: "done" }, { type: 9 });
const orders: Order[] = [
  { id: 1, item: "tea", quantity: 2 },
  { id: 2, item: "scones", quantity: 6 },
  { id: 3, item: "jam", quantity: 1 },
];
for (const order of orders) {
  await queue.send({ kind: "order", order }, { type: 1 });
  console.log(`writer: sent order ${order.id} (${order.item}) as type 1`);
}
const reader = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "--allow-ffi",
    "--allow-read=/proc/sysvipc",
    "--allow-write=/proc/sysvipc",
    new URL("./sysv_reader.ts", import.meta.url).pathname,
  ],
  stdout: "inherit",
  stderr: "inherit",
}).spawn();
Deno.addSignalListener("SIGINT", () => {
  console.log("\ninterrupted: removing the queue and the segment");
  reader.kill("SIGTERM");
  queue.close();
  segment.close();
  Deno.exit(130);
});

for (let answered = 0; answered < orders.length; answered++) {
  const { value, type } = await queue.receive({ type: 10, timeout: 10_000 });
  if (value.kind === "receipt") {
    console.log(
      `writer: type ${type} receipt for order ${value.id}: ${value.text}`,
    );
  }
}
const status = await reader.status;
console.log(
  `writer: reader exited with ${status.code}; attachments now ${segment.attributes().attachments}`,
);
