import { assertEquals, assertRejects } from "@std/assert";
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

Deno.test(
  "Every test that can be ignored says why: no file sets ignore but through skip() or testNeeding()",
  async () => {
    const silent: string[] = [];
    for await (const entry of Deno.readDir(new URL(".", import.meta.url))) {
      if (!entry.isFile || !entry.name.endsWith(".ts")) continue;
      const text = await Deno.readTextFile(
        new URL(entry.name, import.meta.url),
      );
      text.split("\n").forEach((line, index) => {
        if (/^\s*(\/\/|\*)/.test(line)) return;
        const ignore = /\bignore\s*:\s*(.*)$/.exec(line);
        if (ignore && !/^skip\(/.test(ignore[1])) {
          silent.push(`${entry.name}:${index + 1}: ${line.trim()}`);
        }
        if (/\bignore\s*,/.test(line) || /Deno\.test\.ignore\(/.test(line)) {
          silent.push(`${entry.name}:${index + 1}: ${line.trim()}`);
        }
      });
    }
    assertEquals(silent, []);
  },
);
