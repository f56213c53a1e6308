/**
 * The permissions Deno 2.9 demands for its own socket APIs, checked the
 * same way before ipckit's libc calls (measured with `Deno.listen`,
 * `Deno.connect` and `Deno.listenDatagram` on Deno 2.9.6):
 *
 * - A Unix socket file, to listen, connect, bind a datagram socket or send
 *   a datagram to it: `--allow-read` and `--allow-write` on the path, then
 *   `--allow-net=unix:<absolute path>` (the exact path: a directory does
 *   not cover the sockets in it), in that order.
 * - An abstract Unix name (`\0name`): Deno asks for net access to
 *   `unix:\0name`, which no `--allow-net` list can spell (Deno requires a
 *   `unix:` entry to be an absolute path), so only `--allow-net` without a
 *   list grants it. ipckit asks for the same.
 * - TCP and UDP: `--allow-net=<host>:<port>` with the host as written
 *   (`localhost:8080` is not `127.0.0.1:8080`), for listening, binding,
 *   connecting, and for every destination a datagram is sent to: a server
 *   that replies needs its senders' addresses too.
 *
 * Every check only queries: it never prompts.
 *
 * @module
 */

import { isAbsolute, normalize } from "@std/path/posix";
import { hostPort } from "../_kernel/socket_address.ts";
import { requirePermission } from "../_kernel/permissions.ts";

/**
 * Read and write on the path as written, then net on `unix:<path>` when it
 * is absolute, the order in which Deno checks them. The real location,
 * links followed, is checked by the caller once it has opened the
 * directory (see `unix_file.ts`).
 */
export function requireUnixPathAccess(path: string): void {
  requirePermission("read", path);
  requirePermission("write", path);
  if (isAbsolute(path)) requireUnixNetAccess(normalize(path));
}

/** `--allow-net=unix:<path>` for an absolute path. */
export function requireUnixNetAccess(absolutePath: string): void {
  const host = `unix:${absolutePath}`;
  if (_query(host) === "granted") return;
  throw new Deno.errors.NotCapable(
    `Requires net access to "${host}", run again with --allow-net=${host}`,
  );
}

/** An abstract name: only an unrestricted `--allow-net` grants it, as in Deno. */
export function requireAbstractAccess(name: string): void {
  if (Deno.permissions.querySync({ name: "net" }).state === "granted") return;
  throw new Deno.errors.NotCapable(
    `Requires net access to "unix:@${name}" (an abstract Unix socket name), run again with --allow-net: Deno grants abstract names only to --allow-net without a list`,
  );
}

/**
 * `--allow-net=<host>:<port>` for a TCP or UDP endpoint, the host as
 * written.
 *
 * @throws {TypeError} when Deno cannot read `hostname` as a host
 */
export function requireHostAccess(
  hostname: string,
  port: number,
  action: string,
): void {
  const host = hostPort(hostname, port);
  let state: Deno.PermissionState;
  try {
    state = _query(host);
  } catch (error) {
    throw new TypeError(
      `Cannot ${action}: "${hostname}" is not a host name or address Deno's permissions can name`,
      { cause: error },
    );
  }
  if (state === "granted") return;
  throw new Deno.errors.NotCapable(
    `Requires net access to "${host}", run again with --allow-net=${host}`,
  );
}

function _query(host: string): Deno.PermissionState {
  return Deno.permissions.querySync({ name: "net", host }).state;
}
