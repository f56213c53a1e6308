/**
 * What `SharedMemory` and `MappedFile` share above the mapping itself:
 * binding layout records into a region, and records that own their region.
 *
 * @module
 */

import type {
  Layout,
  LayoutSpec,
  MappedStruct,
  StructView,
} from "../layout.ts";
import type { Mapping } from "./mapping.ts";
import { PLACEMENT, type PlacementHost } from "./placement.ts";
import { bindStruct } from "../_record/struct.ts";

/**
 * Checks, before anything is opened, that `layout` is one a record can be
 * sized from; `action` names the open: `open shared memory "/x"`.
 */
export function checkRecordLayout(layout: unknown, action: string): void {
  if (typeof (layout as Layout<LayoutSpec> | undefined)?.size !== "number") {
    throw new TypeError(
      `Cannot ${action} as a record: expected a layout made by layout({ … })`,
    );
  }
}

/** Binds `layout` at `byteOffset` of `mapping`, after checking both. */
export function structIn<S extends LayoutSpec>(
  mapping: Mapping,
  layout: Layout<S>,
  byteOffset: unknown,
  readOnly: boolean,
  what: string,
  extra?: PropertyDescriptorMap,
  host?: () => PlacementHost,
): StructView<S> {
  if (
    typeof layout !== "object" || layout === null ||
    !Array.isArray(layout.fields) || typeof layout.size !== "number"
  ) {
    throw new TypeError(
      `Cannot bind a record in ${what}: expected a layout made by layout({ … })`,
    );
  }
  const offset = byteOffset ?? 0;
  if (
    typeof offset !== "number" || !Number.isSafeInteger(offset) || offset < 0
  ) {
    throw new RangeError(
      `Cannot bind a record in ${what}: byteOffset must be an integer of 0 or more, got ${
        String(offset)
      }`,
    );
  }
  if (offset % layout.align !== 0) {
    throw new RangeError(
      `Cannot bind a record in ${what}: byteOffset ${offset} is not a multiple of the layout's alignment ${layout.align}`,
    );
  }
  if (offset + layout.size > mapping.size) {
    throw new RangeError(
      `Cannot bind a record in ${what}: ${layout.size} bytes at byteOffset ${offset} do not fit in its ${mapping.size} bytes`,
    );
  }
  // A record leads back to its region (hidden, as on the region itself),
  // so a Futex can be made on one of its fields and close with the region.
  const linked: PropertyDescriptorMap = host
    ? { ...extra, [PLACEMENT]: { value: host } }
    : { ...extra };
  return bindStruct(layout, mapping.buffer, offset, {
    readOnly,
    what,
    extra: linked,
  });
}

/**
 * Binds a record over a whole freshly opened region that the record owns:
 * closing the record closes the region. If binding fails the region is
 * closed before the error is thrown.
 */
export function ownedStruct<S extends LayoutSpec, R extends Disposable>(
  region: R,
  bind: (extra: PropertyDescriptorMap) => StructView<S>,
): MappedStruct<S, R> {
  const close = () => region[Symbol.dispose]();
  const closeAsync = () => {
    try {
      close();
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  };
  try {
    return bind({
      $region: { value: region },
      $close: { value: close },
      [Symbol.dispose]: { value: close },
      [Symbol.asyncDispose]: { value: closeAsync },
    }) as MappedStruct<S, R>;
  } catch (error) {
    close();
    throw error;
  }
}
