import { fromFileUrl } from "@std/path";
import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import { MessageQueue, SharedMemory, SysvSharedMemory } from "../mod.ts";
import {
  objectExists,
  removeObject,
  removeSysvObject,
} from "../mechanisms/inventory.ts";
import { leakChecked, skip, uniqueKey, uniqueName } from "./_helpers.ts";
import {
  runArgv,
  UNMOUNTED_MISSING,
  withoutQueueDirectory,
} from "./_machine.ts";

const FIXTURE = fromFileUrl(
  new URL("./fixtures/leak_probe.ts", import.meta.url),
);

Deno.test({
  name:
    "leakChecked() fails a test that leaves a message queue behind where /dev/mqueue is not mounted",
  ignore: skip("the leak check without /dev/mqueue", UNMOUNTED_MISSING),
  fn: async () => {
    const name = uniqueName("leak-probe-mq");
    try {
      const result = await runArgv(withoutQueueDirectory([
        Deno.execPath(),
        "run",
        "--quiet",
        "--allow-ffi",
        "--allow-read",
        "--allow-write=/dev/mqueue,/dev/shm",
        FIXTURE,
        name,
      ]));
      assertEquals(result.code, 0, result.stderr);
      assertEquals(
        result.stdout.trim(),
        `failed: objects left behind: message queue ${name} (found by name)`,
      );
      assert(objectExists("mq", name), "the probe did not leak its queue");
    } finally {
      if (objectExists("mq", name)) removeObject("mq", name);
    }
  },
});

Deno.test(
  "leakChecked() fails a test that leaves a shared memory object behind",
  async (t) => {
    const name = uniqueName("leak-shm");
    try {
      const check = leakChecked(() => {
        SharedMemory.open(name, { create: true, size: 64 }).close();
      });
      const error = await assertRejects(() => check(t));
      assertMatch(
        (error as Error).message,
        new RegExp(
          `^objects left behind: /dev/shm${name}, shared memory ${name} \\(found by name\\)$`,
        ),
      );
    } finally {
      if (objectExists("shm", name)) removeObject("shm", name);
    }
  },
);

Deno.test(
  "leakChecked() passes a test that removes what it created",
  async (t) => {
    const name = uniqueName("leak-none");
    await leakChecked(() => {
      MessageQueue.open(name, { create: true, unlinkOnClose: true }).close();
    })(t);
  },
);

Deno.test(
  "leakChecked() fails a test that leaves a descriptor open, naming where it points",
  async (t) => {
    const path = await Deno.makeTempFile({ prefix: "ipckit-test-leak-fd-" });
    let file: Deno.FsFile | undefined;
    try {
      const check = leakChecked(() => {
        file = Deno.openSync(path, { read: true });
      });
      const error = await assertRejects(() => check(t));
      assertMatch(
        (error as Error).message,
        new RegExp(
          `^descriptors left open 1000 ms after the test: fd \\d+ -> ${path}$`,
        ),
      );
    } finally {
      file?.close();
      await Deno.remove(path);
    }
  },
);

Deno.test(
  "leakChecked() does not count the descriptors Deno makes for the process's first signal binding",
  async () => {
    // In a process of its own: here the test runner may have bound one.
    const result = await runArgv([
      Deno.execPath(),
      "run",
      "--quiet",
      "--allow-ffi",
      "--allow-read",
      "--allow-write=/dev/mqueue,/dev/shm",
      FIXTURE,
      "--first-signal",
    ]);
    assertEquals(result.code, 0, result.stderr);
    assertEquals(result.stdout.trim(), "passed");
  },
);

Deno.test(
  "leakChecked() gives a descriptor that closes soon after the test time to settle",
  async (t) => {
    const path = await Deno.makeTempFile({ prefix: "ipckit-test-leak-late-" });
    let closed: Promise<void> | undefined;
    try {
      await leakChecked(() => {
        const file = Deno.openSync(path, { read: true });
        closed = new Promise((resolve) =>
          setTimeout(() => {
            file.close();
            resolve();
          }, 100)
        );
      })(t);
    } finally {
      await closed;
      await Deno.remove(path);
    }
  },
);

Deno.test(
  "leakChecked() fails a test that leaves a System V object behind, as ipcs would show it",
  async (t) => {
    const key = uniqueKey();
    let id: number | undefined;
    try {
      const check = leakChecked(() => {
        id = SysvSharedMemory.open(key, { create: true, size: 64 }).id;
        // Closed (detached) but never removed: it stays in ipcs.
      });
      const error = await assertRejects(() => check(t));
      assertEquals(
        (error as Error).message,
        `objects left behind: System V shm id ${id} key 0x${
          key.toString(16).padStart(8, "0")
        }`,
      );
    } finally {
      if (id !== undefined) removeSysvObject("sysv-shm", id);
    }
  },
);
