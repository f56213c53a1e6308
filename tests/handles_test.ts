/**
 * The one lifecycle, held to by every public handle: an idempotent
 * `close()`, `[Symbol.dispose]` and `[Symbol.asyncDispose]`, and owners that
 * close their children before themselves.
 */
import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { join } from "@std/path";
import * as ipckit from "../mod.ts";
import {
  bindDatagram,
  client,
  connect,
  duplex,
  Fifo,
  FileLock,
  FramedChannel,
  layout,
  listen,
  MappedFile,
  MessageQueue,
  Mutex,
  MUTEX_SIZE,
  onSignal,
  PipeChannel,
  type RpcEnvelope,
  Semaphore,
  SEMAPHORE_SIZE,
  serve,
  SharedMemory,
  signals,
  spawn,
  SysvMessageQueue,
  SysvSemaphoreSet,
  SysvSharedMemory,
} from "../mod.ts";
import { leakChecked, uniqueName } from "./_helpers.ts";

/** What every handle offers. */
interface _Handle {
  close(): void;
  [Symbol.dispose](): void;
  [Symbol.asyncDispose](): Promise<void>;
}

Deno.test(
  "Every public class with close() also has Symbol.dispose and Symbol.asyncDispose",
  leakChecked(() => {
    const classes = Object.entries(ipckit).filter(([, value]) =>
      typeof value === "function" &&
      typeof (value as { prototype?: { close?: unknown } }).prototype
          ?.close === "function"
    );
    assert(classes.length >= 10, `only ${classes.length} classes found`);
    for (const [name, value] of classes) {
      const prototype = (value as { prototype: Partial<_Handle> }).prototype;
      assertEquals(
        typeof prototype[Symbol.dispose],
        "function",
        `${name} has no [Symbol.dispose]`,
      );
      assertEquals(
        typeof prototype[Symbol.asyncDispose],
        "function",
        `${name} has no [Symbol.asyncDispose]`,
      );
    }
  }),
);

/** Closes a handle every way there is, twice each: none of it may throw. */
async function _closeEveryWay(what: string, handle: _Handle): Promise<void> {
  for (const close of ["close", "dispose", "asyncDispose"] as const) {
    for (let round = 0; round < 2; round++) {
      try {
        if (close === "close") handle.close();
        else if (close === "dispose") handle[Symbol.dispose]();
        else await handle[Symbol.asyncDispose]();
      } catch (error) {
        throw new Error(`${what}: ${close} #${round + 1} threw`, {
          cause: error,
        });
      }
    }
  }
  const closed = handle as {
    closed?: boolean;
    active?: boolean;
    held?: boolean;
  };
  if ("closed" in closed) assertEquals(closed.closed, true, what);
  if ("active" in closed) assertEquals(closed.active, false, what);
  if ("held" in closed) assertEquals(closed.held, false, what);
}

Deno.test(
  "Every handle closes once, however often close(), dispose and asyncDispose are called",
  leakChecked(async () => {
    const dir = await Deno.makeTempDir({ prefix: "ipckit-test-handles-" });
    try {
      const handles: [string, _Handle][] = [];
      const add = (what: string, handle: _Handle) =>
        handles.push([what, handle]);
      add(
        "MessageQueue",
        MessageQueue.open(uniqueName("mq"), {
          create: true,
          unlinkOnClose: true,
        }),
      );
      const memory = SharedMemory.open(uniqueName("shm"), {
        create: true,
        size: MUTEX_SIZE + SEMAPHORE_SIZE,
        unlinkOnClose: true,
      });
      const placedMutex = Mutex.inMemory(memory, 0);
      add("MutexGuard", placedMutex.lockSync({ timeout: 1000 }));
      add("Mutex.inMemory", placedMutex);
      add(
        "Semaphore.inMemory",
        Semaphore.inMemory(memory, MUTEX_SIZE, { initial: 0 }),
      );
      add("SharedMemory", memory);
      // A record's own members start with "$" (a field may be called close).
      const record = SharedMemory.openStruct(
        uniqueName("record"),
        layout({ n: "u32" }),
        { create: true, unlinkOnClose: true },
      );
      add("SharedMemory.openStruct record", {
        close: () => record.$close(),
        [Symbol.dispose]: () => record[Symbol.dispose](),
        [Symbol.asyncDispose]: () => record[Symbol.asyncDispose](),
      });
      add(
        "Semaphore",
        Semaphore.open(uniqueName("sem"), {
          create: true,
          unlinkOnClose: true,
        }),
      );
      add(
        "Mutex",
        Mutex.open(uniqueName("mutex"), { create: true, unlinkOnClose: true }),
      );
      add(
        "MappedFile",
        MappedFile.open(join(dir, "mapped"), {
          create: true,
          size: 64,
          unlinkOnClose: true,
        }),
      );
      add(
        "SysvMessageQueue",
        SysvMessageQueue.open("private", { create: true, unlinkOnClose: true }),
      );
      add(
        "SysvSharedMemory",
        SysvSharedMemory.open("private", {
          create: true,
          size: 64,
          unlinkOnClose: true,
        }),
      );
      const sysvRecord = SysvSharedMemory.openStruct(
        "private",
        layout({ n: "u32" }),
        { create: true, unlinkOnClose: true },
      );
      add("SysvSharedMemory.openStruct record", {
        close: () => sysvRecord.$close(),
        [Symbol.dispose]: () => sysvRecord[Symbol.dispose](),
        [Symbol.asyncDispose]: () => sysvRecord[Symbol.asyncDispose](),
      });
      const set = SysvSemaphoreSet.open("private", {
        create: true,
        count: 1,
        initial: 1,
        unlinkOnClose: true,
      });
      add("SysvSemaphoreLock", await set.lock(0, { timeout: 1000 }));
      add("SysvSemaphoreSet", set);
      const fileLock = FileLock.open(join(dir, "lock"), { create: true });
      add("FileLockHold", fileLock.lockSync({ timeout: 1000 }));
      add("FileLock", fileLock);
      const fifo = Fifo.create(join(dir, "fifo"), { unlinkOnClose: true });
      add("FIFO reader", await fifo.openReader());
      add("FIFO writer", await fifo.openWriter({ timeout: 1000 }));
      add("Fifo", fifo);
      const pipe = new TransformStream<Uint8Array, Uint8Array>();
      const back = new TransformStream<Uint8Array, Uint8Array>();
      const framed = new FramedChannel<RpcEnvelope<number, number>>({
        readable: pipe.readable,
        writable: back.writable,
      });
      const other = new FramedChannel<RpcEnvelope<number, number>>({
        readable: back.readable,
        writable: pipe.writable,
      });
      const server = serve(framed, (n: number) => n);
      const caller = client<number, number>(other);
      add("RpcClient", caller);
      add("RpcServer", server);
      add("FramedChannel", framed);
      add(
        "DuplexChannel",
        duplex(
          new FramedChannel({ writable: new WritableStream() }),
          new FramedChannel({ readable: new ReadableStream() }),
        ),
      );
      add("FramedChannel (other end)", other);
      add(
        "PipeChannel",
        new PipeChannel(new ReadableStream(), new WritableStream()),
      );
      add("ChildChannel", spawn("cat"));
      const tcp = await listen({ port: 0 });
      const { port } = tcp.addr as Deno.NetAddr;
      add("SocketChannel", await connect({ port, timeout: 1000 }));
      add("SocketChannel (accepted)", await tcp.accept({ timeout: 1000 }));
      add("SocketServer", tcp);
      add("DatagramChannel", await bindDatagram({ port: 0 }));
      add("SignalSubscription", onSignal("SIGUSR2", () => {}));
      add("SignalStream", signals("SIGUSR2"));
      for (const [what, handle] of handles) await _closeEveryWay(what, handle);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }),
);

Deno.test(
  "Closing shared memory closes the semaphores and mutexes placed in it first, releasing their locks and parked waits",
  leakChecked(async () => {
    const name = uniqueName("owner");
    const memory = SharedMemory.open(name, {
      create: true,
      size: MUTEX_SIZE + SEMAPHORE_SIZE,
      unlinkOnClose: true,
    });
    using other = SharedMemory.open(name);
    using otherMutex = Mutex.inMemory(other, 0);
    const mutex = Mutex.inMemory(memory, 0);
    const guard = await mutex.lock({ timeout: 1000 });
    const semaphore = Semaphore.inMemory(memory, MUTEX_SIZE, { initial: 0 });
    const parked = semaphore.wait({ timeout: 5000 });
    memory.close();
    assert(mutex.closed && semaphore.closed && !guard.held);
    await assertRejects(() => parked, Deno.errors.BadResource, "it is closed");
    // The lock was released before the memory went: another handle takes it.
    using taken = otherMutex.lockSync({ timeout: 1000 });
    assert(taken.held && !taken.recovered);
    assertThrows(() => mutex.tryLock(), Deno.errors.BadResource);
  }),
);

Deno.test(
  "Closed System V handles and file locks say what could not be done, in the one wording",
  leakChecked(async () => {
    const dir = await Deno.makeTempDir({ prefix: "ipckit-test-handles-" });
    try {
      const queue = SysvMessageQueue.open<string>("private", {
        create: true,
        unlinkOnClose: true,
      });
      const segment = SysvSharedMemory.open("private", {
        create: true,
        size: 64,
        unlinkOnClose: true,
      });
      const set = SysvSemaphoreSet.open("private", {
        create: true,
        count: 1,
        unlinkOnClose: true,
      });
      const path = join(dir, "app.lock");
      const lock = FileLock.open(path, { create: true });
      const parked = set.wait(0, { timeout: 5000 });
      const queued = queue.receive({ timeout: 5000 });
      for (const handle of [queue, segment, set, lock]) handle.close();
      await assertRejects(() => parked, Deno.errors.BadResource, "closed");
      await assertRejects(() => queued, Deno.errors.BadResource, "closed");
      const cases: [() => unknown, string][] = [
        [() => queue.trySend("x"), `send to ${_what("message queue", queue)}`],
        [
          () => queue.tryReceive(),
          `receive from ${_what("message queue", queue)}`,
        ],
        [
          () => queue.attributes(),
          `read attributes of ${_what("message queue", queue)}`,
        ],
        [() => segment.bytes(), `use ${_what("shared memory", segment)}`],
        [
          () => segment.attributes(),
          `read attributes of ${_what("shared memory", segment)}`,
        ],
        [() => set.tryWait(), `operate on ${_what("semaphore set", set)}`],
        [
          () => set.value(0),
          `read the value of ${_what("semaphore set", set)}`,
        ],
        [() => lock.tryLock(), `lock file "${path}"`],
      ];
      for (const [call, done] of cases) {
        assertThrows(
          call,
          Deno.errors.BadResource,
          `Cannot ${done}: it is closed`,
        );
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }),
);

Deno.test(
  "A System V semaphore lock and a file lock release once, and give nothing back once their handle is closed",
  leakChecked(async () => {
    const dir = await Deno.makeTempDir({ prefix: "ipckit-test-handles-" });
    try {
      const set = SysvSemaphoreSet.open("private", {
        create: true,
        count: 1,
        initial: 2,
        unlinkOnClose: true,
      });
      const first = await set.lock(0, { timeout: 1000 });
      first.release();
      first.release();
      await first[Symbol.asyncDispose]();
      // One give back, not three: the value is where it started.
      assertEquals([first.held, set.value(0)], [false, 2]);
      const second = await set.lock(0, { timeout: 1000 });
      assertEquals([second.held, set.value(0)], [true, 1]);
      set.close();
      second.release(); // the closed set cannot post: nothing is thrown
      assertEquals(second.held, false);

      const path = join(dir, "app.lock");
      const lock = FileLock.open(path, { create: true });
      const held = lock.tryLock({ start: 4, length: 2 })!;
      assertEquals([held.held, held.start, held.length], [true, 4, 2]);
      held.release();
      assertEquals(held.held, false);
      const again = lock.tryLock()!;
      lock.close(); // closing the descriptor released it
      again[Symbol.dispose]();
      assertEquals(again.held, false);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }),
);

/** How messages name a private System V object: `System V shared memory private (id 32769)`. */
function _what(kind: string, handle: { id: number }): string {
  return `System V ${kind} private (id ${handle.id})`;
}
