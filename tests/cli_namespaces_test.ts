/**
 * `ipckit` run by root beside processes in other namespaces: a root process
 * in another PID namespace (`unshare --pid --fork`), which root can inspect
 * (the kernel's ptrace check looks at uids, capabilities, dumpability and
 * user namespaces, never at PID namespaces), and the case where root
 * cannot: the CLI itself running in a user namespace (`unshare --user
 * --map-root-user`), where it is uid 0 but holds no capability over the
 * processes outside. The CLI must name that cause, not the holder's PID
 * namespace.
 *
 * Needs root and unshare; skipped with the reason otherwise.
 *
 * @module
 */

import { fromFileUrl } from "@std/path";
import { assert, assertEquals, assertMatch, assertNotMatch } from "@std/assert";
import { listDirectory } from "../ffi/dir.ts";
import { readWholeFile } from "../ffi/file.ts";
import { objectExists } from "../mechanisms/inventory.ts";
import { SharedMemory } from "../mod.ts";
import { LineReader } from "./_bounded.ts";
import {
  commandSucceeds,
  leakChecked,
  skip,
  trackName,
  uniqueName,
} from "./_helpers.ts";

const CLI = fromFileUrl(new URL("../cli.ts", import.meta.url));
const HOLD = fromFileUrl(new URL("./fixtures/ipc_hold.ts", import.meta.url));
const CLI_FLAGS = [
  "--allow-ffi",
  "--allow-read=/dev/shm,/dev/mqueue,/proc",
  "--allow-write=/dev/shm,/dev/mqueue",
];
const HOLD_FLAGS = [
  "--allow-ffi",
  "--allow-read=/dev/shm,/dev/mqueue",
  "--allow-write=/dev/shm,/dev/mqueue",
];

const NO_PID_NAMESPACE = Deno.uid() !== 0
  ? "a PID namespace of one's own needs root"
  : !await commandSucceeds("unshare", ["--pid", "--fork", "true"])
  ? "unshare --pid --fork does not work here"
  : undefined;
const NO_USER_NAMESPACE = NO_PID_NAMESPACE ??
  (!await commandSucceeds("unshare", ["--user", "--map-root-user", "true"])
    ? "unshare --user --map-root-user does not work here (user namespaces are off)"
    : undefined);

interface Holder extends AsyncDisposable {
  /** The holder's pid as this PID namespace sees it. */
  pid: number;
}

/**
 * Starts tests/fixtures/ipc_hold.ts in a PID namespace of its own, holding
 * (and creating) `objects`, and waits until it holds them. unshare forks
 * the holder: the one child of unshare, found through /proc.
 */
async function holdInPidNamespace(objects: string[]): Promise<Holder> {
  const unshare = new Deno.Command("unshare", {
    args: [
      "--pid",
      "--fork",
      "--kill-child",
      Deno.execPath(),
      "run",
      "--quiet",
      ...HOLD_FLAGS,
      HOLD,
      "--create",
      ...objects,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines = new LineReader(unshare.stdout);
  const dispose = async () => {
    try {
      // --kill-child: the holder gets SIGKILL when unshare dies.
      unshare.kill("SIGKILL");
    } catch { /* exited already */ }
    await unshare.status;
    await lines.cancel();
    await new Response(unshare.stderr).text();
  };
  try {
    assertEquals(await lines.next(), "holding");
    const pid = _onlyChild(unshare.pid);
    return { pid, [Symbol.asyncDispose]: dispose };
  } catch (error) {
    await dispose();
    throw error;
  }
}

/** The one child of `pid`, found by the PPid of every process in /proc. */
function _onlyChild(pid: number): number {
  const listed = listDirectory("/proc");
  if (typeof listed === "number") throw new Error("cannot list /proc");
  const children: number[] = [];
  for (const { name } of listed) {
    if (!/^\d+$/.test(name)) continue;
    // Through libc: Deno's own API wants --allow-all under /proc.
    const status = readWholeFile(`/proc/${name}/status`);
    if (typeof status === "number") continue; // exited meanwhile
    if (new RegExp(`^PPid:\\s+${pid}$`, "m").test(status)) {
      children.push(Number(name));
    }
  }
  assertEquals(children.length, 1, `children of ${pid}: ${children}`);
  return children[0];
}

/** Runs the CLI (inside `prefix`, such as unshare's arguments) and returns its output. */
async function ipckit(args: string[], prefix: string[] = []): Promise<string> {
  const argv = [
    ...prefix,
    Deno.execPath(),
    "run",
    "--quiet",
    ...CLI_FLAGS,
    CLI,
    ...args,
  ];
  const output = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const decoder = new TextDecoder();
  assertEquals(
    output.code,
    0,
    `ipckit ${args.join(" ")}: ${decoder.decode(output.stderr)}`,
  );
  return decoder.decode(output.stdout);
}

interface Listing {
  objects: { name: string; holders: { pid: number }[] }[];
  uninspectedProcesses: { pid: number; reason: string; explanation: string }[];
}

function unlinkQuietly(name: string): void {
  try {
    SharedMemory.unlink(name);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

Deno.test({
  name:
    "ipckit run by root sees the holder of an object in another PID namespace, and gc keeps the object for it",
  ignore: skip(
    "ipckit and a holder in another PID namespace",
    NO_PID_NAMESPACE,
  ),
  fn: leakChecked(async () => {
    const prefix = `${uniqueName("cli-pidns")}-`;
    const name = trackName(`${prefix}shm`);
    try {
      await using holder = await holdInPidNamespace([`shm:${name}`]);
      // It is in a PID namespace of its own: pid 1 there.
      const status = String(readWholeFile(`/proc/${holder.pid}/status`));
      assertMatch(status, new RegExp(`^NSpid:\\s+${holder.pid}\\s+1$`, "m"));
      const listing = JSON.parse(await ipckit(["ls", "--json"])) as Listing;
      const object = listing.objects.find((object) => object.name === name);
      assertEquals(object?.holders.map(({ pid }) => pid), [holder.pid]);
      assertEquals(
        listing.uninspectedProcesses.filter(({ pid }) => pid === holder.pid),
        [],
      );
      const gc = await ipckit(["gc", "--prefix", prefix]);
      assertMatch(
        gc,
        new RegExp(
          `^kept\\s+shm\\s+${name}\\s+held by pid ${holder.pid}$`,
          "m",
        ),
      );
      assert(objectExists("shm", name), "gc removed a held object");
    } finally {
      unlinkQuietly(name);
    }
  }),
});

Deno.test({
  name:
    "ipckit run by root inside a user namespace says a holder outside it could not be inspected because of the user namespace, not its PID namespace",
  ignore: skip("ipckit in a user namespace", NO_USER_NAMESPACE),
  fn: leakChecked(async () => {
    const prefix = `${uniqueName("cli-userns")}-`;
    const name = trackName(`${prefix}shm`);
    const inUserNamespace = ["unshare", "--user", "--map-root-user"];
    try {
      await using holder = await holdInPidNamespace([`shm:${name}`]);
      const listing = JSON.parse(
        await ipckit(["ls", "--json"], inUserNamespace),
      ) as Listing;
      const seen = listing.uninspectedProcesses.find(({ pid }) =>
        pid === holder.pid
      );
      assert(seen, `pid ${holder.pid} is missing from uninspectedProcesses`);
      assertEquals(seen.reason, "user-namespace");
      assertMatch(seen.explanation, /^it runs outside your user namespace\b/);

      const gc = await ipckit(
        ["gc", "--dry-run", "--prefix", prefix],
        inUserNamespace,
      );
      assertMatch(
        gc,
        new RegExp(
          `^kept\\s+shm\\s+${name}\\s+pid \\d+ .*runs as you and could not be inspected: it runs outside your user namespace`,
          "m",
        ),
      );
      assertMatch(
        gc,
        new RegExp(
          `^  pid .*: it runs outside your user namespace \\(uid map 0 0 1\\)`,
          "m",
        ),
      );
      assertNotMatch(gc, /another PID namespace/);
      assert(objectExists("shm", name));
    } finally {
      unlinkQuietly(name);
    }
  }),
});
