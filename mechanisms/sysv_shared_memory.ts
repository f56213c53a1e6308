/**
 * System V shared memory (`shmget`, `shmat`, `shmdt`, `shmctl`): a
 * segment found by key, attached into this process with the same
 * zero-copy views as {@linkcode import("./shared_memory.ts").SharedMemory}
 * (`bytes()`, `view()`, `struct(layout)` with `$atomic`), shared with C
 * programs that use the notes' `shmget((key_t)1234, 1024, IPC_CREAT|0666)`.
 *
 * Detaching is safe: `close()` detaches every buffer and view handed out
 * before `shmdt`, so a stale typed array reads `undefined` instead of
 * crashing the process (a buffer moved away with `transfer()` gets zero
 * pages in place of the segment, as for `SharedMemory`). The memory
 * ordering rules of `SharedMemory` hold here too: `Atomics` on integer
 * views are ordered across processes.
 *
 * A segment is attached read-write: a read-only attachment would turn a
 * stray write from JavaScript into SIGSEGV, and System V has no
 * copy-on-write attachment (`SharedMemory` maps read-only handles
 * copy-on-write for that reason).
 *
 * Permissions: `/proc/sysvipc/shm` stands for every segment: attaching
 * needs `--allow-read` and `--allow-write` on it (suggested as
 * `=/proc/sysvipc`), creating and removing `--allow-write`; every call
 * `--allow-ffi`. With `--allow-read=/proc/sys/kernel` a size is checked
 * against `shmmax` before any call.
 *
 * A segment lives until it is removed *and* its last attachment is gone:
 * `remove()` (or `unlinkOnClose`) marks it, and the kernel frees it when
 * the last process detaches, as `ipcs -m` shows with status `dest`.
 *
 * @example The notes' segment, key 1234, 1024 bytes
 * ```ts
 * import { SysvSharedMemory } from "@ipckit/ipckit/sysv-shared-memory";
 *
 * // The notes use key 1234; a key of this process's own keeps runs apart.
 * const key = 0x1200_0000 | Deno.pid;
 * using segment = SysvSharedMemory.open(key, {
 *   create: true,
 *   exclusive: true,
 *   size: 1024,
 *   mode: 0o600,
 *   unlinkOnClose: true,
 * });
 * new TextEncoder().encodeInto("hello from Deno", segment.bytes());
 * console.log(segment.attributes().attachments); // 1
 * ```
 *
 * @module
 */

import { ERRNO } from "../ffi/errno.ts";
import { IPC, shmat, shmdt, shmget, shmStat } from "../ffi/sysv.ts";
import type { Layout, LayoutSpec, MappedStruct, StructView } from "./layout.ts";
import { checkOptionKeys, optionKeys } from "./_common/checks.ts";
import { Lifecycle, unlinkQuietly } from "./_common/lifecycle.ts";
import { systemError } from "./_common/system_error.ts";
import {
  checkSysvOpen,
  describeLimit,
  describeSysv,
  getTracked,
  idError,
  readSysvLimit,
  removeSysvId,
  requireSysvAdoptable,
  requireSysvPermissions,
  resolveKey,
  settleOrRemove,
  SYSV_KIND_FACTS,
  type SysvKey,
} from "./_kernel/sysv.ts";
import {
  checkSize,
  Mapping,
  type TypedArray,
  type TypedArrayConstructor,
} from "./_memory/mapping.ts";
import { checkRecordLayout, ownedStruct, structIn } from "./_memory/region.ts";

export type { SysvKey } from "./_kernel/sysv.ts";

/**
 * How to open a System V shared memory segment.
 *
 * @example
 * ```ts
 * import type { SysvSharedMemoryOptions } from "@ipckit/ipckit";
 *
 * const options: SysvSharedMemoryOptions = { create: true, size: 1024, unlinkOnClose: true };
 * ```
 *
 * @category System V IPC
 */
export interface SysvSharedMemoryOptions {
  /** Create the segment if no segment has the key. Needs `size`. Default `false`. */
  create?: boolean;
  /** With `create`: fail with `AlreadyExists` if it exists. Default `false`. */
  exclusive?: boolean;
  /**
   * With `create`, which existing segment to use: `"owned"` (default) only
   * one whose owner and creator are this process's effective uid and whose
   * mode grants nothing beyond `mode`; `"any-owner"` any this process may
   * attach.
   */
  adopt?: "owned" | "any-owner";
  /**
   * Size in bytes. A created segment gets this size (the kernel rounds the
   * memory it uses up to pages; `size` stays what was asked). An existing
   * segment smaller than this is an error. Unset: the existing size.
   */
  size?: number;
  /** Permission bits of a created segment. Default `0o600`. */
  mode?: number;
  /**
   * Mark the segment for removal (`IPC_RMID`) when this handle closes: no
   * process can attach it any more, and the kernel frees it once the last
   * attachment goes, as unlinking a POSIX name does. Default `false`: the
   * segment stays, as every named object does (the README's "Cleaning up").
   */
  unlinkOnClose?: boolean;
}

const _OPEN_KEYS = optionKeys<SysvSharedMemoryOptions>({
  create: true,
  exclusive: true,
  adopt: true,
  size: true,
  mode: true,
  unlinkOnClose: true,
});
// A record's segment is exactly the layout's size.
const _STRUCT_KEYS = _OPEN_KEYS.filter((key) => key !== "size");

/**
 * A segment's state as the kernel reports it (`shmctl(IPC_STAT)`).
 *
 * @example
 * ```ts
 * import type { SysvSegmentAttributes } from "@ipckit/ipckit";
 *
 * function shared(attributes: SysvSegmentAttributes): boolean {
 *   return attributes.attachments > 1;
 * }
 * ```
 *
 * @category System V IPC
 */
export interface SysvSegmentAttributes {
  /** The key (0 for a private segment). */
  key: number;
  /** The segment's id. */
  id: number;
  /** Size in bytes. */
  size: number;
  /** Attachments now, in every process (`shm_nattch`). */
  attachments: number;
  /** The process that created it, and the last one to attach or detach. */
  creatorPid: number;
  /** See `creatorPid`. */
  lastPid: number;
  /** When it was last attached and detached; undefined for never. */
  lastAttach: Date | undefined;
  /** See `lastAttach`. */
  lastDetach: Date | undefined;
  /** When it was created or its settings last changed. */
  changed: Date;
  /** The owner's and the creator's uid. */
  uid: number;
  /** See `uid`. */
  creatorUid: number;
  /** Permission bits. */
  mode: number;
}

/**
 * A System V shared memory segment attached into this process.
 *
 * @example A counter shared with a C program
 * ```ts
 * import { SysvSharedMemory } from "@ipckit/ipckit";
 *
 * using segment = SysvSharedMemory.open("private", {
 *   create: true,
 *   size: 4,
 *   unlinkOnClose: true,
 * });
 * Atomics.add(segment.view(Int32Array), 0, 1);
 * ```
 *
 * @category System V IPC
 */
export class SysvSharedMemory implements Disposable, AsyncDisposable {
  #id: number;
  #key: number;
  #what: string;
  #mapping: Mapping;
  #unlinkOnClose: boolean;
  // The mapping has the safety net (it detaches a dropped segment); this
  // lifecycle makes closing idempotent and says "it is closed".
  #life: Lifecycle;

  private constructor(
    id: number,
    key: number,
    what: string,
    mapping: Mapping,
    unlinkOnClose: boolean,
  ) {
    this.#id = id;
    this.#key = key;
    this.#what = what;
    this.#mapping = mapping;
    this.#unlinkOnClose = unlinkOnClose;
    this.#life = new Lifecycle(what);
  }

  /**
   * Opens (or with `create`, creates) the segment of `key` (a number,
   * ftok's `{ path, id }`, or `"private"`) and attaches all of it.
   *
   * @throws {TypeError} for an invalid key or option, before any system call
   * @throws {RangeError} for a size above the kernel's `shmmax` (naming it),
   * or an existing segment smaller than `size`
   * @throws {Deno.errors.NotCapable} without `--allow-read` and `--allow-write` on `/proc/sysvipc/shm`
   * @throws {Deno.errors.NotFound} when no segment has the key and `create` is not set
   * @throws {Deno.errors.AlreadyExists} with `create` and `exclusive` when it exists
   * @throws {Deno.errors.PermissionDenied} with `create` when an existing
   * segment belongs to another user or has a wider mode (see `adopt`)
   *
   * @example
   * ```ts
   * import { SysvSharedMemory } from "@ipckit/ipckit";
   *
   * using segment = SysvSharedMemory.open("private", {
   *   create: true,
   *   size: 1024,
   *   unlinkOnClose: true,
   * });
   * console.log(segment.size); // 1024
   * ```
   */
  static open(
    key: SysvKey,
    options: SysvSharedMemoryOptions = {},
  ): SysvSharedMemory {
    const request = checkSysvOpen("sysv-shm", key, options, _OPEN_KEYS, {
      name: "size",
      value: options.size,
    });
    const { checked, action, create } = request;
    const size = options.size === undefined
      ? undefined
      : checkSize(options.size, action);
    if (size !== undefined) {
      const shmmax = readSysvLimit("shmmax")?.[0];
      if (shmmax !== undefined && size > shmmax) {
        throw new RangeError(
          `Cannot ${action}: size is ${size} bytes, above the kernel limit ${
            describeLimit("shmmax", shmmax)
          }`,
        );
      }
    }

    requireSysvPermissions("sysv-shm", ["read", "write"]);
    const number = resolveKey(checked, SYSV_KIND_FACTS["sysv-shm"].label);
    const opening = `open ${describeSysv("sysv-shm", checked, undefined)}`;
    const got = getTracked(
      // Size 0 gets an existing segment of any size; it is checked below.
      (flags) => shmget(number, flags & IPC.CREAT ? size! : 0, flags),
      (errno, reason) =>
        systemError(
          "shmget",
          opening,
          errno,
          reason ?? _shmgetReason(errno, size),
        ),
      request,
    );
    const { id, created } = got;
    const what = describeSysv("sysv-shm", checked, id);
    const [status, pointer] = settleOrRemove("sysv-shm", got, () => {
      const status = shmStat(id);
      if (typeof status === "number") {
        throw idError("shmctl", opening, -status);
      }
      if (create && !created) {
        requireSysvAdoptable(status.perm, request, "shmget", opening);
      }
      if (size !== undefined && status.segsz < size) {
        throw new RangeError(
          `Cannot ${opening}: it is ${status.segsz} bytes, smaller than the ${size} bytes requested`,
        );
      }
      const pointer = shmat(id, 0);
      if (typeof pointer === "number") {
        throw idError("shmat", opening, -pointer);
      }
      return [status, pointer] as const;
    });
    const mapping = Mapping.attached(
      created ? size! : status.segsz,
      what,
      { pointer, detach: (address) => shmdt(address) },
    );
    return new SysvSharedMemory(
      id,
      number,
      what,
      mapping,
      request.unlinkOnClose,
    );
  }

  /**
   * Opens a segment sized for one `layout` record and returns the record:
   * its properties read and write the shared memory directly. Closing the
   * record detaches the segment.
   *
   * @example
   * ```ts
   * import { layout, SysvSharedMemory } from "@ipckit/ipckit";
   *
   * const counter = layout({ hits: "u32" });
   * using record = SysvSharedMemory.openStruct("private", counter, {
   *   create: true,
   *   unlinkOnClose: true,
   * });
   * record.$atomic.hits.add(1);
   * console.log(record.hits); // 1
   * ```
   */
  static openStruct<S extends LayoutSpec>(
    key: SysvKey,
    layout: Layout<S>,
    options: Omit<SysvSharedMemoryOptions, "size"> = {},
  ): MappedStruct<S, SysvSharedMemory> {
    const action = "open System V shared memory";
    checkOptionKeys(options, _STRUCT_KEYS, action);
    checkRecordLayout(layout, action);
    const segment = SysvSharedMemory.open(key, {
      ...options,
      size: layout.size,
    });
    return ownedStruct(
      segment,
      (extra) =>
        structIn(segment.#mapping, layout, 0, false, segment.#what, extra),
    );
  }

  /** The segment's id (what `ipcs -m` shows as shmid). */
  get id(): number {
    return this.#id;
  }

  /** The segment's key; 0 for a private segment. */
  get key(): number {
    return this.#key;
  }

  /** The attached size in bytes. */
  get size(): number {
    return this.#mapping.size;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * An `ArrayBuffer` over the whole segment, without a copy; `close()`
   * detaches it.
   *
   * @example
   * ```ts
   * import { SysvSharedMemory } from "@ipckit/ipckit";
   *
   * using segment = SysvSharedMemory.open("private", {
   *   create: true,
   *   size: 64,
   *   unlinkOnClose: true,
   * });
   * const header = new DataView(segment.buffer, 0, 8);
   * header.setUint32(0, 0xcafe);
   * ```
   */
  get buffer(): ArrayBuffer {
    return this.#mapping.buffer;
  }

  /**
   * The whole segment as bytes, without a copy.
   *
   * @example
   * ```ts
   * import { SysvSharedMemory } from "@ipckit/ipckit";
   *
   * using segment = SysvSharedMemory.open("private", {
   *   create: true,
   *   size: 64,
   *   unlinkOnClose: true,
   * });
   * new TextEncoder().encodeInto("hello", segment.bytes());
   * console.log(new TextDecoder().decode(segment.bytes()).split("\0")[0]); // hello
   * ```
   */
  bytes(): Uint8Array<ArrayBuffer> {
    return new Uint8Array(this.#mapping.buffer);
  }

  /**
   * A typed array over part of the segment, without a copy (see
   * `SharedMemory.view`).
   *
   * @throws {RangeError} for an offset or length outside the segment or misaligned
   *
   * @example
   * ```ts
   * import { SysvSharedMemory } from "@ipckit/ipckit";
   *
   * using segment = SysvSharedMemory.open("private", {
   *   create: true,
   *   size: 64,
   *   unlinkOnClose: true,
   * });
   * const words = segment.view(Int32Array, 0, 4);
   * words[0] = 7;
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
   * Binds a `layout` record at `byteOffset` of the segment; it stops
   * working when this handle closes.
   *
   * @example
   * ```ts
   * import { layout, SysvSharedMemory } from "@ipckit/ipckit";
   *
   * using segment = SysvSharedMemory.open("private", {
   *   create: true,
   *   size: 64,
   *   unlinkOnClose: true,
   * });
   * const head = segment.struct(layout({ seq: "u32" }));
   * head.$atomic.seq.add(1);
   * ```
   */
  struct<S extends LayoutSpec>(
    layout: Layout<S>,
    byteOffset: number = 0,
  ): StructView<S> {
    return structIn(this.#mapping, layout, byteOffset, false, this.#what);
  }

  /**
   * Reads the segment's state: size, attachments in every process, the
   * creator and the last pid, times, owner and mode.
   *
   * @throws {Deno.errors.NotFound} when the segment is gone
   *
   * @example
   * ```ts
   * import { SysvSharedMemory } from "@ipckit/ipckit";
   *
   * using segment = SysvSharedMemory.open("private", {
   *   create: true,
   *   size: 64,
   *   unlinkOnClose: true,
   * });
   * console.log(segment.attributes().attachments); // 1
   * ```
   */
  attributes(): SysvSegmentAttributes {
    this.#life.check("read attributes of");
    return segmentAttributes(this.#id, `read attributes of ${this.#what}`);
  }

  /**
   * Marks the segment for removal (`IPC_RMID`): no process can attach it
   * from now on, and the kernel frees it once the last attachment is gone.
   * This handle stays usable until it closes.
   *
   * @throws {Deno.errors.NotCapable} without `--allow-write=/proc/sysvipc`
   * @throws {Deno.errors.NotFound} when it was removed already
   *
   * @example
   * ```ts
   * import { SysvSharedMemory } from "@ipckit/ipckit";
   *
   * using segment = SysvSharedMemory.open("private", { create: true, size: 64 });
   * segment.remove(); // freed once the last attachment (this one) goes
   * segment.bytes()[0] = 1; // still attached until close()
   * ```
   */
  remove(): void {
    removeSysvId("sysv-shm", this.#id, this.#what);
  }

  /**
   * Detaches every buffer and view handed out, then the segment (`shmdt`);
   * idempotent. With `unlinkOnClose` the segment is marked for removal too
   * (one removed already counts as done); without it the segment stays for
   * other processes.
   *
   * @example
   * ```ts
   * import { SysvSharedMemory } from "@ipckit/ipckit";
   *
   * const segment = SysvSharedMemory.open("private", {
   *   create: true,
   *   size: 64,
   *   unlinkOnClose: true,
   * });
   * const bytes = segment.bytes();
   * segment.close();
   * console.log(bytes.length); // 0
   * ```
   */
  close(): void {
    this.#life.close(() => {
      this.#mapping.close();
      if (this.#unlinkOnClose) unlinkQuietly(() => this.remove());
    });
  }

  /** Detaches the segment; see {@linkcode SysvSharedMemory.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Detaches the segment; see {@linkcode SysvSharedMemory.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.#life.closeAsync(() => this.close());
  }
}

/** The attributes of segment `id`, for handles and the inventory. */
function segmentAttributes(id: number, action: string): SysvSegmentAttributes {
  const status = shmStat(id);
  if (typeof status === "number") throw idError("shmctl", action, -status);
  const when = (seconds: number) =>
    seconds === 0 ? undefined : new Date(seconds * 1000);
  return {
    key: status.perm.key,
    id,
    size: status.segsz,
    attachments: status.nattch,
    creatorPid: status.cpid,
    lastPid: status.lpid,
    lastAttach: when(status.atime),
    lastDetach: when(status.dtime),
    changed: new Date(status.ctime * 1000),
    uid: status.perm.uid,
    creatorUid: status.perm.cuid,
    mode: status.perm.mode,
  };
}

function _shmgetReason(
  errno: number,
  size: number | undefined,
): string | undefined {
  if (errno === ERRNO.EINVAL) {
    return size === undefined
      ? undefined
      : `the kernel refused ${size} bytes: an existing segment of this key is smaller, or the size is outside /proc/sys/kernel/shmmax`;
  }
  if (errno === ERRNO.ENOSPC) {
    return "the system's limit on segments (/proc/sys/kernel/shmmni) or on shared memory pages (/proc/sys/kernel/shmall) was reached";
  }
  return undefined;
}
