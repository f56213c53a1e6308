/**
 * In-process costs of shared memory: opening views and records, field
 * access. The cross-process throughput is in shm_vs_mq.ts (`deno task bench:shm`).
 */
import { layout, SharedMemory } from "../mod.ts";

const record = layout({ seq: "u32", ack: "u32", temperature: "f64" });
const memory = SharedMemory.open(`/ipckit-bench-views-${Deno.pid}`, {
  create: true,
  size: 1 << 20,
});
// deno bench has no teardown hook: the name goes now, the mapping stays open.
memory.unlink();
const bound = memory.struct(record);

Deno.bench("SharedMemory.view(Float32Array, 4096, 1024)", () => {
  memory.view(Float32Array, 4096, 1024);
});
Deno.bench("SharedMemory.bytes()", () => {
  memory.bytes();
});
Deno.bench("SharedMemory.struct(layout)", () => {
  memory.struct(record);
});
Deno.bench("record field write", () => {
  bound.temperature = 21.5;
});
Deno.bench("record $atomic.seq.add(1)", () => {
  bound.$atomic.seq.add(1);
});
