/**
 * Permission cases across mechanisms that no module's own tests covered:
 * each runs a child with too few flags and checks both the `NotCapable`
 * message and that the kernel object was left as it was.
 */
import { assertEquals } from "@std/assert";
import { MessageQueue, SharedMemory } from "../mod.ts";
import { leakChecked, runFixture, uniqueName } from "./_helpers.ts";

Deno.test(
  "MessageQueue.open of an existing queue for sending without --allow-write is NotCapable and sends nothing",
  leakChecked(async () => {
    const name = uniqueName("perm-mq");
    using queue = MessageQueue.open(name, {
      create: true,
      unlinkOnClose: true,
    });
    const result = await runFixture(
      "mq_open_only.ts",
      ["--allow-ffi", "--allow-read=/dev/mqueue"],
      [name, "send"],
    );
    assertEquals(result.code, 0, result.stderr);
    assertEquals(
      result.stdout.trim(),
      `NotCapable: Requires write access to "/dev/mqueue${name}", run again with --allow-write=/dev/mqueue`,
    );
    assertEquals(queue.attributes().currentMessages, 0);
    // The same child with the flag sends: the refusal was the permission.
    const allowed = await runFixture(
      "mq_open_only.ts",
      ["--allow-ffi", "--allow-read=/dev/mqueue", "--allow-write=/dev/mqueue"],
      [name, "send"],
    );
    assertEquals(allowed.stdout.trim(), "opened", allowed.stderr);
    assertEquals(queue.attributes().currentMessages, 1);
  }),
);

Deno.test(
  "A read-only SharedMemory handle with unlinkOnClose needs --allow-write, and without it the object survives",
  leakChecked(async () => {
    const name = uniqueName("perm-shm");
    using memory = SharedMemory.open(name, {
      create: true,
      size: 4096,
      unlinkOnClose: true,
    });
    const readOnly = ["--allow-ffi", "--allow-read=/dev/shm"];
    const refused = await runFixture("region_open.ts", readOnly, [
      "shm",
      name,
      JSON.stringify({ readOnly: true, unlinkOnClose: true }),
    ]);
    assertEquals(refused.code, 0, refused.stderr);
    assertEquals(
      refused.stdout.trim(),
      `NotCapable: Requires write access to "/dev/shm${name}", run again with --allow-write=/dev/shm`,
    );
    // Read-only without unlinkOnClose needs only --allow-read, and closing it
    // leaves the object.
    const opened = await runFixture("region_open.ts", readOnly, [
      "shm",
      name,
      JSON.stringify({ readOnly: true }),
    ]);
    assertEquals(opened.stdout.trim(), "ok 4096", opened.stderr);
    using again = SharedMemory.open(name, { readOnly: true });
    assertEquals(again.size, memory.size);
  }),
);
