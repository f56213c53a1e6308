/**
 * The file a Unix socket lives at: checking the path as Deno would and
 * where it really leads, binding with the mode asked for, replacing a stale
 * file left by a crashed server (and nothing else), and removing ours when
 * it closes.
 *
 * ## The mode, with no window
 *
 * `bind(2)` creates the socket file with the mode of the socket's own inode
 * minus the umask, and that inode's mode is what `fchmod(2)` on the
 * unbound socket sets. So ipckit calls `fchmod(fd, mode)` and then
 * `bind()`: the file is born with `mode & ~umask` (default `0o600`), never
 * wider for an instant, with no temporary directory and no rename (a socket
 * bound elsewhere and renamed into place would report the other path to
 * its peers in `getpeername`, `ss` and `/proc/net/unix`). The mode is read
 * back after binding; a kernel that did not honour it would have its file
 * removed and the bind refused, never kept wider than asked.
 *
 * ## Stale files, without touching a live server
 *
 * A socket file survives its server when that server crashes. Whether a
 * live socket is bound to it is learnt by connecting a *datagram* socket
 * to the path: the kernel finds the socket bound to that very inode, and
 * answers ECONNREFUSED when there is none (the file is stale), EPROTOTYPE
 * when it is a stream or seqpacket socket (alive), or connects (a live
 * datagram socket). A datagram connect only records a peer: no connection
 * is queued at the listener, so a single-connection server (`socat`
 * without `fork`) loses nothing, as it did to a stream connect probe.
 * This is exact where `/proc/net/unix` is not: it lists the path a socket
 * was bound at, which stays listed after that file is removed and another
 * takes its name.
 *
 * @module
 */

import { isAbsolute, normalize } from "@std/path/posix";
import { S_IFMT, S_IFSOCK } from "../../ffi/c.ts";
import { ERRNO } from "../../ffi/errno.ts";
import { libc } from "../../ffi/load.ts";
import {
  AF,
  bindSocket,
  changeMode,
  connectSocket,
  openSocket,
  SOCK,
  unixAddress,
} from "../../ffi/socket.ts";
import { type FileStatus, sameFile, statPath } from "../../ffi/stat.ts";
import { systemError } from "../_common/system_error.ts";
import { AnchoredPath } from "../_kernel/anchored_path.ts";
import { requireUnixNetAccess, requireUnixPathAccess } from "./permissions.ts";

/** What connecting a datagram socket to a path says about the socket file there. */
type _Liveness = "alive" | "stale" | "gone" | "denied";

/** A socket file this process bound, kept by its directory so closing removes exactly it. */
export class UnixSocketFile {
  /** The path as the caller gave it. */
  readonly path: string;
  #at: AnchoredPath | undefined;
  #identity: FileStatus;

  private constructor(path: string, at: AnchoredPath, identity: FileStatus) {
    this.path = path;
    this.#at = at;
    this.#identity = identity;
  }

  /**
   * Binds `fd` (an unbound Unix socket) at the path `at` holds (checked by
   * {@linkcode anchorSocketPath}) with `mode`, after the stale-file check.
   * The result owns `at`; on failure `at` is closed.
   *
   * @throws {Deno.errors.AlreadyExists} when the path exists and is not a socket
   * @throws {Deno.errors.AddrInUse} when a live socket is bound there
   */
  static bind(
    at: AnchoredPath,
    fd: number,
    mode: number,
    action: string,
  ): UnixSocketFile {
    const path = at.path;
    try {
      const existing = at.stat();
      if (typeof existing !== "number") _replaceStale(at, existing, action);
      const chmod = changeMode(fd, mode);
      if (chmod < 0) throw systemError("fchmod", action, -chmod);
      const bound = bindSocket(fd, unixAddress(path, false));
      if (bound < 0) {
        throw systemError(
          "bind",
          action,
          -bound,
          -bound === ERRNO.EADDRINUSE
            ? "another process is using it"
            : undefined,
        );
      }
      const created = _confirmBound(at, path, action);
      if ((created.mode & 0o777 & ~mode) !== 0) {
        _removeQuietly(at, created);
        throw new Deno.errors.NotSupported(
          `Cannot ${action}: the kernel created the socket file with mode 0o${
            (created.mode & 0o777).toString(8)
          }, wider than 0o${
            mode.toString(8)
          }, ignoring fchmod() before bind(); the file was removed`,
        );
      }
      return new UnixSocketFile(path, at, created);
    } catch (error) {
      at.close();
      throw error;
    }
  }

  /** Removes the file if it is still the one bound here (another server may have replaced it); idempotent. */
  remove(): void {
    const at = this.#at;
    if (!at) return;
    this.#at = undefined;
    _removeQuietly(at, this.#identity);
    at.close();
  }
}

/**
 * Checks read, write and net access to a socket path as Deno would, opens
 * its directory and checks the real location the same way: what
 * listening, connecting and sending a datagram to a path all need. The
 * caller closes the result.
 */
export function anchorSocketPath(path: string, action: string): AnchoredPath {
  requireUnixPathAccess(path);
  const at = AnchoredPath.open(path, ["read", "write"], action);
  try {
    if (!isAbsolute(path) || normalize(path) !== at.realPath) {
      requireUnixNetAccess(at.realPath);
    }
    return at;
  } catch (error) {
    at.close();
    throw error;
  }
}

/**
 * Checks a path to connect or send to: the permissions, and that a socket
 * file is there (not a symbolic link, which ipckit does not follow, as for
 * FIFOs).
 *
 * @throws {Deno.errors.NotFound} when nothing is at the path
 */
export function checkSocketTarget(path: string, action: string): void {
  using at = anchorSocketPath(path, action);
  const status = at.stat();
  if (typeof status === "number") {
    throw systemError(
      "connect",
      action,
      -status,
      -status === ERRNO.ENOENT ? "no socket file exists there" : undefined,
    );
  }
  if ((status.mode & S_IFMT) !== S_IFSOCK) {
    throw systemError(
      "connect",
      action,
      ERRNO.ECONNREFUSED,
      "the path is not a socket",
    );
  }
}

/** Replaces the socket file at `at` if nothing is bound to it; refuses anything else. */
function _replaceStale(
  at: AnchoredPath,
  existing: FileStatus,
  action: string,
): void {
  if ((existing.mode & S_IFMT) !== S_IFSOCK) {
    throw new Deno.errors.AlreadyExists(
      `Cannot ${action}: the path exists and is not a socket, so it is left alone`,
    );
  }
  const liveness = _probe(at.path);
  if (liveness === "gone") return;
  if (liveness === "denied") {
    throw new Deno.errors.PermissionDenied(
      `Cannot ${action}: a socket file is there and the kernel denied connecting to it, so whether it is in use cannot be told; it is left alone`,
    );
  }
  if (liveness === "alive") {
    throw new Deno.errors.AddrInUse(
      `Cannot ${action}: another process is using it`,
    );
  }
  try {
    // Only the file that was probed: one that took its place meanwhile
    // (another server starting) is left alone.
    at.remove(
      (status) =>
        sameFile(status, existing) ? undefined : new Deno.errors.AddrInUse(
          `Cannot ${action}: another process is using it`,
        ),
      action,
    );
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/** Whether a live socket is bound to the file at `path`; see the module doc. */
function _probe(path: string): _Liveness {
  const fd = openSocket(AF.UNIX, SOCK.DGRAM);
  if (fd < 0) throw systemError("socket", `probe "${path}"`, -fd);
  try {
    const result = connectSocket(fd, unixAddress(path, false));
    if (result === -ERRNO.ECONNREFUSED) return "stale";
    if (result === -ERRNO.ENOENT) return "gone";
    if (result === -ERRNO.EACCES || result === -ERRNO.EPERM) {
      // EPERM also answers a datagram socket connected to another peer:
      // that one is alive, and refusing is right either way.
      return result === -ERRNO.EPERM ? "alive" : "denied";
    }
    return "alive";
  } finally {
    libc().symbols.close(fd);
  }
}

/**
 * The socket file just bound, confirmed to be in the directory that was
 * checked: `bind()` resolves the path again, and the directory could have
 * been swapped in between by someone allowed to write its parent.
 */
function _confirmBound(
  at: AnchoredPath,
  path: string,
  action: string,
): FileStatus {
  const inChecked = at.stat();
  const atPath = statPath(path, false);
  if (
    typeof inChecked === "number" || typeof atPath === "number" ||
    !sameFile(inChecked, atPath) || (inChecked.mode & S_IFMT) !== S_IFSOCK
  ) {
    throw systemError(
      "bind",
      action,
      ERRNO.ENOENT,
      "its directory was replaced while the socket was being bound; the socket was not kept",
    );
  }
  return inChecked;
}

function _removeQuietly(at: AnchoredPath, identity: FileStatus): void {
  try {
    at.remove(
      (status) =>
        sameFile(status, identity) ? undefined : new Error("replaced"),
      "remove a socket file",
    );
  } catch {
    // Gone already, or another server's file now: not ours to remove.
  }
}
