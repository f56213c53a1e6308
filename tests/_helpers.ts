/**
 * Shared test helpers: unique object names, child processes, and the check
 * that a test leaves nothing behind in /dev/shm or /dev/mqueue.
 *
 * @module
 */

import { assertEquals } from "@std/assert";
import { listDirectory } from "../ffi/dir.ts";

/** A name no other test or run uses: prefix, pid and a random suffix. */
export function uniqueName(prefix: string): string {
  const random = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
  return `/ipckit-test-${prefix}-${Deno.pid}-${random}`;
}

/** The directories where Linux shows POSIX IPC objects as files. */
export const IPC_DIRS = ["/dev/shm", "/dev/mqueue"] as const;

let _mqueueMounted: Promise<boolean> | undefined;

/**
 * Makes /dev/mqueue visible where it is missing and we are root, so leak
 * checks can list queues. Where it cannot be mounted, tests fall back to
 * checking the names they created.
 */
export function ensureMqueueMounted(): Promise<boolean> {
  _mqueueMounted ??= (async () => {
    // Through libc: Deno 2.9's Deno.statSync demands --allow-all under /dev.
    if (typeof listDirectory("/dev/mqueue") !== "number") return true;
    if (Deno.uid() !== 0) return false;
    try {
      Deno.mkdirSync("/dev/mqueue", { recursive: true });
    } catch {
      return false;
    }
    return await commandSucceeds("mount", [
      "-t",
      "mqueue",
      "none",
      "/dev/mqueue",
    ]);
  })();
  return _mqueueMounted;
}

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
 * Lists the IPC directories through libc: Deno 2.9's own `Deno.readDirSync`
 * demands `--allow-all` under /dev, and a check that swallowed that error
 * would pass without looking.
 */
function _ipcEntries(): Set<string> {
  const entries = new Set<string>();
  for (const dir of IPC_DIRS) {
    const listed = listDirectory(dir);
    // A negative errno: the directory does not exist on this machine.
    if (typeof listed === "number") continue;
    for (const entry of listed) entries.add(`${dir}/${entry.name}`);
  }
  return entries;
}

/**
 * Wraps a test body: fails if, after it, /dev/shm or /dev/mqueue holds an
 * ipckit test object that was not there before. `names` are also checked
 * directly, for machines where /dev/mqueue cannot be listed.
 */
export function leakChecked(
  body: (t: Deno.TestContext) => Promise<void> | void,
): (t: Deno.TestContext) => Promise<void> {
  return async (t) => {
    await ensureMqueueMounted();
    const before = _ipcEntries();
    await body(t);
    // Other test runs on the same machine make and remove objects of their
    // own meanwhile: only this process's count, and uniqueName() puts its
    // pid in every name (fixtures are given names made here).
    const ours = `ipckit-test-`;
    const mine = `-${Deno.pid}-`;
    const leaked = [..._ipcEntries()].filter((entry) =>
      !before.has(entry) && entry.includes(ours) && entry.includes(mine)
    );
    assertEquals(leaked, [], `objects left behind: ${leaked.join(", ")}`);
  };
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
  const script = new URL(`./fixtures/${fixture}`, import.meta.url).pathname;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...flags, script, ...args],
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
  const script = new URL(`./fixtures/${fixture}`, import.meta.url).pathname;
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...flags, script, ...args],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}
