/**
 * Deciding which IPC objects are safe to remove: the rules behind
 * `ipckit gc`.
 *
 * An object is removed only when all of these hold:
 * 1. its name starts with the prefix the caller gave (or the caller asked for
 *    all objects): nobody holding an object is not proof that nobody wants it,
 *    since a process may open it by name later (a queue used as a mailbox, a
 *    semaphore that outlives its users on purpose), so the caller must say
 *    which names are theirs to collect;
 * 2. no process this user can inspect has it open or mapped;
 * 3. if some processes could not be inspected, it belongs to this user and
 *    its mode grants nothing to group or others, so (root aside) only this
 *    user's processes, which were all inspected, could have opened it.
 *
 * The check and the unlink are not atomic: a process that opens the object
 * in between keeps working with it, but its name is gone.
 *
 * @module
 */

import { libc } from "../../ffi/load.ts";
import { fileKey, type Holder, scanHolders } from "./holders.ts";
import {
  type IpcKind,
  type IpcObject,
  listObjects,
  type Unlisted,
} from "./objects.ts";

/** What to consider for collection. */
export interface CollectOptions {
  /** Only names starting with this (`/ipckit-`); `undefined` means every name. */
  prefix?: string;
  kinds: Iterable<IpcKind>;
}

/** The verdict on one object. */
export interface Verdict {
  object: IpcObject;
  remove: boolean;
  /** Why, phrased to follow the object's name: "no process has it open or mapped". */
  reason: string;
  holders: Holder[];
}

/** Every verdict, and how complete the picture was. */
export interface CollectionPlan {
  verdicts: Verdict[];
  inspected: number;
  uninspectable: number[];
  unlisted: Unlisted[];
}

/**
 * Lists the objects, scans /proc for their holders and decides, by the rules
 * in this module's doc, which ones may be removed. Removes nothing.
 *
 * @throws {Deno.errors.NotCapable} without `--allow-read` on the IPC directories or /proc
 */
export function planCollection(options: CollectOptions): CollectionPlan {
  const { objects, unlisted } = listObjects(options.kinds);
  const candidates = objects.filter((object) =>
    options.prefix === undefined || object.name.startsWith(options.prefix)
  );
  const scan = scanHolders(
    new Set(candidates.map((object) => fileKey(object.dev, object.ino))),
  );
  const uid = libc().symbols.getuid();
  const unseen = scan.uninspectable.length;
  const verdicts = candidates.map((object): Verdict => {
    const holders = scan.holders.get(fileKey(object.dev, object.ino)) ?? [];
    if (holders.length > 0) {
      const pids = holders.map((holder) => holder.pid).join(", ");
      return {
        object,
        remove: false,
        reason: `held by pid ${pids}`,
        holders,
      };
    }
    if (unseen > 0 && object.uid !== uid) {
      return {
        object,
        remove: false,
        reason:
          `it belongs to uid ${object.uid} and ${unseen} processes could not be inspected`,
        holders,
      };
    }
    if (unseen > 0 && (object.mode & 0o077) !== 0) {
      return {
        object,
        remove: false,
        reason: `its mode 0${
          object.mode.toString(8)
        } lets other users open it and ${unseen} processes could not be inspected`,
        holders,
      };
    }
    return {
      object,
      remove: true,
      reason: "no process has it open or mapped",
      holders,
    };
  });
  return {
    verdicts,
    inspected: scan.inspected,
    uninspectable: scan.uninspectable,
    unlisted,
  };
}
