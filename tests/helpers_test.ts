import { assertRejects } from "@std/assert";
import { SharedMemory } from "../mod.ts";
import { leakChecked, uniqueName } from "./_helpers.ts";

const noContext = {} as Deno.TestContext;

Deno.test(
  "leakChecked() ignores objects that another test run makes meanwhile",
  async () => {
    // The name another process's uniqueName() gives: its pid, not ours.
    const foreign = uniqueName("helpers").replace(`-${Deno.pid}-`, "-1-");
    try {
      await leakChecked(() => {
        SharedMemory.open(foreign, { create: true, size: 16 }).close();
      })(noContext);
    } finally {
      SharedMemory.unlink(foreign);
    }
  },
);

Deno.test(
  "leakChecked() fails a test that leaves one of its own objects behind",
  async () => {
    const name = uniqueName("helpers");
    try {
      await assertRejects(
        () =>
          leakChecked(() => {
            SharedMemory.open(name, { create: true, size: 16 }).close();
          })(noContext),
        Error,
        `objects left behind: /dev/shm${name}`,
      );
    } finally {
      SharedMemory.unlink(name);
    }
  },
);
