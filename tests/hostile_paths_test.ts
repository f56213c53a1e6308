/**
 * Hostile names and paths: symbolic links on the way to a file, `..` after
 * a link, final links, paths swapped between check and open by another
 * process, and names that are not what they seem (NUL, `%00`, lone
 * surrogates, overlong). Permission cases run in a child whose
 * `--allow-read` covers only an "allowed" directory; the file outside it
 * says `OUTSIDE`, so any output with that word is an escape.
 */
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "@std/assert";
import {
  Fifo,
  MappedFile,
  MessageQueue,
  Mutex,
  Semaphore,
  SharedMemory,
} from "../mod.ts";
import { listDirectory } from "../ffi/dir.ts";
import {
  leakChecked,
  runFixture,
  spawnFixture,
  uniqueName,
} from "./_helpers.ts";

/**
 * A temporary tree: `<root>/allowed` (a file `x` reading `inside`) and
 * `<root>/outside` (a file `x` reading `OUTSIDE`, a FIFO `f`, and an empty
 * directory `sub`). The body gets the root; the tree is removed after it.
 */
function inTree(
  body: (root: string) => Promise<void> | void,
): (t: Deno.TestContext) => Promise<void> {
  return leakChecked(async () => {
    const root = await Deno.makeTempDir({ prefix: "ipckit-test-hostile-" });
    try {
      await Deno.mkdir(`${root}/allowed`);
      await Deno.mkdir(`${root}/outside/sub`, { recursive: true });
      await Deno.writeTextFile(`${root}/allowed/x`, "inside");
      await Deno.writeTextFile(`${root}/outside/x`, "OUTSIDE");
      await run("mkfifo", [`${root}/outside/f`]);
      await body(root);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  });
}

/** Runs a program and fails the test if it fails. */
async function run(program: string, args: string[]): Promise<void> {
  const { success, stderr } = await new Deno.Command(program, {
    args,
    stderr: "piped",
  }).output();
  assert(
    success,
    `${program} ${args.join(" ")}: ${new TextDecoder().decode(stderr)}`,
  );
}

/** Deno.symlink needs unscoped permissions; ln does not. */
function symlink(target: string, path: string): Promise<void> {
  return run("ln", ["-s", target, path]);
}

/** Flags of a child that may read only `<root>/allowed`. */
function allowedOnly(root: string): string[] {
  return ["--allow-ffi", `--allow-read=${root}/allowed`];
}

/**
 * On dispose, removes whatever a regression let through under the name a
 * lone surrogate aliases to (U+FFFD), so a failing run leaves nothing.
 */
function removingAliases(name: string): Disposable {
  return {
    [Symbol.dispose](): void {
      const alias = name.toWellFormed();
      for (
        const unlink of [
          MessageQueue.unlink,
          SharedMemory.unlink,
          Semaphore.unlink,
        ]
      ) {
        try {
          unlink(alias);
        } catch (error) {
          if (!(error instanceof Deno.errors.NotFound)) throw error;
        }
      }
    },
  };
}

/** Runs hostile_open.ts in a child; its one line of output. */
async function openInChild(flags: string[], args: string[]): Promise<string> {
  const result = await runFixture("hostile_open.ts", flags, args);
  assertEquals(result.code, 0, result.stderr);
  return result.stdout.trim();
}

Deno.test(
  "MappedFile.open and Fifo.openReader refuse `..` after a link that leads outside the allowed directory",
  inTree(async (root) => {
    // The text says allowed/x; the kernel goes to outside/sub, then up.
    await symlink(`${root}/outside/sub`, `${root}/allowed/link`);
    const flags = allowedOnly(root);
    assertEquals(
      await openInChild(flags, ["map", `${root}/allowed/link/../x`]),
      `NotCapable: Requires read access to "${root}/outside/x" (where "${root}/allowed/link/../x" leads, links followed), run again with --allow-read=${root}/outside/x`,
    );
    assertMatch(
      await openInChild(flags, ["fifo-read", `${root}/allowed/link/../f`]),
      new RegExp(`^NotCapable: Requires read access to "${root}/outside/f"`),
    );
  }),
);

Deno.test(
  "MappedFile.open and Fifo.openReader refuse a file reached through a symlinked directory inside the allowed one",
  inTree(async (root) => {
    await symlink("../outside", `${root}/allowed/dirlink`);
    const flags = allowedOnly(root);
    assertMatch(
      await openInChild(flags, ["map", `${root}/allowed/dirlink/x`]),
      new RegExp(`^NotCapable: Requires read access to "${root}/outside/x"`),
    );
    assertMatch(
      await openInChild(flags, ["fifo-read", `${root}/allowed/dirlink/f`]),
      new RegExp(`^NotCapable: Requires read access to "${root}/outside/f"`),
    );
    // Allowing where the link leads is what it takes.
    assertEquals(
      await openInChild(
        [...flags, `--allow-read=${root}/outside`],
        ["map", `${root}/allowed/dirlink/x`],
      ),
      "ok OUTSIDE",
    );
  }),
);

Deno.test(
  "MappedFile.open and Fifo.openReader never follow a final symbolic link",
  inTree(async (root) => {
    await symlink("../outside/x", `${root}/allowed/flink`);
    await symlink("../outside/f", `${root}/allowed/fifolink`);
    const flags = allowedOnly(root);
    assertEquals(
      await openInChild(flags, ["map", `${root}/allowed/flink`]),
      `IpcError: Cannot map file "${root}/allowed/flink": it is a symbolic link, not a regular file; ipckit does not follow symbolic links`,
    );
    assertMatch(
      await openInChild(flags, ["fifo-read", `${root}/allowed/fifolink`]),
      /^IpcError: .*ipckit does not follow symbolic links/,
    );
    // Even with permission everywhere, a final link is not followed.
    assertMatch(
      await openInChild(["--allow-ffi", `--allow-read=${root}`], [
        "map",
        `${root}/allowed/flink`,
      ]),
      /it is a symbolic link/,
    );
  }),
);

Deno.test(
  "The path checked is the path opened while another process flips a link on it between inside and outside",
  inTree(async (root) => {
    await Deno.mkdir(`${root}/allowed/real`);
    await Deno.writeTextFile(`${root}/allowed/real/x`, "inside");
    await symlink("real", `${root}/allowed/d`);
    await symlink("../outside", `${root}/allowed/e`);
    const flipper = spawnFixture("flip.ts", ["--allow-ffi"], [
      `${root}/allowed/d`,
      `${root}/allowed/e`,
    ]);
    const reader = flipper.stdout.getReader();
    try {
      const { value } = await reader.read();
      assertEquals(new TextDecoder().decode(value).trim(), "ready");
      const line = await openInChild(allowedOnly(root), [
        "race",
        `${root}/allowed/d/x`,
        "1500",
      ]);
      const counts = JSON.parse(line);
      assertEquals(counts.other, 0, `read outside the allowed tree: ${line}`);
      assert(counts.inside > 0, `never opened the allowed file: ${line}`);
      assert(
        (counts.refused.NotCapable ?? 0) > 0,
        `the flip never showed (the race did not run): ${line}`,
      );
    } finally {
      reader.releaseLock();
      flipper.kill("SIGKILL");
      await flipper.output();
    }
  }),
);

Deno.test(
  "Fifo.unlink removes the FIFO the kernel's path leads to, never the regular file the text of the path names",
  inTree(async (root) => {
    await Deno.mkdir(`${root}/a/b`, { recursive: true });
    await symlink(`${root}/a/b`, `${root}/link`);
    await Deno.writeTextFile(`${root}/victim`, "keep me");
    await run("mkfifo", [`${root}/a/victim`]);
    // As text this is <root>/victim; the kernel reads <root>/a/b/../victim.
    Fifo.unlink(`${root}/link/../victim`);
    assertEquals(await Deno.readTextFile(`${root}/victim`), "keep me");
    await assertRejects(
      () => Deno.lstat(`${root}/a/victim`),
      Deno.errors.NotFound,
    );
    // A regular file itself is refused and kept.
    assertThrows(
      () => Fifo.unlink(`${root}/victim`),
      Deno.errors.AlreadyExists,
      "it is a regular file, not a FIFO",
    );
    assertEquals(await Deno.readTextFile(`${root}/victim`), "keep me");
  }),
);

Deno.test(
  "Fifo.unlink never removes a regular file that another process swaps in for the FIFO",
  inTree(async (root) => {
    const fifo = `${root}/q`;
    const spare = `${root}/spare`;
    await run("mkfifo", [fifo]);
    await Deno.writeTextFile(spare, "precious");
    const flipper = spawnFixture("flip.ts", ["--allow-ffi"], [fifo, spare]);
    const reader = flipper.stdout.getReader();
    let removed = 0;
    let refused = 0;
    try {
      const { value } = await reader.read();
      assertEquals(new TextDecoder().decode(value).trim(), "ready");
      const until = performance.now() + 1500;
      while (performance.now() < until) {
        try {
          Fifo.unlink(fifo);
          removed++;
          // The regular file is at the other name: put a FIFO back here.
          Fifo.create(fifo);
        } catch (error) {
          if (
            !(error instanceof Deno.errors.AlreadyExists) &&
            !(error instanceof Deno.errors.NotFound)
          ) throw error;
          refused++;
        }
        if (refused % 256 === 0) await new Promise((r) => setTimeout(r, 0));
      }
    } finally {
      reader.releaseLock();
      flipper.kill("SIGKILL");
      await flipper.output();
    }
    const texts = [];
    for (const path of [fifo, spare]) {
      const info = await Deno.lstat(path).catch(() => undefined);
      if (info?.isFile) texts.push(await Deno.readTextFile(path));
    }
    assertEquals(texts, ["precious"], "the regular file was removed");
    assert(
      removed > 0 && refused > 0,
      `removed ${removed}, refused ${refused}`,
    );
    const left = [...Deno.readDirSync(root)].map((entry) => entry.name).sort();
    assertEquals(left, ["allowed", "outside", "q", "spare"]);
  }),
);

Deno.test(
  "A failed MappedFile.open({ create: true }) removes the file it created, and only that file",
  inTree(async (root) => {
    await Deno.mkdir(`${root}/a/b`, { recursive: true });
    await symlink(`${root}/a/b`, `${root}/link`);
    await Deno.writeTextFile(`${root}/x`, "unrelated");
    // The kernel creates <root>/a/x; no file system has room for 2^52 bytes.
    const error = assertThrows(
      () =>
        MappedFile.open(`${root}/link/../x`, { create: true, size: 2 ** 52 }),
      Error,
      "it needs",
    );
    assertEquals((error as Error & { code: string }).code, "ENOSPC");
    assertEquals(await Deno.readTextFile(`${root}/x`), "unrelated");
    await assertRejects(() => Deno.lstat(`${root}/a/x`), Deno.errors.NotFound);
  }),
);

Deno.test(
  "MappedFile.open refuses a FIFO with readOnly or shared: false instead of blocking",
  inTree(async (root) => {
    const fifo = `${root}/allowed/fifo`;
    await run("mkfifo", [fifo]);
    for (const options of [{ readOnly: true }, { shared: false }, {}]) {
      // In a child with a deadline: a blocking open would hang this thread.
      const script = new URL("./fixtures/hostile_open.ts", import.meta.url)
        .pathname;
      const output = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--quiet",
          "--allow-ffi",
          `--allow-read=${root}`,
          `--allow-write=${root}`,
          script,
          "map",
          fifo,
          JSON.stringify(options),
        ],
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(15_000),
      }).output();
      assertEquals(
        new TextDecoder().decode(output.stdout).trim(),
        `IpcError: Cannot map file "${fifo}": it is a FIFO, not a regular file`,
        `with ${JSON.stringify(options)} (exit ${output.code}${
          output.signal ? `, ${output.signal}` : ""
        })`,
      );
    }
  }),
);

Deno.test(
  "file: URLs are decoded once, with @std/path, and a %00 in one is refused like a NUL",
  inTree(async (root) => {
    await Deno.writeTextFile(`${root}/a`, "a");
    // A NUL would end the C string: the rest of the name would be dropped.
    const nul = new URL(`file://${root}/a%00b`);
    assertThrows(() => MappedFile.open(nul), TypeError, "NUL");
    assertThrows(() => Fifo.create(nul), TypeError, "NUL");
    await assertRejects(() => Fifo.openReader(nul), TypeError, "NUL");
    assertThrows(() => Fifo.unlink(nul), TypeError, "NUL");
    assertThrows(
      () => MappedFile.open(new URL(`file://elsewhere${root}/a`)),
      TypeError,
      "must not name a host",
    );
    // Percent-escapes are decoded the same way for every mechanism.
    using fifo = Fifo.create(new URL(`file://${root}/with%20space`));
    assertEquals(fifo.path, `${root}/with space`);
    using file = MappedFile.open(new URL(`file://localhost${root}/a`));
    assertEquals(file.path, `${root}/a`);
  }),
);

Deno.test(
  "Names and paths with a lone surrogate, a NUL or too many bytes are refused before any object exists",
  inTree((root) => {
    // Only this test's names: other processes may create objects meanwhile.
    const ours = () => {
      const listed = listDirectory("/dev/shm");
      assert(typeof listed !== "number", "cannot list /dev/shm");
      return listed.filter((entry) => entry.name.includes("ipckit-test-lone"));
    };
    const before = ours();
    // "\uD800" and "\uDBFF" would both be encoded as U+FFFD: one object.
    for (const lone of ["\uD800", "\uDBFF", "\uDC00x"]) {
      const name = `${uniqueName("lone")}${lone}`;
      using _cleanUp = removingAliases(name);
      assertThrows(
        () => MessageQueue.open(name, { create: true }),
        TypeError,
        "lone UTF-16 surrogate",
      );
      assertThrows(
        () => SharedMemory.open(name, { create: true, size: 8 }),
        TypeError,
        "lone UTF-16 surrogate",
      );
      assertThrows(
        () => Semaphore.open(name, { create: true }),
        TypeError,
        "lone UTF-16 surrogate",
      );
      assertThrows(
        () => Mutex.open(name, { create: true }),
        TypeError,
        "lone UTF-16 surrogate",
      );
      assertThrows(() => SharedMemory.unlink(name), TypeError);
      assertThrows(
        () => MappedFile.open(`${root}/f${lone}`, { create: true, size: 8 }),
        TypeError,
        "lone UTF-16 surrogate",
      );
      assertThrows(
        () => Fifo.create(`${root}/f${lone}`),
        TypeError,
        "lone UTF-16 surrogate",
      );
    }
    assertThrows(() => MessageQueue.open("/a\0b", { create: true }), TypeError);
    assertThrows(() => MappedFile.open(`${root}/a\0b`), TypeError, "NUL");
    assertThrows(
      () => SharedMemory.open(`/${"x".repeat(256)}`, { create: true, size: 8 }),
      RangeError,
      "the limit is 255",
    );
    assertThrows(
      () => Fifo.create(`${root}/${"é".repeat(128)}`),
      RangeError,
      "its file name is 256 bytes long, the limit is 255",
    );
    assertThrows(
      () => MappedFile.open(`${root}/${"d/".repeat(2048)}x`),
      RangeError,
      "the limit is 4095",
    );
    for (const path of [`${root}/`, `${root}/..`, `${root}/.`]) {
      assertThrows(() => Fifo.create(path), TypeError, "must name a file");
    }
    // Nothing reached the kernel: no object, no file.
    assertEquals(ours(), before);
    assertEquals(
      [...Deno.readDirSync(root)].map((entry) => entry.name).sort(),
      ["allowed", "outside"],
    );
  }),
);

Deno.test(
  "A Fifo handle refuses to open or remove a FIFO that took the place of its own",
  inTree(async (root) => {
    const path = `${root}/allowed/jobs`;
    const fifo = Fifo.create(path);
    // Moved aside, not removed: a removed inode's number may be reused at
    // once, and device and inode are what identify a FIFO.
    await Deno.rename(path, `${path}.old`);
    await run("mkfifo", [path]);
    await assertRejects(
      () => fifo.openReader(),
      Deno.errors.NotFound,
      "the FIFO this handle knows is no longer there",
    );
    await assertRejects(
      () => fifo.openWriter({ nonBlocking: true }),
      Deno.errors.NotFound,
    );
    assertThrows(() => fifo.unlink(), Deno.errors.NotFound);
    fifo[Symbol.dispose]();
    assert((await Deno.lstat(path)).isFifo, "the other FIFO was removed");
    // The path itself still works for whoever means "whatever is there".
    await using _reader = await Fifo.openReader(path);
    Fifo.unlink(path);
    Fifo.unlink(`${path}.old`);
  }),
);
