/**
 * What `create: true` may do with an object that already exists.
 *
 * Every kind of named object (message queue, shared memory, semaphore,
 * mutex, FIFO, mapped file) opens with `create: true` the same way: it first
 * tries to create the object exclusively (`O_CREAT | O_EXCL`); only when
 * that finds one already there does it open the existing object, and then
 * it *adopts* it only if the object is the caller's own: owned by the
 * effective uid, with a mode that grants nothing beyond the `mode` asked
 * for, and with no second hard link (another name could lead to the same
 * data). Otherwise another user could plant `/jobs` with mode `0o666` before
 * a root process starts and read everything it sends.
 *
 * Sharing on purpose is explicit: `adopt: "any-owner"` uses whatever is
 * there (the kernel's own access check still applies). Opening without
 * `create` is the explicit "use what exists" and is never checked here.
 *
 * @module
 */

import { O } from "../../ffi/c.ts";
import { effectiveUid } from "../../ffi/dir_fd.ts";
import { ERRNO } from "../../ffi/errno.ts";
import type { FileStatus } from "../../ffi/stat.ts";
import { withDetails } from "../_common/system_error.ts";

/**
 * Which existing objects `create: true` uses: `"owned"` (the default) only
 * the caller's own, private ones; `"any-owner"` any it can open.
 */
export type AdoptPolicy = "owned" | "any-owner";

/** Checks the `adopt` option before any system call; returns the policy to apply. */
export function checkAdoptOption(
  adopt: unknown,
  create: boolean | undefined,
  exclusive: boolean | undefined,
  action: string,
): AdoptPolicy {
  if (adopt === undefined) return "owned";
  if (adopt !== "owned" && adopt !== "any-owner") {
    throw new TypeError(
      `Cannot ${action}: adopt must be "owned" or "any-owner", got ${
        typeof adopt === "string" ? JSON.stringify(adopt) : typeof adopt
      }`,
    );
  }
  if (!create) {
    throw new TypeError(
      `Cannot ${action}: adopt needs create (without create, an existing object is always used)`,
    );
  }
  if (exclusive) {
    throw new TypeError(
      `Cannot ${action}: adopt cannot be combined with exclusive, which never uses an existing object`,
    );
  }
  return adopt;
}

/**
 * Opens an object with `attempt(extraFlags)` (an mq_open, shm_open or open
 * that returns the descriptor or `-errno`), telling an object this call
 * created from one that already existed: with `create` it first tries
 * `O_CREAT | O_EXCL`, and only on EEXIST (and not `exclusive`) opens the
 * existing one, which the caller then checks with
 * {@linkcode requireAdoptable}. The caller also learns whether it must size
 * the new object, and remove it if anything later fails.
 *
 * @param fail builds the error for a failed attempt from its errno, and
 * the reason to give when the generic one for that errno would mislead
 */
export function openTracked(
  attempt: (extraFlags: number) => number,
  fail: (errno: number, reason?: string) => Error,
  create: boolean,
  exclusive: boolean,
): { fd: number; created: boolean } {
  if (!create) {
    const fd = attempt(0);
    if (fd < 0) throw fail(-fd);
    return { fd, created: false };
  }
  // A few rounds cover an object removed between our two attempts.
  for (let round = 0; round < 8; round++) {
    const fd = attempt(O.CREAT | O.EXCL);
    if (fd >= 0) return { fd, created: true };
    if (-fd !== ERRNO.EEXIST || exclusive) throw fail(-fd);
    const existing = attempt(0);
    if (existing >= 0) return { fd: existing, created: false };
    if (-existing !== ERRNO.ENOENT) throw fail(-existing);
  }
  throw fail(
    ERRNO.EEXIST,
    "it kept appearing and disappearing while opening it",
  );
}

/**
 * Throws `PermissionDenied` unless an existing object found by
 * `create: true` may be adopted under `policy`: the message names its owner
 * (uid and user name where `/etc/passwd` may be read) and its mode.
 *
 * @param status the object's fstat, taken on the descriptor that was opened
 * @param mode the mode the caller asked for (default `0o600`)
 * @param syscall the call that opened it, for the error's details
 */
export function requireAdoptable(
  status: Pick<FileStatus, "uid" | "mode" | "nlink">,
  mode: number,
  policy: AdoptPolicy,
  syscall: string,
  action: string,
): void {
  if (policy === "any-owner") return;
  const me = effectiveUid();
  const bits = status.mode & 0o7777;
  const owned = status.uid === me;
  const narrow = (bits & ~mode) === 0;
  const single = status.nlink <= 1;
  if (owned && narrow && single) return;
  const links = single ? "" : ` and ${status.nlink} hard links`;
  const details = { code: "EACCES", errno: ERRNO.EACCES, syscall };
  throw withDetails(
    new Deno.errors.PermissionDenied(
      `Cannot ${action}: it already exists, owned by ${
        describeUser(status.uid)
      } with mode ${
        _octal(bits)
      }${links}, and create only uses an existing object that you (${
        describeUser(me, ", ")
      }) own, with a mode within ${
        _octal(mode)
      } and no other name; pass adopt: "any-owner" to use an object someone else may control`,
    ),
    details,
  );
}

/**
 * `uid 65534 (nobody)` (or with `separator` `", "`: `uid 65534, nobody`),
 * or `uid 65534` where `/etc/passwd` is not readable (the check only
 * queries Deno's permission, it never prompts).
 */
export function describeUser(uid: number, separator?: string): string {
  const name = _userName(uid);
  if (name === undefined) return `uid ${uid}`;
  return separator === undefined
    ? `uid ${uid} (${name})`
    : `uid ${uid}${separator}${name}`;
}

function _userName(uid: number): string | undefined {
  const path = "/etc/passwd";
  if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") {
    return undefined;
  }
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
  for (const line of text.split("\n")) {
    const [name, , id] = line.split(":");
    if (id !== undefined && Number(id) === uid && name) return name;
  }
  return undefined;
}

function _octal(mode: number): string {
  return `0o${mode.toString(8).padStart(3, "0")}`;
}
