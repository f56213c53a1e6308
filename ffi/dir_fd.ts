/**
 * Directories held by a descriptor, and the `*at()` calls that act on a name
 * inside one: how ipckit opens, creates and removes exactly the file whose
 * path it checked (see `mechanisms/_kernel/anchored_path.ts` for why).
 *
 * Every function returns `-errno` on failure instead of throwing, like the
 * rest of `ffi/`. Callers check Deno's permissions first: these functions do
 * not.
 *
 * Linux only: `O_PATH` and `/proc/self/fd` have no macOS equivalent that the
 * fixed-parameter declarations in `libc.ts` could call soundly there, so
 * {@linkcode openDirectory} throws `NotSupported` on other systems.
 *
 * @module
 */

import { cString, O, RENAME } from "./c.ts";
import { ERRNO, retryEintr } from "./errno.ts";
import { libc } from "./load.ts";

/**
 * Opens the directory at `path` for use as the `dirfd` of `*at()` calls:
 * `O_PATH | O_DIRECTORY`, which needs search permission on the path but no
 * read permission on the directory, and grants no I/O on it. Symbolic links
 * in `path` are followed (the caller learns where they led with
 * {@linkcode descriptorPath}).
 *
 * @returns the descriptor, or `-errno`
 * @throws {Deno.errors.NotSupported} on systems other than Linux
 */
export function openDirectory(path: string): number {
  if (Deno.build.os !== "linux") {
    throw new Deno.errors.NotSupported(
      `Opening a directory by descriptor (O_PATH) is not available on ${Deno.build.os}/${Deno.build.arch}`,
    );
  }
  const cPath = cString(path);
  const flags = O.PATH | O.DIRECTORY | O.CLOEXEC;
  return retryEintr(() => libc().symbols.open(cPath, flags, 0));
}

const _strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * The path the kernel has for the file open on `fd` (readlink of
 * `/proc/self/fd/<fd>`): absolute, without symbolic links, `.` or `..`.
 * A removed file reads as `<path> (deleted)`; callers confirm the answer by
 * comparing the file at that path with `fd`.
 *
 * @returns the path, or `-errno`: `-ENOENT` when /proc is not mounted,
 * `-ENAMETOOLONG` when it does not fit PATH_MAX, `-EILSEQ` when it is not
 * UTF-8 (and so cannot be matched against Deno's permissions)
 */
export function descriptorPath(fd: number): string | number {
  const link = cString(`/proc/self/fd/${fd}`);
  const buffer = new Uint8Array(4096);
  const length = retryEintr(() =>
    Number(libc().symbols.readlink(link, buffer, BigInt(buffer.length)))
  );
  if (length < 0) return length;
  if (length >= buffer.length) return -ERRNO.ENAMETOOLONG;
  try {
    return _strictUtf8.decode(buffer.subarray(0, length));
  } catch {
    return -ERRNO.EILSEQ;
  }
}

/**
 * Opens `name` in the directory open on `dirfd`, never following a final
 * symbolic link (`O_NOFOLLOW`, so a link there fails with ELOOP) and never
 * leaking the descriptor into children (`O_CLOEXEC`).
 *
 * @returns the descriptor, or `-errno`
 */
export function openAt(
  dirfd: number,
  name: string,
  flags: number,
  mode: number,
): number {
  const cName = cString(name);
  const all = flags | O.NOFOLLOW | O.CLOEXEC;
  return retryEintr(() => libc().symbols.openat(dirfd, cName, all, mode));
}

/** mkfifoat(3): makes a FIFO `name` in the directory on `dirfd`. Returns 0 or `-errno`. */
export function mkfifoAt(dirfd: number, name: string, mode: number): number {
  const cName = cString(name);
  return retryEintr(() => libc().symbols.mkfifoat(dirfd, cName, mode));
}

/** unlinkat(2) of a non-directory `name` in the directory on `dirfd`. Returns 0 or `-errno`. */
export function unlinkAt(dirfd: number, name: string): number {
  const cName = cString(name);
  return retryEintr(() => libc().symbols.unlinkat(dirfd, cName, 0));
}

/**
 * Renames `from` to `to`, both in the directory on `dirfd`. With
 * `noReplace`, fails with EEXIST instead of replacing an existing `to`
 * (renameat2 `RENAME_NOREPLACE`); where the kernel, the file system or the C
 * library cannot do that, returns `-ENOSYS` rather than risk a replacement.
 * Without it, an existing `to` is replaced (plain renameat).
 *
 * @returns 0 or `-errno`
 */
export function renameAt(
  dirfd: number,
  from: string,
  to: string,
  noReplace: boolean,
): number {
  const cFrom = cString(from);
  const cTo = cString(to);
  const { renameat, renameat2 } = libc().symbols;
  if (!noReplace) {
    return retryEintr(() => renameat(dirfd, cFrom, dirfd, cTo));
  }
  if (!renameat2) return -ERRNO.ENOSYS;
  const result = retryEintr(() =>
    renameat2(dirfd, cFrom, dirfd, cTo, RENAME.NOREPLACE)
  );
  // EINVAL: a file system that does not implement RENAME_NOREPLACE.
  return result === -ERRNO.EINVAL ? -ERRNO.ENOSYS : result;
}

/** Closes a descriptor, ignoring errors (there is nothing left to do with it). */
export function closeDescriptor(fd: number): void {
  libc().symbols.close(fd);
}

/** The effective uid: whom the kernel checks permissions for, and who owns what this process creates. */
export function effectiveUid(): number {
  return libc().symbols.geteuid();
}
