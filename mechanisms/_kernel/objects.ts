/**
 * The one table of named POSIX IPC objects: for each kind, what messages
 * call it, where Linux shows it as a file, how a name becomes that file's
 * path, and which permission each operation needs on that path. The
 * mechanisms and the inventory both read it, so no file re-derives a path.
 *
 * | kind  | name    | file                 | open to read   | write, create, unlink |
 * | ----- | ------- | -------------------- | -------------- | --------------------- |
 * | `mq`  | `/jobs` | `/dev/mqueue/jobs`   | read           | write                 |
 * | `shm` | `/jobs` | `/dev/shm/jobs`      | read           | write                 |
 * | `sem` | `/jobs` | `/dev/shm/sem.jobs`  | read and write | write                 |
 *
 * @module
 */

import type { Access } from "./permissions.ts";
import { NAME_MAX } from "./names.ts";

/** The kinds of named POSIX IPC object: message queue, shared memory, semaphore. */
export type IpcKind = "mq" | "shm" | "sem";

/** Where Linux shows message queues as files (when the mqueue file system is mounted there). */
export const MQUEUE_DIR = "/dev/mqueue";

/** Where Linux shows shared memory objects as files. */
export const SHM_DIR = "/dev/shm";

/** Where Linux keeps named semaphores, as `sem.<name>` files. */
export const SEM_DIR = "/dev/shm";

/** glibc and musl name a semaphore's file `sem.<name>`. */
export const SEM_FILE_PREFIX = "sem.";

/** What is fixed about one kind of object. */
export interface ObjectKind {
  kind: IpcKind;
  /** How messages name it: "message queue". */
  label: string;
  /** The directory its files are in; also the scope suggested in `--allow-*=`. */
  directory: string;
  /** What the C library puts before the name in the file's name. */
  filePrefix: string;
  /** Longest name, in bytes after the leading `/`: NAME_MAX less the prefix. */
  maxNameBytes: number;
  /** What opening it only to read it needs (a semaphore is always read and written). */
  readNeeds: readonly Access[];
}

/** Every kind, in the order listings show them. */
export const IPC_KINDS: readonly IpcKind[] = ["mq", "shm", "sem"];

/** The facts per kind. */
export const OBJECT_KINDS: Readonly<Record<IpcKind, ObjectKind>> = {
  mq: {
    kind: "mq",
    label: "message queue",
    directory: MQUEUE_DIR,
    filePrefix: "",
    maxNameBytes: NAME_MAX,
    readNeeds: ["read"],
  },
  shm: {
    kind: "shm",
    label: "shared memory",
    directory: SHM_DIR,
    filePrefix: "",
    maxNameBytes: NAME_MAX,
    readNeeds: ["read"],
  },
  sem: {
    kind: "sem",
    label: "semaphore",
    directory: SEM_DIR,
    filePrefix: SEM_FILE_PREFIX,
    maxNameBytes: NAME_MAX - SEM_FILE_PREFIX.length,
    readNeeds: ["read", "write"],
  },
};

/** The file Linux shows an object as: `objectPath("sem", "lock")` is `/dev/shm/sem.lock`. */
export function objectPath(kind: IpcKind, base: string): string {
  const { directory, filePrefix } = OBJECT_KINDS[kind];
  return `${directory}/${filePrefix}${base}`;
}

const _encoder = new TextEncoder();

/**
 * The same path as exact bytes, for a name that is not UTF-8: `base` is
 * the name without its leading `/`.
 */
export function objectPathBytes(kind: IpcKind, base: Uint8Array): Uint8Array {
  const { directory, filePrefix } = OBJECT_KINDS[kind];
  const head = _encoder.encode(`${directory}/${filePrefix}`);
  const path = new Uint8Array(head.length + base.length);
  path.set(head);
  path.set(base, head.length);
  return path;
}
