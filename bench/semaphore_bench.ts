/**
 * In-process costs of semaphores and the Mutex, uncontended: what taking
 * and giving back costs when nobody else wants it. Cross-process round
 * trips are in semaphore_pingpong.ts and the driver.
 */
import {
  Mutex,
  MUTEX_SIZE,
  Semaphore,
  SEMAPHORE_SIZE,
  SharedMemory,
} from "../mod.ts";

const named = Semaphore.open(`/ipckit-bench-sem-${Deno.pid}`, {
  create: true,
  exclusive: true,
});
// deno bench has no teardown hook: names go now, the handles stay open.
named.unlink();
const memory = SharedMemory.open(`/ipckit-bench-semmem-${Deno.pid}`, {
  create: true,
  size: SEMAPHORE_SIZE + MUTEX_SIZE,
});
memory.unlink();
const inMemory = Semaphore.inMemory(memory, 0, { initial: 0 });
const mutex = Mutex.inMemory(memory, SEMAPHORE_SIZE);

Deno.bench("named semaphore post() + tryWait()", { group: "sem" }, () => {
  named.post();
  named.tryWait();
});
Deno.bench("in-memory semaphore post() + tryWait()", { group: "sem" }, () => {
  inMemory.post();
  inMemory.tryWait();
});
Deno.bench("in-memory semaphore post() + waitSync()", { group: "sem" }, () => {
  inMemory.post();
  inMemory.waitSync();
});
Deno.bench(
  "in-memory semaphore post() + await wait()",
  { group: "sem" },
  async () => {
    inMemory.post();
    await inMemory.wait();
  },
);
Deno.bench("semaphore value", { group: "sem" }, () => {
  inMemory.value;
});
Deno.bench("Mutex tryLock() + release()", { group: "mutex" }, () => {
  mutex.tryLock()!.release();
});
Deno.bench("Mutex lockSync() + release()", { group: "mutex" }, () => {
  mutex.lockSync().release();
});
Deno.bench("Mutex await lock() + release()", { group: "mutex" }, async () => {
  (await mutex.lock()).release();
});
