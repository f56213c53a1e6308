/**
 * Shared test helpers: unique object names, child processes, and the check
 * that wraps every test and fails it when it leaves something behind: an
 * IPC object in /dev/shm or /dev/mqueue, or an open descriptor.
 *
 * @module
 */

import { fromFileUrl } from "@std/path";
import { AssertionError } from "@std/assert";
import { listDirectory } from "../ffi/dir.ts";
import { readLink, readWholeFile } from "../ffi/file.ts";
import {
  IPC_KINDS,
  type IpcKind,
  objectExists,
  queueDirectoryMounted,
} from "../mechanisms/inventory.ts";

/**
 * Every name handed out by {@linkcode uniqueName} (or recorded with
 * {@linkcode trackName}) that may still exist: the leak check looks each
 * one up directly, which works where /dev/mqueue cannot be listed.
 */
const _tracked = new Set<string>();

/**
 * A name no other test or run uses: prefix, pid and a random suffix. The
 * leak check looks it up after the test, for every kind of object.
 */
export function uniqueName(prefix: string): string {
  const random = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
  return trackName(`/ipckit-test-${prefix}-${Deno.pid}-${random}`);
}

/**
 * Records a name built from a unique one (`${prefix}free-shm`), so the leak
 * check looks it up too; returns it.
 */
export function trackName(name: string): string {
  _tracked.add(name);
  return name;
}

/**
 * The flags a child needs to use message queues: libc, the queues, and
 * the limits under /proc/sys/fs/mqueue that opening reads.
 */
export const MQ_FLAGS: string[] = [
  "--allow-ffi",
  "--allow-read=/dev/mqueue,/proc/sys/fs/mqueue",
  "--allow-write=/dev/mqueue",
];

/**
 * Runs `body` with a fresh directory `/tmp/ipckit-test-<prefix>-…` and
 * removes it with all it holds afterwards, however `body` ends; resolves
 * to what `body` returns.
 */
export async function inTempDir<T>(
  prefix: string,
  body: (dir: string) => Promise<T> | T,
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: `ipckit-test-${prefix}-` });
  try {
    return await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * A System V key no other test or run uses: the low 15 bits of this
 * process's pid in the high half, a random non-zero low half. The leak
 * check counts every System V object with such a key that a test left.
 */
export function uniqueKey(): number {
  const low = 1 + (crypto.getRandomValues(new Uint16Array(1))[0] % 0xffff);
  return ((Deno.pid & 0x7fff) << 16) | low;
}

/** Whether a key is one {@linkcode uniqueKey} could give this process. */
function _ownKey(key: number): boolean {
  return key !== 0 && (key >>> 16) === (Deno.pid & 0x7fff);
}

/**
 * Whether a private object (key 0, which any process may make) is this
 * process's: a segment it created, a queue it last sent to or received
 * from. A private semaphore set records no pid in /proc/sysvipc, so one
 * left behind is not seen here; the System V tests give their sets keys.
 */
function _ownPrivate(kind: string, row: Record<string, number>): boolean {
  if (kind === "shm") return row.cpid === Deno.pid;
  if (kind === "msg") return row.lspid === Deno.pid || row.lrpid === Deno.pid;
  return false;
}

/**
 * This process's System V objects as `ipcs` would show them, read from
 * /proc/sysvipc (the kernel's own table): `System V shm id 5 key 0x…`.
 */
function _sysvObjects(): Set<string> {
  const found = new Set<string>();
  for (const kind of ["msg", "shm", "sem"]) {
    const text = readWholeFile(`/proc/sysvipc/${kind}`, 1 << 20);
    if (typeof text === "number") continue; // no System V IPC in this kernel
    const [header, ...lines] = text.split("\n");
    const names = header.trim().split(/\s+/);
    for (const line of lines) {
      const values = line.trim().split(/\s+/).map(Number);
      const row = Object.fromEntries(names.map((name, i) => [name, values[i]]));
      const id = values[1];
      if (!Number.isInteger(id)) continue;
      if (!_ownKey(row.key) && !(row.key === 0 && _ownPrivate(kind, row))) {
        continue;
      }
      found.add(
        `System V ${kind} id ${id} key 0x${
          (row.key >>> 0).toString(16).padStart(8, "0")
        }`,
      );
    }
  }
  return found;
}

/** The directories where Linux shows POSIX IPC objects as files. */
export const IPC_DIRS = ["/dev/shm", "/dev/mqueue"] as const;

/**
 * Runs a program quietly and says whether it exited with success; a program
 * that is not installed (or cannot start) is `false`. For tests that skip
 * where a tool or a privilege is missing.
 */
export async function commandSucceeds(
  program: string,
  args: string[],
): Promise<boolean> {
  try {
    const { success } = await new Deno.Command(program, {
      args,
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
}

/**
 * What names of this process's tests contain: other test runs on the same
 * machine (other pids) create and remove their own objects meanwhile.
 */
const _OWN = `-${Deno.pid}-`;

/**
 * This process's ipckit test objects that the directories show, through
 * libc: Deno 2.9's own `Deno.readDirSync` demands `--allow-all` under
 * /dev. /dev/mqueue is only read where the mqueue file system is mounted
 * there: an empty directory in its place would list nothing and prove
 * nothing.
 */
function _listedObjects(): Set<string> {
  const entries = new Set<string>();
  const dirs = queueDirectoryMounted() ? IPC_DIRS : ["/dev/shm"];
  for (const dir of dirs) {
    const listed = listDirectory(dir);
    if (typeof listed === "number") {
      throw new Error(
        `Cannot list ${dir} for the leak check: errno ${-listed}`,
      );
    }
    for (const entry of listed) {
      if (entry.name.includes("ipckit-test-") && entry.name.includes(_OWN)) {
        entries.add(`${dir}/${entry.name}`);
      }
    }
  }
  return entries;
}

/**
 * Every tracked name that exists now, as `kind name`. After a test
 * (`prune`), names that exist as no kind are forgotten: they are unique,
 * so only the test that made them could have brought them back.
 */
function _trackedObjects(prune: boolean): Set<string> {
  const found = new Set<string>();
  for (const name of _tracked) {
    let any = false;
    for (const kind of IPC_KINDS) {
      if (_exists(kind, name)) {
        found.add(`${_KIND_LABELS[kind]} ${name}`);
        any = true;
      }
    }
    if (prune && !any) _tracked.delete(name);
  }
  return found;
}

/** A name that is not valid for a kind (too long for a semaphore) names none. */
function _exists(kind: IpcKind, name: string): boolean {
  try {
    return objectExists(kind, name);
  } catch (error) {
    if (error instanceof TypeError || error instanceof RangeError) return false;
    throw error;
  }
}

const _KIND_LABELS: Record<IpcKind, string> = {
  mq: "message queue",
  shm: "shared memory",
  sem: "semaphore",
};

/** This process's open descriptors and what each points to. */
function _openDescriptors(): Map<string, string> {
  const dir = `/proc/${Deno.pid}/fd`;
  const listed = listDirectory(dir);
  if (typeof listed === "number") {
    throw new Error(`Cannot list ${dir} for the leak check: errno ${-listed}`);
  }
  const decoder = new TextDecoder();
  const open = new Map<string, string>();
  for (const { name } of listed) {
    const link = readLink(`${dir}/${name}`);
    // Closed meanwhile (such as the descriptor that listed the directory).
    if (typeof link === "number") continue;
    const target = decoder.decode(link);
    if (target === dir) continue; // opendir's own descriptor
    open.set(name, target);
  }
  return open;
}

/** Descriptors open now that were not (or pointed elsewhere) in `before`. */
function _newDescriptors(before: Map<string, string>): string[] {
  const leaked: string[] = [];
  for (const [fd, target] of _openDescriptors()) {
    if (before.get(fd) !== target) leaked.push(`fd ${fd} -> ${target}`);
  }
  return leaked;
}

// Deno opens a socket pair for its signal handling the first time anything
// in the process binds a signal, and keeps it for good; Deno itself binds
// one about a second after start even if nobody asks (seen: a bare
// `deno run` that only waits gains the pair). Inside a test's body that
// looks like two leaked descriptors (the leak probe failed so under load).
// Binding one signal here, before any test, makes the pair part of every
// "before".
const _noSignal = (): void => {};
Deno.addSignalListener("SIGUSR2", _noSignal);
Deno.removeSignalListener("SIGUSR2", _noSignal);

/**
 * How long a test's descriptors may take to close after its body: Deno
 * closes some resources (a child's pipes, a dropped stream) on a later
 * turn of the event loop.
 */
const _SETTLE_MS = 1000;

/**
 * Wraps a test body: fails the test if, after it, there is an ipckit test
 * object that was not there before (listed in /dev/shm and, where mounted,
 * /dev/mqueue; every name from {@linkcode uniqueName} looked up directly
 * as a queue, a shared memory object and a semaphore; and every System V
 * object in /proc/sysvipc with a key from {@linkcode uniqueKey}, or a
 * private one this process made), or an open descriptor that was not
 * (named by where it points).
 */
export function leakChecked(
  body: (t: Deno.TestContext) => Promise<void> | void,
): (t: Deno.TestContext) => Promise<void> {
  return async (t) => {
    const listedBefore = _listedObjects();
    const trackedBefore = _trackedObjects(false);
    const sysvBefore = _sysvObjects();
    const descriptorsBefore = _openDescriptors();
    // Start the body on a fresh turn of the event loop, as a test that is
    // not wrapped would, so the snapshots' work (and the garbage it leaves)
    // is not charged to the body's first moments: a body that spins for a
    // millisecond (MessageQueue.receive with spin: 1000) missed its budget
    // in 3 of 10 runs without this, and in none of 10 with it.
    await new Promise((resolve) => setTimeout(resolve, 0));
    try {
      await body(t);
    } catch (error) {
      // The test fails anyway; still name what it left, for the cleanup.
      const left = _leakedObjects(listedBefore, trackedBefore, sysvBefore);
      if (left) console.error(`leak check after a failed test: ${left}`);
      throw error;
    }

    const problems: string[] = [];
    const left = _leakedObjects(listedBefore, trackedBefore, sysvBefore);
    if (left) problems.push(left);
    let leakedDescriptors = _newDescriptors(descriptorsBefore);
    const deadline = performance.now() + _SETTLE_MS;
    while (leakedDescriptors.length > 0 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      leakedDescriptors = _newDescriptors(descriptorsBefore);
    }
    if (leakedDescriptors.length > 0) {
      problems.push(
        `descriptors left open ${_SETTLE_MS} ms after the test: ${
          leakedDescriptors.join(", ")
        }`,
      );
    }
    if (problems.length > 0) throw new AssertionError(problems.join("; "));
  };
}

/** What is there now and was not before, in words, or `undefined`. */
function _leakedObjects(
  listedBefore: Set<string>,
  trackedBefore: Set<string>,
  sysvBefore: Set<string>,
): string | undefined {
  const files = [..._listedObjects()].filter((entry) =>
    !listedBefore.has(entry)
  );
  files.push(...[..._sysvObjects()].filter((entry) => !sysvBefore.has(entry)));
  const names = [..._trackedObjects(true)].filter((entry) =>
    !trackedBefore.has(entry)
  );
  if (files.length === 0 && names.length === 0) return undefined;
  return `objects left behind: ${
    [...files, ...names.map((entry) => `${entry} (found by name)`)].join(", ")
  }`;
}

/** The result of a child Deno process. */
export interface ChildResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `tests/fixtures/<fixture>` in a child Deno process with the given
 * permission flags and arguments, and returns its exit code and output.
 */
export async function runFixture(
  fixture: string,
  flags: string[],
  args: string[] = [],
): Promise<ChildResult> {
  const script = fromFileUrl(new URL(`./fixtures/${fixture}`, import.meta.url));
  return await runArgv([
    Deno.execPath(),
    "run",
    "--quiet",
    ...flags,
    script,
    ...args,
  ]);
}

/** Runs a prepared command line (program first) and collects its output. */
export async function runArgv(argv: string[]): Promise<ChildResult> {
  const output = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Starts a fixture without waiting for it; the caller owns the process. */
export function spawnFixture(
  fixture: string,
  flags: string[],
  args: string[] = [],
): Deno.ChildProcess {
  const script = fromFileUrl(new URL(`./fixtures/${fixture}`, import.meta.url));
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...flags, script, ...args],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/**
 * Prints why a test is ignored and returns `true`, for
 * `Deno.test({ ignore: skip(reason), … })`: the summary then counts it as
 * ignored, and the log says why. With no reason, returns `false`.
 */
export function skip(test: string, reason: string | undefined): boolean {
  if (reason === undefined) return false;
  console.log(`ignored: ${test}: ${reason}`);
  return true;
}

/**
 * `Deno.test(definition)` for a test that needs something the machine may
 * lack (a program, a privilege, a server): with `missing` set, it is
 * ignored and says why, as {@linkcode skip} does.
 */
export function testNeeding(
  missing: string | undefined,
  definition: Deno.TestDefinition,
): void {
  Deno.test({ ...definition, ignore: skip(definition.name, missing) });
}
