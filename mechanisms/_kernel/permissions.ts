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

/** What a caller is about to do to a kernel object. */
export type Access = "read" | "write";

/**
 * Throws `Deno.errors.NotCapable` unless Deno grants `access` to `path`.
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
  const status = Deno.permissions.querySync({ name: access, path });
  if (status.state === "granted") return;
  throw new Deno.errors.NotCapable(
    `Requires ${access} access to "${path}", run again with --allow-${access}=${flagScope}`,
  );
}

/** Checks every access in `accesses`, reads first, so the first missing flag is named. */
export function requirePermissions(
  accesses: Iterable<Access>,
  path: string,
  flagScope: string = path,
): void {
  for (const access of accesses) requirePermission(access, path, flagScope);
}
