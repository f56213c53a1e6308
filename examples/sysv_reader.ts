/**
 * The reader of `deno task example:sysv`: reads the writer's greeting from
 * the shared memory segment of key 1234, takes the orders (type 1) one by
 * one, answers each on type 10, and stops at the control message (type 9),
 * which the writer sent before the orders.
 *
 * @module
 */

import { SysvMessageQueue, SysvSharedMemory } from "../mod.ts";
import { KEY, type Wire } from "./sysv_types.ts";

using queue = SysvMessageQueue.open<Wire>(KEY);
using segment = SysvSharedMemory.open(KEY);
const text = new TextDecoder().decode(segment.bytes()).split("\0")[0];
console.log(
  `reader ${Deno.pid}: segment says "${text}" (attachments: ${segment.attributes().attachments})`,
);

for (;;) {
  // The lowest type up to 9: every order (1) before the control message (9).
  const { value, type } = await queue.receive({ type: -9, timeout: 10_000 });
  if (value.kind === "done") {
    console.log(`reader: type ${type} control message: done`);
    break;
  }
  if (value.kind !== "order") continue;
  const { id, item, quantity } = value.order;
  console.log(`reader: type ${type} order ${id}: ${quantity} x ${item}`);
  await queue.send(
    { kind: "receipt", id, text: `${quantity} ${item} packed` },
    { type: 10 },
  );
}
