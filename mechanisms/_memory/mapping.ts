/**
 * The lifecycle of one memory mapping, shared by `SharedMemory` and
 * `MappedFile`: sizing and reserving the backing object, `mmap`, handing out
 * zero-copy `ArrayBuffer`s and typed views, and tearing it all down without
 * ever leaving JavaScript a way to touch unmapped memory.
 *
 * How a stale view is made harmless: every `ArrayBuffer` over the mapping is
 * made here and remembered. Before `munmap` each one is detached with
 * `transfer(0)`, which V8 allows for the external buffers that
 * `Deno.UnsafePointerView.getArrayBuffer` makes (checked on Deno 2.9.6): typed
 * arrays over it then have length 0 and read `undefined`, and DataViews
 * throw `TypeError`. One gap remains: a user who calls `buffer.transfer()`
 * (or transfers it to a Worker) moves the memory into a buffer we never saw.
 * We notice because the buffer we handed out is detached, and then we do not
 * unmap: the range is replaced in place by anonymous zero pages
 * (`MAP_FIXED`), which releases the shared object while every escaped view
 * stays valid and reads zeros. That range is never unmapped (a few pages of
 * address space per escape).
 *
 * @module
 */

import { MAP_FAILED, MMAP, requireSymbol } from "../../ffi/c.ts";
import { type FileStatus, freeBytes, statFd as fstat } from "../../ffi/stat.ts";
import { ERRNO, retryEintr } from "../../ffi/errno.ts";
import { libc } from "../../ffi/load.ts";
import { checkFlag, checkMode } from "../_common/checks.ts";
import { Lifecycle } from "../_common/lifecycle.ts";
import { systemError } from "../_common/system_error.ts";

/**
 * Any typed array over a plain `ArrayBuffer`.
 *
 * @category Shared memory
 */
export type TypedArray =
  | Int8Array<ArrayBuffer>
  | Uint8Array<ArrayBuffer>
  | Uint8ClampedArray<ArrayBuffer>
  | Int16Array<ArrayBuffer>
  | Uint16Array<ArrayBuffer>
  | Int32Array<ArrayBuffer>
  | Uint32Array<ArrayBuffer>
  | Float32Array<ArrayBuffer>
  | Float64Array<ArrayBuffer>
  | BigInt64Array<ArrayBuffer>
  | BigUint64Array<ArrayBuffer>;

/**
 * A typed array class such as `Float32Array`, as `view()` takes it.
 *
 * @category Shared memory
 */
export interface TypedArrayConstructor<T extends TypedArray> {
  /** Makes a view of `length` elements at `byteOffset` of `buffer`. */
  new (buffer: ArrayBuffer, byteOffset: number, length: number): T;
  /** Bytes per element. */
  readonly BYTES_PER_ELEMENT: number;
}

/**
 * Checks a byte size the user passed: a safe positive integer. Thrown before
 * any system call.
 */
export function checkSize(value: unknown, action: string): number {
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot ${action}: size must be a number of bytes, got ${typeof value}`,
    );
  }
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(
      `Cannot ${action}: size must be a positive integer no larger than Number.MAX_SAFE_INTEGER, got ${value}`,
    );
  }
  return value;
}

/** The options that `SharedMemory.open` and `MappedFile.open` both take. */
export interface RegionOptions {
  create?: boolean;
  exclusive?: boolean;
  size?: number;
  mode?: number;
  readOnly?: boolean;
}

/** {@linkcode RegionOptions} once checked, with their defaults filled in. */
export interface CheckedRegionOptions {
  create: boolean;
  exclusive: boolean;
  readOnly: boolean;
  size: number | undefined;
  mode: number;
}

/**
 * Checks the options both kinds of region take, the same way and before any
 * system call. `ownFlag` is the one boolean option only this kind has
 * (`unlinkOnClose`, `shared`), checked in turn with the other flags; `kind`
 * is what a create makes (`object`, `file`), for the message.
 */
export function checkRegionOptions(
  options: RegionOptions,
  action: string,
  kind: string,
  ownFlag: [name: string, value: unknown],
): CheckedRegionOptions {
  const { create, exclusive, readOnly } = options;
  checkFlag(create, "create", action);
  checkFlag(exclusive, "exclusive", action);
  checkFlag(readOnly, "readOnly", action);
  checkFlag(ownFlag[1], ownFlag[0], action);
  if (exclusive && !create) {
    throw new TypeError(`Cannot ${action}: exclusive needs create`);
  }
  if (readOnly && create) {
    throw new TypeError(
      `Cannot ${action}: readOnly cannot be combined with create (a new ${kind} must be sized, which needs write access)`,
    );
  }
  if (create && options.size === undefined) {
    throw new TypeError(`Cannot ${action}: create needs a size`);
  }
  return {
    create: create ?? false,
    exclusive: exclusive ?? false,
    readOnly: readOnly ?? false,
    size: options.size === undefined
      ? undefined
      : checkSize(options.size, action),
    mode: checkMode(options.mode ?? 0o600, action),
  };
}

/** Size, mode and allocated bytes of an open descriptor (fstat(2)). */
export function statFd(fd: number, action: string): FileStatus {
  const status = fstat(fd);
  if (typeof status === "number") throw systemError("fstat", action, -status);
  return status;
}

/**
 * Makes sure `size` bytes of the object behind `fd` exist in its file system
 * (tmpfs for shared memory), so that touching any byte of the mapping can
 * never raise SIGBUS for lack of space: that signal would kill the process,
 * while an error here is an ordinary `IpcError` with code `ENOSPC`.
 *
 * First a quick check of the free space (`fstatvfs`), which gives the clear
 * message; then `posix_fallocate`, which is what actually reserves the pages
 * or blocks, without a race, and extends the size to `size` when it is
 * larger. Where the C library has no `posix_fallocate` (macOS) or the file
 * system does not support it, the size is set with `ftruncate` and the
 * object may be sparse: that case is documented, not hidden.
 *
 * @param allocated bytes already there, so only the growth must be free
 * @param place the file system, for messages: `/dev/shm`
 */
export function reserve(
  fd: number,
  allocated: number,
  size: number,
  action: string,
  place: string,
): void {
  const symbols = libc().symbols;
  const free = freeBytes(fd);
  const needed = size - allocated;
  if (free !== undefined && needed > free) {
    throw systemError(
      "fstatvfs",
      action,
      ERRNO.ENOSPC,
      `it needs ${needed} more bytes and ${place} has ${free} free`,
    );
  }
  const fallocate = symbols.posix_fallocate;
  if (fallocate) {
    let error: number;
    // posix_fallocate returns the error number instead of setting errno.
    do error = fallocate(fd, 0n, BigInt(size)); while (error === ERRNO.EINTR);
    if (error === 0) return;
    if (error !== ERRNO.EOPNOTSUPP && error !== ERRNO.EINVAL) {
      throw systemError(
        "posix_fallocate",
        action,
        error,
        error === ERRNO.ENOSPC
          ? `${place} has no room for ${size} bytes`
          : undefined,
      );
    }
  }
  setLength(fd, size, action);
}

/** Sets the object's length with ftruncate(2). */
export function setLength(fd: number, size: number, action: string): void {
  const ftruncate = libc().symbols.ftruncate;
  const result = retryEintr(() => ftruncate(fd, BigInt(size)));
  if (result < 0) throw systemError("ftruncate", action, -result);
}

/**
 * Decides how big the mapping is, growing a new object to its requested
 * size. Rules, the same for shared memory and files:
 * - an object this call created gets exactly `requested` bytes;
 * - an existing object larger than `requested` is an error (a different
 *   record or protocol is behind the name);
 * - an existing object smaller than `requested` grows when `create` is set
 *   (its creator may not have sized it yet), else it is an error;
 * - without `requested`, the existing size is used; an empty object is an
 *   error, since nothing can be mapped.
 */
export function settleSize(
  fd: number,
  options: {
    created: boolean;
    requested: number | undefined;
    canGrow: boolean;
    /** Reserve the existing bytes too (fills holes left by ftruncate). */
    reserveExisting: boolean;
    action: string;
    place: string;
  },
): number {
  const { requested, action, place } = options;
  if (options.created) {
    reserve(fd, 0, requested!, action, place);
    return requested!;
  }
  const { size: actual, allocated } = statFd(fd, action);
  if (requested !== undefined && actual > requested) {
    throw new RangeError(
      `Cannot ${action}: it is ${actual} bytes, larger than the ${requested} bytes requested`,
    );
  }
  if (requested !== undefined && actual < requested) {
    if (!options.canGrow) {
      throw new RangeError(
        `Cannot ${action}: it is ${actual} bytes, smaller than the ${requested} bytes requested; pass create: true to grow it`,
      );
    }
    reserve(fd, Math.min(allocated, actual), requested, action, place);
    return requested;
  }
  if (actual === 0) {
    throw new RangeError(
      `Cannot ${action}: it is empty (0 bytes), and nothing can be mapped; open it with create: true and a size`,
    );
  }
  // An existing object may be sparse (its creator used ftruncate, as
  // Python's shared_memory does): its holes are filled now, counting only
  // the bytes not allocated yet against the free space.
  if (options.reserveExisting && allocated < actual) {
    reserve(fd, allocated, actual, action, place);
  }
  return actual;
}

/** Memory attached without a descriptor, and how to let it go. */
export interface AttachedMemory {
  /** Where it is attached. */
  pointer: Deno.PointerObject;
  /** Detaches it (shmdt); called once, after every view is detached. */
  detach: (pointer: Deno.PointerObject) => void;
}

interface _Raw {
  fd: number;
  pointer: Deno.PointerObject | null;
  size: number;
}

/** Replaces the range with anonymous zero pages: it stays valid, the object is released. */
function _retireInPlace(raw: _Raw): void {
  libc().symbols.mmap(
    raw.pointer,
    BigInt(raw.size),
    MMAP.PROT_READ | MMAP.PROT_WRITE,
    MMAP.MAP_PRIVATE | MMAP.MAP_ANONYMOUS | MMAP.MAP_FIXED |
      MMAP.MAP_NORESERVE,
    -1,
    0n,
  );
}

// Every buffer we hand out keeps its Mapping reachable, so the safety net
// (see the constructor) can never run while a view of the memory is alive.
const _owners = new WeakMap<ArrayBuffer, Mapping>();

/**
 * One `mmap` of a descriptor, with the buffers and views made over it. The
 * mapping owns the descriptor from construction on and closes it in
 * `close()`.
 */
export class Mapping {
  #raw: _Raw;
  #shared: boolean;
  #what: string;
  #buffers: ArrayBuffer[] = [];
  #current: ArrayBuffer | undefined;
  #life: Lifecycle;
  // C code on another thread (a parked sem_clockwait) may hold an address in
  // the mapping: while it does, munmap must wait (see retain()).
  #retained = 0;
  #releasePending = false;

  /**
   * Maps `size` bytes of `fd`. `shared`: `MAP_SHARED` (writes reach the
   * object and other processes); otherwise `MAP_PRIVATE`, copy-on-write:
   * writes stay in this process, which is how read-only handles are made
   * writable-but-harmless (JavaScript has no read-only typed arrays, and a
   * write to a `PROT_READ` page would kill the process with SIGSEGV).
   *
   * On failure the descriptor is left open for the caller to close.
   */
  constructor(
    fd: number,
    size: number,
    shared: boolean,
    what: string,
    attached?: AttachedMemory,
  ) {
    this.#what = what;
    this.#life = new Lifecycle(what);
    this.#shared = shared;
    const raw: _Raw = { fd, pointer: null, size };
    this.#raw = raw;
    const detach = attached?.detach;
    this.#detach = detach;
    raw.pointer = attached ? attached.pointer : this.#map(size);
    // The safety net for a mapping dropped without close(). It runs only
    // when no buffer we made is reachable (each one keeps its Mapping alive
    // through _owners), but a buffer moved away with transfer() could still
    // be, and we cannot tell from here: so the range is retired in place
    // (zero pages mapped over it) instead of unmapped, and such a buffer
    // reads zeros instead of crashing the process. For attached memory (a
    // System V segment) that is also the detach: the kernel counts the
    // zero pages' mapping as the attachment's end, as shmdt would.
    this.#life.guard(this, () => {
      if (raw.pointer) _retireInPlace(raw);
      if (raw.fd >= 0) libc().symbols.close(raw.fd);
    });
  }

  /**
   * A mapping of memory attached some other way than mmap of a descriptor
   * (a System V segment from `shmat`), released with `attached.detach`
   * instead of munmap. It has no descriptor (`fd` is -1) and cannot be
   * remapped; everything else, detaching every view first included, is
   * the same.
   */
  static attached(
    size: number,
    what: string,
    attached: AttachedMemory,
  ): Mapping {
    return new Mapping(-1, size, true, what, attached);
  }

  #detach: ((pointer: Deno.PointerObject) => void) | undefined;

  /** The mapped length in bytes. */
  get size(): number {
    return this.#raw.size;
  }

  /** The descriptor behind the mapping. */
  get fd(): number {
    return this.#raw.fd;
  }

  /** Whether `close()` has run. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /** Whether the mapping is shared with other processes (`MAP_SHARED`). */
  get shared(): boolean {
    return this.#shared;
  }

  /**
   * The address of byte `byteOffset` of the mapping, for C calls that keep
   * it (a `sem_t *`). Only valid until `close()`: callers that hand it to a
   * thread-pool call must `retain()` the mapping for as long as that runs.
   */
  address(byteOffset: number): Deno.PointerObject {
    this.#life.check();
    return Deno.UnsafePointer.offset(this.#raw.pointer!, byteOffset)!;
  }

  /**
   * Keeps the mapped range (not the views) alive: while retained, `close()`
   * still detaches every view at once but defers `munmap` and closing the
   * descriptor until the last retainer lets go. Used while a thread-pool
   * call may touch the memory. Returns the function that lets go (idempotent).
   */
  retain(): () => void {
    this.#life.check();
    this.#retained++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.#retained === 0 && this.#releasePending) this.#release();
    };
  }

  /** The `ArrayBuffer` over the whole mapping; the same one until it is detached. */
  get buffer(): ArrayBuffer {
    this.#life.check();
    if (this.#current === undefined || this.#current.detached) {
      const buffer = Deno.UnsafePointerView.getArrayBuffer(
        this.#raw.pointer!,
        this.#raw.size,
      );
      _owners.set(buffer, this);
      this.#buffers.push(buffer);
      this.#current = buffer;
    }
    return this.#current;
  }

  /** A typed view of the mapping; see `SharedMemory.view`. */
  view<T extends TypedArray>(
    ctor: TypedArrayConstructor<T>,
    byteOffset = 0,
    length?: number,
  ): T {
    const perElement = ctor?.BYTES_PER_ELEMENT;
    if (typeof ctor !== "function" || typeof perElement !== "number") {
      throw new TypeError(
        `Cannot view ${this.#what}: expected a typed array class such as Float32Array`,
      );
    }
    const size = this.#raw.size;
    if (
      !Number.isSafeInteger(byteOffset) || byteOffset < 0 || byteOffset > size
    ) {
      throw new RangeError(
        `Cannot view ${this.#what}: byteOffset must be an integer from 0 to ${size}, got ${byteOffset}`,
      );
    }
    if (byteOffset % perElement !== 0) {
      throw new RangeError(
        `Cannot view ${this.#what} as ${ctor.name}: byteOffset ${byteOffset} is not a multiple of ${perElement}`,
      );
    }
    const fits = Math.floor((size - byteOffset) / perElement);
    const count = length ?? fits;
    if (!Number.isSafeInteger(count) || count < 0 || count > fits) {
      throw new RangeError(
        `Cannot view ${this.#what} as ${ctor.name}: length must be an integer from 0 to ${fits} at byteOffset ${byteOffset}, got ${count}`,
      );
    }
    return new ctor(this.buffer, byteOffset, count);
  }

  /**
   * For a mapping that may not reserve space (read-only: posix_fallocate
   * needs write access), makes sure that reading it can never raise SIGBUS.
   *
   * On tmpfs (/dev/shm) a read fault of a hole allocates a page for the
   * object, MAP_SHARED and MAP_PRIVATE alike; where the file system is full
   * that fault raises SIGBUS, which kills the process (measured on Linux
   * 6.18). So a sparse object (fewer bytes allocated than its size) is
   * refused with ENOSPC when its holes exceed the free space, and otherwise
   * faulted in now with MADV_POPULATE_READ, which fails with EFAULT where a
   * touch would raise SIGBUS: that is ENOSPC too. Once faulted in, the
   * pages stay with the object. Where MADV_POPULATE_READ is missing (Linux
   * before 5.14, macOS) only the free-space check is made, and a writer
   * that fills the file system between the check and a read can still
   * cause SIGBUS. An object with no holes costs one fstat.
   *
   * @param place the file system, for messages: `/dev/shm`
   */
  backHoles(action: string, place: string): void {
    this.#life.check();
    const { size, allocated } = statFd(this.#raw.fd, action);
    if (allocated >= size) return;
    const holes = size - allocated;
    const free = freeBytes(this.#raw.fd);
    const why =
      `it is sparse: ${holes} of its ${size} bytes are holes, which reading fills`;
    if (free !== undefined && holes > free) {
      throw systemError(
        "fstatvfs",
        action,
        ERRNO.ENOSPC,
        `${why}, and ${place} has ${free} bytes free (reading would crash the process with SIGBUS)`,
      );
    }
    if (MMAP.MADV_POPULATE_READ < 0) return;
    const madvise = libc().symbols.madvise;
    const pointer = this.#raw.pointer;
    const result = retryEintr(() =>
      madvise(pointer, BigInt(size), MMAP.MADV_POPULATE_READ)
    );
    if (result === 0 || -result === ERRNO.EINVAL) return;
    throw systemError(
      "madvise",
      action,
      -result === ERRNO.EFAULT ? ERRNO.ENOSPC : -result,
      -result === ERRNO.EFAULT
        ? `${why}, and ${place} has no room for them (reading would crash the process with SIGBUS)`
        : undefined,
    );
  }

  /** msync(2) over a range; `async` schedules the write-back instead of waiting. */
  sync(byteOffset: number, byteLength: number, async: boolean): void {
    this.#life.check("flush");
    const msync = libc().symbols.msync;
    const pointer = Deno.UnsafePointer.offset(this.#raw.pointer!, byteOffset);
    const flags = async ? MMAP.MS_ASYNC : MMAP.MS_SYNC;
    const result = retryEintr(() => msync(pointer, BigInt(byteLength), flags));
    if (result < 0) throw systemError("msync", `flush ${this.#what}`, -result);
  }

  /**
   * Maps the object again at `size` bytes: every buffer and view handed out
   * so far is detached first. `resizeObject` runs between unmapping and
   * mapping; if it or the new mapping fails, the old size is mapped again
   * and the error is thrown.
   */
  remap(size: number, resizeObject: () => void): void {
    this.#life.check("resize");
    if (this.#detach) {
      throw new TypeError(
        `Cannot resize ${this.#what}: it is not mapped from a file`,
      );
    }
    if (this.#retained > 0) {
      throw new Deno.errors.Busy(
        `Cannot resize ${this.#what}: a wait on memory inside it is in progress`,
      );
    }
    const old = this.#raw.size;
    this.#unmap();
    try {
      resizeObject();
      this.#raw.pointer = this.#map(size);
      this.#raw.size = size;
    } catch (error) {
      this.#raw.pointer = this.#map(old);
      throw error;
    }
  }

  /** Detaches every buffer, then unmaps and closes the descriptor; idempotent. */
  close(): void {
    this.#life.close(() => {
      this.#detachAll();
      if (this.#retained > 0) this.#releasePending = true;
      else this.#release();
    });
  }

  /** Unmaps and closes the descriptor, once views are detached and nobody retains it. */
  #release(): void {
    this.#releasePending = false;
    this.#unmapRange();
    const fd = this.#raw.fd;
    this.#raw.fd = -1;
    if (fd >= 0) libc().symbols.close(fd);
  }

  #map(size: number): Deno.PointerObject {
    const protection = MMAP.PROT_READ | MMAP.PROT_WRITE;
    const flags = this.#shared ? MMAP.MAP_SHARED : MMAP.MAP_PRIVATE;
    const mmap = requireSymbol("mmap");
    const pointer = mmap(
      null,
      BigInt(size),
      protection,
      flags,
      this.#raw.fd,
      0n,
    );
    if (pointer === null || Deno.UnsafePointer.value(pointer) === MAP_FAILED) {
      // mmap(2) sets errno on this thread; read it before anything else.
      throw systemError("mmap", `map ${this.#what}`);
    }
    return pointer;
  }

  #unmap(): void {
    this.#detachAll();
    this.#unmapRange();
  }

  #escaped = false;

  #detachAll(): void {
    for (const buffer of this.#buffers) {
      // A buffer detached before we got here may have been moved elsewhere
      // with transfer(): its memory could still be reachable.
      if (buffer.detached) this.#escaped = true;
      else buffer.transfer(0);
    }
    this.#buffers = [];
    this.#current = undefined;
  }

  #unmapRange(): void {
    const raw = this.#raw;
    // Zero pages mapped over an attached segment replace it, which
    // detaches it as shmdt would.
    if (this.#escaped) _retireInPlace(raw);
    else if (this.#detach) this.#detach(raw.pointer!);
    else libc().symbols.munmap(raw.pointer, BigInt(raw.size));
    this.#escaped = false;
    raw.pointer = null;
  }
}
