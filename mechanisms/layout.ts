/**
 * Fixed binary record layouts: one definition describes a record both in
 * shared memory or a mapped file (`SharedMemory.openStruct`,
 * `MappedFile.openStruct`) and as a message (`codecs.struct(layout)`).
 *
 * Fields are placed in declaration order at their natural alignment, like a
 * C compiler does on LP64 Linux (`u32` on a multiple of 4, `f64` on a
 * multiple of 8), unless the layout is `packed` or a field names its own
 * `offset`. The record size is rounded up to its largest alignment, so an
 * array of records keeps every field aligned. Multi-byte values use the
 * layout's `endian` (little by default, which is also what x86_64 and aarch64
 * use natively).
 *
 * @example A sensor record
 * ```ts
 * import { array, codecs, layout, utf8 } from "@ipckit/ipckit";
 *
 * const sensor = layout({
 *   id: "u32",
 *   temperature: "f64",
 *   count: "i32",
 *   label: utf8(32),
 *   samples: array("f32", 64),
 * });
 * console.log(sensor.size); // 312
 * const codec = codecs.struct(sensor);
 * const bytes = codec.encode({
 *   id: 7,
 *   temperature: 21.5,
 *   count: 1,
 *   label: "kitchen",
 *   samples: new Float32Array(64),
 * });
 * console.log(codec.decode(bytes).label); // kitchen
 * ```
 *
 * @module
 */

import { checkOptionKeys, optionKeys } from "./_common/checks.ts";

/**
 * The scalar field types: unsigned and signed integers, and IEEE floats.
 *
 * @category Shared memory
 */
export type ScalarType =
  | "u8"
  | "i8"
  | "u16"
  | "i16"
  | "u32"
  | "i32"
  | "u64"
  | "i64"
  | "f32"
  | "f64";

/**
 * The integer scalar types; these fields offer atomic operations.
 *
 * @category Shared memory
 */
export type IntegerType = Exclude<ScalarType, "f32" | "f64">;

/**
 * A UTF-8 string stored in exactly `bytes` bytes, padded with NUL bytes.
 * Made by {@linkcode utf8}.
 *
 * @category Shared memory
 */
export interface Utf8Type {
  /** Always `"utf8"`. */
  readonly kind: "utf8";
  /** The field's size in bytes: the longest string it holds, in UTF-8. */
  readonly bytes: number;
}

/**
 * A fixed number of scalars stored back to back. Made by {@linkcode array}.
 *
 * @category Shared memory
 */
export interface ArrayType<E extends ScalarType = ScalarType> {
  /** Always `"array"`. */
  readonly kind: "array";
  /** The element type. */
  readonly element: E;
  /** The number of elements. */
  readonly length: number;
}

/**
 * Any field type: a scalar name, `utf8(n)` or `array(type, n)`.
 *
 * @category Shared memory
 */
export type FieldType = ScalarType | Utf8Type | ArrayType;

/**
 * A field at an explicit byte offset instead of the next aligned one.
 *
 * @example A field at an offset of its own
 * ```ts
 * import { layout } from "@ipckit/ipckit";
 *
 * const header = layout({ magic: "u32", flags: { type: "u16", offset: 6 } });
 * console.log(header.size); // 8
 * ```
 *
 * @category Shared memory
 */
export interface PlacedField<T extends FieldType = FieldType> {
  /** The field's type. */
  readonly type: T;
  /** Its byte offset from the start of the record. */
  readonly offset: number;
}

/**
 * A field as written in a layout: a type, or a type with an offset.
 *
 * @category Shared memory
 */
export type FieldSpec = FieldType | PlacedField;

/**
 * The fields of a layout, by name.
 *
 * @category Shared memory
 */
export type LayoutSpec = Record<string, FieldSpec>;

/**
 * The typed array that holds elements of scalar type `E`.
 *
 * @category Shared memory
 */
export type TypedArrayOf<E extends ScalarType> = E extends "u8"
  ? Uint8Array<ArrayBuffer>
  : E extends "i8" ? Int8Array<ArrayBuffer>
  : E extends "u16" ? Uint16Array<ArrayBuffer>
  : E extends "i16" ? Int16Array<ArrayBuffer>
  : E extends "u32" ? Uint32Array<ArrayBuffer>
  : E extends "i32" ? Int32Array<ArrayBuffer>
  : E extends "u64" ? BigUint64Array<ArrayBuffer>
  : E extends "i64" ? BigInt64Array<ArrayBuffer>
  : E extends "f32" ? Float32Array<ArrayBuffer>
  : Float64Array<ArrayBuffer>;

/**
 * The type of a field spec without its offset.
 *
 * @category Shared memory
 */
export type FieldTypeOf<F> = F extends PlacedField<infer T> ? T : F;

/**
 * The JavaScript value of a scalar: `bigint` for 64-bit integers, else `number`.
 *
 * @category Shared memory
 */
export type ScalarValue<T extends ScalarType> = T extends "u64" | "i64" ? bigint
  : number;

/**
 * The JavaScript value a field holds.
 *
 * @category Shared memory
 */
export type FieldValue<F> = FieldTypeOf<F> extends infer T
  ? T extends ScalarType ? ScalarValue<T>
  : T extends Utf8Type ? string
  : T extends ArrayType<infer E> ? TypedArrayOf<E>
  : never
  : never;

/**
 * The record a layout describes: `{ id: number; label: string; … }`.
 *
 * @category Shared memory
 */
export type RecordOf<S extends LayoutSpec> = {
  -readonly [K in keyof S]: FieldValue<S[K]>;
};

/**
 * The names of a layout's integer fields.
 *
 * @category Shared memory
 */
export type IntegerFieldsOf<S extends LayoutSpec> = {
  [K in keyof S]: FieldTypeOf<S[K]> extends IntegerType ? K : never;
}[keyof S];

/**
 * Byte order of multi-byte fields.
 *
 * @category Shared memory
 */
export type Endian = "little" | "big";

/**
 * One field as the layout placed it.
 *
 * @example Where a field lives
 * ```ts
 * import { layout } from "@ipckit/ipckit";
 *
 * const [first] = layout({ id: "u32" }).fields;
 * console.log(first.name, first.offset, first.size); // id 0 4
 * ```
 *
 * @category Shared memory
 */
export interface FieldInfo {
  /** The field's name. */
  readonly name: string;
  /** `"scalar"`, `"utf8"` or `"array"`. */
  readonly kind: "scalar" | "utf8" | "array";
  /** The scalar type, or for arrays the element type; `undefined` for utf8. */
  readonly scalar: ScalarType | undefined;
  /** Byte offset from the start of the record. */
  readonly offset: number;
  /** Size in bytes. */
  readonly size: number;
  /** Alignment the field needs (1 in a packed layout). */
  readonly align: number;
  /** Elements of an array, bytes of a utf8 field, 1 for a scalar. */
  readonly length: number;
}

/**
 * A fixed binary record: where each field lives, the total size, the
 * alignment and the byte order. Made by {@linkcode layout}.
 *
 * @example A point of two doubles
 * ```ts
 * import { layout, type Layout } from "@ipckit/ipckit";
 *
 * const point: Layout<{ x: "f64"; y: "f64" }> = layout({ x: "f64", y: "f64" });
 * console.log(point.size, point.align); // 16 8
 * ```
 *
 * @category Shared memory
 */
export interface Layout<S extends LayoutSpec = LayoutSpec> {
  /** The fields as written, which carry the record's type. */
  readonly spec: S;
  /** Every field with its offset, in declaration order. */
  readonly fields: readonly FieldInfo[];
  /** The record's size in bytes, padded to a multiple of `align`. */
  readonly size: number;
  /** The largest field alignment (1 when packed): where a record may start. */
  readonly align: number;
  /** Byte order of multi-byte fields. */
  readonly endian: Endian;
  /** Whether fields were placed without padding. */
  readonly packed: boolean;
}

/**
 * How {@linkcode layout} places fields.
 *
 * @example A packed big-endian header
 * ```ts
 * import { layout, type LayoutOptions } from "@ipckit/ipckit";
 *
 * const options: LayoutOptions = { endian: "big", packed: true };
 * console.log(layout({ tag: "u8", length: "u32" }, options).size); // 5
 * ```
 *
 * @category Shared memory
 */
export interface LayoutOptions {
  /** Byte order of multi-byte fields. Default `"little"`. */
  endian?: Endian;
  /** Place fields without alignment padding. Default `false`. */
  packed?: boolean;
}

// Size in bytes of each scalar type, which is also its natural alignment.
const _SCALAR_SIZES: Readonly<Record<ScalarType, number>> = {
  u8: 1,
  i8: 1,
  u16: 2,
  i16: 2,
  u32: 4,
  i32: 4,
  u64: 8,
  i64: 8,
  f32: 4,
  f64: 8,
};

/**
 * A UTF-8 string field of exactly `bytes` bytes. Shorter strings are padded
 * with NUL bytes; a longer one is a `RangeError` and nothing is written.
 *
 * @example A 32-byte label
 * ```ts
 * import { layout, utf8 } from "@ipckit/ipckit";
 *
 * console.log(layout({ label: utf8(32) }).size); // 32
 * ```
 *
 * @category Shared memory
 */
export function utf8(bytes: number): Utf8Type {
  _checkCount(bytes, "utf8(bytes)");
  return { kind: "utf8", bytes };
}

/**
 * An array field of `length` elements of a scalar type. In shared memory it
 * reads as a live typed array over the mapping (no copy); in a message it
 * decodes to a new typed array.
 *
 * @example 64 samples
 * ```ts
 * import { array, layout } from "@ipckit/ipckit";
 *
 * console.log(layout({ samples: array("f32", 64) }).size); // 256
 * ```
 *
 * @category Shared memory
 */
export function array<const E extends ScalarType>(
  element: E,
  length: number,
): ArrayType<E> {
  if (!Object.hasOwn(_SCALAR_SIZES, element)) {
    throw new TypeError(
      `Cannot make an array field: unknown element type ${
        JSON.stringify(element)
      }; expected one of ${Object.keys(_SCALAR_SIZES).join(", ")}`,
    );
  }
  _checkCount(length, "array(element, length)");
  return { kind: "array", element, length };
}

const _LAYOUT_KEYS = optionKeys<LayoutOptions>({ endian: true, packed: true });

/**
 * Describes a fixed binary record. Checks every field before returning:
 * unknown types are a `TypeError`; misaligned explicit offsets, overlapping
 * fields and invalid sizes are a `RangeError`.
 *
 * Field names must not start with `$` (records use `$atomic`, `$layout`, …)
 * and must not be `__proto__`.
 *
 * @example The same layout in memory and in a message
 * ```ts
 * import { array, codecs, layout, utf8 } from "@ipckit/ipckit";
 *
 * const frame = layout({ seq: "u64", width: "u16", height: "u16", name: utf8(8), histogram: array("u32", 4) });
 * const codec = codecs.struct(frame);
 * const decoded = codec.decode(codec.encode({
 *   seq: 1n, width: 640, height: 480, name: "cam0", histogram: new Uint32Array(4),
 * }));
 * console.log(decoded.width, decoded.seq); // 640 1n
 * ```
 *
 * @category Shared memory
 */
export function layout<const S extends LayoutSpec>(
  spec: S,
  options: LayoutOptions = {},
): Layout<S> {
  checkOptionKeys(options, _LAYOUT_KEYS, "make a layout");
  if (typeof spec !== "object" || spec === null || Array.isArray(spec)) {
    throw new TypeError(
      'Cannot make a layout: expected an object of fields like { id: "u32" }',
    );
  }
  const endian = options.endian ?? "little";
  if (endian !== "little" && endian !== "big") {
    throw new TypeError(
      `Cannot make a layout: endian must be "little" or "big", got ${
        String(endian)
      }`,
    );
  }
  const packed = options.packed ?? false;
  const fields: FieldInfo[] = [];
  let cursor = 0;
  let recordAlign = 1;
  for (const [name, fieldSpec] of Object.entries(spec)) {
    const field = _place(name, fieldSpec, cursor, packed);
    fields.push(field);
    cursor = field.offset + field.size;
    recordAlign = Math.max(recordAlign, field.align);
  }
  if (fields.length === 0) {
    throw new RangeError("Cannot make a layout: it has no fields");
  }
  _checkOverlaps(fields);
  const end = Math.max(...fields.map((field) => field.offset + field.size));
  const size = Math.ceil(end / recordAlign) * recordAlign;
  if (!Number.isSafeInteger(size)) {
    throw new RangeError(
      `Cannot make a layout: its size ${size} is beyond Number.MAX_SAFE_INTEGER`,
    );
  }
  return Object.freeze({
    spec,
    fields: Object.freeze(fields),
    size,
    align: recordAlign,
    endian,
    packed,
  });
}

function _checkCount(value: unknown, what: string): void {
  if (
    typeof value !== "number" || !Number.isSafeInteger(value) || value < 1
  ) {
    throw new RangeError(
      `Cannot make a field with ${what}: expected a positive integer, got ${
        String(value)
      }`,
    );
  }
}

function _place(
  name: string,
  spec: FieldSpec,
  cursor: number,
  packed: boolean,
): FieldInfo {
  if (name.startsWith("$") || name === "__proto__" || name === "") {
    throw new TypeError(
      `Cannot make a layout: field name ${
        JSON.stringify(name)
      } is reserved (names must not be empty, start with "$" or be "__proto__")`,
    );
  }
  const placed = typeof spec === "object" && spec !== null &&
    "type" in spec;
  const type = placed ? (spec as PlacedField).type : spec as FieldType;
  const { kind, scalar, size, naturalAlign, length } = _describe(name, type);
  const align = packed ? 1 : naturalAlign;
  let offset: number;
  if (placed) {
    offset = (spec as PlacedField).offset;
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new RangeError(
        `Cannot make a layout: field "${name}" has offset ${
          String(offset)
        }; expected an integer of 0 or more`,
      );
    }
    if (offset % align !== 0) {
      throw new RangeError(
        `Cannot make a layout: field "${name}" at offset ${offset} is not aligned to ${align} bytes; use { packed: true } for unaligned fields`,
      );
    }
  } else {
    offset = Math.ceil(cursor / align) * align;
  }
  return Object.freeze({ name, kind, scalar, offset, size, align, length });
}

function _describe(name: string, type: unknown): {
  kind: FieldInfo["kind"];
  scalar: ScalarType | undefined;
  size: number;
  naturalAlign: number;
  length: number;
} {
  if (typeof type === "string" && Object.hasOwn(_SCALAR_SIZES, type)) {
    const size = _SCALAR_SIZES[type as ScalarType];
    return {
      kind: "scalar",
      scalar: type as ScalarType,
      size,
      naturalAlign: size,
      length: 1,
    };
  }
  if (typeof type === "object" && type !== null) {
    const described = type as {
      kind?: unknown;
      bytes?: number;
      element?: ScalarType;
      length?: number;
    };
    if (described.kind === "utf8") {
      _checkCount(described.bytes, `utf8() for field "${name}"`);
      return {
        kind: "utf8",
        scalar: undefined,
        size: described.bytes!,
        naturalAlign: 1,
        length: described.bytes!,
      };
    }
    if (
      described.kind === "array" &&
      Object.hasOwn(_SCALAR_SIZES, described.element ?? "")
    ) {
      _checkCount(described.length, `array() for field "${name}"`);
      const elementSize = _SCALAR_SIZES[described.element!];
      return {
        kind: "array",
        scalar: described.element,
        size: elementSize * described.length!,
        naturalAlign: elementSize,
        length: described.length!,
      };
    }
  }
  const shown = typeof type === "string"
    ? JSON.stringify(type)
    : typeof type === "object"
    ? JSON.stringify(type)
    : String(type);
  throw new TypeError(
    `Cannot make a layout: field "${name}" has unknown type ${shown}; expected one of ${
      Object.keys(_SCALAR_SIZES).join(", ")
    }, utf8(n) or array(type, n)`,
  );
}

function _checkOverlaps(fields: readonly FieldInfo[]): void {
  const sorted = [...fields].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const before = sorted[i - 1];
    const field = sorted[i];
    if (field.offset < before.offset + before.size) {
      throw new RangeError(
        `Cannot make a layout: field "${field.name}" (bytes ${field.offset}-${
          field.offset + field.size - 1
        }) overlaps field "${before.name}" (bytes ${before.offset}-${
          before.offset + before.size - 1
        })`,
      );
    }
  }
}

/**
 * Atomic operations on one integer field of a record in shared memory.
 * They are sequentially consistent (see `SharedMemory` for what that means
 * across processes). `add`, `sub` and `exchange` return the old value.
 * 64-bit fields take and return `bigint`.
 *
 * @example Count across processes without a lock
 * ```ts
 * import { layout, SharedMemory } from "@ipckit/ipckit";
 *
 * using record = SharedMemory.openStruct(`/counter-${Deno.pid}`, layout({ count: "u32" }), {
 *   create: true,
 *   unlinkOnClose: true,
 * });
 * const before = record.$atomic.count.add(1);
 * console.log(before, record.count); // 0 1
 * ```
 *
 * @category Shared memory
 */
export interface AtomicField<V extends number | bigint> {
  /** Reads the field atomically. */
  load(): V;
  /** Writes the field atomically; returns the value written. */
  store(value: V): V;
  /** Adds `value` (wrapping at the type's width); returns the old value. */
  add(value: V): V;
  /** Subtracts `value` (wrapping at the type's width); returns the old value. */
  sub(value: V): V;
  /** Writes `value`; returns the old value. */
  exchange(value: V): V;
  /** Writes `replacement` if the field holds `expected`; returns the old value either way. */
  compareExchange(expected: V, replacement: V): V;
}

/**
 * The atomic operations of every integer field of a layout.
 *
 * @category Shared memory
 */
export type AtomicFieldsOf<S extends LayoutSpec> = {
  readonly [K in IntegerFieldsOf<S>]: AtomicField<
    S[K] extends { type: infer T extends ScalarType } ? ScalarValue<T>
      : S[K] extends ScalarType ? ScalarValue<S[K]>
      : never
  >;
};

/**
 * A record bound to memory: each field of the layout is a property that reads
 * and writes the memory directly, plus `$atomic` for integer fields. Made by
 * `region.struct(layout)`.
 *
 * @example A record bound at the start of a region
 * ```ts
 * import { layout, SharedMemory } from "@ipckit/ipckit";
 *
 * using memory = SharedMemory.open(`/sensor-${Deno.pid}`, {
 *   create: true,
 *   size: 4096,
 *   unlinkOnClose: true,
 * });
 * const record = memory.struct(layout({ id: "u32", temperature: "f64" }));
 * record.temperature = 21.5;
 * ```
 *
 * @category Shared memory
 */
export type StructView<S extends LayoutSpec> = RecordOf<S> & {
  /** Atomic operations on the integer fields. */
  readonly $atomic: AtomicFieldsOf<S>;
  /** The record's layout. */
  readonly $layout: Layout<S>;
  /** Where the record starts in its region. */
  readonly $byteOffset: number;
};

/**
 * A record that owns its region: what `SharedMemory.openStruct` and
 * `MappedFile.openStruct` return. `$close()` (or `using`) closes the region;
 * afterwards every field access throws `Deno.errors.BadResource`.
 *
 * @example A record that owns its shared memory
 * ```ts
 * import { layout, SharedMemory } from "@ipckit/ipckit";
 *
 * using status = SharedMemory.openStruct(`/status-${Deno.pid}`, layout({ ready: "u8" }), {
 *   create: true,
 *   unlinkOnClose: true,
 * });
 * status.ready = 1;
 * console.log(status.$region.size); // 1
 * ```
 *
 * @category Shared memory
 */
export type MappedStruct<S extends LayoutSpec, R> = StructView<S> & {
  /** The region the record lives in. */
  readonly $region: R;
  /** Closes the region (idempotent). */
  $close(): void;
  /** Closes the region. */
  [Symbol.dispose](): void;
  /** Closes the region. */
  [Symbol.asyncDispose](): Promise<void>;
};
