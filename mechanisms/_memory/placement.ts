/**
 * Placing objects inside a shared memory region: the one path by which an
 * object that lives in a region's bytes (`Semaphore.inMemory`,
 * `Mutex.inMemory`) reaches the region's mapping, and by which the region
 * closes it first when it closes itself.
 *
 * A region that can hold objects implements one method, keyed by the
 * {@linkcode PLACEMENT} symbol, which hands over a {@linkcode PlacementHost}:
 * its mapping, its name for messages, and a way to be closed with it. The
 * symbol is exported only from this private folder, so the public API shows
 * nothing new, while the connection stays an ordinary, typed call that can
 * be followed in the source (no lookup table on the side). `SharedMemory`
 * and `MappedFile` implement it; records bound in them lead back to it too.
 *
 * {@linkcode placeIn} checks everything a placement needs, before any system
 * call, the same way for every kind of object: a region, open, mapped
 * shared (a read-only handle maps a private copy that no other process
 * sees), and room for the object at an offset aligned for it.
 *
 * Layout records bound with `SharedMemory.struct()` do not need this path:
 * the region binds them itself. Objects that must be initialized exactly
 * once across processes pair a placement with `initOnce()` (`init_once.ts`).
 *
 * @module
 */

import type { Closable } from "../_common/lifecycle.ts";
import { closedError } from "../_common/system_error.ts";
import type { Mapping } from "./mapping.ts";

/** The key of the method by which a region hands over its {@linkcode PlacementHost}. */
export const PLACEMENT: unique symbol = Symbol("ipckit placement host");

/** What a region gives an object placed inside it. */
export interface PlacementHost {
  /** The region's mapping; placed objects read and write it. */
  readonly mapping: Mapping;
  /** The region, for messages: `shared memory "/state"`. */
  readonly what: string;
  /**
   * Makes `child` close when the region closes, before the memory goes.
   * Returns the function that forgets it (the child calls it when it
   * closes on its own).
   */
  own(child: Closable): () => void;
}

/** A region objects can be placed in. */
export interface PlacementRegion {
  /** Hands over the region's mapping and lifecycle. */
  [PLACEMENT](): PlacementHost;
}

/** Where an object was placed: its region, and its offset in the region. */
export interface Placement extends PlacementHost {
  /** The object's first byte in the mapping. */
  readonly byteOffset: number;
}

/** What kind of object is placed, to check its room and alignment. */
export interface PlacementRequest {
  /** Bytes the object takes. */
  size: number;
  /** The alignment its offset needs. */
  align: number;
  /** Names its type in messages: `sem_t`, `a mutex`. */
  typeName: string;
}

/**
 * Checks that an object of `request`'s size fits at `byteOffset` of
 * `region`, aligned, and that the region is open and mapped shared, before
 * any system call.
 *
 * @throws {TypeError} when `region` is not a region objects can be placed
 * in, or is open read-only
 * @throws {RangeError} for an offset that is not an integer of 0 or more,
 * is unaligned, or leaves no room
 * @throws {Deno.errors.BadResource} when the region is closed
 */
export function placeIn(
  region: unknown,
  byteOffset: unknown,
  request: PlacementRequest,
  action: string,
): Placement {
  const hand = (region as Partial<PlacementRegion> | null)?.[PLACEMENT];
  if (typeof hand !== "function") {
    throw new TypeError(`Cannot ${action}: expected a SharedMemory`);
  }
  const host = hand.call(region);
  const { mapping, what } = host;
  if (mapping.closed) throw closedError(what);
  if (!mapping.shared) {
    throw new TypeError(
      `Cannot ${action}: ${what} is open readOnly (a private copy), so other processes would never see ${request.typeName} in it`,
    );
  }
  if (
    typeof byteOffset !== "number" || !Number.isSafeInteger(byteOffset) ||
    byteOffset < 0
  ) {
    throw new RangeError(
      `Cannot ${action}: byteOffset must be an integer of 0 or more, got ${
        String(byteOffset)
      }`,
    );
  }
  if (byteOffset % request.align !== 0) {
    throw new RangeError(
      `Cannot ${action}: byteOffset ${byteOffset} is not a multiple of ${request.align}, the alignment of ${request.typeName}`,
    );
  }
  if (byteOffset + request.size > mapping.size) {
    throw new RangeError(
      `Cannot ${action}: ${request.typeName} takes ${request.size} bytes, which do not fit at byteOffset ${byteOffset} of the ${mapping.size} bytes of ${what}`,
    );
  }
  return { mapping, what, own: host.own, byteOffset };
}
