/**
 * The System V objects on this machine, read from the kernel's own tables
 * `/proc/sysvipc/msg`, `shm` and `sem` (what `ipcs` reads), judged for
 * collection (removing one by id, what `ipcrm` does, is `removeSysvId` of
 * mechanisms/_kernel/sysv.ts, which handles use too).
 *
 * System V objects have no holders to find in /proc/<pid>: a segment
 * counts its attachments itself (`nattch`), and a queue or a semaphore
 * set is not held at all; it records the last processes that used it.
 * So the collection rule is: a segment nobody has attached whose creator
 * and last user are gone; a queue whose last sender and receiver are gone;
 * a set whose last user of every semaphore is gone. An object no process
 * has used yet is kept (nothing says its users are gone), and so is one
 * owned by another user unless the caller is root.
 *
 * Callers check Deno's permissions first: read on `/proc/sysvipc` to list.
 *
 * @module
 */

import { readWholeFile } from "../../ffi/file.ts";
import { libc } from "../../ffi/load.ts";
import { IPC, semGet } from "../../ffi/sysv.ts";
import { processAlive } from "../_kernel/process_state.ts";
import {
  formatKey,
  SYSV_KIND_FACTS,
  SYSV_KINDS,
  type SysvKind,
} from "../_kernel/sysv.ts";

/**
 * One System V object as the kernel lists it.
 *
 * @category Inventory
 */
export interface SysvObject {
  /** `"sysv-msg"`, `"sysv-shm"` or `"sysv-sem"`. */
  kind: SysvKind;
  /** The id (`msqid`, `shmid`, `semid`), what `ipcrm -q/-m/-s` takes. */
  id: number;
  /** The key; 0 for a private object. */
  key: number;
  /** The key as `ipcs` shows it: `0x000004d2`. */
  keyText: string;
  /** Permission bits. */
  mode: number;
  /** The owner's uid, and the creator's. */
  uid: number;
  /** See `uid`. */
  creatorUid: number;
  /**
   * Bytes of messages waiting (a queue), the segment's size (shared
   * memory), or the number of semaphores (a set).
   */
  size: number;
  /** A queue's messages waiting. */
  messages?: number;
  /** A segment's attachments, in every process. */
  attachments?: number;
  /**
   * The processes it records, 0 for none: a queue's last sender and
   * receiver, a segment's creator and last user; a set lists none here
   * (each semaphore has its own, see {@linkcode lastSemaphorePids}).
   */
  pids: { role: string; pid: number }[];
  /** When it was created or last changed, in milliseconds since the epoch. */
  changedMs: number;
}

/** The fields of a /proc/sysvipc table, by column name. */
function _rows(kind: SysvKind): Record<string, number>[] | number {
  const text = readWholeFile(SYSV_KIND_FACTS[kind].file, 16 << 20);
  if (typeof text === "number") return text;
  const [header, ...lines] = text.split("\n");
  const names = header.trim().split(/\s+/);
  return lines.filter((line) => line.trim()).map((line) => {
    const values = line.trim().split(/\s+/);
    // The kernel prints perms in octal and every other column in decimal.
    return Object.fromEntries(
      names.map((name, i) => [
        name,
        name === "perms" ? Number.parseInt(values[i], 8) : Number(values[i]),
      ]),
    );
  });
}

/** The objects of `kinds`, by kind then id; kinds this kernel has no table for are left out. */
export function listSysv(kinds: Iterable<SysvKind>): SysvObject[] {
  const wanted = new Set(kinds);
  const objects: SysvObject[] = [];
  for (const kind of SYSV_KINDS) {
    if (!wanted.has(kind)) continue;
    const rows = _rows(kind);
    if (typeof rows === "number") continue;
    for (const row of rows) objects.push(_objectOf(kind, row));
  }
  return objects.sort((a, b) =>
    SYSV_KINDS.indexOf(a.kind) - SYSV_KINDS.indexOf(b.kind) || a.id - b.id
  );
}

function _objectOf(kind: SysvKind, row: Record<string, number>): SysvObject {
  const base = {
    kind,
    key: row.key | 0,
    keyText: formatKey(row.key),
    mode: row.perms & 0o777,
    uid: row.uid,
    creatorUid: row.cuid,
    changedMs: row.ctime * 1000,
  };
  switch (kind) {
    case "sysv-msg":
      return {
        ...base,
        id: row.msqid,
        size: row.cbytes,
        messages: row.qnum,
        pids: [
          { role: "last sender", pid: row.lspid },
          { role: "last receiver", pid: row.lrpid },
        ],
      };
    case "sysv-shm":
      return {
        ...base,
        id: row.shmid,
        size: row.size,
        attachments: row.nattch,
        pids: [
          { role: "creator", pid: row.cpid },
          { role: "last user", pid: row.lpid },
        ],
      };
    case "sysv-sem":
      return { ...base, id: row.semid, size: row.nsems, pids: [] };
  }
}

/** Each semaphore's last user (`GETPID`), 0 for none; empty when the set cannot be read. */
export function lastSemaphorePids(object: SysvObject): number[] {
  const pids: number[] = [];
  for (let index = 0; index < object.size; index++) {
    const pid = semGet(object.id, index, IPC.GETPID);
    if (pid < 0) return [];
    pids.push(pid);
  }
  return pids;
}

/**
 * Whether a System V object may be collected, and why.
 *
 * @category Inventory
 */
export interface SysvVerdict {
  /** The object. */
  object: SysvObject;
  /** Whether it may be removed. */
  remove: boolean;
  /** Why, in words. */
  reason: string;
}

/** Judges one object by the rule in this module's doc. */
export function judgeSysv(object: SysvObject): SysvVerdict {
  const verdict = (remove: boolean, reason: string) => ({
    object,
    remove,
    reason,
  });
  const me = libc().symbols.geteuid();
  if (me !== 0 && object.uid !== me && object.creatorUid !== me) {
    return verdict(false, `owned by uid ${object.uid}, not by you`);
  }
  if (object.attachments !== undefined && object.attachments > 0) {
    return verdict(false, `attached ${object.attachments} time(s)`);
  }
  const pids = object.kind === "sysv-sem"
    ? lastSemaphorePids(object).map((pid, index) => ({
      role: `last user of semaphore ${index}`,
      pid,
    }))
    : object.pids;
  const used = pids.filter(({ pid }) => pid > 0);
  if (used.length === 0) {
    return verdict(
      false,
      "no process has used it yet, so nothing says its users are gone",
    );
  }
  const alive = used.find(({ pid }) => processAlive(pid));
  if (alive) {
    return verdict(false, `its ${alive.role}, pid ${alive.pid}, is alive`);
  }
  const roles = [...new Set(used.map(({ role }) => role))];
  const gone = `its ${roles.join(" and ")} ${
    roles.length > 1 ? "are" : "is"
  } gone`;
  return verdict(
    true,
    object.kind === "sysv-shm" ? `nobody has it attached and ${gone}` : gone,
  );
}
