/**
 * Which live processes hold IPC objects: have them open
 * (`/proc/<pid>/fd`) or mapped (`/proc/<pid>/maps`).
 *
 * Files are matched by device and inode, not by path: glibc creates a
 * semaphore under a temporary name, maps it, then links it to `sem.<name>`,
 * so its mapping shows `/dev/shm/sem.XXXXXX (deleted)`; and a queue's
 * descriptor links to `/<name>` on the kernel's internal mqueue mount.
 *
 * Only processes this user may inspect can be seen (all of them for root;
 * otherwise, as a rule, the user's own): the others are counted, so callers
 * can say the picture is partial.
 *
 * @module
 */

import { listDirectory } from "../../ffi/dir.ts";
import { ERRNO } from "../../ffi/errno.ts";
import { readWholeFile } from "../../ffi/file.ts";
import { libc } from "../../ffi/load.ts";
import { statPath } from "../../ffi/stat.ts";
import { requirePermission } from "../_kernel/permissions.ts";

/** A process that has an object open or mapped. */
export interface Holder {
  pid: number;
  /** The process's command name (`/proc/<pid>/comm`), when readable. */
  command?: string;
}

/** What a scan of /proc found for the files it was asked about. */
export interface HolderScan {
  /** Holders per file key (see {@linkcode fileKey}), sorted by pid. */
  holders: Map<string, Holder[]>;
  /** How many processes were inspected. */
  inspected: number;
  /** Processes whose descriptors or mappings this user may not read. */
  uninspectable: number[];
}

/** The key that identifies a file across stat(2) and /proc: `dev:ino`. */
export function fileKey(dev: bigint, ino: bigint): string {
  return `${dev}:${ino}`;
}

/**
 * Scans every process in /proc (except this one) for descriptors and
 * mappings of the files whose keys are in `wanted`.
 *
 * @throws {Deno.errors.NotCapable} without `--allow-read` on `/proc`
 */
export function scanHolders(wanted: ReadonlySet<string>): HolderScan {
  requirePermission("read", "/proc");
  const pids: number[] = [];
  const entries = listDirectory("/proc");
  if (typeof entries === "number") {
    throw new Deno.errors.NotFound(
      "Cannot find which processes hold IPC objects: /proc cannot be listed",
    );
  }
  for (const { name } of entries) {
    if (/^\d+$/.test(name)) pids.push(Number(name));
  }
  pids.sort((a, b) => a - b);

  const self = libc().symbols.getpid();
  const found = new Map<string, Set<number>>();
  const uninspectable: number[] = [];
  let inspected = 0;
  for (const pid of pids) {
    if (pid === self) continue;
    const keys = _heldKeys(pid, wanted);
    if (keys === "gone") continue;
    if (keys === "denied") {
      uninspectable.push(pid);
      continue;
    }
    inspected++;
    for (const key of keys) {
      let set = found.get(key);
      if (!set) found.set(key, set = new Set());
      set.add(pid);
    }
  }

  const holders = new Map<string, Holder[]>();
  for (const [key, set] of found) {
    holders.set(key, [...set].sort((a, b) => a - b).map(_holder));
  }
  return { holders, inspected, uninspectable };
}

/** The wanted keys that `pid` holds, or why it cannot be told. */
function _heldKeys(
  pid: number,
  wanted: ReadonlySet<string>,
): Set<string> | "gone" | "denied" {
  const held = new Set<string>();
  const fdDir = `/proc/${pid}/fd`;
  const fds = listDirectory(fdDir);
  if (typeof fds === "number") return _why(-fds);
  for (const { name } of fds) {
    const status = statPath(`${fdDir}/${name}`);
    if (typeof status === "number") continue; // closed meanwhile
    const key = fileKey(status.dev, status.ino);
    if (wanted.has(key)) held.add(key);
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

function _holder(pid: number): Holder {
  const comm = readWholeFile(`/proc/${pid}/comm`, 64);
  return typeof comm === "string" ? { pid, command: comm.trim() } : { pid };
}
