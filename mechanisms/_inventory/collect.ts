/**
 * Deciding which IPC objects are safe to remove: the rules behind
 * `ipckit gc`.
 *
 * An object is removed only when all of these hold:
 * 1. its name starts with the prefix the caller gave (or the caller asked for
 *    every name): nobody holding an object is not proof that nobody wants it,
 *    since a process may open it by name later (a queue used as a mailbox, a
 *    semaphore that outlives its users on purpose), so the caller must say
 *    which names are theirs to collect;
 * 2. no process that could be inspected has it open or mapped;
 * 3. no process that could not be inspected could hold it. A process P that
 *    could not be inspected could hold object O when P runs as O's owner,
 *    or O's mode grants group or other users access, or P and O both
 *    belong to root (the first case again, for uid 0).
 *
 * The one gap, on purpose: a root process that an ordinary user cannot
 * inspect could open any object (root passes every permission check), but
 * it is not assumed to hold that user's private (`0o600`) objects.
 * Assuming it would keep every object of every ordinary user on any
 * machine that runs a root daemon, which is every machine, and make gc
 * useless without root; run gc as root to see root's processes too.
 *
 * The check and the unlink are not atomic: a process that opens the object
 * in between keeps working with it, but its name is gone.
 *
 * @module
 */

import { libc } from "../../ffi/load.ts";
import type { IpcKind } from "../_kernel/objects.ts";
import type { Holder } from "./processes.ts";
import {
  type Inventory,
  type ListedObject,
  takeInventory,
  type Unlisted,
} from "./objects.ts";
import type { UninspectedProcess } from "./uninspected.ts";

/** What to consider for collection. */
export interface CollectSelection {
  /** Only names starting with these bytes; `undefined` means every name. */
  prefix?: Uint8Array;
  kinds: ReadonlySet<IpcKind>;
  onProgress?: (done: number, total: number) => void;
}

/** The verdict on one object. */
export interface Verdict {
  /** The object judged. */
  object: ListedObject;
  /** Whether it may be removed. */
  remove: boolean;
  /** Why, phrased to follow the object's name: "no process has it open or mapped". */
  reason: string;
  /** Live processes that hold it. */
  holders: Holder[];
  /** Processes that could not be inspected and could hold it; the first is named in `reason`. */
  couldHold: UninspectedProcess[];
}

/** Every verdict, and how complete the picture was. */
export interface CollectionPlan {
  /** One verdict per object whose name matched. */
  verdicts: Verdict[];
  /** How many processes were inspected. */
  inspected: number;
  /** The processes that could not be inspected, and why. */
  uninspected: UninspectedProcess[];
  /** What could not be listed (see `Inventory.unlisted`). */
  unlisted: Unlisted[];
}

/**
 * Lists the objects, scans /proc for their holders and decides, by the rules
 * in this module's doc, which ones may be removed. Removes nothing. Callers
 * check the read permissions first.
 */
export async function planCollection(
  selection: CollectSelection,
): Promise<CollectionPlan> {
  const inventory: Inventory = await takeInventory(selection);
  const uid = libc().symbols.getuid();
  const verdicts = inventory.objects.map((object) =>
    judge(object, inventory.uninspected, uid)
  );
  return {
    verdicts,
    inspected: inventory.inspected,
    uninspected: inventory.uninspected,
    unlisted: inventory.unlisted,
  };
}

/** The verdict on one object, for a caller running as `uid`. */
export function judge(
  object: ListedObject,
  uninspected: readonly UninspectedProcess[],
  uid: number,
): Verdict {
  const { holders } = object;
  if (holders.length > 0) {
    const pids = holders.map((holder) => holder.pid).join(", ");
    return {
      object,
      remove: false,
      reason: `held by pid ${pids}`,
      holders,
      couldHold: [],
    };
  }
  const shared = (object.mode & 0o077) !== 0;
  const owners = uninspected.filter((process) => process.uid === object.uid);
  const couldHold = shared
    ? [
      ...owners,
      ...uninspected.filter((process) => process.uid !== object.uid),
    ]
    : owners;
  if (couldHold.length === 0) {
    return {
      object,
      remove: true,
      reason: "no process has it open or mapped",
      holders,
      couldHold,
    };
  }
  const [first] = couldHold;
  const more = couldHold.length > 1
    ? ` (and ${couldHold.length - 1} more such process${
      couldHold.length > 2 ? "es" : ""
    })`
    : "";
  const who = `pid ${first.pid}${first.command ? ` (${first.command})` : ""}`;
  const reason = first.uid === object.uid
    ? `${who} runs as ${_user(first.uid, uid)}${
      first.uid === uid ? "" : ", its owner,"
    } and could not be inspected: ${first.explanation}${more}`
    : `its mode 0${
      object.mode.toString(8)
    } lets other users open it, and ${who}, which runs as ${
      _user(first.uid, uid)
    }, could not be inspected: ${first.explanation}${more}`;
  return { object, remove: false, reason, holders, couldHold };
}

function _user(uid: number, self: number): string {
  return uid === self ? "you" : uid === 0 ? "root" : `uid ${uid}`;
}
