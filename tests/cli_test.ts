import { assert, assertEquals, assertMatch } from "@std/assert";
import {
  codecs,
  MessageQueue,
  Semaphore,
  SEMAPHORE_SIZE,
  SharedMemory,
} from "../mod.ts";
import {
  commandSucceeds,
  leakChecked,
  spawnFixture,
  uniqueName,
} from "./_helpers.ts";

/** The flags the `ipckit` task and the install line give the CLI. */
const CLI_FLAGS = [
  "--allow-ffi",
  "--allow-read=/dev/shm,/dev/mqueue,/proc",
  "--allow-write=/dev/shm,/dev/mqueue",
];
const HOLD_FLAGS = [
  "--allow-ffi",
  "--allow-read=/dev/shm,/dev/mqueue",
  "--allow-write=/dev/shm",
];
const CLI = new URL("../cli.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function ipckit(
  args: string[],
  flags: string[] = CLI_FLAGS,
): Promise<CliResult> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...flags, CLI, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Runs the CLI and asserts it succeeded, showing its stderr if not. */
async function ipckitOk(args: string[]): Promise<string> {
  const result = await ipckit(args);
  assertEquals(result.code, 0, `ipckit ${args.join(" ")}: ${result.stderr}`);
  return result.stdout;
}

/** Reads lines from a child's stream until one satisfies `done`. */
async function readUntil(
  stream: ReadableStream<Uint8Array>,
  done: (text: string) => boolean,
): Promise<string> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  try {
    while (!done(text)) {
      const { value, done: ended } = await reader.read();
      if (ended) break;
      text += value;
    }
  } finally {
    reader.releaseLock();
  }
  return text;
}

/** Starts the holder fixture and waits until it holds every object. */
async function holdInChild(objects: string[]): Promise<Deno.ChildProcess> {
  const child = spawnFixture("ipc_hold.ts", HOLD_FLAGS, objects);
  const said = await readUntil(child.stdout, (text) => text.includes("\n"));
  if (!said.includes("holding")) {
    const { stderr } = await child.output();
    throw new Error(`holder failed: ${said}${decoder.decode(stderr)}`);
  }
  return child;
}

async function stop(child: Deno.ChildProcess): Promise<void> {
  child.kill("SIGKILL");
  await child.status;
  await child.stderr.cancel();
  await child.stdout.cancel().catch(() => {});
}

function exists(kind: "mq" | "shm" | "sem", name: string): boolean {
  try {
    if (kind === "mq") MessageQueue.open(name, { write: false }).close();
    else if (kind === "shm") {
      SharedMemory.open(name, { readOnly: true }).close();
    } else Semaphore.open(name).close();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

function unlinkQuietly(kind: "mq" | "shm" | "sem", name: string): void {
  try {
    if (kind === "mq") MessageQueue.unlink(name);
    else if (kind === "shm") SharedMemory.unlink(name);
    else Semaphore.unlink(name);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

interface ListedObject {
  kind: string;
  name: string;
  size: number | null;
  mode: string;
  uid: number;
  holders: { pid: number; command?: string }[];
}

Deno.test(
  "ipckit ls shows each kind with its size and the pid of a child that holds it",
  leakChecked(async () => {
    const mq = uniqueName("cli-ls-mq");
    const shm = uniqueName("cli-ls-shm");
    const sem = uniqueName("cli-ls-sem");
    const unheld = uniqueName("cli-ls-unheld");
    try {
      await using queue = MessageQueue.open(mq, {
        create: true,
        codec: codecs.text(),
      });
      await queue.send("hello");
      await queue.send("world!");
      SharedMemory.open(shm, { create: true, size: 12_288 }).close();
      Semaphore.open(sem, { create: true }).close();
      SharedMemory.open(unheld, { create: true, size: 100 }).close();
      queue.close();

      const child = await holdInChild([`mq:${mq}`, `shm:${shm}`, `sem:${sem}`]);
      try {
        const listing = JSON.parse(await ipckitOk(["ls", "--json"]));
        const byName = new Map<string, ListedObject>(
          listing.objects.map((object: ListedObject) => [object.name, object]),
        );
        const expected: [string, string, number][] = [
          [mq, "mq", 11], // bytes of the two waiting messages
          [shm, "shm", 12_288],
          [sem, "sem", SEMAPHORE_SIZE],
          [unheld, "shm", 100],
        ];
        for (const [name, kind, size] of expected) {
          const object = byName.get(name);
          assert(object, `${name} is not listed`);
          assertEquals(object.kind, kind, name);
          assertEquals(object.size, size, name);
          assertEquals(object.mode, "0600", name);
        }
        for (const name of [mq, shm, sem]) {
          assertEquals(
            byName.get(name)!.holders.map((holder) => holder.pid),
            [child.pid],
            `holders of ${name}`,
          );
        }
        assertEquals(byName.get(unheld)!.holders, []);

        const table = await ipckitOk(["ls", "--kind", "shm"]);
        const row = table.split("\n").find((line) => line.includes(shm));
        assert(row, table);
        assertMatch(row, new RegExp(`^shm\\s+${shm}\\s+12288\\s+0600\\s`));
        assert(row.includes(`${child.pid} (deno)`), row);
        assert(!table.includes(mq), "--kind shm listed a queue");
      } finally {
        await stop(child);
      }
    } finally {
      unlinkQuietly("mq", mq);
      unlinkQuietly("shm", shm);
      unlinkQuietly("sem", sem);
      unlinkQuietly("shm", unheld);
    }
  }),
);

Deno.test(
  "ipckit stat shows a queue's attributes and a shared memory object's size",
  leakChecked(async () => {
    const mq = uniqueName("cli-stat-mq");
    const shm = uniqueName("cli-stat-shm");
    try {
      {
        await using queue = MessageQueue.open(mq, {
          create: true,
          maxMessages: 4,
          messageSize: 128,
          codec: codecs.text(),
        });
        await queue.send("one");
        await queue.send("three");
      }
      SharedMemory.open(shm, { create: true, size: 8192 }).close();

      const [details] = JSON.parse(await ipckitOk(["stat", mq, "--json"]));
      assertEquals(details.kind, "mq");
      assertEquals(details.maxMessages, 4);
      assertEquals(details.messageSize, 128);
      assertEquals(details.currentMessages, 2);
      assertEquals(details.queuedBytes, 8);

      const text = await ipckitOk(["stat", mq.slice(1), "--kind", "mq"]);
      assertMatch(text, /^\s+max messages:\s+4$/m);
      assertMatch(text, /^\s+current messages:\s+2$/m);

      const shmText = await ipckitOk(["stat", shm]);
      assertMatch(shmText, new RegExp(`^${shm} \\(shared memory\\)$`, "m"));
      assertMatch(shmText, /^\s+size:\s+8192 bytes$/m);

      // Reading the attributes took nothing off the queue.
      await using queue = MessageQueue.open(mq, { codec: codecs.text() });
      assertEquals(queue.attributes().currentMessages, 2);

      const missing = await ipckit(["stat", uniqueName("cli-stat-none")]);
      assertEquals(missing.code, 1);
      assertMatch(
        missing.stderr,
        /no message queue, shared memory or semaphore named/,
      );
    } finally {
      unlinkQuietly("mq", mq);
      unlinkQuietly("shm", shm);
    }
  }),
);

Deno.test(
  "ipckit rm removes objects of each kind by name and asks for --kind when a name is shared",
  leakChecked(async () => {
    const mq = uniqueName("cli-rm-mq");
    const shm = uniqueName("cli-rm-shm");
    const sem = uniqueName("cli-rm-sem");
    const shared = uniqueName("cli-rm-both");
    try {
      MessageQueue.open(mq, { create: true }).close();
      SharedMemory.open(shm, { create: true, size: 64 }).close();
      Semaphore.open(sem, { create: true }).close();
      MessageQueue.open(shared, { create: true }).close();
      SharedMemory.open(shared, { create: true, size: 64 }).close();

      const removed = await ipckitOk(["rm", mq, shm, sem.slice(1)]);
      assertMatch(removed, new RegExp(`removed message queue ${mq}`));
      assertMatch(removed, new RegExp(`removed shared memory ${shm}`));
      assertMatch(removed, new RegExp(`removed semaphore ${sem}`));
      assertEquals(exists("mq", mq), false);
      assertEquals(exists("shm", shm), false);
      assertEquals(exists("sem", sem), false);

      const ambiguous = await ipckit(["rm", shared]);
      assertEquals(ambiguous.code, 2);
      assertMatch(ambiguous.stderr, /add --kind mq or --kind shm/);
      assertEquals(exists("mq", shared), true);
      assertEquals(exists("shm", shared), true);

      await ipckitOk(["rm", "--kind", "shm", shared]);
      assertEquals(exists("shm", shared), false);
      assertEquals(exists("mq", shared), true);

      const again = await ipckit(["rm", "--kind", "shm", shared]);
      assertEquals(again.code, 1);
      assertMatch(
        again.stderr,
        /Cannot unlink shared memory ".*": it does not exist/,
      );
    } finally {
      unlinkQuietly("mq", mq);
      unlinkQuietly("shm", shm);
      unlinkQuietly("sem", sem);
      unlinkQuietly("mq", shared);
      unlinkQuietly("shm", shared);
    }
  }),
);

Deno.test(
  "ipckit gc --dry-run lists but keeps, and gc --prefix removes only unheld objects",
  leakChecked(async () => {
    const prefix = `${uniqueName("cli-gc")}-`;
    const freeShm = `${prefix}free-shm`;
    const freeMq = `${prefix}free-mq`;
    const heldSem = `${prefix}held-sem`;
    const heldShm = `${prefix}held-shm`;
    const outside = uniqueName("cli-gc-outside");
    const all: ["mq" | "shm" | "sem", string][] = [
      ["shm", freeShm],
      ["mq", freeMq],
      ["sem", heldSem],
      ["shm", heldShm],
      ["shm", outside],
    ];
    try {
      SharedMemory.open(freeShm, { create: true, size: 64 }).close();
      MessageQueue.open(freeMq, { create: true }).close();
      Semaphore.open(heldSem, { create: true }).close();
      SharedMemory.open(heldShm, { create: true, size: 64 }).close();
      SharedMemory.open(outside, { create: true, size: 64 }).close();
      const child = await holdInChild([`sem:${heldSem}`, `shm:${heldShm}`]);
      try {
        const dry = await ipckitOk(["gc", "--prefix", prefix, "--dry-run"]);
        assertMatch(
          dry,
          new RegExp(`^would remove\\s+shm\\s+${freeShm}\\s`, "m"),
        );
        assertMatch(
          dry,
          new RegExp(`^would remove\\s+mq\\s+${freeMq}\\s`, "m"),
        );
        assertMatch(
          dry,
          new RegExp(
            `^kept\\s+sem\\s+${heldSem}\\s+held by pid ${child.pid}$`,
            "m",
          ),
        );
        assertMatch(dry, new RegExp(`^kept\\s+shm\\s+${heldShm}\\s`, "m"));
        assertMatch(dry, /would remove 2, keep 2 .*nothing was removed/);
        assert(!dry.includes(outside), "gc looked outside its prefix");
        for (const [kind, name] of all) {
          assertEquals(exists(kind, name), true, `--dry-run removed ${name}`);
        }

        const real = await ipckitOk(["gc", "--prefix", prefix]);
        assertMatch(real, new RegExp(`^removed\\s+shm\\s+${freeShm}\\s`, "m"));
        assertMatch(real, new RegExp(`^removed\\s+mq\\s+${freeMq}\\s`, "m"));
        assertMatch(real, /removed 2, kept 2/);
        assertEquals(exists("shm", freeShm), false);
        assertEquals(exists("mq", freeMq), false);
        assertEquals(exists("sem", heldSem), true);
        assertEquals(exists("shm", heldShm), true);
        assertEquals(exists("shm", outside), true);
      } finally {
        await stop(child);
      }
      // Once the holder is gone, so is the reason to keep its objects.
      const after = await ipckitOk(["gc", "--prefix", prefix]);
      assertMatch(after, /removed 2, kept 0/);
      assertEquals(exists("sem", heldSem), false);
      assertEquals(exists("shm", heldShm), false);
      assertEquals(exists("shm", outside), true);
    } finally {
      for (const [kind, name] of all) unlinkQuietly(kind, name);
    }
  }),
);

/** Runs deno as the user `nobody` (uid 65534) with its own cache directory. */
async function asNobody(
  denoDir: string,
  args: string[],
): Promise<CliResult> {
  const output = await new Deno.Command("setpriv", {
    args: [
      "--reuid=65534",
      "--regid=65534",
      "--clear-groups",
      "env",
      `DENO_DIR=${denoDir}`,
      `HOME=${denoDir}`,
      Deno.execPath(),
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

Deno.test(
  "ipckit gc run by a user who cannot inspect every process keeps what others could hold",
  leakChecked(async () => {
    const canSwitch = Deno.uid() === 0 &&
      await commandSucceeds("setpriv", ["--reuid=65534", "true"]);
    if (!canSwitch) {
      console.log("skipped: needs root and setpriv to run as another user");
      return;
    }
    const prefix = `${uniqueName("cli-gc-user")}-`;
    const rootOwned = `${prefix}root`;
    const privateToNobody = `${prefix}private`;
    const sharedByNobody = `${prefix}shared`;
    const denoDir = await Deno.makeTempDir({ prefix: "ipckit-cli-test-" });
    try {
      await Deno.chmod(denoDir, 0o777);
      SharedMemory.open(rootOwned, { create: true, size: 64 }).close();
      const mod = new URL("../mod.ts", import.meta.url).href;
      const created = await asNobody(denoDir, [
        "eval",
        `import { SharedMemory } from "${mod}";
        SharedMemory.open("${privateToNobody}", { create: true, size: 64 }).close();
        SharedMemory.open("${sharedByNobody}", { create: true, size: 64, mode: 0o644 }).close();`,
      ]);
      assertEquals(created.code, 0, created.stderr);

      const gc = await asNobody(denoDir, [
        "run",
        "--quiet",
        ...CLI_FLAGS,
        CLI,
        "gc",
        "--prefix",
        prefix,
      ]);
      assertEquals(gc.code, 0, gc.stderr);
      assertMatch(gc.stdout, /note: \d+ processes could not be inspected/);
      assertMatch(
        gc.stdout,
        new RegExp(
          `^kept\\s+shm\\s+${rootOwned}\\s+it belongs to uid 0 and`,
          "m",
        ),
      );
      assertMatch(
        gc.stdout,
        new RegExp(
          `^kept\\s+shm\\s+${sharedByNobody}\\s+its mode 0644 lets other users`,
          "m",
        ),
      );
      assertMatch(
        gc.stdout,
        new RegExp(`^removed\\s+shm\\s+${privateToNobody}\\s`, "m"),
      );
      assertEquals(exists("shm", rootOwned), true);
      assertEquals(exists("shm", sharedByNobody), true);
      assertEquals(exists("shm", privateToNobody), false);
    } finally {
      for (const name of [rootOwned, privateToNobody, sharedByNobody]) {
        unlinkQuietly("shm", name);
      }
      await Deno.remove(denoDir, { recursive: true });
    }
  }),
);

Deno.test(
  "ipckit watch prints the messages sent to a queue as they arrive, consuming them",
  leakChecked(async () => {
    const name = uniqueName("cli-watch");
    await using queue = MessageQueue.open<{ n: number }>(name, {
      create: true,
      unlinkOnClose: true,
    });
    const watcher = new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", ...CLI_FLAGS, CLI, "watch", name],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    try {
      const banner = await readUntil(
        watcher.stderr,
        (text) => text.includes("\n"),
      );
      assertMatch(banner, /watching message queue .* consumes/);
      await queue.send({ n: 1 });
      await queue.send({ n: 2 });
      const printed = await readUntil(
        watcher.stdout,
        (text) => text.split("\n").length > 2,
      );
      assertEquals(printed.split("\n").slice(0, 2), ['{"n":1}', '{"n":2}']);
      assertEquals(queue.attributes().currentMessages, 0);
    } finally {
      watcher.kill("SIGINT");
    }
    const status = await watcher.status;
    await watcher.stdout.cancel().catch(() => {});
    await watcher.stderr.cancel().catch(() => {});
    assertEquals(status.code, 0, "watch should end cleanly on Ctrl-C");
  }),
);

Deno.test(
  "ipckit usage errors exit with 2 and say what to fix",
  async () => {
    const cases: [string[], RegExp][] = [
      [[], /Usage: ipckit <command>/],
      [["list"], /unknown command "list"; commands: ls, stat, rm, gc, watch/],
      [["ls", "--bogus"], /Unknown option '--bogus'[\s\S]*ipckit ls --help/],
      [["ls", "--kind", "pipe"], /--kind must be mq, shm or sem, got "pipe"/],
      [["gc"], /--prefix <prefix>.* or --all/],
      [["gc", "--prefix", "/"], /use --all/],
      [["stat"], /missing object name/],
      [["rm", "/a/b"], /must not contain "\/" after the first/],
      [
        ["watch", "/q", "--codec", "xml"],
        /--codec must be json, text, bytes or v8/,
      ],
    ];
    for (const [args, message] of cases) {
      const result = await ipckit(args);
      assertEquals(
        result.code,
        2,
        `ipckit ${args.join(" ")}: ${result.stderr}`,
      );
      assertMatch(result.stderr, message, `ipckit ${args.join(" ")}`);
    }
    const help = await ipckit(["watch", "--help"]);
    assertEquals(help.code, 0);
    assertMatch(help.stdout, /every message it prints is taken off/);
  },
);

Deno.test(
  "ipckit names the permission flag to add when one is missing",
  async () => {
    const noProc = await ipckit(["ls"], [
      "--allow-ffi",
      "--allow-read=/dev/shm,/dev/mqueue",
    ]);
    assertEquals(noProc.code, 1);
    assertMatch(
      noProc.stderr,
      /Requires read access to "\/proc", run again with --allow-read=\/proc/,
    );

    const noWrite = await ipckit(
      ["rm", "--kind", "shm", uniqueName("cli-perm")],
      ["--allow-ffi", "--allow-read=/dev/shm,/dev/mqueue,/proc"],
    );
    assertEquals(noWrite.code, 1);
    assertMatch(noWrite.stderr, /run again with --allow-write=\/dev\/shm/);

    const noFfi = await ipckit(["ls"], [
      "--allow-read=/dev/shm,/dev/mqueue,/proc",
    ]);
    assertEquals(noFfi.code, 1);
    assertMatch(noFfi.stderr, /--allow-ffi/);
  },
);
