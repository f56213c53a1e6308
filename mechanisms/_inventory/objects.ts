/**
 * What POSIX IPC objects exist on this machine, read from the directories
 * where Linux shows them as files: message queues in `/dev/mqueue`, shared
 * memory in `/dev/shm`, and named semaphores in `/dev/shm` as `sem.<name>`.
 *
 * Deno 2.9 refuses `Deno.readDir` and `Deno.stat` under `/dev` without
 * `--allow-all`, so the directories are read through libc, after the same
 * `--allow-read` check Deno would make for them.
 *
 * @module
 */

import { DT_DIR, DT_REG, listDirectory } from "../../ffi/dir.ts";
import { errnoName } from "../../ffi/errno.ts";
import { readWholeFile } from "../../ffi/file.ts";
import { S_IFMT, S_IFREG } from "../../ffi/c.ts";
import { statPath } from "../../ffi/stat.ts";
import { MessageQueue, MQUEUE_DIR } from "../message_queue.ts";
import { requirePermission } from "../_kernel/permissions.ts";
import { Semaphore } from "../semaphore.ts";
import { SharedMemory, SHM_DIR } from "../shared_memory.ts";

/** The kinds of named POSIX IPC object: message queue, shared memory, semaphore. */
export type IpcKind = "mq" | "shm" | "sem";

/** Every kind, in the order listings show them. */
export const IPC_KINDS: readonly IpcKind[] = ["mq", "shm", "sem"];

/** How messages name each kind. */
export const KIND_NAMES: Readonly<Record<IpcKind, string>> = {
  mq: "message queue",
  shm: "shared memory",
  sem: "semaphore",
};

/** glibc and musl name a semaphore's file `sem.<name>` in /dev/shm. */
const _SEM_PREFIX = "sem.";

/** One named IPC object as its file shows it. */
export interface IpcObject {
  kind: IpcKind;
  /** The name as POSIX sees it: `/jobs`. */
  name: string;
  /** The file Linux shows it as: `/dev/mqueue/jobs`. */
  path: string;
  /**
   * Bytes: the object's size for shared memory and semaphores; for a message
   * queue the bytes of the messages waiting in it (the kernel's `QSIZE`).
   * Absent when the queue's file cannot be read (another user's queue).
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
  ino: bigint;
}

/** A directory that could not be listed, and why. */
export interface Unlisted {
  kind: IpcKind;
  dir: string;
  reason: string;
}

/** What {@linkcode listObjects} found. */
export interface Inventory {
  objects: IpcObject[];
  /** Directories that could not be read, e.g. /dev/mqueue when it is not mounted. */
  unlisted: Unlisted[];
}

/** The directory that holds objects of a kind. */
export function directoryOf(kind: IpcKind): string {
  return kind === "mq" ? MQUEUE_DIR : SHM_DIR;
}

/** The file Linux shows the object `name` (`/jobs`) of a kind as. */
export function pathOf(kind: IpcKind, name: string): string {
  const base = name.slice(1);
  return `${directoryOf(kind)}/${kind === "sem" ? _SEM_PREFIX : ""}${base}`;
}

/**
 * Lists the objects of the given kinds, sorted by kind then name.
 *
 * @throws {Deno.errors.NotCapable} without `--allow-read` on a directory to list
 */
export function listObjects(kinds: Iterable<IpcKind> = IPC_KINDS): Inventory {
  const wanted = new Set(kinds);
  const dirs = new Set([...wanted].map(directoryOf));
  for (const dir of dirs) requirePermission("read", dir);

  const objects: IpcObject[] = [];
  const unlisted: Unlisted[] = [];
  for (const dir of dirs) {
    const entries = listDirectory(dir);
    if (typeof entries === "number") {
      const reason = -entries === 2 && dir === MQUEUE_DIR
        ? `${dir} is not mounted (mount -t mqueue none ${dir})`
        : `cannot list ${dir}: ${errnoName(-entries)}`;
      for (const kind of wanted) {
        if (directoryOf(kind) === dir) unlisted.push({ kind, dir, reason });
      }
      continue;
    }
    for (const entry of entries) {
      // Directories and other non-files in /dev/shm are not IPC objects.
      if (entry.type === DT_DIR) continue;
      const kind: IpcKind = dir === MQUEUE_DIR
        ? "mq"
        : entry.name.startsWith(_SEM_PREFIX)
        ? "sem"
        : "shm";
      if (!wanted.has(kind)) continue;
      const base = kind === "sem"
        ? entry.name.slice(_SEM_PREFIX.length)
        : entry.name;
      const object = _statObject(kind, `/${base}`, entry.type);
      if (object) objects.push(object);
    }
  }
  objects.sort((a, b) =>
    IPC_KINDS.indexOf(a.kind) - IPC_KINDS.indexOf(b.kind) ||
    (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  );
  return { objects, unlisted };
}

/**
 * The objects named `name` (`/jobs`), of one kind or of every kind (a queue
 * and a shared memory object may share a name).
 *
 * @throws {Deno.errors.NotCapable} without `--allow-read` on the directory
 */
export function findObjects(
  name: string,
  kinds: Iterable<IpcKind> = IPC_KINDS,
): IpcObject[] {
  const found: IpcObject[] = [];
  for (const kind of kinds) {
    requirePermission("read", directoryOf(kind));
    const object = _statObject(kind, name);
    if (object) found.push(object);
  }
  return found;
}

/**
 * Removes an object's name with the library's own unlink for its kind.
 *
 * @throws {Deno.errors.NotFound} when it no longer exists
 * @throws {Deno.errors.NotCapable} without `--allow-write` on its directory
 */
export function unlinkObject(kind: IpcKind, name: string): void {
  switch (kind) {
    case "mq":
      return MessageQueue.unlink(name);
    case "shm":
      return SharedMemory.unlink(name);
    case "sem":
      return Semaphore.unlink(name);
  }
}

/** What Linux tells about a queue in the text of its /dev/mqueue file. */
export interface QueueStatus {
  /** Bytes of the messages waiting (`QSIZE`). */
  queuedBytes: number;
  /** The process registered with mq_notify, if any (`NOTIFY_PID`). */
  notifyPid?: number;
}

/**
 * Reads `/dev/mqueue/<name>`, which Linux fills with
 * `QSIZE:… NOTIFY:… SIGNO:… NOTIFY_PID:…`; `undefined` when it cannot be read.
 * Callers check the read permission first.
 */
export function readQueueStatus(path: string): QueueStatus | undefined {
  const text = readWholeFile(path, 4096);
  if (typeof text === "number") return undefined;
  const field = (key: string) => {
    const match = new RegExp(`\\b${key}:(\\d+)`).exec(text);
    return match ? Number(match[1]) : undefined;
  };
  const queuedBytes = field("QSIZE");
  if (queuedBytes === undefined) return undefined;
  const notifyPid = field("NOTIFY_PID");
  return notifyPid ? { queuedBytes, notifyPid } : { queuedBytes };
}

function _statObject(
  kind: IpcKind,
  name: string,
  type?: number,
): IpcObject | undefined {
  const path = pathOf(kind, name);
  const status = statPath(path, false);
  if (typeof status === "number") return undefined; // gone since listed
  // Only regular files are objects (d_type may be unknown, so check st_mode).
  if (type !== DT_REG && (status.mode & S_IFMT) !== S_IFREG) return undefined;
  const size = kind === "mq" ? readQueueStatus(path)?.queuedBytes : status.size;
  return {
    kind,
    name,
    path,
    ...(size === undefined ? {} : { size }),
    mode: status.mode & 0o7777,
    uid: status.uid,
    mtimeMs: status.mtimeMs,
    dev: status.dev,
    ino: status.ino,
  };
}
