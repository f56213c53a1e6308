/**
 * Memory-mapped files (`open` + `mmap` + `msync`): a file's bytes as an
 * `ArrayBuffer`, shared with every process that maps the same file
 * (`shared: true`, `MAP_SHARED`) or private copy-on-write (`shared: false`,
 * `MAP_PRIVATE`).
 *
 * Permissions: `--allow-read=<path>` always; `--allow-write=<path>` when the
 * file is opened for writing (a shared writable mapping, `create`, or
 * `resize()`), and `--allow-ffi`. A private mapping of an existing file only
 * reads it, so it needs only `--allow-read`. Both are checked on the path as
 * given and on where it really leads: the file is opened relative to its
 * directory, whose real path (symbolic links followed) is what the second
 * check sees, and a final symbolic link is never followed.
 *
 * Only regular files are mapped: anything else is refused before it is
 * opened (opening a FIFO would wait for a peer). With `create`, an existing
 * file is used only if it is the caller's own (see
 * {@linkcode MappedFileOptions.adopt}); a failed `create` removes only the
 * file it made.
 *
 * The lifecycle and safety rules are those of `SharedMemory` (the two share
 * one implementation): views are detached before unmapping, read-only
 * handles are copy-on-write, and `Atomics` on integer views are ordered
 * across processes. Space is reserved with `posix_fallocate` when this
 * handle creates or grows the file, so a full disk is an `ENOSPC` error
 * rather than SIGBUS. Not reserved: holes that already exist in a sparse
 * file opened for writing (filling them could take far more disk than the
 * caller will ever write), and another process truncating the file under
 * the mapping; either can still end in SIGBUS.
 *
 * `flush()` (`msync`) is only about durability: other processes mapping
 * the file see writes at once, through the page cache, with or without it.
 *
 * Like every named object, the file stays when the handle closes unless it
 * was opened with `unlinkOnClose: true`, which removes it then (that file,
 * never another one put at its path meanwhile).
 *
 * @example Count how often a program ran, in a file
 * ```ts ignore
 * // Not run as a test: runs.bin is meant to stay between runs.
 * import { layout, MappedFile } from "@ipckit/ipckit";
 *
 * using stats = MappedFile.openStruct("./runs.bin", layout({ runs: "u64" }), { create: true });
 * // runs.bin stays: the count goes on at the next run
 * stats.$atomic.runs.add(1n);
 * stats.$region.flush();
 * ```
 *
 * @module
 */

import { O, S_IFLNK, S_IFMT, S_IFREG } from "../ffi/c.ts";
import { ERRNO } from "../ffi/errno.ts";
import { libc } from "../ffi/load.ts";
import { type FileStatus, sameFile, statFd } from "../ffi/stat.ts";
import type { Layout, LayoutSpec, MappedStruct, StructView } from "./layout.ts";
import { systemError } from "./_common/system_error.ts";
import { checkFlag, checkOptionKeys, optionKeys } from "./_common/checks.ts";
import { Lifecycle, unlinkQuietly } from "./_common/lifecycle.ts";
import {
  checkRegionOptions,
  checkSize,
  Mapping,
  reserve,
  setLength,
  settleSize,
  type TypedArray,
  type TypedArrayConstructor,
} from "./_memory/mapping.ts";
import {
  checkAdoptOption,
  openTracked,
  requireAdoptable,
} from "./_kernel/adoption.ts";
import { AnchoredPath } from "./_kernel/anchored_path.ts";
import { describeFileType } from "./_kernel/file_type.ts";
import { checkFilePath } from "./_kernel/paths.ts";
import type { Access } from "./_kernel/permissions.ts";
import { checkRecordLayout, ownedStruct, structIn } from "./_memory/region.ts";
import { markPassable, registerAdopter } from "./_socket/passing.ts";
import { PLACEMENT, type PlacementHost } from "./_memory/placement.ts";
import { accessModeOf } from "../ffi/socket.ts";

// msync needs a page-aligned start; 64 KiB is a multiple of every page size
// Linux uses on x86_64 and aarch64 (4, 16 and 64 KiB).
const _SYNC_ALIGN = 65536;

/**
 * How to open a mapped file.
 *
 * @example A megabyte file shared with every process that maps it
 * ```ts
 * import type { MappedFileOptions } from "@ipckit/ipckit";
 *
 * const options: MappedFileOptions = { create: true, size: 1 << 20, shared: true };
 * ```
 *
 * @category Shared memory
 */
export interface MappedFileOptions {
  /** Create the file if it does not exist. Needs `size`. Default `false`. */
  create?: boolean;
  /** With `create`: fail with `AlreadyExists` if it exists. Default `false`. */
  exclusive?: boolean;
  /**
   * With `create`, which existing file to use. `"owned"` (default): only one
   * owned by this process's effective uid, whose mode grants nothing beyond
   * `mode` and which has no other hard link; any other fails with
   * `PermissionDenied` naming its owner and mode. `"any-owner"`: any file
   * this process may open. Cannot be combined with `exclusive`.
   */
  adopt?: "owned" | "any-owner";
  /**
   * Size in bytes. A created file gets exactly this size (reserved on disk).
   * An existing file larger than this is an error; a smaller one grows with
   * `create`, else it is an error. Unset: the file's size.
   */
  size?: number;
  /** Permission bits of a created file (before the umask). Default `0o600`. */
  mode?: number;
  /**
   * Map for reading only: writes through views stay private to this process
   * and record setters throw. Cannot be combined with `create`. Default `false`.
   */
  readOnly?: boolean;
  /**
   * `true` (default): `MAP_SHARED`, writes reach the file and every process
   * mapping it. `false`: `MAP_PRIVATE`, copy-on-write; writes stay in this
   * process and the file is opened read-only.
   */
  shared?: boolean;
  /**
   * Remove the file when this handle closes: the file this handle mapped,
   * never another one put at its path meanwhile. Needs `--allow-write` on
   * the path. Default `false`: the file stays, like every named object.
   */
  unlinkOnClose?: boolean;
}

/**
 * How much of a mapped file to flush.
 *
 * @example Flush the first page only
 * ```ts
 * import type { FlushOptions } from "@ipckit/ipckit";
 *
 * const header: FlushOptions = { byteOffset: 0, byteLength: 4096 };
 * ```
 *
 * @category Shared memory
 */
export interface FlushOptions {
  /** Start of the range. Default 0. */
  byteOffset?: number;
  /** Length of the range. Default: to the end of the mapping. */
  byteLength?: number;
  /** Schedule the write-back and return at once (`MS_ASYNC`). Default `false`. */
  async?: boolean;
}

const _OPEN_KEYS = optionKeys<MappedFileOptions>({
  create: true,
  exclusive: true,
  adopt: true,
  size: true,
  mode: true,
  readOnly: true,
  shared: true,
  unlinkOnClose: true,
});
// A record's file is exactly the layout's size.
const _STRUCT_KEYS = _OPEN_KEYS.filter((key) => key !== "size");
const _FLUSH_KEYS = optionKeys<FlushOptions>({
  byteOffset: true,
  byteLength: true,
  async: true,
});

/**
 * A file mapped into memory.
 *
 * @example Write a file through memory
 * ```ts
 * import { MappedFile } from "@ipckit/ipckit";
 *
 * const path = await Deno.makeTempFile();
 * using file = MappedFile.open(path, { create: true, size: 4096, unlinkOnClose: true });
 * file.bytes().set(new TextEncoder().encode("hello"));
 * file.flush(); // only for durability: other processes see it at once
 * ```
 *
 * @category Shared memory
 */
export class MappedFile implements Disposable, AsyncDisposable {
  #path: string;
  #what: string;
  #life: Lifecycle;
  #mapping: Mapping;
  #readOnly: boolean;
  #shared: boolean;
  #writableFd: boolean;
  // The file to remove on close (unlinkOnClose), by device and inode.
  #removeOnClose: FileStatus | undefined;

  private constructor(
    path: string,
    mapping: Mapping,
    readOnly: boolean,
    shared: boolean,
    writableFd: boolean,
    removeOnClose: FileStatus | undefined,
  ) {
    this.#removeOnClose = removeOnClose;
    this.#path = path;
    this.#what = `mapped file "${path}"`;
    this.#life = new Lifecycle(this.#what);
    this.#mapping = mapping;
    this.#readOnly = readOnly;
    this.#shared = shared;
    this.#writableFd = writableFd;
    // Can be sent over a seqpacket socket (socket.ts); the receiver maps
    // the file through the descriptor, sharing writes when this does.
    markPassable(this, () => ({
      kind: "mapped-file",
      fd: mapping.closed ? -1 : mapping.fd,
      meta: { path, shared, readOnly },
    }));
  }

  /**
   * Hands this file's mapping to an object placed inside it (a `Futex` on
   * one of its words); see `mechanisms/_memory/placement.ts`. Such objects
   * close before the file does.
   *
   * @ignore
   */
  [PLACEMENT](): PlacementHost {
    return {
      mapping: this.#mapping,
      what: this.#what,
      own: (child) => this.#life.own(child),
    };
  }

  static {
    // A file whose descriptor arrived over a socket: the descriptor is the
    // capability (the sender had the access), so no path is opened again.
    registerAdopter("mapped-file", (fd, meta) => {
      const path = typeof meta.path === "string" ? meta.path : "";
      const action = `take mapped file "${path}" that arrived`;
      const access = accessModeOf(fd);
      if (access < 0) throw systemError("fcntl", action, -access);
      const status = statFd(fd);
      if (typeof status === "number") {
        throw systemError("fstat", action, -status);
      }
      _requireRegularFile(status, action);
      if (status.size === 0) {
        throw new RangeError(`Cannot ${action}: it is empty (0 bytes)`);
      }
      const writableFd = access === O.RDWR;
      const shared = writableFd && meta.shared !== false;
      const readOnly = !writableFd || meta.readOnly === true;
      const mapping = new Mapping(
        fd,
        status.size,
        shared,
        `mapped file "${path}"`,
      );
      return new MappedFile(
        path,
        mapping,
        readOnly,
        shared,
        writableFd,
        undefined,
      );
    });
  }

  /**
   * Opens (or with `create`, creates) the file at `path` and maps all of it.
   *
   * Cleanup: the file stays after its handles close, for other
   * processes, unless this handle is opened with `unlinkOnClose: true`
   * (the one rule of every named object; see the README's "Cleaning up").
   *
   * @throws {TypeError} for an invalid path or option combination, before any system call
   * @throws {RangeError} for an invalid size, an empty file, or a size mismatch
   * @throws {Deno.errors.NotCapable} without read/write permission on `path`
   * @throws {Deno.errors.NotFound} when it does not exist and `create` is not set
   * @throws {IpcError} with code `ENOSPC` when the file system has no room
   *
   * @example Create a one-megabyte file and map it
   * ```ts
   * import { MappedFile } from "@ipckit/ipckit";
   *
   * const dir = await Deno.makeTempDir();
   * {
   *   using ring = MappedFile.open(`${dir}/ring.bin`, {
   *     create: true,
   *     size: 1 << 20,
   *     unlinkOnClose: true,
   *   });
   *   console.log(ring.size); // 1048576
   * } // closed and removed here
   * await Deno.remove(dir);
   * ```
   */
  static open(path: string | URL, options: MappedFileOptions = {}): MappedFile {
    checkOptionKeys(options, _OPEN_KEYS, `map file "${String(path)}"`);
    const filePath = checkFilePath(path, "map file");
    const action = `map file "${filePath}"`;
    const { create, exclusive, readOnly, size, mode } = checkRegionOptions(
      options,
      action,
      "file",
      ["shared", options.shared],
    );
    const adopt = checkAdoptOption(options.adopt, create, exclusive, action);
    checkFlag(options.unlinkOnClose, "unlinkOnClose", action);
    const unlinkOnClose = options.unlinkOnClose ?? false;
    const shared = !readOnly && (options.shared ?? true);
    const writableFd = create || shared;

    const accesses: Access[] = ["read"];
    if (writableFd || unlinkOnClose) accesses.push("write");
    using at = AnchoredPath.open(filePath, accesses, action);
    // Refuse anything but a regular file before opening it: open(2) of a
    // FIFO without a peer would block this thread, and opening a device can
    // act on it. O_NONBLOCK covers a FIFO swapped in after this look.
    const existing = at.stat();
    if (typeof existing !== "number") _requireRegularFile(existing, action);
    else if (-existing !== ERRNO.ENOENT) {
      throw systemError("lstat", action, -existing);
    }
    const flags = (writableFd ? O.RDWR : O.RDONLY) | O.NONBLOCK;
    const { fd, created } = openTracked(
      (extra) => at.open(flags | extra, mode),
      (errno, reason) => systemError("open", action, errno, reason),
      create,
      exclusive,
    );
    let mapping: Mapping;
    let opened: FileStatus | undefined;
    try {
      const status = statFd(fd);
      if (typeof status === "number") {
        throw systemError("fstat", action, -status);
      }
      opened = status;
      _requireRegularFile(status, action);
      if (create && !created) {
        requireAdoptable(status, mode, adopt, "open", action);
      }
      const mapped = settleSize(fd, {
        created,
        requested: size,
        canGrow: create && writableFd,
        reserveExisting: false,
        action,
        place: `the file system of "${filePath}"`,
      });
      mapping = new Mapping(fd, mapped, shared, `mapped file "${filePath}"`);
    } catch (error) {
      libc().symbols.close(fd);
      if (created && opened) _removeCreated(at, opened, action);
      throw error;
    }
    return new MappedFile(
      filePath,
      mapping,
      readOnly,
      shared,
      writableFd,
      unlinkOnClose ? opened : undefined,
    );
  }

  /**
   * Opens a file sized for one `layout` record and returns the record: its
   * properties read and write the file's pages directly.
   *
   * @example A versioned header in a file
   * ```ts
   * import { layout, MappedFile } from "@ipckit/ipckit";
   *
   * const path = await Deno.makeTempFile();
   * using header = MappedFile.openStruct(path, layout({ version: "u16", items: "u32" }), {
   *   create: true,
   *   unlinkOnClose: true,
   * });
   * header.version = 2;
   * ```
   */
  static openStruct<S extends LayoutSpec>(
    path: string | URL,
    layout: Layout<S>,
    options: Omit<MappedFileOptions, "size"> = {},
  ): MappedStruct<S, MappedFile> {
    checkOptionKeys(options, _STRUCT_KEYS, `map file "${String(path)}"`);
    checkRecordLayout(layout, `map file "${String(path)}"`);
    const file = MappedFile.open(path, { ...options, size: layout.size });
    return ownedStruct(
      file,
      (extra) =>
        structIn(
          file.#mapping,
          layout,
          0,
          file.#readOnly,
          file.#what,
          extra,
          () => file[PLACEMENT](),
        ),
    );
  }

  /** The file's path as given. */
  get path(): string {
    return this.#path;
  }

  /** The mapped size in bytes. */
  get size(): number {
    return this.#mapping.size;
  }

  /** Whether this handle is read-only (copy-on-write). */
  get readOnly(): boolean {
    return this.#readOnly;
  }

  /** Whether writes reach the file (`MAP_SHARED`). */
  get shared(): boolean {
    return this.#shared;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * An `ArrayBuffer` over the whole mapping, without a copy; `close()` and
   * `resize()` detach it.
   *
   * @example Read a header through a DataView
   * ```ts
   * import { MappedFile } from "@ipckit/ipckit";
   *
   * const path = await Deno.makeTempFile();
   * using file = MappedFile.open(path, { create: true, size: 4096, unlinkOnClose: true });
   * const view = new DataView(file.buffer);
   * console.log(view.getUint32(0)); // 0: a new file is zeros
   * ```
   */
  get buffer(): ArrayBuffer {
    return this.#mapping.buffer;
  }

  /**
   * The whole mapping as bytes, without a copy.
   *
   * @example Read a file's text without copying it in
   * ```ts
   * import { MappedFile } from "@ipckit/ipckit";
   *
   * const path = await Deno.makeTempFile();
   * await Deno.writeTextFile(path, "hello");
   * using file = MappedFile.open(path, { readOnly: true, unlinkOnClose: true });
   * console.log(new TextDecoder().decode(file.bytes())); // hello
   * ```
   */
  bytes(): Uint8Array<ArrayBuffer> {
    return new Uint8Array(this.#mapping.buffer);
  }

  /**
   * A typed array over part of the mapping, without a copy (see
   * `SharedMemory.view`).
   *
   * @example A file of 32-bit floats as a Float32Array
   * ```ts
   * import { MappedFile } from "@ipckit/ipckit";
   *
   * const path = await Deno.makeTempFile();
   * await Deno.writeFile(path, new Uint8Array(new Float32Array([0.5, 1.5]).buffer));
   * using file = MappedFile.open(path, { readOnly: true, unlinkOnClose: true });
   * const samples = file.view(Float32Array);
   * console.log(samples[1]); // 1.5
   * ```
   */
  view<T extends TypedArray>(
    ctor: TypedArrayConstructor<T>,
    byteOffset?: number,
    length?: number,
  ): T {
    return this.#mapping.view(ctor, byteOffset, length);
  }

  /**
   * Binds a `layout` record at `byteOffset` of the mapping.
   *
   * @example A record at the start of a file
   * ```ts
   * import { layout, MappedFile } from "@ipckit/ipckit";
   *
   * const path = await Deno.makeTempFile();
   * using file = MappedFile.open(path, { create: true, size: 4096, unlinkOnClose: true });
   * const header = file.struct(layout({ magic: "u32", count: "u32" }));
   * header.count += 1;
   * console.log(header.count); // 1
   * ```
   */
  struct<S extends LayoutSpec>(
    layout: Layout<S>,
    byteOffset: number = 0,
  ): StructView<S> {
    return structIn(
      this.#mapping,
      layout,
      byteOffset,
      this.#readOnly,
      this.#what,
      undefined,
      () => this[PLACEMENT](),
    );
  }

  /**
   * Writes dirty pages back to the file (`msync`), waiting for the disk
   * unless `async`. Only needed for durability: other processes see writes
   * at once. On a private mapping there is nothing to write back.
   *
   * @example Write one byte and flush only its page
   * ```ts
   * import { MappedFile } from "@ipckit/ipckit";
   *
   * const path = await Deno.makeTempFile();
   * using file = MappedFile.open(path, { create: true, size: 4096, unlinkOnClose: true });
   * file.bytes()[0] = 1;
   * file.flush({ byteOffset: 0, byteLength: 1 });
   * ```
   */
  flush(options: FlushOptions = {}): void {
    checkOptionKeys(options, _FLUSH_KEYS, `flush ${this.#what}`);
    this.#life.check("flush");
    const size = this.#mapping.size;
    const byteOffset = options.byteOffset ?? 0;
    if (
      !Number.isSafeInteger(byteOffset) || byteOffset < 0 || byteOffset > size
    ) {
      throw new RangeError(
        `Cannot flush ${this.#what}: byteOffset must be an integer from 0 to ${size}, got ${byteOffset}`,
      );
    }
    const byteLength = options.byteLength ?? size - byteOffset;
    if (
      !Number.isSafeInteger(byteLength) || byteLength < 0 ||
      byteOffset + byteLength > size
    ) {
      throw new RangeError(
        `Cannot flush ${this.#what}: byteLength must be an integer from 0 to ${
          size - byteOffset
        }, got ${byteLength}`,
      );
    }
    checkFlag(options.async, "async", `flush ${this.#what}`);
    const start = byteOffset - (byteOffset % _SYNC_ALIGN);
    this.#mapping.sync(
      start,
      byteLength + (byteOffset - start),
      options.async ?? false,
    );
  }

  /**
   * Changes the file's size and maps it again. Every buffer, view and record
   * handed out before is detached: take new ones. Growing reserves the new
   * space first, so a full disk fails here with `ENOSPC` and changes nothing.
   *
   * @throws {TypeError} on a read-only or private mapping
   *
   * @example Grow a file
   * ```ts
   * import { MappedFile } from "@ipckit/ipckit";
   *
   * const path = await Deno.makeTempFile();
   * using file = MappedFile.open(path, { create: true, size: 4096, unlinkOnClose: true });
   * file.resize(8192); // views taken before are detached: take new ones
   * console.log(file.size); // 8192
   * ```
   */
  resize(size: number): void {
    const action = `resize ${this.#what}`;
    checkSize(size, action);
    this.#life.check("resize");
    if (!this.#shared || !this.#writableFd) {
      throw new TypeError(
        `Cannot ${action}: it is mapped ${
          this.#readOnly ? "read-only" : "privately"
        }; resize needs a writable shared mapping`,
      );
    }
    const fd = this.#mapping.fd;
    const old = this.#mapping.size;
    if (size === old) return;
    if (size > old) {
      reserve(fd, old, size, action, `the file system of "${this.#path}"`);
      this.#mapping.remap(size, () => {});
    } else {
      this.#mapping.remap(size, () => setLength(fd, size, action));
    }
  }

  /**
   * Detaches every buffer and view handed out, unmaps the file and closes
   * the descriptor; idempotent. Does not `flush()`: writes are already in the
   * page cache and reach the disk in time. With `unlinkOnClose` the file is
   * removed too, if it is still the one this handle mapped.
   *
   * @example Close a file: it stays unless unlinkOnClose
   * ```ts
   * import { MappedFile } from "@ipckit/ipckit";
   *
   * const path = await Deno.makeTempFile();
   * const file = MappedFile.open(path, { create: true, size: 4096 });
   * file.close();
   * await Deno.remove(path); // it stayed: remove it yourself
   * ```
   */
  close(): void {
    this.#life.close(() => {
      // Removed while still mapped: the mapping keeps the file's inode
      // alive, so no file made meanwhile can carry the same inode number
      // and pass for it.
      const mapped = this.#removeOnClose;
      try {
        if (mapped) {
          const action = `remove ${this.#what}`;
          unlinkQuietly(() => {
            using at = AnchoredPath.open(this.#path, ["write"], action);
            at.remove((status) => _unlessSameFile(status, mapped), action);
          });
        }
      } finally {
        this.#mapping.close();
      }
    });
  }

  /** Closes the file; see {@linkcode MappedFile.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes the file; see {@linkcode MappedFile.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.#life.closeAsync(() => this.close());
  }
}

/** Refuses anything but a regular file, naming what it is. */
function _requireRegularFile(status: FileStatus, action: string): void {
  const type = status.mode & S_IFMT;
  if (type === S_IFREG) return;
  const link = type === S_IFLNK;
  throw systemError(
    link ? "open" : "mmap",
    action,
    link ? ERRNO.ELOOP : ERRNO.ENODEV,
    `it is ${describeFileType(type)}, not a regular file${
      link ? "; ipckit does not follow symbolic links" : ""
    }`,
  );
}

/** Refuses to remove any file but `expected` (same device and inode). */
function _unlessSameFile(
  status: FileStatus,
  expected: FileStatus,
): Error | undefined {
  return sameFile(status, expected)
    ? undefined
    : new Deno.errors.NotFound("another file took its place");
}

/**
 * Removes the file this call created, after a later step failed: only if
 * the name still leads to that very file (device and inode), never to one
 * put in its place. Best effort: the error that led here is what the caller
 * reports.
 */
function _removeCreated(
  at: AnchoredPath,
  created: FileStatus,
  action: string,
): void {
  try {
    at.remove(
      (status) => _unlessSameFile(status, created),
      `remove the file made for ${action}`,
    );
  } catch {
    // Nothing of ours is left to remove, or it cannot be removed: either
    // way the original error matters more.
  }
}
