/**
 * The one check of options objects (mechanisms/_common/checks.ts): unknown
 * keys are a TypeError naming the known ones, with a suggestion when the
 * key looks like a misspelling.
 */
import {
  assert,
  assertEquals,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import {
  checkOptionKeys,
  closestKey,
  optionKeys,
} from "../mechanisms/_common/checks.ts";
import {
  client,
  codecs,
  Fifo,
  FileLock,
  FramedChannel,
  layout,
  MappedFile,
  MessageQueue,
  Mutex,
  parentChannel,
  PipeChannel,
  Publisher,
  type RpcEnvelope,
  select,
  Semaphore,
  sendSignal,
  serve,
  SharedMemory,
  signals,
  spawn,
  Subscriber,
  SysvMessageQueue,
  SysvSemaphoreSet,
  SysvSharedMemory,
} from "../mod.ts";
import {
  findObjects,
  listObjects,
  listSysvObjects,
  planCollection,
  planSysvCollection,
} from "../mechanisms/inventory.ts";
import { libcCallsDuring } from "./_syscalls.ts";
import { leakChecked, uniqueName } from "./_helpers.ts";

interface _Example {
  create?: boolean;
  unlinkOnClose?: boolean;
  mode?: number;
}
const _KEYS = optionKeys<_Example>({
  create: true,
  unlinkOnClose: true,
  mode: true,
});

Deno.test(
  "checkOptionKeys() accepts undefined, an empty object and known keys",
  leakChecked(() => {
    checkOptionKeys(undefined, _KEYS, "open it");
    checkOptionKeys({}, _KEYS, "open it");
    checkOptionKeys({ create: true, mode: 0o600 }, _KEYS, "open it");
  }),
);

Deno.test(
  "checkOptionKeys() names the known options and the one a misspelt key meant",
  leakChecked(() => {
    const error = assertThrows(
      () => checkOptionKeys({ unlinkOnclose: true }, _KEYS, 'open "/jobs"'),
      TypeError,
    );
    assertEquals(
      error.message,
      'Cannot open "/jobs": unknown option "unlinkOnclose", did you mean "unlinkOnClose"? (known options: create, unlinkOnClose, mode)',
    );
    const far = assertThrows(
      () => checkOptionKeys({ colour: "red" }, _KEYS, 'open "/jobs"'),
      TypeError,
    );
    assertEquals(
      far.message,
      'Cannot open "/jobs": unknown option "colour" (known options: create, unlinkOnClose, mode)',
    );
  }),
);

Deno.test(
  "checkOptionKeys() rejects a key set to undefined, and options that are not an object",
  leakChecked(() => {
    assertThrows(
      () => checkOptionKeys({ craete: undefined }, _KEYS, "open it"),
      TypeError,
      'unknown option "craete", did you mean "create"?',
    );
    for (const bad of [null, "create", 1, true]) {
      assertThrows(
        () => checkOptionKeys(bad, _KEYS, "open it"),
        TypeError,
        "Cannot open it: options must be an object",
      );
    }
  }),
);

Deno.test(
  "closestKey() finds case slips, typos and swapped letters, and nothing for unrelated words",
  leakChecked(() => {
    const known = ["timeout", "signal", "priority", "mode"];
    assertEquals(closestKey("Timeout", known), "timeout");
    assertEquals(closestKey("timout", known), "timeout");
    assertEquals(closestKey("singal", known), "signal");
    assertEquals(closestKey("priorty", known), "priority");
    assertEquals(closestKey("mdoe", known), "mode");
    assertEquals(closestKey("colour", known), undefined);
    assertEquals(closestKey("x", known), undefined);
  }),
);

Deno.test(
  "optionKeys() lists every key of the type, in order",
  leakChecked(() => {
    assertEquals(_KEYS, ["create", "unlinkOnClose", "mode"]);
  }),
);

/** One misspelt option, the key it should suggest, and the call that takes it. */
type _Case = [what: string, call: () => unknown, key: string, meant?: string];

Deno.test(
  "Every public function refuses an unknown option with a TypeError naming the known ones, before any system call",
  leakChecked(async () => {
    const dir = await Deno.makeTempDir({ prefix: "ipckit-test-options-" });
    const queue = MessageQueue.open<number>(uniqueName("options-mq"), {
      create: true,
      unlinkOnClose: true,
    });
    const memory = SharedMemory.open(uniqueName("options-shm"), {
      create: true,
      size: 4096,
      unlinkOnClose: true,
    });
    const semaphore = Semaphore.inMemory(memory, 0, { initial: 0 });
    const mutex = Mutex.inMemory(memory, 64);
    const mapped = MappedFile.open(`${dir}/mapped`, {
      create: true,
      size: 64,
      unlinkOnClose: true,
    });
    const pipe = new TransformStream<Uint8Array, Uint8Array>();
    const framed = new FramedChannel<RpcEnvelope<number, number>>({
      readable: pipe.readable,
      writable: pipe.writable,
    });
    const caller = client<number, number>(framed);
    const record = layout({ n: "u32" });
    const sysvQueue = SysvMessageQueue.open<number>("private", {
      create: true,
      unlinkOnClose: true,
    });
    const sysvSet = SysvSemaphoreSet.open("private", {
      create: true,
      count: 1,
      initial: 1,
      unlinkOnClose: true,
    });
    const fileLock = FileLock.open(`${dir}/lock`, { create: true });
    const topic = uniqueName("options-topic");
    const publisher = Publisher.open<number>(topic, {
      create: true,
      unlinkOnClose: true,
    });
    const subscriber = Subscriber.open<number>(topic);
    try {
      const cases: _Case[] = [
        [
          "Publisher.open",
          () =>
            Publisher.open(uniqueName("x"), {
              create: true,
              capcity: 8,
            } as never),
          "capcity",
          "capacity",
        ],
        [
          "Subscriber.open",
          () => Subscriber.open(topic, { histroy: 1 } as never),
          "histroy",
          "history",
        ],
        [
          "Publisher.send",
          () => publisher.send(1, { timout: 1 } as never),
          "timout",
          "timeout",
        ],
        [
          "Subscriber.receive",
          () => subscriber.receive({ signl: undefined } as never),
          "signl",
          "signal",
        ],
        [
          "Subscriber.ready",
          () => subscriber.ready({ Timeout: 1 } as never),
          "Timeout",
          "timeout",
        ],
        [
          "MessageQueue.open",
          () =>
            MessageQueue.open(uniqueName("x"), {
              create: true,
              unlinkOnclose: true,
            } as never),
          "unlinkOnclose",
          "unlinkOnClose",
        ],
        [
          "send",
          () => queue.send(1, { priorty: 1 } as never),
          "priorty",
          "priority",
        ],
        ["trySend", () => queue.trySend(1, { timeout: 1 } as never), "timeout"],
        ["sendSync", () => queue.sendSync(1, { signal: 1 } as never), "signal"],
        [
          "receive",
          () => queue.receive({ timout: 1 } as never),
          "timout",
          "timeout",
        ],
        [
          "ready",
          () => queue.ready({ Signal: 1 } as never),
          "Signal",
          "signal",
        ],
        [
          "receiveSync",
          () => queue.receiveSync({ signal: 1 } as never),
          "signal",
        ],
        [
          "SharedMemory.open",
          () =>
            SharedMemory.open(uniqueName("x"), {
              create: true,
              size: 64,
              readonly: true,
            } as never),
          "readonly",
          "readOnly",
        ],
        [
          "SharedMemory.openStruct",
          () =>
            SharedMemory.openStruct(
              uniqueName("x"),
              record,
              { size: 4 } as never,
            ),
          "size",
        ],
        [
          "MappedFile.open",
          () =>
            MappedFile.open(`${dir}/x`, { create: true, sise: 64 } as never),
          "sise",
          "size",
        ],
        [
          "MappedFile.openStruct",
          () => MappedFile.openStruct(`${dir}/x`, record, { size: 4 } as never),
          "size",
        ],
        [
          "flush",
          () => mapped.flush({ bytelength: 1 } as never),
          "bytelength",
          "byteLength",
        ],
        [
          "Semaphore.open",
          () =>
            Semaphore.open(
              uniqueName("x"),
              { create: true, intial: 1 } as never,
            ),
          "intial",
          "initial",
        ],
        [
          "Semaphore.inMemory",
          () => Semaphore.inMemory(memory, 32, { intial: 1 } as never),
          "intial",
          "initial",
        ],
        [
          "wait",
          () => semaphore.wait({ timeuot: 1 } as never),
          "timeuot",
          "timeout",
        ],
        [
          "waitSync",
          () => semaphore.waitSync({ signal: 1 } as never),
          "signal",
        ],
        [
          "Mutex.open",
          () =>
            Mutex.open(uniqueName("x"), { create: true, size: 64 } as never),
          "size",
        ],
        ["lock", () => mutex.lock({ timout: 1 } as never), "timout", "timeout"],
        ["lockSync", () => mutex.lockSync({ signal: 1 } as never), "signal"],
        [
          "Fifo.create",
          () => Fifo.create(`${dir}/x`, { unlinkonclose: true } as never),
          "unlinkonclose",
          "unlinkOnClose",
        ],
        [
          "Fifo.openReader",
          () => Fifo.openReader(`${dir}/x`, { sharedWriter: true } as never),
          "sharedWriter",
          "sharedWriters",
        ],
        [
          "Fifo.openWriter",
          () => Fifo.openWriter(`${dir}/x`, { nonblocking: true } as never),
          "nonblocking",
          "nonBlocking",
        ],
        [
          "Fifo.duplex",
          () => Fifo.duplex(`${dir}/x`, { role: "server", rol: 1 } as never),
          "rol",
          "role",
        ],
        [
          "FramedChannel",
          () =>
            new FramedChannel(
              { readable: pipe.readable, framming: 1 } as never,
            ),
          "framming",
          "framing",
        ],
        [
          "FramedChannel.send",
          () => framed.send({} as never, { timeot: 1 } as never),
          "timeot",
          "timeout",
        ],
        [
          "FramedChannel.receive",
          () => framed.receive({ timeot: 1 } as never),
          "timeot",
          "timeout",
        ],
        [
          "FramedChannel.ready",
          () => framed.ready({ timeot: 1 } as never),
          "timeot",
          "timeout",
        ],
        [
          "PipeChannel",
          () =>
            new PipeChannel(new ReadableStream(), new WritableStream(), {
              codec: 1,
            } as never),
          "codec",
        ],
        ["spawn", () => spawn("cat", { arg: ["-u"] } as never), "arg", "args"],
        [
          "parentChannel",
          () => parentChannel({ drect: true } as never),
          "drect",
          "direct",
        ],
        [
          "serve",
          () => serve(framed, () => 1, { maxInflight: 1 } as never),
          "maxInflight",
          "maxInFlight",
        ],
        [
          "client",
          () => client(framed, { onerror: 1 } as never),
          "onerror",
          "onError",
        ],
        [
          "request",
          () => caller.request(1, { timout: 1 } as never),
          "timout",
          "timeout",
        ],
        [
          "select",
          () => select([queue], { timeut: 1 } as never),
          "timeut",
          "timeout",
        ],
        [
          "signals",
          () => signals("SIGUSR2", { sigal: 1 } as never),
          "sigal",
          "signal",
        ],
        [
          "sendSignal",
          () =>
            sendSignal(Deno.pid, "SIGUSR2", { processgroup: true } as never),
          "processgroup",
          "processGroup",
        ],
        [
          "codecs.json",
          () => codecs.json({ shema: 1 } as never),
          "shema",
          "schema",
        ],
        [
          "layout",
          () => layout({ a: "u8" }, { endain: "big" } as never),
          "endain",
          "endian",
        ],
        [
          "listObjects",
          () => listObjects({ kind: ["mq"] } as never),
          "kind",
          "kinds",
        ],
        [
          "findObjects",
          () => findObjects("/x", { holder: false } as never),
          "holder",
          "holders",
        ],
        [
          "planCollection",
          () => planCollection({ all: true, dryRun: true } as never),
          "dryRun",
        ],
        [
          "SysvMessageQueue.open",
          () =>
            SysvMessageQueue.open("private", {
              create: true,
              unlinkOnclose: true,
            } as never),
          "unlinkOnclose",
          "unlinkOnClose",
        ],
        [
          "SysvMessageQueue.trySend",
          () => sysvQueue.trySend(1, { priority: 1 } as never),
          "priority",
        ],
        [
          "SysvMessageQueue.send",
          () => sysvQueue.send(1, { typ: 2 } as never),
          "typ",
          "type",
        ],
        [
          "SysvMessageQueue.sendSync",
          () => sysvQueue.sendSync(1, { signal: 1 } as never),
          "signal",
        ],
        [
          "SysvMessageQueue.tryReceive",
          () => sysvQueue.tryReceive({ timeout: 1 } as never),
          "timeout",
        ],
        [
          "SysvMessageQueue.receive",
          () => sysvQueue.receive({ type: 1, exept: true } as never),
          "exept",
          "except",
        ],
        [
          "SysvMessageQueue.receiveSync",
          () => sysvQueue.receiveSync({ signal: 1 } as never),
          "signal",
        ],
        [
          "SysvMessageQueue.ready",
          () => sysvQueue.ready({ type: 1 } as never),
          "type",
        ],
        [
          "SysvSharedMemory.open",
          () =>
            SysvSharedMemory.open("private", {
              create: true,
              sise: 64,
            } as never),
          "sise",
          "size",
        ],
        [
          "SysvSharedMemory.openStruct",
          () =>
            SysvSharedMemory.openStruct(
              "private",
              record,
              { create: true, size: 4 } as never,
            ),
          "size",
        ],
        [
          "SysvSemaphoreSet.open",
          () =>
            SysvSemaphoreSet.open("private", {
              create: true,
              count: 1,
              intial: 1,
            } as never),
          "intial",
          "initial",
        ],
        [
          "SysvSemaphoreSet.operate",
          () => sysvSet.operate([{ delta: -1 }], { timout: 1 } as never),
          "timout",
          "timeout",
        ],
        [
          "SysvSemaphoreSet.operate (an operation)",
          () => sysvSet.tryOperate([{ indx: 0, delta: -1 } as never]),
          "indx",
          "index",
        ],
        [
          "SysvSemaphoreSet.operateSync",
          () => sysvSet.operateSync([{ delta: 1 }], { signal: 1 } as never),
          "signal",
        ],
        [
          "SysvSemaphoreSet.wait",
          () => sysvSet.wait(0, { cout: 1 } as never),
          "cout",
          "count",
        ],
        [
          "SysvSemaphoreSet.tryWait",
          () => sysvSet.tryWait(0, { timeout: 1 } as never),
          "timeout",
        ],
        [
          "SysvSemaphoreSet.waitSync",
          () => sysvSet.waitSync(0, { signal: 1 } as never),
          "signal",
        ],
        [
          "SysvSemaphoreSet.post",
          () => sysvSet.post(0, { undoo: true } as never),
          "undoo",
          "undo",
        ],
        [
          "SysvSemaphoreSet.lock",
          () => sysvSet.lock(0, { count: 1 } as never),
          "count",
        ],
        [
          "FileLock.open",
          () => FileLock.open(`${dir}/x`, { creat: true } as never),
          "creat",
          "create",
        ],
        [
          "FileLock.tryLock",
          () => fileLock.tryLock({ timeout: 1 } as never),
          "timeout",
        ],
        [
          "FileLock.lock",
          () => fileLock.lock({ shard: true } as never),
          "shard",
          "shared",
        ],
        [
          "FileLock.lockSync",
          () => fileLock.lockSync({ signal: 1 } as never),
          "signal",
        ],
        [
          "FileLock.holder",
          () => fileLock.holder({ timeout: 1 } as never),
          "timeout",
        ],
        [
          "listSysvObjects",
          () => listSysvObjects({ kind: ["sysv-shm"] } as never),
          "kind",
          "kinds",
        ],
        [
          "planSysvCollection",
          () => planSysvCollection({ all: true } as never),
          "all",
        ],
      ];
      for (const [what, call, key, meant] of cases) {
        const { threw, calls } = await libcCallsDuring(call);
        assert(
          threw instanceof TypeError,
          `${what}: expected a TypeError, got ${threw}`,
        );
        assertStringIncludes(threw.message, `unknown option "${key}"`, what);
        assertStringIncludes(threw.message, "(known options: ", what);
        if (meant) {
          assertStringIncludes(threw.message, `did you mean "${meant}"?`, what);
        }
        assertEquals(
          calls,
          [],
          `${what}: C functions were called before the error`,
        );
      }
    } finally {
      subscriber.close();
      publisher.close();
      fileLock.close();
      sysvSet.close();
      sysvQueue.close();
      caller.close();
      framed.close();
      mapped.close();
      semaphore.close();
      mutex.close();
      memory.close();
      queue.close();
      await Deno.remove(dir, { recursive: true });
    }
  }),
);
