/**
 * Why a process could not be inspected, told from the parts of /proc that
 * stay readable when its descriptors and mappings do not:
 *
 * - `/proc/<pid>` itself is owned by the process's effective uid, always;
 * - `/proc/<pid>/fd` is owned by root (of the process's user namespace)
 *   instead when the process is not dumpable (`prctl(PR_SET_DUMPABLE, 0)`,
 *   a daemon that changed its uid, ssh-agent, gpg-agent);
 * - `/proc/<pid>/status` (world-readable) gives its real, effective and
 *   saved uids, its permitted capabilities and its pids per PID namespace;
 * - `/proc/self/uid_map` tells whether the reader itself runs in a user
 *   namespace other than the initial one (a container, `unshare --user`).
 *
 * The kernel lets a process read another's descriptors when both run with
 * the same uids and the target is dumpable and holds no capability the
 * reader lacks, or when the reader has CAP_SYS_PTRACE over the target's
 * user namespace; a security module may refuse anyway. PID namespaces do
 * not enter the check: root sees into a container's PID namespace as into
 * its own, and a reader in a user namespace of its own (uid 0 there, too)
 * sees into no process outside it, whatever its PID namespace. The checks
 * below follow that order and end with "a reason /proc does not show".
 *
 * @module
 */

import { CAPABILITY_NAMES } from "../../ffi/c.ts";
import { readWholeFile } from "../../ffi/file.ts";
import { statPath } from "../../ffi/stat.ts";

/**
 * Why a process could not be inspected:
 * - `"other-user"`: it runs as another user (or was started by one), and
 *   you are not root;
 * - `"not-dumpable"`: it made itself not dumpable, or the kernel did when
 *   it changed its ids (daemons, ssh-agent, gpg-agent);
 * - `"capabilities"`: it holds capabilities that you do not;
 * - `"user-namespace"`: you run in a user namespace of your own (inside a
 *   container, or under `unshare --user`), and it runs outside it, where
 *   your capabilities do not reach;
 * - `"pid-namespace"`: it runs in another PID namespace (a container), and
 *   nothing else /proc shows explains the refusal;
 * - `"unknown"`: /proc does not show why (another user namespace, or a
 *   security module such as Landlock, AppArmor or SELinux).
 */
export type UninspectedReason =
  | "other-user"
  | "not-dumpable"
  | "capabilities"
  | "user-namespace"
  | "pid-namespace"
  | "unknown";

/** A process whose descriptors and mappings this user may not read. */
export interface UninspectedProcess {
  /** Its process id. */
  pid: number;
  /** Its command name (`/proc/<pid>/comm`), when readable. */
  command?: string;
  /** The user it runs as (its effective uid, the owner of `/proc/<pid>`). */
  uid: number;
  /** Why, as a code: see {@linkcode UninspectedReason}. */
  reason: UninspectedReason;
  /** The reason in words, phrased to follow "could not be inspected: ". */
  explanation: string;
}

/** The reader's own ids and capabilities, read once per scan. */
export interface Reader {
  uid: number;
  permitted: bigint;
  /**
   * Its uid map (`0 0 1`), when it runs in a user namespace other than the
   * initial one, which maps every uid to itself (`0 0 4294967295`).
   */
  userNamespace?: string;
}

/** The facts about this process that the checks compare with. */
export function readerFacts(uid: number): Reader {
  const status = _status("/proc/self/status");
  const map = _uidMap();
  return {
    uid,
    permitted: status?.permitted ?? 0n,
    ...(map === undefined ? {} : { userNamespace: map }),
  };
}

/** This process's uid map as `0 0 1, 1000 1000 1`, or undefined in the initial user namespace (or where unreadable). */
function _uidMap(): string | undefined {
  const text = readWholeFile("/proc/self/uid_map", 16 * 1024);
  if (typeof text === "number") return undefined;
  const ranges = text.trim().split("\n").map((line) =>
    line.trim().split(/\s+/).join(" ")
  ).filter(Boolean);
  if (ranges.length === 1 && ranges[0] === "0 0 4294967295") return undefined;
  return ranges.join(", ");
}

/**
 * Explains why `pid` could not be inspected, or returns undefined when it
 * has exited meanwhile.
 */
export function explainUninspected(
  pid: number,
  reader: Reader,
  command: string | undefined,
): UninspectedProcess | undefined {
  const dir = statPath(`/proc/${pid}`);
  if (typeof dir === "number") return undefined;
  const status = _status(`/proc/${pid}/status`);
  const base = { pid, ...(command ? { command } : {}), uid: dir.uid };
  const why = (reason: UninspectedReason, explanation: string) => ({
    ...base,
    reason,
    explanation,
  });

  const ids = status?.uids ?? [dir.uid];
  if (reader.uid !== 0 && ids.some((id) => id !== reader.uid)) {
    return why(
      "other-user",
      dir.uid === reader.uid
        ? "it was started by another user (its real or saved uid differs)"
        : "it runs as another user",
    );
  }
  const fd = statPath(`/proc/${pid}/fd`);
  if (typeof fd !== "number" && fd.uid !== dir.uid) {
    return why("not-dumpable", "it is not dumpable");
  }
  if (status && (status.permitted & ~reader.permitted) !== 0n) {
    return why(
      "capabilities",
      `it holds capabilities you do not (${
        _capabilityNames(status.permitted & ~reader.permitted)
      })`,
    );
  }
  if (reader.userNamespace !== undefined) {
    return why(
      "user-namespace",
      `it runs outside your user namespace (uid map ${reader.userNamespace}), where your capabilities do not reach`,
    );
  }
  if (status && status.pidNamespaces > 1) {
    return why("pid-namespace", "it runs in another PID namespace");
  }
  return why(
    "unknown",
    "the kernel refused for a reason /proc does not show (another user namespace or a security module)",
  );
}

interface _Status {
  uids: number[];
  permitted: bigint;
  pidNamespaces: number;
}

function _status(path: string): _Status | undefined {
  const text = readWholeFile(path, 16 * 1024);
  if (typeof text === "number") return undefined;
  const line = (key: string) =>
    new RegExp(`^${key}:\\s*(.*)$`, "m").exec(text)?.[1].trim();
  const uids = (line("Uid") ?? "").split(/\s+/).slice(0, 3).map(Number)
    .filter(Number.isInteger);
  const permitted = BigInt(`0x${line("CapPrm") ?? "0"}`);
  const pidNamespaces = (line("NSpid") ?? "").split(/\s+/).filter(Boolean)
    .length;
  return { uids, permitted, pidNamespaces };
}

function _capabilityNames(bits: bigint): string {
  const names: string[] = [];
  for (let bit = 0; bits >> BigInt(bit) !== 0n; bit++) {
    if ((bits >> BigInt(bit)) & 1n) {
      names.push(CAPABILITY_NAMES[bit] ?? `capability ${bit}`);
    }
  }
  return names.join(", ");
}
