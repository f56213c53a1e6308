/**
 * The one cleanup rule for every named object: a name stays after its
 * handle closes, for other processes, unless the handle was opened with
 * `unlinkOnClose: true`; then closing removes it (and only what the handle
 * opened, never another file put at its path). System V objects, found by
 * key, follow the same rule.
 */
import { assert, assertEquals, assertFalse, assertRejects } from "@std/assert";
import { fromFileUrl, join } from "@std/path";
import {
  Fifo,
  MappedFile,
  MessageQueue,
  Mutex,
  Publisher,
  Semaphore,
  SharedMemory,
  Subscriber,
  SysvMessageQueue,
  SysvSemaphoreSet,
  SysvSharedMemory,
} from "../mod.ts";
import {
  listSysvObjects,
  objectExists,
  removeSysvObject,
  type SysvKind,
} from "../mechanisms/inventory.ts";
import { leakChecked, uniqueKey, uniqueName } from "./_helpers.ts";

/** How to open, look up and remove one kind of named object. */
interface _Kind {
  kind: string;
  /** Opens (creating) the object; the handle's close() is what is tested. */
  open(name: string, unlinkOnClose: boolean): Promise<{ close(): void }>;
  exists(name: string): boolean;
  remove(name: string): void;
}

function _fileExists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * System V objects have keys, not names: each name the test makes stands
 * for a key of its own.
 */
function _sysvKind(
  kind: SysvKind,
  open: (key: number, unlinkOnClose: boolean) => { close(): void },
): _Kind {
  const keys = new Map<string, number>();
  const keyOf = (name: string) => {
    if (!keys.has(name)) keys.set(name, uniqueKey());
    return keys.get(name)!;
  };
  const found = (name: string) =>
    listSysvObjects({ kinds: [kind], key: keyOf(name) });
  return {
    kind,
    open: (name, unlinkOnClose) =>
      Promise.resolve(open(keyOf(name), unlinkOnClose)),
    exists: (name) => found(name).length > 0,
    remove: (name) => {
      for (const { id } of found(name)) removeSysvObject(kind, id);
    },
  };
}

function _kinds(dir: string): _Kind[] {
  return [
    {
      kind: "message queue",
      open: (name, unlinkOnClose) =>
        Promise.resolve(
          MessageQueue.open(name, { create: true, unlinkOnClose }),
        ),
      exists: (name) => objectExists("mq", name),
      remove: (name) => MessageQueue.unlink(name),
    },
    {
      kind: "shared memory",
      open: (name, unlinkOnClose) =>
        Promise.resolve(
          SharedMemory.open(name, { create: true, size: 64, unlinkOnClose }),
        ),
      exists: (name) => objectExists("shm", name),
      remove: (name) => SharedMemory.unlink(name),
    },
    {
      kind: "semaphore",
      open: (name, unlinkOnClose) =>
        Promise.resolve(Semaphore.open(name, { create: true, unlinkOnClose })),
      exists: (name) => objectExists("sem", name),
      remove: (name) => Semaphore.unlink(name),
    },
    {
      kind: "pub/sub topic (publisher)",
      open: (name, unlinkOnClose) =>
        Promise.resolve(Publisher.open(name, { create: true, unlinkOnClose })),
      exists: (name) => objectExists("shm", name),
      remove: (name) => Publisher.unlink(name),
    },
    {
      kind: "pub/sub topic (subscriber)",
      open: (name, unlinkOnClose) =>
        Promise.resolve(
          Subscriber.open(name, { create: true, unlinkOnClose }),
        ),
      exists: (name) => objectExists("shm", name),
      remove: (name) => Subscriber.unlink(name),
    },
    {
      kind: "mutex",
      open: (name, unlinkOnClose) =>
        Promise.resolve(Mutex.open(name, { create: true, unlinkOnClose })),
      exists: (name) => objectExists("shm", name),
      remove: (name) => SharedMemory.unlink(name),
    },
    {
      kind: "FIFO",
      open: (name, unlinkOnClose) =>
        Promise.resolve(
          Fifo.create(join(dir, name.slice(1)), { unlinkOnClose }),
        ),
      exists: (name) => _fileExists(join(dir, name.slice(1))),
      remove: (name) => Fifo.unlink(join(dir, name.slice(1))),
    },
    {
      kind: "FIFO pair",
      open: async (name, unlinkOnClose) => {
        const base = join(dir, name.slice(1));
        const [server, client] = await Promise.all([
          Fifo.duplex(base, { role: "server", timeout: 5000, unlinkOnClose }),
          Fifo.duplex(base, { role: "client", timeout: 5000 }),
        ]);
        return {
          close: () => {
            server.close();
            client.close();
          },
        };
      },
      exists: (name) =>
        _fileExists(join(dir, `${name.slice(1)}.to-server`)) &&
        _fileExists(join(dir, `${name.slice(1)}.to-client`)),
      remove: (name) => {
        Fifo.unlink(join(dir, `${name.slice(1)}.to-server`));
        Fifo.unlink(join(dir, `${name.slice(1)}.to-client`));
      },
    },
    {
      kind: "mapped file",
      open: (name, unlinkOnClose) =>
        Promise.resolve(
          MappedFile.open(join(dir, name.slice(1)), {
            create: true,
            size: 64,
            unlinkOnClose,
          }),
        ),
      exists: (name) => _fileExists(join(dir, name.slice(1))),
      remove: (name) => Deno.removeSync(join(dir, name.slice(1))),
    },
    _sysvKind(
      "sysv-msg",
      (key, unlinkOnClose) =>
        SysvMessageQueue.open(key, {
          create: true,
          exclusive: true,
          unlinkOnClose,
        }),
    ),
    _sysvKind(
      "sysv-shm",
      (key, unlinkOnClose) =>
        SysvSharedMemory.open(key, {
          create: true,
          exclusive: true,
          size: 64,
          unlinkOnClose,
        }),
    ),
    _sysvKind(
      "sysv-sem",
      (key, unlinkOnClose) =>
        SysvSemaphoreSet.open(key, {
          create: true,
          exclusive: true,
          count: 1,
          unlinkOnClose,
        }),
    ),
  ];
}

Deno.test(
  "Every named object stays after close() without unlinkOnClose, and is gone after close() with it",
  leakChecked(async () => {
    const dir = await Deno.makeTempDir({ prefix: "ipckit-test-cleanup-" });
    try {
      for (const kind of _kinds(dir)) {
        const kept = uniqueName("kept");
        (await kind.open(kept, false)).close();
        assert(
          kind.exists(kept),
          `${kind.kind}: removed without unlinkOnClose`,
        );
        kind.remove(kept);
        assertFalse(kind.exists(kept), `${kind.kind}: remove() left it`);

        const removed = uniqueName("removed");
        const handle = await kind.open(removed, true);
        assert(kind.exists(removed), `${kind.kind}: not there while open`);
        handle.close();
        assertFalse(
          kind.exists(removed),
          `${kind.kind}: still there after close() with unlinkOnClose`,
        );
        handle.close(); // idempotent, and the name is already gone
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }),
);

Deno.test(
  "unlinkOnClose removes only the file a handle opened, never one put at its path meanwhile",
  leakChecked(async () => {
    const dir = await Deno.makeTempDir({ prefix: "ipckit-test-cleanup-" });
    try {
      const fifoPath = join(dir, "fifo");
      const fifo = Fifo.create(fifoPath, { unlinkOnClose: true });
      const mappedPath = join(dir, "mapped");
      const mapped = MappedFile.open(mappedPath, {
        create: true,
        size: 64,
        unlinkOnClose: true,
      });
      // Swapped in whole (rename), as another process would: the file in
      // place is never the one the handle opened.
      for (const path of [fifoPath, mappedPath]) {
        Deno.writeTextFileSync(`${path}.new`, "someone else's file");
        Deno.renameSync(`${path}.new`, path);
      }
      fifo.close();
      mapped.close();
      for (const path of [fifoPath, mappedPath]) {
        assertEquals(Deno.readTextFileSync(path), "someone else's file");
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }),
);

Deno.test(
  "A closed Fifo handle refuses to open channels and leaves the FIFO for others",
  leakChecked(async () => {
    const dir = await Deno.makeTempDir({ prefix: "ipckit-test-cleanup-" });
    try {
      const path = join(dir, "jobs");
      const fifo = Fifo.create(path);
      await fifo[Symbol.asyncDispose]();
      assert(fifo.closed);
      await assertRejects(
        () => fifo.openReader(),
        Deno.errors.BadResource,
        `Cannot open a reader of FIFO "${path}": it is closed`,
      );
      assert(_fileExists(path));
      Fifo.unlink(path);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }),
);

/**
 * The first `ts` code block after `heading` in the README, with the package
 * imported from this checkout and each name in `names` replaced by a unique
 * one, written to a temporary file; returns its path.
 */
async function _readmeSnippet(
  heading: string,
  names: Record<string, string>,
  dir: string,
): Promise<string> {
  const readme = await Deno.readTextFile(
    new URL("../README.md", import.meta.url),
  );
  const section = readme.slice(readme.indexOf(heading));
  const start = section.indexOf("```ts\n") + "```ts\n".length;
  let code = section.slice(start, section.indexOf("```\n", start));
  code = code.replaceAll(
    '"@ipckit/ipckit"',
    JSON.stringify(new URL("../mod.ts", import.meta.url).href),
  );
  for (const [name, unique] of Object.entries(names)) {
    assert(code.includes(`"${name}"`), `the snippet no longer uses ${name}`);
    code = code.replaceAll(`"${name}"`, JSON.stringify(unique));
  }
  const path = join(dir, "snippet.ts");
  await Deno.writeTextFile(path, code);
  return path;
}

Deno.test(
  "The README's semaphore and mutex example leaves nothing behind and counts 1 on every run",
  leakChecked(async () => {
    const dir = await Deno.makeTempDir({ prefix: "ipckit-test-readme-" });
    try {
      const snippet = await _readmeSnippet(
        "## Semaphores and a mutex that survives a crash",
        { "/licences": uniqueName("licences"), "/state": uniqueName("state") },
        dir,
      );
      for (let run = 1; run <= 2; run++) {
        const output = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--quiet",
            "--allow-ffi",
            "--allow-read=/dev/shm",
            "--allow-write=/dev/shm",
            // The package's own imports (@std/…) resolve through its config.
            `--config=${fromFileUrl(new URL("../deno.json", import.meta.url))}`,
            snippet,
          ],
          stdout: "piped",
          stderr: "piped",
        }).output();
        const stderr = new TextDecoder().decode(output.stderr);
        assertEquals(output.code, 0, stderr);
        assertEquals(
          new TextDecoder().decode(output.stdout),
          "1\n",
          `run ${run}`,
        );
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }),
);
