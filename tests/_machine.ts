/**
 * What a test needs from the machine, obtained the way the project's own
 * code would obtain it, or a reason why it cannot be (for `ignore`):
 *
 * - a /dev/mqueue that lists every queue, for a child process: the host's
 *   where it is mounted, otherwise (as root, with `unshare`) a private
 *   mount namespace for that child alone, so the host never gets a mount;
 * - another user to run Deno as (a uid of its own, see {@linkcode OTHER_UID}),
 *   with a Deno binary that user can execute
 *   (Deno from npm lives in root's cache, which others cannot enter).
 *
 * Every directory these create is removed by the `dispose` they return.
 *
 * @module
 */

import { queueDirectoryMounted } from "../mechanisms/inventory.ts";
import { commandSucceeds } from "./_helpers.ts";
// Written once in _helpers.ts, beside runFixture; the machine tests have
// always imported it from here.
export { runArgv } from "./_helpers.ts";

/**
 * The uid and gid tests run other-user children as: a number no account
 * and no other process uses (the kernel takes any uid; no entry in
 * /etc/passwd is needed), distinct per test process. With a shared one
 * such as `nobody`, another test run's process (an undumpable holder) would
 * run as the same user, and gc would rightly keep that user's objects.
 */
export const OTHER_UID = 2_000_000_000 + Deno.pid;

const _isRoot = Deno.uid() === 0;

/**
 * Whether this process may make private mount namespaces (root, with
 * util-linux's `unshare` and `flock`), asked once. The host's own /dev/mqueue may be
 * mounted or unmounted by someone else while the tests run, so the
 * functions below look at it each time they are called.
 */
const _CAN_UNSHARE = _isRoot &&
  await commandSucceeds("flock", ["--version"]) &&
  await commandSucceeds("unshare", [
    "--mount",
    "--propagation",
    "private",
    "true",
  ]);

/**
 * Why a child cannot be given a /dev/mqueue that lists every queue, or
 * `undefined` when it can (see {@linkcode withQueueDirectory}).
 */
export const QUEUE_DIRECTORY_MISSING: string | undefined =
  _CAN_UNSHARE || queueDirectoryMounted()
    ? undefined
    : "/dev/mqueue is not mounted, and mounting it in a private namespace needs root, unshare and flock";

/** A command line and how to undo what preparing it created. */
export interface Prepared extends AsyncDisposable {
  /** The program and its arguments, to give `Deno.Command`. */
  argv: string[];
}

/**
 * The script that gives `"$@"` a /dev/mqueue: under an exclusive `flock` on
 * /dev (so concurrent test runs take turns: removing the directory while
 * another run's namespace has the file system mounted on it would unmount
 * it there), it creates the directory if it is missing, runs `"$@"` in a
 * private mount namespace that mounts the mqueue file system on it, and
 * removes the directory again if it created it.
 */
const _WITH_QUEUE_DIRECTORY = `
created=
if [ ! -d /dev/mqueue ]; then mkdir /dev/mqueue && created=1; fi
unshare --mount --propagation private sh -c 'mount -t mqueue none /dev/mqueue && exec "$@"' sh "$@"
code=$?
if [ -n "$created" ]; then rmdir /dev/mqueue; fi
exit $code`;

/**
 * Prepares `argv` to run with /dev/mqueue listing every queue. Where the
 * host has it mounted, `argv` runs as it is. Otherwise it runs in a private
 * mount namespace (`unshare --mount --propagation private`) that mounts the
 * mqueue file system on /dev/mqueue for that process alone; a directory
 * created for it is removed when it exits, so the host keeps neither a
 * mount nor a directory. Check {@linkcode QUEUE_DIRECTORY_MISSING} first.
 */
export function withQueueDirectory(argv: string[]): Promise<Prepared> {
  if (queueDirectoryMounted()) {
    return Promise.resolve({
      argv,
      [Symbol.asyncDispose]: () => Promise.resolve(),
    });
  }
  if (!_CAN_UNSHARE) {
    throw new Error(`Cannot mount /dev/mqueue: ${QUEUE_DIRECTORY_MISSING}`);
  }
  return Promise.resolve({
    // Bounded: a run that held the lock for a minute has hung anyway.
    argv: [
      "flock",
      "--timeout=60",
      "/dev",
      "sh",
      "-c",
      _WITH_QUEUE_DIRECTORY,
      "sh",
      ...argv,
    ],
    [Symbol.asyncDispose]: () => Promise.resolve(),
  });
}

/**
 * Why a child cannot be given a machine where /dev/mqueue is not mounted,
 * or `undefined` when it can (see {@linkcode withoutQueueDirectory}).
 */
export const UNMOUNTED_MISSING: string | undefined =
  _CAN_UNSHARE || !queueDirectoryMounted()
    ? undefined
    : "/dev/mqueue is mounted, and unmounting it in a private namespace needs root and unshare";

/**
 * Prepares `argv` to run where /dev/mqueue is not mounted, the fresh
 * machine's case: as it is where the host has no mount, otherwise in a
 * private mount namespace that unmounts it for that process alone. Check
 * {@linkcode UNMOUNTED_MISSING} first.
 */
export function withoutQueueDirectory(argv: string[]): string[] {
  if (!queueDirectoryMounted()) return argv;
  if (!_CAN_UNSHARE) {
    throw new Error(`Cannot unmount /dev/mqueue: ${UNMOUNTED_MISSING}`);
  }
  return [
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    'umount /dev/mqueue && exec "$@"',
    "sh",
    ...argv,
  ];
}

/** Why Deno cannot be run as another user here, or `undefined` when it can. */
export const OTHER_USER_MISSING: string | undefined = !_isRoot
  ? "running as another user needs root"
  : !(await commandSucceeds("setpriv", [`--reuid=${OTHER_UID}`, "true"]))
  ? "setpriv (util-linux) is not installed or cannot switch users"
  : undefined;

/** A way to run Deno as {@linkcode OTHER_UID}. */
export interface OtherUserDeno extends AsyncDisposable {
  /**
   * The command line that runs `deno <args>` as the other user, with its own
   * cache directory (seeded from this user's, so nothing is downloaded).
   */
  argv(args: string[]): string[];
  /** A directory the other user owns and may write, removed on dispose. */
  home: string;
}

/**
 * Prepares to run Deno as {@linkcode OTHER_UID}. `Deno.execPath()` is used where that
 * user can execute it; otherwise (Deno from npm, in root's cache) a hard
 * link to it, or a copy, in a world-readable temporary directory. Check
 * {@linkcode OTHER_USER_MISSING} first.
 */
export async function otherUserDeno(): Promise<OtherUserDeno> {
  if (OTHER_USER_MISSING !== undefined) {
    throw new Error(`Cannot run as another user: ${OTHER_USER_MISSING}`);
  }
  const made: string[] = [];
  try {
    const home = await Deno.makeTempDir({ prefix: "ipckit-test-home-" });
    made.push(home);
    await Deno.chmod(home, 0o777);
    let deno = Deno.execPath();
    const asOther = [
      "setpriv",
      `--reuid=${OTHER_UID}`,
      `--regid=${OTHER_UID}`,
      "--clear-groups",
    ];
    if (
      // Through env, as the children run: setpriv itself keeps root's
      // capabilities until it execs, so it could start what env cannot.
      !(await commandSucceeds(asOther[0], [
        ...asOther.slice(1),
        "env",
        deno,
        "--version",
      ]))
    ) {
      const bin = await Deno.makeTempDir({ prefix: "ipckit-test-deno-" });
      made.push(bin);
      await Deno.chmod(bin, 0o755);
      const copy = `${bin}/deno`;
      if (
        !(await commandSucceeds("ln", [deno, copy])) &&
        !(await commandSucceeds("cp", [deno, copy]))
      ) {
        throw new Error(`Cannot link or copy ${deno} to ${copy}`);
      }
      await Deno.chmod(copy, 0o755);
      deno = copy;
    }
    // Seed the other user's cache with this one's downloads (@std from jsr),
    // so a machine without the registry runs the child too.
    const cache = await _denoDir();
    if (cache) {
      await commandSucceeds("cp", ["-r", `${cache}/remote`, `${home}/remote`]);
    }
    await commandSucceeds("chmod", ["-R", "a+rwX", home]);
    return {
      home,
      argv: (args) => [
        ...asOther,
        "env",
        `DENO_DIR=${home}`,
        `HOME=${home}`,
        deno,
        ...args,
      ],
      async [Symbol.asyncDispose](): Promise<void> {
        for (const dir of made) await Deno.remove(dir, { recursive: true });
      },
    };
  } catch (error) {
    for (const dir of made) await Deno.remove(dir, { recursive: true });
    throw error;
  }
}

/** This user's Deno cache directory, as `deno info --json` reports it. */
async function _denoDir(): Promise<string | undefined> {
  try {
    const { stdout, success } = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json"],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!success) return undefined;
    return JSON.parse(new TextDecoder().decode(stdout)).denoDir;
  } catch {
    return undefined;
  }
}
