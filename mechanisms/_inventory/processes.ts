/**
 * Which live processes hold IPC objects: have them open
 * (`/proc/<pid>/fd`) or mapped (`/proc/<pid>/maps`); and, where
 * /dev/mqueue is not mounted, which message queues they have open.
 *
 * Files are matched by device and inode, not by path: glibc creates a
 * semaphore under a temporary name, maps it, then links it to `sem.<name>`,
 * so its mapping shows `/dev/shm/sem.XXXXXX (deleted)`. A queue's
 * descriptor is a file on the kernel's internal mqueue mount (statfs says
 * `MQUEUE_MAGIC`) whose link reads `/<name>`, or `/<name> (deleted)` once
 * unlinked: that is how queues are found without /dev/mqueue.
 *
 * Only processes this user may inspect can be seen (all of them for root,
 * as a rule; otherwise, the user's own dumpable ones): the others are
 * reported with the reason, so callers can say the picture is partial.
 *
 * @module
 */

import { MQUEUE_MAGIC, S_IFMT, S_IFREG } from "../../ffi/c.ts";
import { listDirectory } from "../../ffi/dir.ts";
import { ERRNO } from "../../ffi/errno.ts";
import { readLink, readWholeFile } from "../../ffi/file.ts";
import { libc } from "../../ffi/load.ts";
import { type FileStatus, fileSystemType, statPath } from "../../ffi/stat.ts";
import {
  explainUninspected,
  readerFacts,
  type UninspectedProcess,
} from "./uninspected.ts";

/** A process that has an object open or mapped. */
export interface Holder {
  /** Its process id. */
  pid: number;
  /** The process's command name (`/proc/<pid>/comm`), when readable. */
  command?: string;
}

/** A message queue seen through a process's descriptor. */
export interface QueueSighting {
  /** The descriptor's link: `/<name>`, or `/<name> (deleted)`. */
  link: Uint8Array;
  /** fstat of the queue, through the descriptor. */
  status: FileStatus;
}

/** What a scan of /proc found. */
export interface ProcessScan {
  /** Holders per file key (see {@linkcode fileKey}), sorted by pid. */
  holders: Map<string, Holder[]>;
  /** With `findQueues`: every queue held open, by file key. */
  queues: Map<string, QueueSighting>;
  /** How many processes were inspected. */
  inspected: number;
  /** The processes that could not be, and why. */
  uninspected: UninspectedProcess[];
}

/** How to scan. */
export interface ScanOptions {
  /** Also collect every message queue held open (for when /dev/mqueue cannot be listed). */
  findQueues?: boolean;
  /** Called now and then with the processes done and the total. */
  onProgress?: (done: number, total: number) => void;
}

/** The key that identifies a file across stat(2) and /proc: `dev:ino`. */
export function fileKey(dev: bigint, ino: bigint): string {
  return `${dev}:${ino}`;
}

/** How long the scan works before it lets the event loop run (a spinner, a server). */
const _SLICE_MS = 20;

/**
 * Scans every process in /proc (except this one) for descriptors and
 * mappings of the files whose keys are in `wanted`. Callers check the read
 * permission on `/proc` first.
 */
export async function scanProcesses(
  wanted: ReadonlySet<string>,
  options: ScanOptions = {},
): Promise<ProcessScan> {
  const entries = listDirectory("/proc");
  if (typeof entries === "number") {
    throw new Deno.errors.NotFound(
      "Cannot find which processes hold IPC objects: /proc cannot be listed",
    );
  }
  const pids = entries.filter(({ name }) => /^\d+$/.test(name))
    .map(({ name }) => Number(name)).sort((a, b) => a - b);

  const { getpid, getuid } = libc().symbols;
  const self = getpid();
  const reader = readerFacts(getuid());
  const found = new Map<string, Set<number>>();
  const queues = new Map<string, QueueSighting>();
  const mqueueDevices = new Map<bigint, boolean>();
  const uninspected: UninspectedProcess[] = [];
  let inspected = 0;
  let sliceStart = performance.now();
  for (const [index, pid] of pids.entries()) {
    if (performance.now() - sliceStart > _SLICE_MS) {
      options.onProgress?.(index, pids.length);
      await new Promise((resolve) => setTimeout(resolve, 0));
      sliceStart = performance.now();
    }
    if (pid === self) continue;
    const seen = _inspect(pid, wanted, options.findQueues ?? false, {
      mqueueDevices,
      queues,
    });
    if (seen === "gone") continue;
    if (seen === "denied") {
      const why = explainUninspected(pid, reader, _command(pid));
      if (why) uninspected.push(why);
      continue;
    }
    inspected++;
    for (const key of seen) {
      let set = found.get(key);
      if (!set) found.set(key, set = new Set());
      set.add(pid);
    }
  }
  options.onProgress?.(pids.length, pids.length);

  const holders = new Map<string, Holder[]>();
  for (const [key, set] of found) {
    holders.set(key, [...set].sort((a, b) => a - b).map(_holder));
  }
  return { holders, queues, inspected, uninspected };
}

interface _QueueSearch {
  /** Whether a device is the mqueue file system, asked once per device. */
  mqueueDevices: Map<bigint, boolean>;
  queues: Map<string, QueueSighting>;
}

/** The keys `pid` holds (wanted ones, and queues when searching), or why it cannot be told. */
function _inspect(
  pid: number,
  wanted: ReadonlySet<string>,
  findQueues: boolean,
  search: _QueueSearch,
): Set<string> | "gone" | "denied" {
  const held = new Set<string>();
  const fdDir = `/proc/${pid}/fd`;
  const fds = listDirectory(fdDir);
  if (typeof fds === "number") return _why(-fds);
  for (const { name } of fds) {
    const fdPath = `${fdDir}/${name}`;
    const status = statPath(fdPath);
    if (typeof status === "number") {
      // Listing the directory may be allowed while following links is not.
      if (-status === ERRNO.EACCES || -status === ERRNO.EPERM) return "denied";
      continue; // closed meanwhile
    }
    const key = fileKey(status.dev, status.ino);
    if (wanted.has(key)) held.add(key);
    if (findQueues && (status.mode & S_IFMT) === S_IFREG) {
      let isQueue = search.mqueueDevices.get(status.dev);
      if (isQueue === undefined) {
        isQueue = fileSystemType(fdPath) === MQUEUE_MAGIC;
        search.mqueueDevices.set(status.dev, isQueue);
      }
      if (isQueue) {
        const link = readLink(fdPath);
        if (typeof link !== "number") {
          held.add(key);
          if (!search.queues.has(key)) search.queues.set(key, { link, status });
        }
      }
    }
  }
  const maps = readWholeFile(`/proc/${pid}/maps`);
  if (typeof maps === "number") return _why(-maps);
  for (const line of maps.split("\n")) {
    // start-end perms offset major:minor inode [path]
    const fields = line.split(/\s+/, 5);
    if (fields.length < 5 || fields[4] === "0") continue;
    const key = fileKey(_deviceNumber(fields[3]), BigInt(fields[4]));
    if (wanted.has(key)) held.add(key);
  }
  return held;
}

function _why(errno: number): "gone" | "denied" {
  // A process that exits while being read turns into ENOENT or ESRCH.
  return errno === ERRNO.ENOENT || errno === ERRNO.ESRCH ? "gone" : "denied";
}

/**
 * `st_dev` from the `major:minor` (hex) that /proc/<pid>/maps prints, as
 * glibc's makedev() combines them.
 */
function _deviceNumber(text: string): bigint {
  const [majorText, minorText] = text.split(":");
  const major = BigInt(`0x${majorText}`);
  const minor = BigInt(`0x${minorText}`);
  return (minor & 0xffn) | ((major & 0xfffn) << 8n) |
    ((minor & ~0xffn) << 12n) | ((major & ~0xfffn) << 32n);
}

function _command(pid: number): string | undefined {
  const comm = readWholeFile(`/proc/${pid}/comm`, 64);
  return typeof comm === "string" ? comm.trim() : undefined;
}

function _holder(pid: number): Holder {
  const command = _command(pid);
  return command ? { pid, command } : { pid };
}
