/**
 * Opening, creating and removing exactly the file whose path was checked.
 *
 * Why: Deno checks permissions on a path as text (`allowed/link/../x` is
 * `allowed/x` to it), while the kernel follows the link first and applies
 * `..` after it (to the link's target). A path checked as text and then
 * handed to `open(2)` can therefore lead outside what the caller allowed,
 * through `..` after a link, a symlinked directory, a final link, or a
 * component swapped between the check and the open.
 *
 * How, and why it is sound:
 * 1. The path is first checked as Deno would check it, as text, so that a
 *    missing flag fails before any system call (no existence oracle).
 * 2. Its directory part, as written, is opened with `O_PATH | O_DIRECTORY`.
 *    From then on that descriptor *is* the directory: renaming or swapping
 *    components of the path afterwards changes nothing about what it names.
 * 3. The kernel's own path for that descriptor (readlink of
 *    `/proc/self/fd/N`: absolute, with no links, `.` or `..`) is confirmed by
 *    comparing the directory found there with the descriptor (device and
 *    inode), and Deno's permission is checked on `<real directory>/<name>`.
 *    That is the real location, so a symbolic link inside an allowed
 *    directory does not extend the grant: the caller must allow where the
 *    link leads. (This is stricter than Deno's own file API, which follows
 *    such links.)
 * 4. The file is then reached only through the descriptor and its final
 *    name, with `*at()` calls that never follow a final link (`O_NOFOLLOW`,
 *    `AT_SYMLINK_NOFOLLOW`): nothing is resolved again.
 *
 * What it cannot close: the directory itself can be renamed elsewhere by
 * someone allowed to write its parent after step 3; the open then happens
 * in the directory that was checked, wherever it now is. Only the owner of
 * the parent directory (or root) can do that.
 *
 * Linux only (O_PATH and /proc/self/fd).
 *
 * @module
 */

import { isAbsolute, join, normalize } from "@std/path/posix";
import {
  closeDescriptor,
  descriptorPath,
  mkfifoAt,
  openAt,
  openDirectory,
  renameAt,
  unlinkAt,
} from "../../ffi/dir_fd.ts";
import { ERRNO } from "../../ffi/errno.ts";
import {
  type FileStatus,
  sameFile,
  statAt,
  statFd,
  statPath,
} from "../../ffi/stat.ts";
import { systemError } from "../_common/system_error.ts";
import type { Access } from "./permissions.ts";
import { isGranted, requirePermission } from "./permissions.ts";
import { splitFilePath } from "./paths.ts";

/**
 * A checked path, held as a descriptor on its directory and a final name.
 * Close it (or `using` it) when done: it holds a descriptor.
 */
export class AnchoredPath implements Disposable {
  /** The path as the caller gave it. */
  readonly path: string;
  /** The final component. */
  readonly name: string;
  /** `<real directory>/<name>`: what the permissions were checked on. */
  readonly realPath: string;
  #dirfd: number;

  private constructor(
    path: string,
    name: string,
    realPath: string,
    dirfd: number,
  ) {
    this.path = path;
    this.name = name;
    this.realPath = realPath;
    this.#dirfd = dirfd;
  }

  /**
   * Checks `accesses` on `file` as text, opens its directory, and checks
   * them again on the real location.
   *
   * @param file a path checked by `checkFilePath`
   * @param action what is being done, for messages: `open FIFO "/tmp/f"`
   * @throws {Deno.errors.NotCapable} when either check fails; the message
   * names the path to allow
   * @throws {Deno.errors.NotFound} when the directory does not exist
   */
  static open(
    file: string,
    accesses: readonly Access[],
    action: string,
  ): AnchoredPath {
    for (const access of accesses) requirePermission(access, file);
    const { parent, name } = splitFilePath(file);
    const dirfd = openDirectory(parent);
    if (dirfd < 0) throw _directoryError(action, -dirfd);
    try {
      const realPath = join(_realDirectory(dirfd, action), name);
      for (const access of accesses) _requireReal(access, realPath, file);
      return new AnchoredPath(file, name, realPath, dirfd);
    } catch (error) {
      closeDescriptor(dirfd);
      throw error;
    }
  }

  /** lstat of the name: what is there now, links not followed, or `-errno`. */
  stat(): FileStatus | number {
    return statAt(this.#fd(), this.name);
  }

  /**
   * Opens the name (`O_NOFOLLOW | O_CLOEXEC` added to `flags`).
   *
   * @returns the descriptor, or `-errno` (ELOOP for a symbolic link)
   */
  open(flags: number, mode: number): number {
    return openAt(this.#fd(), this.name, flags, mode);
  }

  /** Makes a FIFO at the name. Returns 0 or `-errno` (EEXIST when anything is there). */
  makeFifo(mode: number): number {
    return mkfifoAt(this.#fd(), this.name, mode);
  }

  /**
   * Removes the name, but only if the file it names passes `refuse`
   * (which returns the error to throw, or undefined to go ahead), and never
   * a different file that took its place meanwhile.
   *
   * A plain check-then-unlink could remove whatever was swapped in between
   * the two. Instead the entry is first renamed, atomically, to a fresh
   * random name in the same directory; the file now under that private name
   * is the one judged, and it is either removed or renamed back.
   *
   * Residual window: between judging the file under its private name and
   * unlinking that name, someone allowed to write the directory could
   * replace the private name with another file, which would then lose that
   * name. Such a process could remove the name itself, so nothing it could
   * not already do is done for it, and hard links elsewhere keep the data.
   * While the entry is under its private name, other processes see the path
   * as missing.
   *
   * @throws what `refuse` returns, when it refuses
   * @throws {Deno.errors.NotFound} when nothing is at the name
   */
  remove(
    refuse: (status: FileStatus) => Error | undefined,
    action: string,
  ): void {
    const dirfd = this.#fd();
    const before = statAt(dirfd, this.name);
    if (typeof before === "number") throw systemError("lstat", action, -before);
    const refusal = refuse(before);
    if (refusal) throw refusal;

    const hidden = `.ipckit-removing-${_randomHex(16)}`;
    let moved = renameAt(dirfd, this.name, hidden, true);
    // Without RENAME_NOREPLACE, a fresh 128-bit random name replaces nothing.
    if (moved === -ERRNO.ENOSYS) {
      moved = renameAt(dirfd, this.name, hidden, false);
    }
    if (moved < 0) throw systemError("rename", action, -moved);

    const held = statAt(dirfd, hidden);
    const heldRefusal = typeof held === "number"
      ? systemError("lstat", action, -held)
      : refuse(held);
    if (!heldRefusal) {
      const removed = unlinkAt(dirfd, hidden);
      if (removed < 0) throw systemError("unlink", action, -removed);
      return;
    }
    // Another file took the name between the check and the rename: put it
    // back, never over something that has appeared at the name since.
    const back = renameAt(dirfd, hidden, this.name, true);
    if (back < 0) {
      throw systemError(
        "rename",
        action,
        -back,
        `another file took its place while it was being removed and could not be put back; it is at "${
          join(this.realPath, "..", hidden)
        }"`,
      );
    }
    throw heldRefusal;
  }

  /** Closes the directory descriptor; idempotent. */
  close(): void {
    if (this.#dirfd < 0) return;
    closeDescriptor(this.#dirfd);
    this.#dirfd = -1;
  }

  /** Closes the directory descriptor; see {@linkcode AnchoredPath.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  #fd(): number {
    if (this.#dirfd < 0) {
      throw new Deno.errors.BadResource(
        `Cannot use the directory of "${this.path}": it is closed`,
      );
    }
    return this.#dirfd;
  }
}

/**
 * The kernel's path of the directory open on `dirfd`, confirmed: the
 * directory at that path is the one on the descriptor.
 */
function _realDirectory(dirfd: number, action: string): string {
  const real = descriptorPath(dirfd);
  if (typeof real === "number") {
    const errno = -real;
    throw systemError(
      "readlink",
      action,
      errno,
      errno === ERRNO.ENOENT
        ? "ipckit learns the real path of its directory from /proc/self/fd, and /proc is not mounted"
        : errno === ERRNO.EILSEQ
        ? "the real path of its directory is not UTF-8, so no Deno permission can name it"
        : undefined,
    );
  }
  const held = statFd(dirfd);
  const there = statPath(real, false);
  if (
    typeof held === "number" || typeof there === "number" ||
    !sameFile(held, there)
  ) {
    throw systemError(
      "readlink",
      action,
      ERRNO.ENOENT,
      "its directory was moved or removed while it was being opened",
    );
  }
  return real;
}

/** Checks `access` on the real location, naming it and the path given. */
function _requireReal(access: Access, realPath: string, given: string): void {
  if (isGranted(access, realPath)) return;
  // Deno.cwd() needs read permission of its own, so a relative path is
  // described by what it became rather than compared.
  const same = isAbsolute(given) && normalize(given) === realPath;
  const where = same ? "" : ` (where "${given}" leads, links followed)`;
  throw new Deno.errors.NotCapable(
    `Requires ${access} access to "${realPath}"${where}, run again with --allow-${access}=${realPath}`,
  );
}

function _directoryError(action: string, errno: number): Error {
  const reasons: Partial<Record<number, string>> = {
    [ERRNO.ENOENT]: "its parent directory does not exist",
    [ERRNO.ENOTDIR]: "a component of its parent path is not a directory",
    [ERRNO.EACCES]: "the kernel denied search access to its parent directory",
    [ERRNO.ELOOP]: "its parent path has too many symbolic links",
  };
  return systemError("open", action, errno, reasons[errno]);
}

function _randomHex(bytes: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (byte) => byte.toString(16).padStart(2, "0"),
  ).join("");
}
