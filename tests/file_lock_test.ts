import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { FileLock } from "../mod.ts";
import { LineReader } from "./_bounded.ts";
import {
  commandSucceeds,
  inTempDir,
  leakChecked,
  runFixture,
  skip,
  spawnFixture,
} from "./_helpers.ts";
import { PEER_FLAGS } from "./_sysv.ts";

const hasFlock = await commandSucceeds("flock", ["--version"]);
const hasPython = await commandSucceeds("python3", ["-c", "import fcntl"]);

/** A fresh lock file in a temp dir; removed with the dir. */
function withFile(
  body: (path: string) => Promise<void> | void,
): Promise<void> {
  return inTempDir("lock", (dir) => body(`${dir}/app.lock`));
}

/** Runs a child that says one line once it holds its lock; kills it after `body`. */
async function withHolder(
  command: Deno.ChildProcess,
  body: (pid: number) => Promise<void> | void,
): Promise<void> {
  const lines = new LineReader(command.stdout);
  try {
    assertEquals(await lines.next(), "held");
    await body(command.pid);
  } finally {
    try {
      command.kill("SIGKILL");
    } catch { /* exited */ }
    await command.status;
    await lines.cancel();
    await new Response(command.stderr).text();
  }
}

/**
 * Creates the lock file and starts a peer process that takes an exclusive
 * lock on `length` bytes from `start` (0: to the end) and says "held".
 */
function peerHolding(
  path: string,
  start: number,
  length: number,
): Deno.ChildProcess {
  FileLock.open(path, { create: true }).close();
  return spawnFixture("sysv_peer.ts", PEER_FLAGS, [
    "lock-hold",
    path,
    String(start),
    String(length),
    "exclusive",
  ]);
}

Deno.test(
  "FileLock dropped without close() has its descriptor, and so its lock, released by the safety net",
  leakChecked(() =>
    withFile(async (path) => {
      const { code, stdout, stderr } = await runFixture(
        "file_lock_dropped.ts",
        [
          "--v8-flags=--expose-gc",
          "--allow-ffi",
          "--allow-read",
          `--allow-write=${path}`,
        ],
        [path],
      );
      assertEquals(code, 0, stderr);
      assertEquals(JSON.parse(stdout), { whileHeld: false, taken: true });
    })
  ),
);

Deno.test(
  "FileLock: two handles in one process conflict as two processes would",
  leakChecked(() =>
    withFile((path) => {
      using a = FileLock.open(path, { create: true });
      using b = FileLock.open(path);
      const held = a.tryLock();
      assert(held);
      assertEquals(b.tryLock(), undefined);
      assertEquals(b.tryLock({ shared: true }), undefined);
      assertEquals(b.holder()?.pid, -1);
      held.release();
      using _mine = b.tryLock()!;
      assertEquals(a.tryLock(), undefined);
    })
  ),
);

Deno.test(
  "FileLock: shared locks share, an exclusive one waits for them",
  leakChecked(() =>
    withFile(async (path) => {
      using reader1 = FileLock.open(path, { create: true, write: false });
      using reader2 = FileLock.open(path, { write: false });
      using writer = FileLock.open(path);
      const r1 = reader1.tryLock({ shared: true })!;
      const r2 = reader2.tryLock({ shared: true })!;
      assert(r1 && r2);
      assertThrows(() => reader1.tryLock(), TypeError, "write: false");
      const writing = writer.lock({ timeout: 5000 });
      r1.release();
      assertEquals(writer.holder({ shared: false })?.shared, true);
      r2[Symbol.dispose]();
      using _held = await writing;
      assertEquals(reader1.holder({ shared: true })?.shared, false);
    })
  ),
);

Deno.test(
  "FileLock: byte ranges conflict across processes only where they overlap",
  leakChecked(() =>
    withFile(async (path) => {
      await withHolder(peerHolding(path, 0, 100), async () => {
        using lock = FileLock.open(path);
        assertEquals(lock.tryLock({ start: 50, length: 100 }), undefined);
        assertEquals(lock.holder({ start: 99, length: 1 })?.start, 0);
        using _after = lock.tryLock({ start: 100, length: 100 })!;
        assert(_after);
        await assertRejects(
          () => lock.lock({ start: 0, length: 1, timeout: 30 }),
          Deno.errors.TimedOut,
        );
      });
    })
  ),
);

Deno.test(
  "FileLock.lock() goes on once the holding process is killed",
  leakChecked(() =>
    withFile(async (path) => {
      const child = peerHolding(path, 0, 0);
      await withHolder(child, async () => {
        using lock = FileLock.open(path);
        const waiting = lock.lock({ timeout: 10_000 });
        child.kill("SIGKILL");
        using held = await waiting;
        assertEquals(held.length, 0);
      });
    })
  ),
);

Deno.test(
  "FileLock.lock() rejects on abort and close without taking the lock",
  leakChecked(() =>
    withFile(async (path) => {
      using holder = FileLock.open(path, { create: true });
      const lock = FileLock.open(path);
      const held = holder.tryLock()!;
      const controller = new AbortController();
      const aborted = lock.lock({ signal: controller.signal });
      controller.abort(new Error("stop"));
      await assertRejects(() => aborted, Error, "stop");
      const closed = lock.lock();
      lock.close();
      await assertRejects(() => closed, Deno.errors.BadResource);
      held.release();
      using again = FileLock.open(path);
      assert(again.tryLock());
    })
  ),
);

Deno.test(
  "FileLock.lockSync() blocks with a timeout, and a release in this process wakes lock() at once",
  leakChecked(() =>
    withFile(async (path) => {
      using a = FileLock.open(path, { create: true });
      using b = FileLock.open(path);
      const held = a.lockSync();
      assertThrows(() => b.lockSync({ timeout: 30 }), Deno.errors.TimedOut);
      const waiting = b.lock({ timeout: 5000 });
      held.release();
      using _taken = await waiting;
    })
  ),
);

Deno.test(
  "FileLock.open() refuses what is not a regular file, and bad ranges",
  leakChecked(async () => {
    const dir = await Deno.makeTempDir({ prefix: "ipckit-test-lock-" });
    try {
      assertThrows(() => FileLock.open(dir), Error, "directory");
      assertThrows(
        () => FileLock.open(`${dir}/missing`),
        Deno.errors.NotFound,
      );
      using lock = FileLock.open(`${dir}/f`, { create: true });
      assertThrows(() => lock.tryLock({ start: -1 }), RangeError);
      assertThrows(() => lock.tryLock({ length: 1.5 }), RangeError);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }),
);

Deno.test({
  name:
    "FileLock and flock(1): on Linux flock(2) locks and OFD locks do not exclude each other",
  ignore: skip(
    "FileLock and flock(1)",
    hasFlock ? undefined : "flock(1) (util-linux) is not installed",
  ),
  fn: leakChecked(() =>
    withFile(async (path) => {
      FileLock.open(path, { create: true }).close();
      const child = new Deno.Command("flock", {
        // --no-fork: flock becomes the shell, so one SIGKILL ends all of it.
        args: ["--no-fork", "-x", path, "sh", "-c", "echo held; exec sleep 30"],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      await withHolder(child, async () => {
        using lock = FileLock.open(path);
        using held = lock.tryLock();
        assert(held, "an exclusive flock(1) does not stop an OFD lock");
        const other = await new Deno.Command("flock", {
          args: ["-n", "-x", path, "true"],
        }).output();
        // The flock(2) lock of the child still excludes another flock(1).
        assertEquals(other.code, 1);
      });
      using lock = FileLock.open(path);
      using _held = lock.tryLock()!;
      const free = await new Deno.Command("flock", {
        args: ["-n", "-x", path, "true"],
      }).output();
      assertEquals(free.code, 0, "an OFD lock does not stop flock(1) either");
    })
  ),
});

Deno.test({
  name:
    "FileLock and Python's fcntl.lockf (a classic POSIX lock) exclude each other",
  ignore: skip(
    "FileLock and fcntl.lockf",
    hasPython ? undefined : "python3 is not installed",
  ),
  fn: leakChecked(() =>
    withFile(async (path) => {
      FileLock.open(path, { create: true }).close();
      const script = [
        "import fcntl, sys, time",
        "f = open(sys.argv[1], 'r+')",
        "fcntl.lockf(f, fcntl.LOCK_EX, 10, 0)",
        "print('held', flush=True)",
        "time.sleep(30)",
      ].join("\n");
      const child = new Deno.Command("python3", {
        args: ["-c", script, path],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      await withHolder(child, (pid) => {
        using lock = FileLock.open(path);
        assertEquals(lock.tryLock({ start: 5, length: 1 }), undefined);
        assertEquals(lock.holder({ start: 5, length: 1 })?.pid, pid);
        using _beyond = lock.tryLock({ start: 10, length: 10 })!;
        assert(_beyond);
      });
    })
  ),
});
