/**
 * Objects someone else put first where this process will create its own:
 * a queue, shared memory, a semaphore, a mutex, a FIFO or a file created by
 * another user with mode 0o666, a file with a second hard link, and
 * symbolic links planted in /dev/shm. `create: true` must not adopt any of
 * them silently.
 *
 * The other user is nobody (65534), run through setpriv, which needs root.
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
import {
  commandSucceeds,
  leakChecked,
  testNeeding,
  uniqueName,
} from "./_helpers.ts";

const NOBODY = 65534;
const canPlant = Deno.uid() === 0 &&
  await commandSucceeds("setpriv", ["--reuid=65534", "true"]);
const plantingMissing = canPlant
  ? undefined
  : "planting objects as another user needs root and setpriv to act as nobody";

/**
 * Creates an object as nobody, with umask 0 so `mode` is what it gets,
 * through libc only (tests/fixtures/plant.ts), and leaves it there.
 */
async function plantAsNobody(
  kind: "mq" | "shm" | "sem" | "fifo" | "file",
  name: string,
  mode: number,
): Promise<void> {
  const script = new URL("./fixtures/plant.ts", import.meta.url).pathname;
  // nobody cannot write root's Deno cache: give it its own, removed after.
  const denoDir = await Deno.makeTempDir({ prefix: "ipckit-test-nobody-" });
  try {
    await Deno.chmod(denoDir, 0o777);
    const output = await new Deno.Command("sh", {
      args: [
        "-c",
        'umask 0 && exec setpriv --reuid=65534 --regid=65534 --clear-groups "$@"',
        "sh",
        Deno.execPath(),
        "run",
        "--quiet",
        "--no-config",
        "--allow-ffi",
        script,
        kind,
        name,
        mode.toString(8),
      ],
      env: { DENO_DIR: denoDir },
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(30_000),
    }).output();
    const decoder = new TextDecoder();
    assertEquals(
      decoder.decode(output.stdout).trim(),
      "planted",
      decoder.decode(output.stderr),
    );
  } finally {
    await Deno.remove(denoDir, { recursive: true });
  }
}

/** A directory anyone may create files in, like /tmp (sticky, 0o1777). */
async function sharedDir(): Promise<string & Disposable> {
  const dir = await Deno.makeTempDir({ prefix: "ipckit-test-planted-" });
  await Deno.chmod(dir, 0o1777);
  return Object.assign(dir, {
    [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }),
  }) as string & Disposable;
}

/** What the refusal must say about the planted object. */
const PLANTED =
  /owned by uid 65534 \(nobody\) with mode 0o666, and create only uses an existing object that you \(uid 0, root\) own/;

/** Checks that `open` refuses a planted object with the one message; returns the error. */
function assertRefusesPlanted(open: () => unknown): Error {
  const error = assertThrows(open, Deno.errors.PermissionDenied);
  assertMatch(error.message, PLANTED);
  return error;
}

function plantedTest(
  name: string,
  fn: () => Promise<void>,
): void {
  testNeeding(plantingMissing, { name, fn: leakChecked(fn) });
}

plantedTest(
  'MessageQueue.open({ create: true }) refuses a queue another user planted with mode 0o666, and adopt: "any-owner" takes it',
  async () => {
    const name = uniqueName("planted-mq");
    await plantAsNobody("mq", name, 0o666);
    try {
      const error = assertRefusesPlanted(() =>
        MessageQueue.open(name, { create: true })
      );
      assertEquals((error as Error & { code: string }).code, "EACCES");
      // Opening without create is the explicit "use what exists".
      MessageQueue.open(name, { write: false }).close();
      MessageQueue.open(name, { create: true, adopt: "any-owner" }).close();
    } finally {
      MessageQueue.unlink(name);
    }
  },
);

plantedTest(
  "SharedMemory.open and Mutex.open with create refuse an object another user planted",
  async () => {
    const name = uniqueName("planted-shm");
    await plantAsNobody("shm", name, 0o666);
    try {
      assertRefusesPlanted(() =>
        SharedMemory.open(name, { create: true, size: 4096 })
      );
      assertRefusesPlanted(() => Mutex.open(name, { create: true }));
      SharedMemory.open(name, { readOnly: true }).close();
      using adopted = SharedMemory.open(name, {
        create: true,
        size: 4096,
        adopt: "any-owner",
      });
      assertEquals(adopted.size, 4096);
    } finally {
      SharedMemory.unlink(name);
    }
  },
);

plantedTest(
  "Semaphore.open({ create: true }) refuses a semaphore another user planted",
  async () => {
    const name = uniqueName("planted-sem");
    await plantAsNobody("sem", name, 0o666);
    try {
      assertRefusesPlanted(() =>
        Semaphore.open(name, { create: true, initial: 1 })
      );
      using adopted = Semaphore.open(name, {
        create: true,
        adopt: "any-owner",
      });
      assertEquals(adopted.value, 0);
    } finally {
      Semaphore.unlink(name);
    }
  },
);

plantedTest(
  "Fifo.create and MappedFile.open({ create: true }) refuse files another user planted in a shared directory",
  async () => {
    using dir = await sharedDir();
    await plantAsNobody("fifo", `${dir}/jobs`, 0o666);
    await plantAsNobody("file", `${dir}/data`, 0o666);
    assertRefusesPlanted(() => Fifo.create(`${dir}/jobs`));
    await assertRejects(
      () => Fifo.duplex(`${dir}/jobs`, { role: "client", adopt: "owned" }),
      TypeError,
      "adopt needs create",
    );
    assertRefusesPlanted(() =>
      MappedFile.open(`${dir}/data`, { create: true, size: 4096 })
    );
    {
      using fifo = Fifo.create(`${dir}/jobs`, { adopt: "any-owner" });
      assertEquals(fifo.created, false);
      using file = MappedFile.open(`${dir}/data`, {
        create: true,
        size: 4096,
        adopt: "any-owner",
      });
      assertEquals(file.size, 4096);
    }
    // Refusing and adopting removed nothing.
    assertEquals((await Deno.lstat(`${dir}/jobs`)).uid, NOBODY);
    assertEquals((await Deno.lstat(`${dir}/data`)).uid, NOBODY);
  },
);

Deno.test(
  "create: true refuses an object of one's own whose mode is wider than asked, or that has a second hard link",
  leakChecked(async () => {
    const name = uniqueName("wide-mq");
    // The umask may narrow 0o666; whatever it leaves is wider than 0o600.
    using _queue = MessageQueue.open(name, {
      create: true,
      mode: 0o666,
      unlinkOnClose: true,
    });
    const error = assertThrows(
      () => MessageQueue.open(name, { create: true }),
      Deno.errors.PermissionDenied,
    );
    assertMatch(error.message, /with mode 0o6[0-6]{2}, .*within 0o600/);
    MessageQueue.open(name, { create: true, mode: 0o666 }).close();

    const dir = await Deno.makeTempDir({ prefix: "ipckit-test-links-" });
    try {
      using original = MappedFile.open(`${dir}/a`, { create: true, size: 64 });
      original.bytes()[0] = 7;
      await new Deno.Command("ln", { args: [`${dir}/a`, `${dir}/b`] })
        .output();
      assertMatch(
        assertThrows(
          () => MappedFile.open(`${dir}/b`, { create: true, size: 64 }),
          Deno.errors.PermissionDenied,
        ).message,
        /with mode 0o600 and 2 hard links/,
      );
      using linked = MappedFile.open(`${dir}/b`, { readOnly: true });
      assertEquals(linked.bytes()[0], 7);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }),
);

Deno.test(
  "Symbolic links planted in /dev/shm are never followed by SharedMemory, Semaphore or Mutex",
  leakChecked(async () => {
    const dir = await Deno.makeTempDir({ prefix: "ipckit-test-decoy-" });
    const decoy = `${dir}/decoy`;
    await Deno.writeTextFile(decoy, "decoy ".repeat(16));
    const name = uniqueName("shm-link");
    const links = [`/dev/shm${name}`, `/dev/shm/sem.${name.slice(1)}`];
    try {
      for (const link of links) {
        const { success } = await new Deno.Command("ln", {
          args: ["-s", decoy, link],
        }).output();
        assert(success, `ln -s ${decoy} ${link}`);
      }
      for (
        const open of [
          () => SharedMemory.open(name, { create: true, size: 96 }),
          () => SharedMemory.open(name),
          () => SharedMemory.open(name, { readOnly: true }),
          () => Mutex.open(name, { create: true }),
          () => Semaphore.open(name, { create: true }),
          () => Semaphore.open(name),
        ]
      ) {
        const error = assertThrows(open, Error);
        assertMatch(
          `${error.name}: ${error.message}`,
          /: it is a symbolic link$/,
        );
      }
      assertEquals(await Deno.readTextFile(decoy), "decoy ".repeat(16));
    } finally {
      for (const link of links) {
        await new Deno.Command("rm", { args: ["-f", link] }).output();
      }
      await Deno.remove(dir, { recursive: true });
    }
  }),
);
