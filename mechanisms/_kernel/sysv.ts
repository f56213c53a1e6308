/**
 * System V IPC objects: how they are named (a key), which Deno permission
 * guards them, how an existing one is adopted, and the kernel limits.
 *
 * ## Permissions
 *
 * System V objects have no path. Linux lists each kind in one file of its
 * own, `/proc/sysvipc/msg`, `/proc/sysvipc/shm` and `/proc/sysvipc/sem`,
 * so ipckit treats every object of a kind as that file, the way a POSIX
 * queue `/jobs` is `/dev/mqueue/jobs`:
 *
 * | kind | file | read | write |
 * | --- | --- | --- | --- |
 * | message queue | `/proc/sysvipc/msg` | receive, attributes | send, create, remove |
 * | shared memory | `/proc/sysvipc/shm` | attach (with write), attributes | attach, create, remove |
 * | semaphore set | `/proc/sysvipc/sem` | open (with write), values | open, create, remove |
 *
 * Shared memory is always attached read-write (a read-only attachment
 * turns a stray write from JavaScript into SIGSEGV, and System V has no
 * copy-on-write attachment), and a semaphore operation changes the set,
 * so both need read and write, as POSIX semaphores do. `--allow-read` and
 * `--allow-write` of `/proc/sysvipc` cover all three. The check only
 * queries Deno: it never prompts.
 *
 * ## Keys
 *
 * A key is a number (what C code passes to `msgget`), `{ path, id }` for
 * `ftok(path, id)` (which needs `--allow-read` on the path, as it stats
 * the file), or `"private"` (`IPC_PRIVATE`: a new object only this
 * process knows the id of). The key 0 is `IPC_PRIVATE` in C; ipckit asks
 * for `"private"` by name so that a zero by mistake is an error.
 *
 * @module
 */

import { fromFileUrl } from "@std/path/posix";
import { readSmallFile } from "../../ffi/file.ts";
import { effectiveUid } from "../../ffi/dir_fd.ts";
import { ERRNO } from "../../ffi/errno.ts";
import {
  ftok,
  IPC,
  type IpcPerm,
  msgRemove,
  requireSysv,
  semRemove,
  shmRemove,
} from "../../ffi/sysv.ts";
import {
  checkCreateFlags,
  checkMode,
  checkOptionKeys,
} from "../_common/checks.ts";
import { systemError } from "../_common/system_error.ts";
import {
  type AdoptPolicy,
  checkAdoptOption,
  requireAdoptable,
} from "./adoption.ts";
import { type Access, requirePermission } from "./permissions.ts";

/**
 * The kinds of System V object: message queues, shared memory segments,
 * semaphore sets.
 *
 * @category Inventory
 */
export type SysvKind = "sysv-msg" | "sysv-shm" | "sysv-sem";

/**
 * Every System V kind, in the order listings show them.
 *
 * @category Inventory
 */
export const SYSV_KINDS: readonly SysvKind[] = [
  "sysv-msg",
  "sysv-shm",
  "sysv-sem",
];

/** Where Linux lists the System V objects, one file per kind. */
export const SYSVIPC_DIR = "/proc/sysvipc";

/** What is fixed about one System V kind. */
export interface SysvKindFacts {
  kind: SysvKind;
  /** How messages name it: "System V message queue". */
  label: string;
  /** The file that lists them, and that permissions are checked on. */
  file: string;
  /** What `ipcrm` calls it after `-q`/`-m`/`-s`. */
  ipcrmFlag: "-q" | "-m" | "-s";
  /** How messages call one briefly: "queue", "segment", "set". */
  noun: string;
  /** Its control call, which removes it and reports its state. */
  control: "msgctl" | "shmctl" | "semctl";
}

/** The facts per kind. */
export const SYSV_KIND_FACTS: Readonly<Record<SysvKind, SysvKindFacts>> = {
  "sysv-msg": {
    kind: "sysv-msg",
    label: "System V message queue",
    file: `${SYSVIPC_DIR}/msg`,
    ipcrmFlag: "-q",
    noun: "queue",
    control: "msgctl",
  },
  "sysv-shm": {
    kind: "sysv-shm",
    label: "System V shared memory",
    file: `${SYSVIPC_DIR}/shm`,
    ipcrmFlag: "-m",
    noun: "segment",
    control: "shmctl",
  },
  "sysv-sem": {
    kind: "sysv-sem",
    label: "System V semaphore set",
    file: `${SYSVIPC_DIR}/sem`,
    ipcrmFlag: "-s",
    noun: "set",
    control: "semctl",
  },
};

/**
 * Throws `NotCapable` unless Deno grants each access on the kind's file,
 * naming the flag to add (`--allow-write=/proc/sysvipc`).
 */
export function requireSysvPermissions(
  kind: SysvKind,
  accesses: Iterable<Access>,
): void {
  for (const access of accesses) {
    requirePermission(access, SYSV_KIND_FACTS[kind].file, SYSVIPC_DIR);
  }
}

/**
 * Removes object `id` of `kind` (`IPC_RMID`), as a handle's `remove()` and
 * the inventory's `removeSysvObject` both do: `--allow-write` on the
 * kind's file first, then the control call; `what` names the object in
 * the error, and `reason` explains an id that is not (or no longer) in use.
 *
 * @throws {Deno.errors.NotCapable} without `--allow-write=/proc/sysvipc`
 * @throws {Deno.errors.NotFound} when no object of the kind has the id
 */
export function removeSysvId(
  kind: SysvKind,
  id: number,
  what: string,
  reason?: string,
): void {
  requireSysvPermissions(kind, ["write"]);
  const result = _remove(kind, id);
  if (result < 0) {
    throw idError(
      SYSV_KIND_FACTS[kind].control,
      `remove ${what}`,
      -result,
      reason,
    );
  }
}

/** `IPC_RMID` on object `id` of `kind`: 0 or `-errno`. */
function _remove(kind: SysvKind, id: number): number {
  return kind === "sysv-msg"
    ? msgRemove(id)
    : kind === "sysv-shm"
    ? shmRemove(id)
    : semRemove(id);
}

/**
 * Runs `settle` on the object {@linkcode getTracked} just got (checks,
 * initial values, attaching); when it throws, an object this call created
 * is removed again, so that a failed open leaves nothing, and the error is
 * thrown on.
 */
export function settleOrRemove<T>(
  kind: SysvKind,
  got: { id: number; created: boolean },
  settle: () => T,
): T {
  try {
    return settle();
  } catch (error) {
    if (got.created) _remove(kind, got.id);
    throw error;
  }
}

/**
 * How a System V object is found: a number key (what C passes to
 * `msgget`, `shmget`, `semget`), `{ path, id }` for `ftok(path, id)`, or
 * `"private"` for a new object that only its id reaches (`IPC_PRIVATE`).
 *
 * @example
 * ```ts
 * import type { SysvKey } from "@ipckit/ipckit";
 *
 * const keys: SysvKey[] = [1234, { path: "/etc/hostname", id: 1 }, "private"];
 * ```
 *
 * @category System V IPC
 */
export type SysvKey = number | "private" | { path: string | URL; id: number };

/** A key once checked: the number to pass (or the ftok to make it), and how messages show it. */
export interface CheckedKey {
  /** What msgget/shmget/semget take (0 for IPC_PRIVATE); undefined until an ftok key is resolved. */
  key: number | undefined;
  /** `0x000004d2`, `private`, or `ftok("/tmp/app", 1)` */
  shown: string;
  /** `IPC_PRIVATE`: always creates. */
  private: boolean;
  /** The file and id of an ftok key. */
  ftok?: { path: string; id: number };
}

/** `0x000004d2`, as `ipcs` shows keys. */
export function formatKey(key: number): string {
  return `0x${(key >>> 0).toString(16).padStart(8, "0")}`;
}

/**
 * Checks a key before any system call; an ftok key is resolved later by
 * {@linkcode resolveKey}.
 *
 * @param label the kind for messages: "System V message queue"
 * @throws {TypeError} for anything that is not a key
 * @throws {RangeError} for a number outside 32 bits, 0, or an id outside 1 to 255
 */
export function checkKey(key: unknown, label: string): CheckedKey {
  const action = `open ${label}`;
  requireSysv(action);
  if (key === "private") {
    return { key: 0, shown: "private", private: true };
  }
  if (typeof key === "number") {
    if (!Number.isInteger(key) || key < -0x8000_0000 || key > 0xffff_ffff) {
      throw new RangeError(
        `Cannot ${action}: a key must be an integer that fits in 32 bits, got ${key}`,
      );
    }
    if (key === 0) {
      throw new RangeError(
        `Cannot ${action}: key 0 is IPC_PRIVATE; pass "private" to mean a new private object`,
      );
    }
    return { key: key | 0, shown: formatKey(key), private: false };
  }
  if (typeof key === "object" && key !== null && "path" in key) {
    const { path, id } = key as { path: unknown; id: unknown };
    const file = path instanceof URL
      ? (path.protocol === "file:" ? fromFileUrl(path) : undefined)
      : typeof path === "string"
      ? path
      : undefined;
    if (file === undefined || file === "" || file.includes("\0")) {
      throw new TypeError(
        `Cannot ${action}: an ftok key needs path, a non-empty string or file: URL without NUL`,
      );
    }
    if (
      typeof id !== "number" || !Number.isInteger(id) || id < 1 || id > 255
    ) {
      throw new RangeError(
        `Cannot ${action}: an ftok id must be an integer from 1 to 255 (ftok uses its low 8 bits), got ${
          String(id)
        }`,
      );
    }
    return {
      key: undefined,
      shown: `ftok(${JSON.stringify(file)}, ${id})`,
      private: false,
      ftok: { path: file, id },
    };
  }
  throw new TypeError(
    `Cannot ${action}: key must be a number, { path, id } for ftok, or "private", got ${
      key === null ? "null" : typeof key
    }`,
  );
}

/** The options every System V handle opens with. */
export interface SysvOpenOptions {
  create?: boolean;
  exclusive?: boolean;
  adopt?: unknown;
  mode?: number;
  unlinkOnClose?: boolean;
}

/** What {@linkcode checkSysvOpen} found valid. */
export interface SysvOpenRequest {
  checked: CheckedKey;
  /** `open System V message queue 0x000004d2`, for messages. */
  action: string;
  create: boolean;
  exclusive: boolean;
  unlinkOnClose: boolean;
  mode: number;
  adopt: AdoptPolicy;
}

/**
 * The checks every System V `open` makes first, before any system call:
 * the option keys (`keys`), the key, the flags, `exclusive` and `adopt`
 * only with `create`, `mode`, and a private key only with `create` (it
 * always makes a new object). `sized` names the option a created object
 * cannot do without (a segment's `size`, a set's `count`), if any, with
 * its value.
 *
 * @throws {TypeError} for an unknown option, a bad key or flag, or options that do not go together
 * @throws {RangeError} for a bad key number or mode
 */
export function checkSysvOpen(
  kind: SysvKind,
  key: unknown,
  options: SysvOpenOptions,
  keys: readonly string[],
  sized?: { name: string; value: unknown },
): SysvOpenRequest {
  const { label, noun } = SYSV_KIND_FACTS[kind];
  checkOptionKeys(options, keys, `open ${label}`);
  const checked = checkKey(key, label);
  const action = `open ${label} ${checked.shown}`;
  checkCreateFlags(options, action);
  const { create, exclusive, unlinkOnClose } = options;
  if (sized && create && sized.value === undefined) {
    throw new TypeError(`Cannot ${action}: create needs a ${sized.name}`);
  }
  if (checked.private && (!create || options.adopt !== undefined)) {
    throw new TypeError(
      `Cannot ${action}: a private key always makes a new ${noun}; pass create: true${
        sized ? ` and a ${sized.name}` : ""
      } (and no adopt)`,
    );
  }
  return {
    checked,
    action,
    create: create ?? false,
    exclusive: exclusive ?? false,
    unlinkOnClose: unlinkOnClose ?? false,
    mode: checkMode(options.mode ?? 0o600, action),
    adopt: checkAdoptOption(options.adopt, create, exclusive, action),
  };
}

/**
 * How messages name an object: `System V message queue 0x000004d2 (id
 * 32768)`, or without the id before it is known.
 */
export function describeSysv(
  kind: SysvKind,
  checked: CheckedKey,
  id: number | undefined,
): string {
  return `${SYSV_KIND_FACTS[kind].label} ${checked.shown}${
    id === undefined ? "" : ` (id ${id})`
  }`;
}

/**
 * The number of a checked key: an ftok key is made now with ftok(3),
 * after checking `--allow-read` on its path (ftok stats the file, as
 * `Deno.stat` would). Call it after the object's own permission check.
 *
 * @throws {Deno.errors.NotCapable} without `--allow-read` on an ftok path
 * @throws {Deno.errors.NotFound} when the ftok path does not exist
 */
export function resolveKey(checked: CheckedKey, label: string): number {
  if (checked.key !== undefined) return checked.key;
  const { path, id } = checked.ftok!;
  requirePermission("read", path);
  const made = ftok(path, id);
  if (made < 0) {
    throw systemError("ftok", `open ${label} ${checked.shown}`, -made);
  }
  checked.key = made;
  checked.shown = formatKey(made);
  return made;
}

/**
 * Throws `PermissionDenied` unless an existing object found by
 * `create: true` may be adopted under `policy`: the same rule as for the
 * POSIX objects (owned by the caller, mode within `mode`). Both its owner
 * (`uid`) and its creator (`cuid`) must be the caller: the kernel gives
 * the creator the owner's rights too, so a queue someone else created and
 * then gave to us is still theirs to read.
 */
export function requireSysvAdoptable(
  perm: IpcPerm,
  { mode, adopt: policy }: SysvOpenRequest,
  syscall: string,
  action: string,
): void {
  const me = effectiveUid();
  const uid = perm.uid !== me ? perm.uid : perm.cuid;
  requireAdoptable(
    { uid, mode: perm.mode, nlink: 1 },
    mode,
    policy,
    syscall,
    action,
  );
}

/** Where Linux publishes the System V limits. */
export const SYSV_LIMITS_DIR = "/proc/sys/kernel";

/** The System V limit files ipckit checks against. */
export type SysvLimit = "msgmax" | "msgmnb" | "shmmax" | "shmmni" | "sem";

/**
 * A limit's numbers, or undefined where `--allow-read` does not cover
 * `/proc/sys/kernel/<name>` (never prompts). `sem` has four: SEMMSL (the
 * most semaphores in a set), SEMMNS, SEMOPM (the most operations in one
 * semop) and SEMMNI. Read through libc, as Deno's own API wants
 * `--allow-all` under /proc/sys.
 */
export function readSysvLimit(name: SysvLimit): number[] | undefined {
  const path = `${SYSV_LIMITS_DIR}/${name}`;
  if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") {
    return undefined;
  }
  const text = readSmallFile(path, 128);
  if (text === undefined) return undefined;
  const values = text.trim().split(/\s+/).map(Number);
  return values.every(Number.isFinite) ? values : undefined;
}

/** `/proc/sys/kernel/msgmax = 8192`, for messages. */
export function describeLimit(
  name: SysvLimit,
  value: number | number[],
): string {
  return `${SYSV_LIMITS_DIR}/${name} = ${
    Array.isArray(value) ? value.join(" ") : value
  }`;
}

/**
 * Gets the id of the object `request`'s key names with `get(flags)` (msgget,
 * shmget or semget, returning the id or `-errno`), telling an object this
 * call created from one that existed, as `openTracked` does for POSIX
 * objects: with `create` it first tries `IPC_CREAT | IPC_EXCL`, and only
 * on EEXIST (and not `exclusive`) gets the existing one, which the caller
 * then checks with {@linkcode requireSysvAdoptable}. A private key always
 * creates.
 */
export function getTracked(
  get: (flags: number) => number,
  fail: (errno: number, reason?: string) => Error,
  { checked, create, exclusive, mode }: SysvOpenRequest,
): { id: number; created: boolean } {
  const creating = IPC.CREAT | IPC.EXCL | mode;
  // An ftok key is resolved by the caller before this.
  if (checked.private) {
    const id = get(creating);
    if (id < 0) throw fail(-id);
    return { id, created: true };
  }
  if (!create) {
    // No mode bits: the kernel checks access at each operation instead.
    const id = get(0);
    if (id < 0) throw fail(-id);
    return { id, created: false };
  }
  for (let round = 0; round < 8; round++) {
    const id = get(creating);
    if (id >= 0) return { id, created: true };
    if (-id !== ERRNO.EEXIST || exclusive) throw fail(-id);
    const existing = get(0);
    if (existing >= 0) return { id: existing, created: false };
    if (-existing !== ERRNO.ENOENT) throw fail(-existing);
  }
  throw fail(
    ERRNO.EEXIST,
    "it kept appearing and disappearing while opening it",
  );
}

/**
 * The error for a call on an id that failed: EINVAL and EIDRM on an id
 * that was valid when it was opened mean it was removed meanwhile.
 */
export function idError(
  syscall: string,
  action: string,
  errno: number,
  reason?: string,
): Error {
  if (errno === ERRNO.EINVAL || errno === ERRNO.EIDRM) {
    return systemError(
      syscall,
      action,
      ERRNO.EIDRM,
      reason ?? "it was removed (its id is no longer in use)",
    );
  }
  return systemError(syscall, action, errno, reason);
}
