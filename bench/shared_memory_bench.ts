/**
 * In-process costs of shared memory: opening a region, views and records,
 * field access. Moving data between processes through it is measured by the
 * driver (`deno task bench:driver`).
 *
 * Run: deno task bench (or deno bench <flags> bench/shared_memory_bench.ts)
 *
 * @module
 */
import { layout, SharedMemory } from "../mod.ts";

const record = layout({ seq: "u32", ack: "u32", temperature: "f64" });
const name = `/ipckit-bench-views-${Deno.pid}`;
const memory = SharedMemory.open(name, { create: true, size: 1 << 20 });
const bound = memory.struct(record);

Deno.bench("SharedMemory.open() + close() of an existing 1 MiB region", () => {
  SharedMemory.open(name).close();
});
Deno.bench("SharedMemory.view(Float32Array, 4096, 1024)", () => {
  memory.view(Float32Array, 4096, 1024);
});
Deno.bench("SharedMemory.bytes()", () => {
  memory.bytes();
});
Deno.bench("SharedMemory.struct(layout)", () => {
  memory.struct(record);
});
Deno.bench("record field read", () => {
  bound.temperature;
});
Deno.bench("record field write", () => {
  bound.temperature = 21.5;
});
Deno.bench("record $atomic.seq.add(1)", () => {
  bound.$atomic.seq.add(1);
});

// deno bench has no teardown hook; unload runs once every bench is done.
globalThis.addEventListener("unload", () => {
  memory.unlink();
  memory.close();
});
