/**
 * What POSIX IPC objects exist on this machine: read from the directories
 * where Linux shows them as files (shared memory in `/dev/shm`, named
 * semaphores there as `sem.<name>`, message queues in `/dev/mqueue` where
 * the mqueue file system is mounted), and, where /dev/mqueue is not
 * mounted, from the queue descriptors that processes hold, or by name.
 *
 * Deno 2.9 refuses `Deno.readDir` and `Deno.stat` under `/dev` without
 * `--allow-all`, so everything is read through libc, after the same
 * `--allow-read` check Deno would make. Names are bytes throughout (see
 * names.ts): an object whose name is not UTF-8 is listed, matched and
 * removed like any other.
 *
 * @module
 */

import { DT_DIR, DT_REG, listDirectory } from "../../ffi/dir.ts";
import { ERRNO, errnoName } from "../../ffi/errno.ts";
import { MQUEUE_MAGIC, S_IFMT, S_IFREG } from "../../ffi/c.ts";
import { readWholeFile } from "../../ffi/file.ts";
import { type FileStatus, fileSystemType, statPath } from "../../ffi/stat.ts";
import {
  IPC_KINDS,
  type IpcKind,
  MQUEUE_DIR,
  OBJECT_KINDS,
  objectPath,
  objectPathBytes,
  SHM_DIR,
} from "../_kernel/objects.ts";
import { requirePermission } from "../_kernel/permissions.ts";
import {
  compareBytes,
  equalBytes,
  formatObjectName,
  startsWithBytes,
} from "./names.ts";
import { parseQueueStatus, probeQueue } from "./probe.ts";
import {
  fileKey,
  type Holder,
  type ProcessScan,
  type QueueSighting,
  scanProcesses,
} from "./processes.ts";
import type { UninspectedProcess } from "./uninspected.ts";

/** One named IPC object as the kernel shows it. */
export interface IpcObject {
  /** `"mq"`, `"shm"` or `"sem"`. */
  kind: IpcKind;
  /**
   * The name as POSIX sees it, `/jobs`, in the escaped form of names.ts:
   * bytes that are not UTF-8 appear as `\xHH`, a backslash as `\\`.
   */
  name: string;
  /** The name's exact bytes, with the leading `/`. */
  nameBytes: Uint8Array;
  /** The file Linux shows it as, `/dev/mqueue/jobs`, escaped like `name`. */
  path: string;
  /**
   * Bytes: the object's size for shared memory and semaphores; for a message
   * queue the bytes of the messages waiting in it (the kernel's `QSIZE`).
   * Absent when the queue cannot be read (another user's queue).
   */
  size?: number;
  /** Permission bits, e.g. `0o600`. */
  mode: number;
  /** The owner's user id. */
  uid: number;
  /** Last modification, in milliseconds since the epoch. */
  mtimeMs: number;
  /** `st_dev` and `st_ino`: how descriptors and mappings are matched to it. */
  dev: bigint;
  /** See `dev`. */
  ino: bigint;
}

/** An object and the live processes that hold it. */
export interface ListedObject extends IpcObject {
  /** Processes that have it open or mapped, sorted by pid. */
  holders: Holder[];
}

/** Something that could not be listed or read, and why. */
export interface Unlisted {
  /** The kind of object it concerns. */
  kind: IpcKind;
  /** What could not be seen, why, and how to fix it where that can be said. */
  reason: string;
}

/** What a listing found, and how complete the picture is. */
export interface Inventory {
  /** The objects, sorted by kind then name (bytes). */
  objects: ListedObject[];
  /** How many processes were inspected for holders. */
  inspected: number;
  /** The processes that could not be inspected, and why. */
  uninspected: UninspectedProcess[];
  /** What could not be listed: /dev/mqueue when it is not mounted, … */
  unlisted: Unlisted[];
}

/** Which objects to list. */
export interface Selection {
  kinds: ReadonlySet<IpcKind>;
  /** Only this exact name. */
  name?: Uint8Array;
  /** Only names that start with these bytes. */
  prefix?: Uint8Array;
  /** Look for holders in /proc (default true). */
  holders?: boolean;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Lists the selected objects and their holders, sorted by kind then name.
 * Callers check the read permissions first (see {@linkcode checkReadable}).
 */
export async function takeInventory(selection: Selection): Promise<Inventory> {
  const found: IpcObject[] = [];
  const unlisted: Unlisted[] = [];
  let searchQueues = false;
  for (const kind of IPC_KINDS) {
    if (!selection.kinds.has(kind)) continue;
    if (selection.name !== undefined) {
      const object = _lookUp(kind, selection.name, unlisted);
      if (object) found.push(object);
      continue;
    }
    if (kind === "mq") {
      const listed = _listQueueDirectory();
      if (typeof listed === "string") {
        unlisted.push({ kind, reason: listed });
        searchQueues = true;
      } else found.push(...listed);
    }
  }
  if (selection.name === undefined) {
    found.push(..._listShmDirectory(selection.kinds));
  }

  const wanted = found.filter((object) =>
    selection.prefix === undefined ||
    startsWithBytes(object.nameBytes, selection.prefix)
  );
  const withHolders = selection.holders ?? true;
  const scan: ProcessScan = withHolders
    ? await scanProcesses(new Set(wanted.map(_keyOf)), {
      findQueues: searchQueues,
      onProgress: selection.onProgress,
    })
    : { holders: new Map(), queues: new Map(), inspected: 0, uninspected: [] };
  for (const [key, sighting] of scan.queues) {
    const object = _queueFromSighting(sighting, key);
    if (
      object &&
      (selection.prefix === undefined ||
        startsWithBytes(object.nameBytes, selection.prefix))
    ) {
      wanted.push(object);
    }
  }

  const objects = wanted.map((object): ListedObject => ({
    ...object,
    holders: scan.holders.get(_keyOf(object)) ?? [],
  }));
  objects.sort((a, b) =>
    IPC_KINDS.indexOf(a.kind) - IPC_KINDS.indexOf(b.kind) ||
    compareBytes(a.nameBytes, b.nameBytes)
  );
  return {
    objects,
    inspected: scan.inspected,
    uninspected: scan.uninspected,
    unlisted,
  };
}

/**
 * Checks the read permissions a listing of `kinds` needs: their
 * directories, and `/proc` when holders are looked for.
 *
 * @throws {Deno.errors.NotCapable} naming the flag to add
 */
export function checkReadable(
  kinds: Iterable<IpcKind>,
  holders: boolean,
): void {
  for (const kind of kinds) {
    requirePermission("read", OBJECT_KINDS[kind].directory);
  }
  if (holders) requirePermission("read", "/proc");
}

/**
 * Whether /dev/mqueue shows the queues: it exists and the mqueue file
 * system is mounted there (an empty directory would list nothing and
 * prove nothing).
 */
export function queueDirectoryMounted(): boolean {
  return fileSystemType(MQUEUE_DIR) === MQUEUE_MAGIC;
}

/** The bytes-level key of an object's file, to match /proc entries. */
function _keyOf(object: IpcObject): string {
  return fileKey(object.dev, object.ino);
}

/** Why /dev/mqueue cannot be listed, with how to fix it, or its queues. */
function _listQueueDirectory(): IpcObject[] | string {
  const type = fileSystemType(MQUEUE_DIR);
  const how =
    `mkdir -p ${MQUEUE_DIR} && mount -t mqueue none ${MQUEUE_DIR}, as root`;
  if (type === -ERRNO.ENOENT) {
    return `${MQUEUE_DIR} is not mounted, so only the queues held open by processes you can inspect are listed (to list all: ${how})`;
  }
  if (type < 0) return `cannot read ${MQUEUE_DIR}: ${errnoName(-type)}`;
  if (type !== MQUEUE_MAGIC) {
    return `${MQUEUE_DIR} is a plain directory, not the mqueue file system, so only the queues held open by processes you can inspect are listed (to list all: mount -t mqueue none ${MQUEUE_DIR}, as root)`;
  }
  const entries = listDirectory(MQUEUE_DIR);
  if (typeof entries === "number") {
    return `cannot list ${MQUEUE_DIR}: ${errnoName(-entries)}`;
  }
  const objects: IpcObject[] = [];
  for (const entry of entries) {
    const object = _statObject("mq", entry.bytes, entry.type);
    if (object) objects.push(object);
  }
  return objects;
}

/** The shared memory objects and semaphores in /dev/shm. */
function _listShmDirectory(kinds: ReadonlySet<IpcKind>): IpcObject[] {
  if (!kinds.has("shm") && !kinds.has("sem")) return [];
  const entries = listDirectory(SHM_DIR);
  if (typeof entries === "number") return [];
  const prefix = new TextEncoder().encode(OBJECT_KINDS.sem.filePrefix);
  const objects: IpcObject[] = [];
  for (const entry of entries) {
    // Directories and other non-files in /dev/shm are not IPC objects.
    if (entry.type === DT_DIR) continue;
    const kind: IpcKind = startsWithBytes(entry.bytes, prefix) ? "sem" : "shm";
    if (!kinds.has(kind)) continue;
    const base = kind === "sem"
      ? entry.bytes.subarray(prefix.length)
      : entry.bytes;
    const object = _statObject(kind, base, entry.type);
    if (object) objects.push(object);
  }
  return objects;
}

/** One name of one kind, looked up directly (stat, or mq_open when unmounted). */
function _lookUp(
  kind: IpcKind,
  name: Uint8Array,
  unlisted: Unlisted[],
): IpcObject | undefined {
  const base = name.subarray(1);
  if (kind !== "mq" || queueDirectoryMounted()) {
    return _statObject(kind, base);
  }
  const probe = probeQueue(name);
  if (typeof probe === "number") {
    if (-probe === ERRNO.EACCES) {
      unlisted.push({
        kind,
        reason: `message queue ${
          JSON.stringify(formatObjectName(name))
        } exists, but you may not open it to read its details, and ${MQUEUE_DIR} is not mounted`,
      });
    }
    return undefined;
  }
  return _objectOf("mq", base, probe.status, probe.queuedBytes);
}

/**
 * A queue seen through a descriptor, if it still has the name its link
 * shows. A link ending in " (deleted)" is an unlinked queue, unless a queue
 * is really named that way: opening the name and comparing inodes tells.
 */
function _queueFromSighting(
  sighting: QueueSighting,
  key: string,
): IpcObject | undefined {
  const suffix = new TextEncoder().encode(" (deleted)");
  const { link, status } = sighting;
  const marked = link.length > suffix.length &&
    equalBytes(link.subarray(link.length - suffix.length), suffix);
  // The name without the mark first: an unlinked queue is the likely case.
  const candidates = marked
    ? [link.subarray(0, link.length - suffix.length), link]
    : [link];
  for (const name of candidates) {
    if (name[0] !== 0x2f || name.subarray(1).includes(0x2f)) continue;
    const probe = probeQueue(name);
    if (typeof probe !== "number") {
      if (fileKey(probe.status.dev, probe.status.ino) !== key) continue;
      return _objectOf("mq", name.subarray(1), probe.status, probe.queuedBytes);
    }
    // A queue you may not open: trust a link the kernel did not mark deleted.
    if (-probe === ERRNO.EACCES && !marked) {
      return _objectOf("mq", name.subarray(1), status, undefined);
    }
  }
  return undefined;
}

function _statObject(
  kind: IpcKind,
  base: Uint8Array,
  type?: number,
): IpcObject | undefined {
  const path = objectPathBytes(kind, base);
  const status = statPath(path, false);
  if (typeof status === "number") return undefined; // gone since listed
  // Only regular files are objects (d_type may be unknown, so check st_mode).
  if (type !== DT_REG && (status.mode & S_IFMT) !== S_IFREG) return undefined;
  const size = kind === "mq" ? _queuedBytes(path) : status.size;
  return _objectOf(kind, base, status, size);
}

/** A queue's file in /dev/mqueue reads as its status line. */
function _queuedBytes(path: Uint8Array): number | undefined {
  const text = readWholeFile(path, 4096);
  return typeof text === "number"
    ? undefined
    : parseQueueStatus(text).queuedBytes;
}

function _objectOf(
  kind: IpcKind,
  base: Uint8Array,
  status: FileStatus,
  size: number | undefined,
): IpcObject {
  const nameBytes = new Uint8Array(base.length + 1);
  nameBytes[0] = 0x2f;
  nameBytes.set(base, 1);
  const shown = formatObjectName(base);
  return {
    kind,
    name: `/${shown}`,
    nameBytes,
    path: objectPath(kind, shown),
    ...(size === undefined ? {} : { size }),
    mode: status.mode & 0o7777,
    uid: status.uid,
    mtimeMs: status.mtimeMs,
    dev: status.dev,
    ino: status.ino,
  };
}
