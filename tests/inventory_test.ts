import { assertEquals, assertRejects, assertThrows } from "@std/assert";
import { MessageQueue, SharedMemory } from "../mod.ts";
import {
  findObjects,
  formatObjectName,
  type ListedObject,
  listObjects,
  objectDetails,
  objectExists,
  parseObjectName,
  planCollection,
  removeObject,
  type UninspectedProcess,
} from "../mechanisms/inventory.ts";
import { judge } from "../mechanisms/_inventory/collect.ts";
import { leakChecked, uniqueName } from "./_helpers.ts";

const bytes = (...values: number[]) => new Uint8Array(values);
const utf8 = (text: string) => new TextEncoder().encode(text);

Deno.test("formatObjectName() escapes bytes that are not UTF-8, control characters and backslashes", () => {
  const cases: [Uint8Array, string][] = [
    [utf8("/jobs"), "/jobs"],
    [bytes(0x2f, 0x63, 0x61, 0x66, 0xe9), "/caf\\xe9"], // Latin-1 é
    [utf8("/café"), "/café"], // UTF-8 é stays itself
    [utf8("/a\\b"), "/a\\\\b"],
    [utf8("/line\nbreak\x7f"), "/line\\x0abreak\\x7f"],
    [utf8("/🦕"), "/🦕"],
    [bytes(0x2f, 0xc0, 0xaf), "/\\xc0\\xaf"], // overlong "/"
    [bytes(0x2f, 0xed, 0xa0, 0x80), "/\\xed\\xa0\\x80"], // an encoded surrogate
    [bytes(0x2f, 0xf0, 0x9f, 0xa6), "/\\xf0\\x9f\\xa6"], // a truncated sequence
    [bytes(0x2f, 0xf4, 0x90, 0x80, 0x80), "/\\xf4\\x90\\x80\\x80"], // past U+10FFFF
  ];
  for (const [name, shown] of cases) {
    assertEquals(formatObjectName(name), shown);
    assertEquals(parseObjectName(shown), name, `parsing ${shown}`);
  }
});

Deno.test("parseObjectName() rejects a backslash that starts no escape, and lone surrogates", () => {
  assertThrows(
    () => parseObjectName("/caf\\e9"),
    TypeError,
    "a backslash must start \\\\ (a backslash) or \\xHH (one byte in hex)",
  );
  assertThrows(
    () => parseObjectName("/trailing\\"),
    TypeError,
    "a backslash must start",
  );
  assertThrows(
    () => parseObjectName("/x\\xZ1"),
    TypeError,
    "a backslash must start",
  );
  assertThrows(
    () => parseObjectName("/\ud800"),
    TypeError,
    "lone UTF-16 surrogate",
  );
  assertEquals(parseObjectName("/\\xE9"), bytes(0x2f, 0xe9));
});

function object(overrides: Partial<ListedObject> = {}): ListedObject {
  return {
    kind: "shm",
    name: "/app-x",
    nameBytes: utf8("/app-x"),
    path: "/dev/shm/app-x",
    mode: 0o600,
    uid: 1000,
    mtimeMs: 0,
    dev: 1n,
    ino: 2n,
    holders: [],
    ...overrides,
  };
}

function process(
  pid: number,
  uid: number,
  explanation = "it is not dumpable",
): UninspectedProcess {
  return { pid, command: "agent", uid, reason: "not-dumpable", explanation };
}

Deno.test("the gc rule keeps an object whose owner runs a process that could not be inspected", () => {
  const verdict = judge(
    object(),
    [process(812, 1000), process(900, 1000)],
    1000,
  );
  assertEquals(verdict.remove, false);
  assertEquals(
    verdict.reason,
    "pid 812 (agent) runs as you and could not be inspected: it is not dumpable (and 1 more such process)",
  );
  assertEquals(verdict.couldHold.map((p) => p.pid), [812, 900]);
});

Deno.test("the gc rule keeps an object whose mode lets others open it when any process could not be inspected", () => {
  const verdict = judge(
    object({ mode: 0o640 }),
    [process(1, 0, "it runs as another user")],
    1000,
  );
  assertEquals(verdict.remove, false);
  assertEquals(
    verdict.reason,
    "its mode 0640 lets other users open it, and pid 1 (agent), which runs as root, could not be inspected: it runs as another user",
  );
});

Deno.test("the gc rule keeps root's objects for a root process that root could not inspect", () => {
  const verdict = judge(
    object({ uid: 0 }),
    [process(1, 0, "it holds capabilities you do not (cap_sys_resource)")],
    0,
  );
  assertEquals(verdict.remove, false);
  assertEquals(
    verdict.reason,
    "pid 1 (agent) runs as you and could not be inspected: it holds capabilities you do not (cap_sys_resource)",
  );
});

Deno.test("the gc rule names the owner when it is not the caller", () => {
  const verdict = judge(object({ uid: 1001 }), [process(7, 1001)], 0);
  assertEquals(
    verdict.reason,
    "pid 7 (agent) runs as uid 1001, its owner, and could not be inspected: it is not dumpable",
  );
});

Deno.test("the gc rule does not assume that root's processes hold a user's private objects (the one gap)", () => {
  const verdict = judge(
    object(),
    [process(1, 0, "it runs as another user")],
    1000,
  );
  assertEquals(verdict.remove, true);
  assertEquals(verdict.reason, "no process has it open or mapped");
});

Deno.test("the gc rule keeps what a live process holds, whatever else is known", () => {
  const verdict = judge(
    object({ holders: [{ pid: 42, command: "app" }] }),
    [],
    1000,
  );
  assertEquals(verdict.remove, false);
  assertEquals(verdict.reason, "held by pid 42");
});

Deno.test("planCollection() refuses to guess which names are the caller's", async () => {
  await assertRejects(
    () => planCollection({}),
    TypeError,
    "prefix (e.g. /myapp-) or all",
  );
  await assertRejects(
    () => planCollection({ prefix: "/a-", all: true }),
    TypeError,
    "exclude each other",
  );
  await assertRejects(
    () => planCollection({ prefix: "/" }),
    TypeError,
    "say all",
  );
  await assertRejects(
    // deno-lint-ignore no-explicit-any
    () => listObjects({ kinds: ["pipe" as any] }),
    TypeError,
    'Cannot use kind "pipe"',
  );
});

Deno.test(
  "objectExists(), findObjects() and objectDetails() reach a queue by name, and removeObject() removes it",
  leakChecked(async () => {
    const name = uniqueName("inventory-mq");
    try {
      {
        using queue = MessageQueue.open<string>(name, {
          create: true,
          maxMessages: 3,
        });
        queue.trySend("waiting");
      }
      assertEquals(objectExists("mq", name), true);
      assertEquals(objectExists("shm", name), false);
      const { objects } = await findObjects(name, { holders: false });
      assertEquals(objects.map((found) => found.kind), ["mq"]);
      const details = objectDetails(objects[0]);
      assertEquals(details.maxMessages, 3);
      assertEquals(details.currentMessages, 1);
      assertEquals(details.queuedBytes, JSON.stringify("waiting").length);
      removeObject("mq", name);
      assertEquals(objectExists("mq", name), false);
      assertThrows(
        () => removeObject("mq", name),
        Deno.errors.NotFound,
        "it does not exist",
      );
    } finally {
      if (objectExists("mq", name)) removeObject("mq", name);
    }
  }),
);

Deno.test(
  "listObjects() lists shared memory with its size and the holder in this process's children only",
  leakChecked(async () => {
    const name = uniqueName("inventory-shm");
    using _memory = SharedMemory.open(name, {
      create: true,
      size: 4096,
      unlinkOnClose: true,
    });
    const { objects } = await listObjects({ kinds: ["shm"], prefix: name });
    assertEquals(objects.map(({ name, size }) => ({ name, size })), [{
      name,
      size: 4096,
    }]);
    // The scan skips the process that runs it.
    assertEquals(objects[0].holders, []);
  }),
);
