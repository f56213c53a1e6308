/**
 * Deno's permission model applied to kernel objects.
 *
 * `--allow-ffi` lets code call any C function, so before every call that
 * opens, creates or removes a kernel object, ipckit checks the permission Deno
 * would demand for the path Linux gives that object (`/dev/mqueue/jobs` for
 * the message queue `/jobs`). The check only queries: it never prompts.
 *
 * @module
 */

import { dirname } from "@std/path/dirname";

/** What a caller is about to do to a kernel object. */
export type Access = "read" | "write";

/**
 * Whether Deno grants `access` to `path`, asking for its directory first:
 * Deno keeps a status object for every distinct path it is asked about, so
 * a server that opens many names under one granted directory would
 * otherwise grow by each name. Never prompts.
 */
export function isGranted(access: Access, path: string): boolean {
  const parent = Deno.permissions.querySync({
    name: access,
    path: dirname(path),
  });
  if (parent.state === "granted" && !parent.partial) return true;
  return Deno.permissions.querySync({ name: access, path }).state ===
    "granted";
}

/**
 * Throws `Deno.errors.NotCapable` unless Deno grants `access` to `path`.
 *
 * The directory is asked first, and the exact path only when that does not
 * settle it. Deno keeps a `PermissionStatus` for every distinct path ever
 * queried, for the life of the process (about 435 bytes each on Deno
 * 2.9.6): querying each object's own path made every distinct object name
 * cost memory for good, so a server that makes a queue per job grew
 * without bound. A directory that is granted with no denied path inside it
 * (`partial` false) grants everything in it, which is Deno's own rule; the
 * directories an application uses are few.
 *
 * @param path the path that stands for the object
 * @param flagScope the value to suggest after `--allow-read=`/`--allow-write=`;
 *   defaults to `path`
 */
export function requirePermission(
  access: Access,
  path: string,
  flagScope: string = path,
): void {
  if (isGranted(access, path)) return;
  throw new Deno.errors.NotCapable(
    `Requires ${access} access to "${path}", run again with --allow-${access}=${flagScope}`,
  );
}

export function requirePermissions(
  accesses: Iterable<Access>,
  path: string,
  flagScope: string = path,
): void {
  for (const access of accesses) requirePermission(access, path, flagScope);
}
