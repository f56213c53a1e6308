/**
 * Several worker processes share a pool of licences: a named semaphore
 * created with the number of licences. Each worker takes a licence
 * (`await licences.wait()`), works a while, and gives it back (`post()`).
 * A Mutex in shared memory guards a small tally of how many workers hold a
 * licence at once, so the example can show that the limit is never passed.
 *
 * Run: deno task example:semaphore
 */
import { Mutex, MUTEX_SIZE, Semaphore, SharedMemory } from "../mod.ts";

const LICENCES = 3;
const WORKERS = 6;
const JOBS_PER_WORKER = 4;

// The tally after the mutex: holders now, the most seen at once, jobs done.
const NOW = 0, PEAK = 1, DONE = 2;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function worker(
  id: string,
  semName: string,
  shmName: string,
): Promise<void> {
  using licences = Semaphore.open(semName);
  using memory = SharedMemory.open(shmName);
  using mutex = Mutex.inMemory(memory, 0);
  const tally = memory.view(Int32Array, MUTEX_SIZE, 3);
  for (let job = 1; job <= JOBS_PER_WORKER; job++) {
    await licences.wait({ timeout: 10_000 });
    try {
      await mutex.withLock(() => {
        tally[NOW] += 1;
        tally[PEAK] = Math.max(tally[PEAK], tally[NOW]);
      });
      console.log(`worker ${id} (pid ${Deno.pid}) job ${job}: licence taken`);
      await sleep(20 + Math.random() * 40); // the licensed work
      await mutex.withLock(() => {
        tally[NOW] -= 1;
        tally[DONE] += 1;
      });
    } finally {
      licences.post();
    }
  }
}

async function main(): Promise<void> {
  const semName = `/ipckit-example-licences-${Deno.pid}`;
  const shmName = `/ipckit-example-tally-${Deno.pid}`;
  using licences = Semaphore.open(semName, {
    create: true,
    exclusive: true,
    initial: LICENCES,
    unlinkOnClose: true,
  });
  using memory = SharedMemory.open(shmName, {
    create: true,
    size: MUTEX_SIZE + 12,
    unlinkOnClose: true,
  });
  using _mutex = Mutex.inMemory(memory, 0);
  const tally = memory.view(Int32Array, MUTEX_SIZE, 3);

  console.log(
    `${WORKERS} workers, ${LICENCES} licences, ${JOBS_PER_WORKER} jobs each`,
  );
  const started = performance.now();
  const children = Array.from(
    { length: WORKERS },
    (_, i) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-ffi",
          "--allow-read=/dev/shm",
          "--allow-write=/dev/shm",
          import.meta.filename!,
          "work",
          String(i + 1),
          semName,
          shmName,
        ],
      }).spawn(),
  );
  const statuses = await Promise.all(children.map((child) => child.status));
  const failed = statuses.filter((status) => !status.success).length;
  console.log(
    `${tally[DONE]} jobs done in ${
      (performance.now() - started).toFixed(0)
    } ms; at most ${tally[PEAK]} workers held a licence at once ` +
      `(limit ${LICENCES}); ${licences.value} licences free; ${failed} workers failed`,
  );
  if (tally[PEAK] > LICENCES || failed > 0) Deno.exitCode = 1;
}

if (Deno.args[0] === "work") {
  await worker(Deno.args[1], Deno.args[2], Deno.args[3]);
} else {
  await main();
}
