/**
 * Removing an object by its exact name, through libc, after the write
 * permission check the mechanisms make for the same object.
 *
 * @module
 */

import { systemError } from "../_common/system_error.ts";
import { type IpcKind, OBJECT_KINDS, objectPath } from "../_kernel/objects.ts";
import { requirePermission } from "../_kernel/permissions.ts";
import { formatObjectName, validateNameBytes } from "./names.ts";

const _lossy = new TextDecoder();
import { unlinkByName } from "./probe.ts";

const _SYSCALLS: Record<IpcKind, string> = {
  mq: "mq_unlink",
  shm: "shm_unlink",
  sem: "sem_unlink",
};

/**
 * Removes the name of the object `name` (exact bytes) of `kind`.
 *
 * The permission is checked on the object's path. A name that is not
 * UTF-8 is checked as its UTF-8 reading (U+FFFD for each bad byte), which
 * `--allow-write=/dev/shm` covers: no flag can name such a file exactly.
 *
 * @throws {Deno.errors.NotFound} when it no longer exists
 * @throws {Deno.errors.NotCapable} without `--allow-write` on its directory
 */
export function removeByName(kind: IpcKind, name: Uint8Array): void {
  const facts = OBJECT_KINDS[kind];
  const base = validateNameBytes(name, facts.maxNameBytes);
  const shown = formatObjectName(base);
  requirePermission(
    "write",
    objectPath(kind, _lossy.decode(base)),
    facts.directory,
  );
  const result = unlinkByName(kind, name);
  if (result < 0) {
    throw systemError(
      _SYSCALLS[kind],
      `unlink ${facts.label} "/${shown}"`,
      -result,
    );
  }
}
