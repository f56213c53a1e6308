/**
 * POSIX shared memory (`shm_open` + `mmap`): bytes that several processes
 * map at once, read and written in place with no copy and no system call.
 *
 * Permissions: every open needs `--allow-read=/dev/shm/<name>`; opening for
 * writing, creating and unlinking need `--allow-write` on it too (suggested
 * as `--allow-write=/dev/shm`), and every call needs `--allow-ffi`.
 *
 * ## Memory ordering across processes
 *
 * Both processes map the same physical pages, so the CPU's cache coherence
 * is all that connects them: there is no kernel in between. `Atomics`
 * operations on an integer view (`Atomics.add`, `load`, `store`,
 * `compareExchange`, and the `$atomic` methods of records) are sequentially
 * consistent. V8 compiles them to locked or exclusive instructions on the
 * address itself (`lock xadd`/`xchg` on x86_64, load-acquire/store-release
 * or LSE atomics on aarch64) whether or not the buffer is a
 * SharedArrayBuffer, and these act on physical memory, so they are atomic
 * and ordered between processes just as between threads. ipckit relies on
 * exactly that, and tests it (two processes each add 1 to one counter
 * 1,000,000 times; the total is exact).
 *
 * Plain reads and writes (`bytes[i] = x`, record fields) carry no ordering
 * and may even be kept in a register by the JIT. To publish data, write it
 * plainly and then `Atomics.store` a flag or sequence number; the reader
 * `Atomics.load`s the flag and only then reads the data: the seq-cst store
 * is a release and the seq-cst load an acquire. Spin on `Atomics.load`,
 * never on a plain read. `Atomics.wait`/`notify` need a SharedArrayBuffer
 * and do not work on these buffers; use a semaphore to sleep.
 *
 * ## What cannot crash the process, and what can
 *
 * - Running out of memory in `/dev/shm`: the object's pages are reserved
 *   with `posix_fallocate` when it is created or grown, and when it is opened
 *   for writing (which fills holes left by other programs' `ftruncate`). A
 *   full `/dev/shm` is an `IpcError` with code `ENOSPC`, never SIGBUS.
 *   A `readOnly` handle cannot reserve (that needs write access), yet on
 *   tmpfs even reading a hole allocates a page, and raises SIGBUS where
 *   there is none: so a read-only open of a sparse object faults its holes
 *   in at once (`MADV_POPULATE_READ`), or fails with `ENOSPC` when they do
 *   not fit. On kernels before 5.14 only the free space is checked, and a
 *   writer filling `/dev/shm` between that check and a read can still
 *   cause SIGBUS.
 * - Using a view after `close()`: every buffer handed out is detached
 *   first, so typed arrays read `undefined` (length 0), DataViews throw
 *   `TypeError` and record fields throw `BadResource`.
 * - Writing through a `readOnly` handle: it is a private copy-on-write
 *   mapping, so the write lands in this process's copy of that page and
 *   never reaches the object or other processes. Record setters and atomic
 *   writes on a read-only record throw `TypeError`. Until a page is written
 *   locally, it shows what other processes write (Linux behaviour for
 *   `MAP_PRIVATE`); after that, that page is this process's own copy.
 * - Not prevented: another process shrinking the object (`ftruncate`)
 *   below what this one mapped; touching the lost pages raises SIGBUS.
 *   ipckit itself never shrinks shared memory.
 *
 * @example Two handles on one object
 * ```ts
 * import { SharedMemory } from "@ipckit/ipckit/shared-memory";
 *
 * const name = `/frame-${Deno.pid}`;
 * using writer = SharedMemory.open(name, { create: true, size: 4096, unlinkOnClose: true });
 * using reader = SharedMemory.open(name, { readOnly: true });
 * writer.bytes()[0] = 42;
 * console.log(reader.bytes()[0]); // 42
 * ```
 *
 * @module
 */

import { cString, O } from "../ffi/c.ts";
import { ERRNO, retryEintr } from "../ffi/errno.ts";
import { libc } from "../ffi/load.ts";
import { accessModeOf, memfdCreate } from "../ffi/socket.ts";
import { statFd } from "../ffi/stat.ts";
import type { Layout, LayoutSpec, MappedStruct, StructView } from "./layout.ts";
import { systemError } from "./_common/system_error.ts";
import { checkOptionKeys, optionKeys } from "./_common/checks.ts";
import { Lifecycle, unlinkQuietly } from "./_common/lifecycle.ts";
import {
  checkRegionOptions,
  checkSize,
  Mapping,
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
import { validateIpcName } from "./_kernel/names.ts";
import { SHM_DIR } from "./_kernel/objects.ts";
import { type Access, requirePermissions } from "./_kernel/permissions.ts";
import { checkRecordLayout, ownedStruct, structIn } from "./_memory/region.ts";
import { PLACEMENT, type PlacementHost } from "./_memory/placement.ts";
import { markPassable, registerAdopter } from "./_socket/passing.ts";
import {
  IDENTITY_SIZE,
  KIND,
  layoutFormat,
  setUpIdentity,
} from "./_ring/identity.ts";

export type { TypedArray, TypedArrayConstructor } from "./_memory/mapping.ts";

/**
 * How to open a shared memory object.
 *
 * @example A megabyte that goes away with its handle
 * ```ts
 * import type { SharedMemoryOptions } from "@ipckit/ipckit";
 *
 * const options: SharedMemoryOptions = { create: true, size: 1 << 20, unlinkOnClose: true };
 * ```
 *
 * @category Shared memory
 */
export interface SharedMemoryOptions {
  /** Create the object if it does not exist. Needs `size`. Default `false`. */
  create?: boolean;
  /** With `create`: fail with `AlreadyExists` if it exists. Default `false`. */
  exclusive?: boolean;
  /**
   * With `create`, which existing object to use. `"owned"` (default): only
   * one owned by this process's effective uid, whose mode grants nothing
   * beyond `mode` and which has no other hard link; any other fails with
   * `PermissionDenied` naming its owner and mode (another user may have
   * created it first to read what this process writes). `"any-owner"`: any
   * object this process may open. Cannot be combined with `exclusive`.
   */
  adopt?: "owned" | "any-owner";
  /**
   * Size in bytes. A created object gets exactly this size (reserved in
   * `/dev/shm`). An existing object larger than this is an error; a smaller
   * one grows with `create`, else it is an error. Unset: the existing size.
   */
  size?: number;
  /** Permission bits of a created object. Default `0o600`. */
  mode?: number;
  /**
   * Map for reading only. Writes through views stay private to this process
   * (copy-on-write) and record setters throw. Cannot be combined with
   * `create`. Default `false`.
   */
  readOnly?: boolean;
  /** Remove the name when this handle closes. Default `false`. */
  unlinkOnClose?: boolean;
}

const _OPEN_KEYS = optionKeys<SharedMemoryOptions>({
  create: true,
  exclusive: true,
  adopt: true,
  size: true,
  mode: true,
  readOnly: true,
  unlinkOnClose: true,
});
/**
 * How {@linkcode SharedMemory.openStruct} opens a record: the options of
 * `open` without `size` (the layout fixes it), and the opt-in header.
 *
 * @example A record that refuses a peer with another layout
 * ```ts
 * import type { SharedStructOptions } from "@ipckit/ipckit";
 *
 * const options: SharedStructOptions = { create: true, fingerprint: true, unlinkOnClose: true };
 * ```
 *
 * @category Shared memory
 */
export interface SharedStructOptions extends Omit<SharedMemoryOptions, "size"> {
  /**
   * Put a 128-byte header before the record that records the layout (every
   * field's name, type, offset, the size and byte order) and check it on
   * every open: a process that opens the object with another layout fails
   * with a `TypeError` naming both, instead of misreading the bytes. The
   * record then starts at byte 128 and the object is `128 + layout.size`
   * bytes. Off by default, because C and Python peers expect the bare
   * struct at offset 0; the header's format is documented in the README
   * ("Shared-memory channels") for peers that want to take part.
   */
  fingerprint?: boolean;
}

// A record's region is exactly the layout's size (plus the opt-in header).
const _STRUCT_KEYS = [
  ..._OPEN_KEYS.filter((key) => key !== "size"),
  "fingerprint",
];

/**
 * A POSIX shared memory object mapped into this process.
 *
 * `buffer`, `bytes()` and `view()` are zero-copy: they read and write the
 * shared pages directly. See the module documentation for the memory
 * ordering that `Atomics` gives across processes.
 *
 * @example A counter two processes can increment
 * ```ts
 * import { SharedMemory } from "@ipckit/ipckit";
 *
 * using memory = SharedMemory.open(`/counter-${Deno.pid}`, {
 *   create: true,
 *   size: 4,
 *   unlinkOnClose: true,
 * });
 * const counter = memory.view(Int32Array);
 * Atomics.add(counter, 0, 1); // atomic across processes too
 * ```
 *
 * @category Shared memory
 */
export class SharedMemory implements Disposable, AsyncDisposable {
  #name: string;
  #what: string;
  #mapping: Mapping;
  #readOnly: boolean;
  #unlinkOnClose: boolean;
  #life: Lifecycle;

  private constructor(
    name: string,
    mapping: Mapping,
    readOnly: boolean,
    unlinkOnClose: boolean,
  ) {
    this.#name = name;
    this.#what = name ? `shared memory "${name}"` : "anonymous shared memory";
    this.#mapping = mapping;
    this.#readOnly = readOnly;
    this.#unlinkOnClose = unlinkOnClose;
    this.#life = new Lifecycle(this.#what);
    // Can be sent over a seqpacket socket (socket.ts): the receiver maps
    // the same object through the descriptor, with no name needed.
    markPassable(this, () => ({
      kind: "shared-memory",
      fd: mapping.closed ? -1 : mapping.fd,
      meta: { name, readOnly },
    }));
  }

  /**
   * Hands this region's mapping to an object placed inside it
   * (`Semaphore.inMemory`, `Mutex.inMemory`); see
   * `mechanisms/_memory/placement.ts`. Such objects close before the
   * region does.
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
    // Shared memory whose descriptor arrived over a socket: the sender
    // already had the access; the descriptor is the capability, so no
    // name is opened and no path permission is asked.
    registerAdopter("shared-memory", (fd, meta) => {
      const name = typeof meta.name === "string" ? meta.name : "";
      const action = `take ${
        name ? `shared memory "${name}"` : "anonymous shared memory"
      } that arrived`;
      const access = accessModeOf(fd);
      if (access < 0) throw systemError("fcntl", action, -access);
      const size = statFd(fd);
      if (typeof size === "number") throw systemError("fstat", action, -size);
      if (size.size === 0) {
        throw new RangeError(`Cannot ${action}: it is empty (0 bytes)`);
      }
      const readOnly = access === O.RDONLY;
      const what = name ? `shared memory "${name}"` : "anonymous shared memory";
      const mapping = new Mapping(fd, size.size, !readOnly, what);
      return new SharedMemory(name, mapping, readOnly, false);
    });
  }

  /**
   * Creates shared memory with no name (`memfd_create(2)`): nothing in
   * `/dev/shm`, nothing another process can open. Share it by sending it
   * over a seqpacket socket (`channel.send(value, { handles: [memory] })`);
   * it is freed when the last process that has it closes it. Needs only
   * `--allow-ffi`. Its {@linkcode SharedMemory.name} is `""`.
   *
   * @throws {RangeError} for an invalid size, before any system call
   * @throws {IpcError} with code `ENOSPC` when memory for it cannot be reserved
   * @throws {Deno.errors.NotSupported} where the C library has no memfd_create
   *
   * @example Hand a private buffer to another end
   * ```ts
   * import { SharedMemory, socketpair } from "@ipckit/ipckit";
   *
   * // Here both ends are in this process; usually `theirs` is another
   * // process's, connected with connect({ abstract, type: "seqpacket" }).
   * const [mine, theirs] = socketpair<string>({ type: "seqpacket" });
   * {
   *   using memory = SharedMemory.anonymous(1 << 20);
   *   memory.bytes()[0] = 42;
   *   await mine.send("frame", { handles: [memory] });
   * }
   * const { handles } = await theirs.receive({ maxHandles: 1, timeout: 1000 });
   * const [shared] = handles;
   * if (shared instanceof SharedMemory) console.log(shared.bytes()[0]); // 42
   * for (const handle of handles) await handle.close();
   * mine.close();
   * theirs.close();
   * ```
   */
  static anonymous(size: number): SharedMemory {
    const action = "create anonymous shared memory";
    const bytes = checkSize(size, action);
    const fd = memfdCreate("ipckit-anonymous");
    if (fd < 0) {
      const error = systemError("memfd_create", action, -fd);
      throw -fd === ERRNO.ENOSYS
        ? new Deno.errors.NotSupported(
          `Cannot ${action}: memfd_create() is not available on ${Deno.build.os}/${Deno.build.arch}`,
          { cause: error },
        )
        : error;
    }
    let mapping: Mapping;
    try {
      _reserveAnonymous(fd, bytes, action);
      mapping = new Mapping(fd, bytes, true, "anonymous shared memory");
    } catch (error) {
      libc().symbols.close(fd);
      throw error;
    }
    return new SharedMemory("", mapping, false, false);
  }

  /**
   * Opens (or with `create`, creates) the shared memory object `name`, e.g.
   * `"/frame"`, and maps all of it.
   *
   * Cleanup: the object stays after its handles close, for other
   * processes, unless this handle is opened with `unlinkOnClose: true`
   * (the one rule of every named object; see the README's "Cleaning up").
   *
   * @throws {TypeError} for an invalid name or option combination, before any system call
   * @throws {RangeError} for an invalid size, or an existing object whose size does not match
   * @throws {Deno.errors.NotCapable} without read/write permission on `/dev/shm/<name>`
   * @throws {Deno.errors.NotFound} when it does not exist and `create` is not set
   * @throws {Deno.errors.AlreadyExists} with `create` and `exclusive` when it exists
   * @throws {Deno.errors.PermissionDenied} with `create` when an existing
   * object belongs to another user or has a wider mode (see `adopt`)
   * @throws {IpcError} with code `ENOSPC` when `/dev/shm` has no room for it
   *
   * @example Create a megabyte of shared memory
   * ```ts
   * import { SharedMemory } from "@ipckit/ipckit";
   *
   * using memory = SharedMemory.open(`/frame-${Deno.pid}`, {
   *   create: true,
   *   size: 1 << 20,
   *   unlinkOnClose: true,
   * });
   * console.log(memory.size); // 1048576
   * ```
   */
  static open(name: string, options: SharedMemoryOptions = {}): SharedMemory {
    const action = `open shared memory "${name}"`;
    checkOptionKeys(options, _OPEN_KEYS, action);
    const base = validateIpcName(name, "shared memory");
    const { create, exclusive, readOnly, size, mode } = checkRegionOptions(
      options,
      action,
      "object",
      ["unlinkOnClose", options.unlinkOnClose],
    );
    const unlinkOnClose = options.unlinkOnClose ?? false;
    const adopt = checkAdoptOption(options.adopt, create, exclusive, action);

    const path = `${SHM_DIR}/${base}`;
    const accesses: Access[] = ["read"];
    if (!readOnly || unlinkOnClose) accesses.push("write");
    requirePermissions(accesses, path, SHM_DIR);

    const cName = cString(name);
    const shmOpen = libc().symbols.shm_open;
    const flags = (readOnly ? O.RDONLY : O.RDWR) | O.CLOEXEC;
    const { fd, created } = openTracked(
      (extra) => retryEintr(() => shmOpen(cName, flags | extra, mode)),
      (errno, reason) => systemError("shm_open", action, errno, reason),
      create,
      exclusive,
    );
    let mapping: Mapping;
    try {
      if (create && !created) {
        // Checked on the descriptor: exactly the object that was opened.
        const status = statFd(fd);
        if (typeof status === "number") {
          throw systemError("fstat", action, -status);
        }
        requireAdoptable(status, mode, adopt, "shm_open", action);
      }
      const mapped = settleSize(fd, {
        created,
        requested: size,
        canGrow: create,
        reserveExisting: !readOnly,
        action,
        place: SHM_DIR,
      });
      mapping = new Mapping(fd, mapped, !readOnly, `shared memory "${name}"`);
    } catch (error) {
      libc().symbols.close(fd);
      if (created) libc().symbols.shm_unlink(cName);
      throw error;
    }
    if (readOnly) {
      // No write access, so no reserving: make sure reading cannot SIGBUS.
      try {
        mapping.backHoles(action, SHM_DIR);
      } catch (error) {
        mapping.close();
        throw error;
      }
    }
    return new SharedMemory(name, mapping, readOnly, unlinkOnClose);
  }

  /**
   * Opens a shared memory object sized for one `layout` record and returns
   * the record: its properties read and write the shared memory directly.
   * The object is `layout.size` bytes; an existing one of another size is a
   * `RangeError`. With `fingerprint: true` a header recording the layout
   * comes first, and opening it with another layout is a `TypeError`
   * naming both (see {@linkcode SharedStructOptions}).
   *
   * @example A typed record shared between processes
   * ```ts
   * import { array, layout, SharedMemory, utf8 } from "@ipckit/ipckit";
   *
   * const sensor = layout({ id: "u32", temperature: "f64", count: "i32", label: utf8(32), samples: array("f32", 64) });
   * using record = SharedMemory.openStruct(`/sensor-${Deno.pid}`, sensor, {
   *   create: true,
   *   unlinkOnClose: true,
   * });
   * record.label = "kitchen";
   * record.temperature = 21.5;
   * record.samples[0] = 0.25;
   * record.$atomic.count.add(1);
   * ```
   */
  static openStruct<S extends LayoutSpec>(
    name: string,
    layout: Layout<S>,
    options: SharedStructOptions = {},
  ): MappedStruct<S, SharedMemory> {
    const action = `open shared memory "${name}"`;
    checkOptionKeys(options, _STRUCT_KEYS, action);
    checkRecordLayout(layout, action);
    const { fingerprint, ...rest } = options;
    if (fingerprint !== undefined && typeof fingerprint !== "boolean") {
      throw new TypeError(
        `Cannot ${action}: fingerprint must be true or false, got ${typeof fingerprint}`,
      );
    }
    const at = fingerprint ? IDENTITY_SIZE : 0;
    const memory = SharedMemory.open(name, { ...rest, size: at + layout.size });
    if (fingerprint) {
      try {
        setUpIdentity(
          memory.#mapping.buffer,
          0,
          {
            kind: KIND.record,
            version: 1,
            capacity: layout.size,
            format: layoutFormat(layout),
          },
          memory.#what,
          !memory.#readOnly && rest.create === true,
          () => {},
        );
      } catch (error) {
        // Refused (another layout): the object is somebody else's; keep it.
        memory.#unlinkOnClose = false;
        memory.close();
        throw error;
      }
    }
    return ownedStruct(
      memory,
      (extra) =>
        structIn(
          memory.#mapping,
          layout,
          at,
          memory.#readOnly,
          memory.#what,
          extra,
          () => memory[PLACEMENT](),
        ),
    );
  }

  /**
   * Removes the name. Processes that have it mapped keep using it; the
   * kernel frees the memory when the last one unmaps.
   *
   * @throws {Deno.errors.NotFound} when no object has that name
   * @throws {Deno.errors.NotCapable} without `--allow-write` on `/dev/shm/<name>`
   *
   * @example Remove a name that outlived its handles
   * ```ts
   * import { SharedMemory } from "@ipckit/ipckit";
   *
   * const name = `/frame-${Deno.pid}`;
   * SharedMemory.open(name, { create: true, size: 4096 }).close(); // the name stays
   * SharedMemory.unlink(name); // now it is gone
   * ```
   */
  static unlink(name: string): void {
    const base = validateIpcName(name, "shared memory");
    requirePermissions(["write"], `${SHM_DIR}/${base}`, SHM_DIR);
    const shmUnlink = libc().symbols.shm_unlink;
    const cName = cString(name);
    const result = retryEintr(() => shmUnlink(cName));
    if (result < 0) {
      throw systemError(
        "shm_unlink",
        `unlink shared memory "${name}"`,
        -result,
      );
    }
  }

  /** The object's name, e.g. `"/frame"`; `""` for {@linkcode SharedMemory.anonymous} memory. */
  get name(): string {
    return this.#name;
  }

  /** The mapped size in bytes. */
  get size(): number {
    return this.#mapping.size;
  }

  /** Whether this handle maps the object read-only (copy-on-write). */
  get readOnly(): boolean {
    return this.#readOnly;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * An `ArrayBuffer` over the whole mapping, without a copy. The same buffer
   * is returned each time; `close()` detaches it.
   *
   * @throws {Deno.errors.BadResource} after `close()`
   *
   * @example A header read through a DataView
   * ```ts
   * import { SharedMemory } from "@ipckit/ipckit";
   *
   * using memory = SharedMemory.open(`/frame-${Deno.pid}`, {
   *   create: true,
   *   size: 4096,
   *   unlinkOnClose: true,
   * });
   * const header = new DataView(memory.buffer, 0, 16);
   * header.setUint32(0, 0xcafe);
   * ```
   */
  get buffer(): ArrayBuffer {
    return this.#mapping.buffer;
  }

  /**
   * The whole mapping as bytes, without a copy.
   *
   * @example Clear the whole object
   * ```ts
   * import { SharedMemory } from "@ipckit/ipckit";
   *
   * using memory = SharedMemory.open(`/frame-${Deno.pid}`, {
   *   create: true,
   *   size: 4096,
   *   unlinkOnClose: true,
   * });
   * memory.bytes().fill(0);
   * ```
   */
  bytes(): Uint8Array<ArrayBuffer> {
    return new Uint8Array(this.#mapping.buffer);
  }

  /**
   * A typed array over part of the mapping, without a copy. `byteOffset`
   * must be a multiple of the element size; `length` defaults to as many
   * elements as fit.
   *
   * @throws {RangeError} for an offset or length outside the mapping or misaligned
   *
   * @example A thousand floats after a 64-byte header
   * ```ts
   * import { SharedMemory } from "@ipckit/ipckit";
   *
   * using memory = SharedMemory.open(`/frame-${Deno.pid}`, {
   *   create: true,
   *   size: 4096,
   *   unlinkOnClose: true,
   * });
   * const pixels = memory.view(Float32Array, 64, 1000);
   * pixels[0] = 0.5;
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
   * Binds a `layout` record at `byteOffset` (a multiple of `layout.align`)
   * of this mapping. The record reads and writes the memory directly and
   * stops working when this handle closes.
   *
   * @example A header record followed by a frame buffer
   * ```ts
   * import { layout, SharedMemory } from "@ipckit/ipckit";
   *
   * const header = layout({ seq: "u32", width: "u16", height: "u16" });
   * using memory = SharedMemory.open(`/frame-${Deno.pid}`, {
   *   create: true,
   *   size: header.size + 640 * 480,
   *   unlinkOnClose: true,
   * });
   * const head = memory.struct(header);
   * const pixels = memory.view(Uint8Array, header.size);
   * head.width = 640;
   * pixels.fill(255);
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
   * Removes this object's name (see the static {@linkcode SharedMemory.unlink}).
   *
   * @example Remove the name while the memory stays mapped
   * ```ts
   * import { SharedMemory } from "@ipckit/ipckit";
   *
   * using memory = SharedMemory.open(`/frame-${Deno.pid}`, { create: true, size: 4096 });
   * memory.unlink(); // no new process can open it; this mapping stays valid
   * memory.bytes()[0] = 1;
   * ```
   */
  unlink(): void {
    SharedMemory.unlink(this.#name);
  }

  /**
   * Closes what was placed inside the region (semaphores, mutexes) first,
   * then detaches every buffer and view handed out, unmaps the memory and
   * closes the descriptor; idempotent. With `unlinkOnClose` the name is
   * removed too; without it the object stays for other processes (and
   * `SharedMemory.unlink` or `ipckit rm` removes it).
   *
   * @example Views go dead when the memory is closed
   * ```ts
   * import { SharedMemory } from "@ipckit/ipckit";
   *
   * const memory = SharedMemory.open(`/frame-${Deno.pid}`, {
   *   create: true,
   *   size: 4096,
   *   unlinkOnClose: true,
   * });
   * const bytes = memory.bytes();
   * memory.close();
   * console.log(bytes.length, bytes[0]); // 0 undefined
   * ```
   */
  close(): void {
    this.#life.close(() => {
      this.#mapping.close();
      if (this.#unlinkOnClose) {
        unlinkQuietly(() => SharedMemory.unlink(this.#name));
      }
    });
  }

  /** Closes the handle; see {@linkcode SharedMemory.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes the handle; see {@linkcode SharedMemory.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.#life.closeAsync(() => this.close());
  }
}

/**
 * Sizes a memfd and reserves its pages, so a full memory is `ENOSPC` now
 * and never SIGBUS later. Not through `reserve()`: the internal mount of
 * memfds reports 0 bytes free to `fstatvfs`, whatever memory is left.
 */
function _reserveAnonymous(fd: number, size: number, action: string): void {
  setLength(fd, size, action);
  const fallocate = libc().symbols.posix_fallocate;
  if (!fallocate) return;
  let error: number;
  // posix_fallocate returns the error number instead of setting errno.
  do error = fallocate(fd, 0n, BigInt(size)); while (error === ERRNO.EINTR);
  if (error !== 0 && error !== ERRNO.EOPNOTSUPP) {
    throw systemError(
      "posix_fallocate",
      action,
      error,
      error === ERRNO.ENOSPC
        ? `no memory is left for ${size} bytes`
        : undefined,
    );
  }
}
