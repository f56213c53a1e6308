/**
 * The POSIX IPC objects on this machine (message queues, shared memory
 * objects, named semaphores), the processes that hold them, and which of
 * them nobody holds: what the `ipckit` command line shows, as an API.
 *
 * - {@linkcode listObjects} lists objects with their size, mode, owner and
 *   holders (processes with the object open in `/proc/<pid>/fd` or mapped
 *   in `/proc/<pid>/maps`, matched by device and inode);
 * - {@linkcode findObjects} does the same for one name;
 * - {@linkcode planCollection} decides which objects no process holds or
 *   could hold, and why each other one is kept;
 * - {@linkcode removeObject} removes a name; {@linkcode objectDetails}
 *   reads a queue's attributes or a semaphore's value.
 *
 * **Where /dev/mqueue is not mounted** (most containers and CI machines),
 * queues are still found through the descriptors processes hold, and by
 * name; only queues that nobody holds cannot be listed, and
 * {@linkcode Inventory.unlisted} says so and how to mount it.
 *
 * **System V objects** (message queues, shared memory segments, semaphore
 * sets) have keys and ids instead of names: {@linkcode listSysvObjects}
 * lists them from /proc/sysvipc as `ipcs` does,
 * {@linkcode planSysvCollection} judges them, and
 * {@linkcode removeSysvObject} removes one by id as `ipcrm` does. Listing
 * needs `--allow-read=/proc/sysvipc`, removing `--allow-write=/proc/sysvipc`.
 *
 * **Processes that cannot be inspected** (another user's, one that is not
 * dumpable, one that holds capabilities you do not) are reported in
 * {@linkcode Inventory.uninspected} with the reason. `planCollection` keeps
 * every object such a process could hold: when it runs as the object's
 * owner, or the object's mode grants group or other users access (so also
 * when both belong to root). The one gap: a root process that an ordinary
 * user cannot inspect is not assumed to hold that user's private (`0o600`)
 * objects, though root could open them; assuming it would keep every
 * user's objects on any machine that runs a root daemon. Run as root to
 * see root's processes.
 *
 * **Names are bytes.** The kernel accepts names that are not UTF-8
 * (`/dev/shm/caf\xe9`). They are listed, matched and removed by their exact
 * bytes ({@linkcode IpcObject.nameBytes}) and shown escaped in
 * {@linkcode IpcObject.name}: a byte that is not part of valid UTF-8, or a
 * control character, as `\xHH`, a backslash as `\\`.
 * {@linkcode parseObjectName} turns that form back into the bytes. Every
 * function that takes a name takes a `string` (exact UTF-8, no escapes) or
 * a `Uint8Array`.
 *
 * Permissions: `--allow-ffi`; listing needs `--allow-read` on `/dev/shm`,
 * `/dev/mqueue` and `/proc`; removing needs `--allow-write` on the
 * object's directory. Deno 2.9 refuses its own file API under /dev and
 * /proc without `--allow-all`, so everything is read through libc after
 * these checks, as elsewhere in ipckit.
 *
 * @example List what nobody holds
 * ```ts
 * // deno run --allow-ffi --allow-read=/dev/shm,/dev/mqueue,/proc unheld.ts
 * import { listObjects } from "@ipckit/ipckit/inventory";
 *
 * const { objects, unlisted } = await listObjects();
 * for (const object of objects) {
 *   if (object.holders.length === 0) console.log(object.kind, object.name);
 * }
 * for (const { reason } of unlisted) console.log(`note: ${reason}`);
 * ```
 *
 * @module
 */

import type { IpcKind } from "./_kernel/objects.ts";
import { IPC_KINDS, OBJECT_KINDS } from "./_kernel/objects.ts";
import { requirePermissions } from "./_kernel/permissions.ts";
import { objectPath } from "./_kernel/objects.ts";
import {
  type CollectionPlan,
  planCollection as _plan,
} from "./_inventory/collect.ts";
import {
  formatObjectName as _format,
  nameBytes,
  parseObjectName as _parse,
  validateNameBytes,
} from "./_inventory/names.ts";
import {
  checkReadable,
  type Inventory,
  type IpcObject,
  queueDirectoryMounted as _mounted,
  takeInventory,
} from "./_inventory/objects.ts";
import {
  objectExists as _exists,
  probeQueue,
  semaphoreValue,
} from "./_inventory/probe.ts";
import { removeByName } from "./_inventory/remove.ts";
import {
  judgeSysv,
  listSysv,
  type SysvObject,
  type SysvVerdict,
} from "./_inventory/sysv.ts";
import {
  removeSysvId,
  requireSysvPermissions,
  SYSV_KIND_FACTS,
  SYSV_KINDS,
  type SysvKind,
} from "./_kernel/sysv.ts";
import { systemError } from "./_common/system_error.ts";
import { checkOptionKeys, optionKeys } from "./_common/checks.ts";

export type { IpcKind } from "./_kernel/objects.ts";
export { IPC_KINDS } from "./_kernel/objects.ts";
export type {
  Inventory,
  IpcObject,
  ListedObject,
  Unlisted,
} from "./_inventory/objects.ts";
export type { Holder } from "./_inventory/processes.ts";
export type {
  UninspectedProcess,
  UninspectedReason,
} from "./_inventory/uninspected.ts";
export type { CollectionPlan, Verdict } from "./_inventory/collect.ts";

/**
 * How messages and tables name each kind: `"message queue"`,
 * `"shared memory"`, `"semaphore"`.
 *
 * @example The word for a kind, as messages use it
 * ```ts
 * import { KIND_NAMES } from "@ipckit/ipckit/inventory";
 *
 * console.log(KIND_NAMES.mq); // message queue
 * ```
 *
 * @category Inventory
 */
export const KIND_NAMES: Readonly<Record<IpcKind, string>> = {
  mq: OBJECT_KINDS.mq.label,
  shm: OBJECT_KINDS.shm.label,
  sem: OBJECT_KINDS.sem.label,
};

/**
 * What to list.
 *
 * @example One application's shared memory
 * ```ts
 * import type { ListOptions } from "@ipckit/ipckit/inventory";
 *
 * const options: ListOptions = { kinds: ["shm"], prefix: "/myapp-" };
 * ```
 *
 * @category Inventory
 */
export interface ListOptions {
  /** Only these kinds. Default: every kind. */
  kinds?: Iterable<IpcKind>;
  /** Only names that start with this (exact bytes; a string is UTF-8). */
  prefix?: string | Uint8Array;
  /**
   * Called now and then while /proc is scanned, with the processes done and
   * the total: scanning a busy machine can take seconds. The scan lets the
   * event loop run between calls, so a spinner can turn.
   */
  onProgress?: (done: number, total: number) => void;
}

const _LIST_KEYS = optionKeys<ListOptions>({
  kinds: true,
  prefix: true,
  onProgress: true,
});
const _FIND_KEYS = optionKeys<FindOptions>({
  kinds: true,
  holders: true,
  onProgress: true,
});
const _COLLECT_KEYS = optionKeys<CollectOptions>({
  prefix: true,
  all: true,
  kinds: true,
  onProgress: true,
});

/**
 * Lists the objects, sorted by kind then name, with the processes that
 * hold each one, and says what could not be seen.
 *
 * @param options which objects, and a progress callback
 * @returns the objects, the processes that could not be inspected and why,
 *   and what could not be listed
 * @throws {Deno.errors.NotCapable} without `--allow-read` on a directory to
 *   list or on `/proc`
 * @throws {TypeError} on an unknown kind or a prefix with a lone surrogate
 *
 * @example Every shared memory object of one application, and who holds it
 * ```ts
 * import { listObjects } from "@ipckit/ipckit/inventory";
 *
 * const { objects } = await listObjects({ kinds: ["shm"], prefix: "/myapp-" });
 * for (const { name, size, holders } of objects) {
 *   console.log(name, size, holders.map((holder) => holder.pid));
 * }
 * ```
 *
 * @category Inventory
 */
export async function listObjects(
  options: ListOptions = {},
): Promise<Inventory> {
  checkOptionKeys(options, _LIST_KEYS, "list IPC objects");
  const kinds = _kinds(options.kinds);
  const prefix = options.prefix === undefined
    ? undefined
    : nameBytes(options.prefix);
  checkReadable(kinds, true);
  return await takeInventory({ kinds, prefix, onProgress: options.onProgress });
}

/**
 * What to look up by name.
 *
 * @example Look up queues only, without their holders
 * ```ts
 * import type { FindOptions } from "@ipckit/ipckit/inventory";
 *
 * const options: FindOptions = { kinds: ["mq"], holders: false };
 * ```
 *
 * @category Inventory
 */
export interface FindOptions {
  /** Only these kinds. Default: every kind (a queue and a memory may share a name). */
  kinds?: Iterable<IpcKind>;
  /** Scan /proc for the holders. Default `true`; `false` needs no `/proc` permission. */
  holders?: boolean;
  /** As in {@linkcode ListOptions.onProgress}. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * The objects named `name`, of each kind that has one. Where /dev/mqueue is
 * not mounted, a queue is found by opening it read-only by name (which
 * changes nothing); one you may not open is reported in
 * {@linkcode Inventory.unlisted}.
 *
 * @param name `/jobs`: a string (exact UTF-8) or the exact bytes
 * @param options which kinds, and whether to look for holders
 * @returns the objects found (none when nothing has that name)
 * @throws {TypeError} when the name is malformed
 * @throws {RangeError} when it is too long
 * @throws {Deno.errors.NotCapable} without `--allow-read` on the object's
 *   directory (and on `/proc` for holders)
 *
 * @example Who holds a queue
 * ```ts
 * import { MessageQueue } from "@ipckit/ipckit";
 * import { findObjects } from "@ipckit/ipckit/inventory";
 *
 * const name = `/jobs-${Deno.pid}`;
 * using _queue = MessageQueue.open(name, { create: true, unlinkOnClose: true });
 * const { objects } = await findObjects(name, { kinds: ["mq"] });
 * console.log(objects[0].holders.some((holder) => holder.pid === Deno.pid)); // true
 * ```
 *
 * @category Inventory
 */
export async function findObjects(
  name: string | Uint8Array,
  options: FindOptions = {},
): Promise<Inventory> {
  checkOptionKeys(options, _FIND_KEYS, "find IPC objects");
  const kinds = _kinds(options.kinds);
  const bytes = checkObjectName(name, kinds);
  const holders = options.holders ?? true;
  checkReadable(kinds, holders);
  return await takeInventory({
    kinds,
    name: bytes,
    holders,
    onProgress: options.onProgress,
  });
}

/**
 * What {@linkcode planCollection} may consider.
 *
 * @example Collect what one application left behind
 * ```ts
 * import type { CollectOptions } from "@ipckit/ipckit/inventory";
 *
 * const options: CollectOptions = { prefix: "/myapp-" };
 * ```
 *
 * @category Inventory
 */
export interface CollectOptions {
  /**
   * Only names starting with this. Required unless `all` is true, because
   * an object nobody holds may still be opened by name later: say which
   * names are yours to collect.
   */
  prefix?: string | Uint8Array;
  /** Consider every name. */
  all?: boolean;
  /** Only these kinds. Default: every kind. */
  kinds?: Iterable<IpcKind>;
  /** As in {@linkcode ListOptions.onProgress}. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Decides which objects may be removed: those whose name matches, that no
 * inspected process has open or mapped, and that no process that could not
 * be inspected could hold (see the module doc for the rule and its one
 * gap). Removes nothing: pass each verdict with `remove: true` to
 * {@linkcode removeObject}.
 *
 * @param options the prefix (or `all`), the kinds, a progress callback
 * @returns one verdict per matching object, with its reason
 * @throws {TypeError} without `prefix` or `all`, with both, or with a
 *   prefix of `""` or `"/"` (which matches everything: say `all`)
 * @throws {Deno.errors.NotCapable} without `--allow-read` on the
 *   directories or `/proc`
 *
 * @example Remove what no live process holds
 * ```ts
 * // deno run --allow-ffi --allow-read=/dev/shm,/dev/mqueue,/proc --allow-write=/dev/shm,/dev/mqueue gc.ts
 * import { planCollection, removeObject } from "@ipckit/ipckit/inventory";
 *
 * const plan = await planCollection({ prefix: `/myapp-${Deno.pid}-` });
 * for (const { object, remove, reason } of plan.verdicts) {
 *   if (remove) removeObject(object.kind, object.nameBytes);
 *   console.log(remove ? "removed" : "kept", object.name, reason);
 * }
 * ```
 *
 * @category Inventory
 */
export async function planCollection(
  options: CollectOptions,
): Promise<CollectionPlan> {
  checkOptionKeys(options, _COLLECT_KEYS, "plan a collection");
  const { all } = options;
  if (options.prefix === undefined && !all) {
    throw new TypeError(
      "Cannot plan a collection: say which names to collect with prefix (e.g. /myapp-) or all",
    );
  }
  if (options.prefix !== undefined && all) {
    throw new TypeError(
      "Cannot plan a collection: prefix and all exclude each other",
    );
  }
  const prefix = options.prefix === undefined
    ? undefined
    : nameBytes(options.prefix);
  if (
    prefix &&
    (prefix.length === 0 || (prefix.length === 1 && prefix[0] === 0x2f))
  ) {
    throw new TypeError(
      `Cannot plan a collection: the prefix ${
        JSON.stringify(_format(prefix))
      } matches every name, say all to mean that`,
    );
  }
  const kinds = _kinds(options.kinds);
  checkReadable(kinds, true);
  return await _plan({ prefix, kinds, onProgress: options.onProgress });
}

/**
 * Removes the name of an object (`mq_unlink`, `shm_unlink`, `sem_unlink`).
 * Processes that have it open keep using it; the kernel frees it when the
 * last one closes. Works where /dev/mqueue is not mounted.
 *
 * @param kind `"mq"`, `"shm"` or `"sem"`
 * @param name `/jobs`: a string (exact UTF-8) or the exact bytes, such as
 *   {@linkcode IpcObject.nameBytes}
 * @throws {TypeError} on an unknown kind or a malformed name
 * @throws {RangeError} when the name is too long
 * @throws {Deno.errors.NotFound} when no object of that kind has the name
 * @throws {Deno.errors.NotCapable} without `--allow-write` on the object's directory
 *
 * @example Remove a shared memory object by name
 * ```ts
 * import { SharedMemory } from "@ipckit/ipckit";
 * import { removeObject } from "@ipckit/ipckit/inventory";
 *
 * const name = `/frame-${Deno.pid}`;
 * SharedMemory.open(name, { create: true, size: 4096 }).close(); // the name stays
 * removeObject("shm", name);
 * ```
 *
 * @category Inventory
 */
export function removeObject(kind: IpcKind, name: string | Uint8Array): void {
  _kinds([kind]);
  removeByName(kind, nameBytes(name));
}

/**
 * Whether an object of `kind` has the name `name`, told by opening it
 * read-only without creating it (and closing it at once), so it works
 * where /dev/mqueue is not mounted. An object you may not open exists too.
 *
 * @param kind `"mq"`, `"shm"` or `"sem"`
 * @param name `/jobs`: a string (exact UTF-8) or the exact bytes
 * @returns whether it exists
 * @throws {TypeError} on an unknown kind or a malformed name
 * @throws {Deno.errors.NotCapable} without `--allow-read` on the object's
 *   path (a semaphore: also `--allow-write`, as opening one needs both)
 *
 * @example Whether a queue exists
 * ```ts
 * import { MessageQueue } from "@ipckit/ipckit";
 * import { objectExists } from "@ipckit/ipckit/inventory";
 *
 * const name = `/jobs-${Deno.pid}`;
 * using _queue = MessageQueue.open(name, { create: true, unlinkOnClose: true });
 * if (objectExists("mq", name)) console.log("the queue is there");
 * ```
 *
 * @category Inventory
 */
export function objectExists(
  kind: IpcKind,
  name: string | Uint8Array,
): boolean {
  _kinds([kind]);
  const bytes = nameBytes(name);
  const facts = OBJECT_KINDS[kind];
  const base = validateNameBytes(bytes, facts.maxNameBytes);
  requirePermissions(
    facts.readNeeds,
    objectPath(kind, new TextDecoder().decode(base)),
    facts.directory,
  );
  const found = _exists(kind, bytes);
  if (typeof found === "number") {
    throw systemError(
      kind === "mq" ? "mq_open" : kind === "shm" ? "shm_open" : "sem_open",
      `look up ${facts.label} "${_format(bytes)}"`,
      -found,
    );
  }
  return found;
}

/**
 * What only opening an object tells: a queue's attributes and status, a
 * semaphore's value. Shared memory has none beyond {@linkcode IpcObject}.
 *
 * @example A queue's details
 * ```ts
 * import type { ObjectDetails } from "@ipckit/ipckit/inventory";
 *
 * const details: ObjectDetails = { maxMessages: 10, messageSize: 8192, currentMessages: 0 };
 * ```
 *
 * @category Inventory
 */
export interface ObjectDetails {
  /** A queue's capacity in messages (`mq_maxmsg`). */
  maxMessages?: number;
  /** A queue's largest message in bytes (`mq_msgsize`). */
  messageSize?: number;
  /** Messages waiting in a queue (`mq_curmsgs`). */
  currentMessages?: number;
  /** Bytes of the messages waiting in a queue (`QSIZE`). */
  queuedBytes?: number;
  /** The process registered with `mq_notify` on a queue, if any. */
  notifyPid?: number;
  /** A semaphore's value. */
  value?: number;
}

/**
 * Opens a queue read-only or a semaphore by its exact name and reads what
 * only that tells; nothing is taken from the queue and the semaphore's
 * value does not change.
 *
 * @param object an object from {@linkcode listObjects} or {@linkcode findObjects}
 * @returns its details (empty for shared memory)
 * @throws {Deno.errors.NotCapable} without `--allow-read` on a queue, or
 *   `--allow-read` and `--allow-write` on a semaphore
 * @throws {Deno.errors.NotFound} when it was removed meanwhile
 * @throws {Deno.errors.PermissionDenied} when you may not open it
 *
 * @example How many messages wait in a queue
 * ```ts
 * import { MessageQueue } from "@ipckit/ipckit";
 * import { findObjects, objectDetails } from "@ipckit/ipckit/inventory";
 *
 * const name = `/jobs-${Deno.pid}`;
 * using queue = MessageQueue.open(name, { create: true, unlinkOnClose: true });
 * queue.trySend("job");
 * const { objects } = await findObjects(name, { kinds: ["mq"] });
 * console.log(objectDetails(objects[0]).currentMessages); // 1
 * ```
 *
 * @category Inventory
 */
export function objectDetails(object: IpcObject): ObjectDetails {
  const facts = OBJECT_KINDS[object.kind];
  if (object.kind === "shm") return {};
  const base = object.nameBytes.subarray(1);
  requirePermissions(
    facts.readNeeds,
    objectPath(object.kind, new TextDecoder().decode(base)),
    facts.directory,
  );
  if (object.kind === "mq") {
    const probe = probeQueue(object.nameBytes);
    if (typeof probe === "number") {
      throw systemError(
        "mq_open",
        `open message queue "${object.name}"`,
        -probe,
      );
    }
    const { status: _status, ...details } = probe;
    return details;
  }
  const value = semaphoreValue(object.nameBytes);
  if (value < 0) {
    throw systemError("sem_open", `open semaphore "${object.name}"`, -value);
  }
  return { value };
}

/**
 * Checks an object name the way every function here does before any
 * system call: one leading `/`, no other `/`, no NUL, not `.` or `..`, at
 * most NAME_MAX bytes after the slash (4 fewer for a semaphore, whose file
 * is `sem.<name>`).
 *
 * @param name `/jobs`: a string (exact UTF-8) or the exact bytes
 * @param kinds the kinds it will be used for; the tightest limit applies
 * @returns the name as bytes
 * @throws {TypeError} when the name is malformed or has a lone surrogate
 * @throws {RangeError} when it is too long
 *
 * @example A valid name and one with a slash inside
 * ```ts
 * import { checkObjectName } from "@ipckit/ipckit/inventory";
 *
 * checkObjectName("/jobs"); // fine
 * try {
 *   checkObjectName("/a/b");
 * } catch (error) {
 *   console.log((error as Error).message); // … it must not contain "/" after the first
 * }
 * ```
 *
 * @category Inventory
 */
export function checkObjectName(
  name: string | Uint8Array,
  kinds: Iterable<IpcKind> = IPC_KINDS,
): Uint8Array {
  const bytes = nameBytes(name);
  const limit = Math.min(
    ...[..._kinds(kinds)].map((kind) => OBJECT_KINDS[kind].maxNameBytes),
  );
  validateNameBytes(bytes, limit);
  return bytes;
}

/**
 * Whether /dev/mqueue shows every message queue: the mqueue file system is
 * mounted there. Where it is not (most containers and CI machines), queues
 * still work, and the inventory finds those that processes hold open and
 * any queue by name, but cannot list queues that nobody holds. An empty
 * directory in its place does not count.
 *
 * @returns whether it is mounted
 * @throws {Deno.errors.NotCapable} without `--allow-read=/dev/mqueue`
 *
 * @example Say how to mount the queue directory
 * ```ts
 * import { queueDirectoryMounted } from "@ipckit/ipckit/inventory";
 *
 * if (!queueDirectoryMounted()) {
 *   console.log("as root: mkdir -p /dev/mqueue && mount -t mqueue none /dev/mqueue");
 * }
 * ```
 *
 * @category Inventory
 */
export function queueDirectoryMounted(): boolean {
  requirePermissions(["read"], OBJECT_KINDS.mq.directory);
  return _mounted();
}

/**
 * The escaped form of a name's bytes, as {@linkcode IpcObject.name} shows
 * it: bytes that are not part of valid UTF-8 and control characters as
 * `\xHH`, a backslash as `\\`, everything else as itself.
 *
 * @param bytes the name, e.g. `/caf` followed by byte 0xe9
 * @returns the escaped form, e.g. `/caf\xe9`
 *
 * @example A name that is not UTF-8, shown escaped
 * ```ts
 * import { formatObjectName } from "@ipckit/ipckit/inventory";
 *
 * const name = new Uint8Array([0x2f, 0x63, 0x61, 0x66, 0xe9]);
 * console.log(formatObjectName(name)); // /caf\xe9
 * ```
 *
 * @category Inventory
 */
export function formatObjectName(bytes: Uint8Array): string {
  return _format(bytes);
}

/**
 * The bytes an escaped name stands for: the inverse of
 * {@linkcode formatObjectName}, for names typed by a user.
 *
 * @param text e.g. `/caf\xe9`
 * @returns the exact bytes
 * @throws {TypeError} on a backslash that does not start `\\` or `\xHH`,
 *   or a lone UTF-16 surrogate
 *
 * @example Back from the escaped form to the bytes
 * ```ts
 * import { parseObjectName } from "@ipckit/ipckit/inventory";
 *
 * console.log(parseObjectName("/caf\\xe9")); // Uint8Array(5) [ 47, 99, 97, 102, 233 ]
 * ```
 *
 * @category Inventory
 */
export function parseObjectName(text: string): Uint8Array {
  return _parse(text);
}

function _kinds(kinds: Iterable<IpcKind> | undefined): Set<IpcKind> {
  if (kinds === undefined) return new Set(IPC_KINDS);
  const set = new Set<IpcKind>();
  for (const kind of kinds) {
    if (!IPC_KINDS.includes(kind)) {
      throw new TypeError(
        `Cannot use kind ${
          JSON.stringify(kind)
        }: expected "mq", "shm" or "sem"`,
      );
    }
    set.add(kind);
  }
  return set;
}

// --- System V --------------------------------------------------------------

export type { SysvKind } from "./_kernel/sysv.ts";
export { SYSV_KINDS } from "./_kernel/sysv.ts";
export type { SysvObject, SysvVerdict } from "./_inventory/sysv.ts";

/**
 * How messages and tables name each System V kind: `"System V message
 * queue"`, `"System V shared memory"`, `"System V semaphore set"`.
 *
 * @example
 * ```ts
 * import { SYSV_KIND_NAMES } from "@ipckit/ipckit/inventory";
 *
 * console.log(SYSV_KIND_NAMES["sysv-shm"]); // System V shared memory
 * ```
 *
 * @category Inventory
 */
export const SYSV_KIND_NAMES: Readonly<Record<SysvKind, string>> = {
  "sysv-msg": SYSV_KIND_FACTS["sysv-msg"].label,
  "sysv-shm": SYSV_KIND_FACTS["sysv-shm"].label,
  "sysv-sem": SYSV_KIND_FACTS["sysv-sem"].label,
};

/**
 * Which System V objects to list or judge.
 *
 * @example
 * ```ts
 * import type { SysvListOptions } from "@ipckit/ipckit/inventory";
 *
 * const options: SysvListOptions = { kinds: ["sysv-shm"], key: 1234 };
 * ```
 *
 * @category Inventory
 */
export interface SysvListOptions {
  /** Only these kinds. Default: every System V kind. */
  kinds?: Iterable<SysvKind>;
  /** Only the object with this id. */
  id?: number;
  /** Only objects with this key. */
  key?: number;
}

const _SYSV_LIST_KEYS = optionKeys<SysvListOptions>({
  kinds: true,
  id: true,
  key: true,
});

/**
 * Lists the System V objects (message queues, shared memory segments,
 * semaphore sets) of every user, from /proc/sysvipc, as `ipcs` shows them:
 * key, id, owner, mode, size, attachments and the pids they record.
 *
 * @param options which kinds, and optionally one id or key
 * @returns the objects, sorted by kind then id
 * @throws {Deno.errors.NotCapable} without `--allow-read=/proc/sysvipc`
 * @throws {TypeError} on an unknown kind or option
 * @throws {RangeError} for an id or key that cannot be one
 *
 * @example
 * ```ts
 * // deno run --allow-ffi --allow-read=/proc/sysvipc --allow-write=/proc/sysvipc list.ts
 * import { SysvSharedMemory } from "@ipckit/ipckit";
 * import { listSysvObjects } from "@ipckit/ipckit/inventory";
 *
 * using segment = SysvSharedMemory.open("private", {
 *   create: true,
 *   size: 1024,
 *   unlinkOnClose: true,
 * });
 * const [mine] = listSysvObjects({ kinds: ["sysv-shm"], id: segment.id });
 * console.log(mine.keyText, mine.size, mine.attachments); // 0x00000000 1024 1
 * ```
 *
 * @category Inventory
 */
export function listSysvObjects(options: SysvListOptions = {}): SysvObject[] {
  const action = "list System V objects";
  checkOptionKeys(options, _SYSV_LIST_KEYS, action);
  const kinds = _sysvKinds(options.kinds);
  const { id, key } = options;
  if (id !== undefined && (!Number.isInteger(id) || id < 0)) {
    throw new RangeError(
      `Cannot ${action}: id must be an integer of 0 or more, got ${String(id)}`,
    );
  }
  if (
    key !== undefined &&
    (!Number.isInteger(key) || key < -0x8000_0000 || key > 0xffff_ffff)
  ) {
    throw new RangeError(
      `Cannot ${action}: key must be an integer that fits in 32 bits, got ${
        String(key)
      }`,
    );
  }
  for (const kind of kinds) requireSysvPermissions(kind, ["read"]);
  return listSysv(kinds).filter((object) =>
    (id === undefined || object.id === id) &&
    (key === undefined || object.key === (key | 0))
  );
}

/**
 * Judges which System V objects may be removed: a segment nobody has
 * attached whose creator and last user are gone, a queue whose last
 * sender and receiver are gone, a set whose semaphores' last users are
 * gone. One no process has used yet is kept, and so is another user's
 * (unless you are root). Removes nothing.
 *
 * @param options which kinds, and optionally one id or key
 * @returns one verdict per object, with its reason
 * @throws {Deno.errors.NotCapable} without `--allow-read=/proc/sysvipc`
 *
 * @example
 * ```ts
 * import { SysvSharedMemory } from "@ipckit/ipckit";
 * import { planSysvCollection } from "@ipckit/ipckit/inventory";
 *
 * using segment = SysvSharedMemory.open("private", {
 *   create: true,
 *   size: 64,
 *   unlinkOnClose: true,
 * });
 * for (const { remove, reason } of planSysvCollection({ id: segment.id })) {
 *   console.log(remove ? "may go:" : "kept:", reason); // kept: attached 1 time(s)
 * }
 * ```
 *
 * @category Inventory
 */
export function planSysvCollection(
  options: SysvListOptions = {},
): SysvVerdict[] {
  checkOptionKeys(options, _SYSV_LIST_KEYS, "plan a System V collection");
  return listSysvObjects(options).map(judgeSysv);
}

/**
 * Removes a System V object by id (`IPC_RMID`, what `ipcrm` does). A
 * segment goes once its last attachment does; a queue's messages are
 * discarded; waiters fail.
 *
 * @param kind `"sysv-msg"`, `"sysv-shm"` or `"sysv-sem"`
 * @param id its id, as {@linkcode listSysvObjects} gives it
 * @throws {Deno.errors.NotCapable} without `--allow-write=/proc/sysvipc`
 * @throws {Deno.errors.NotFound} when no object of that kind has the id
 * @throws {Deno.errors.PermissionDenied} when you are neither its owner nor its creator
 *
 * @example
 * ```ts
 * import { SysvSharedMemory } from "@ipckit/ipckit";
 * import { removeSysvObject } from "@ipckit/ipckit/inventory";
 *
 * const segment = SysvSharedMemory.open("private", { create: true, size: 64 });
 * segment.close(); // the segment stays: System V objects live until removed
 * removeSysvObject("sysv-shm", segment.id); // what `ipcrm -m <id>` does
 * ```
 *
 * @category Inventory
 */
export function removeSysvObject(kind: SysvKind, id: number): void {
  _sysvKinds([kind]);
  if (!Number.isInteger(id) || id < 0) {
    throw new RangeError(
      `Cannot remove ${
        SYSV_KIND_NAMES[kind]
      }: id must be an integer of 0 or more, got ${id}`,
    );
  }
  removeSysvId(
    kind,
    id,
    `${SYSV_KIND_NAMES[kind]} id ${id}`,
    "no object of that kind has this id",
  );
}

function _sysvKinds(kinds: Iterable<SysvKind> | undefined): Set<SysvKind> {
  if (kinds === undefined) return new Set(SYSV_KINDS);
  const set = new Set<SysvKind>();
  for (const kind of kinds) {
    if (!SYSV_KINDS.includes(kind)) {
      throw new TypeError(
        `Cannot use kind ${
          JSON.stringify(kind)
        }: expected "sysv-msg", "sysv-shm" or "sysv-sem"`,
      );
    }
    set.add(kind);
  }
  return set;
}
