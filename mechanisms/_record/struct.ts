/**
 * Reading and writing layout records: as messages (`codecs.struct`) and in
 * place over a mapping (`openStruct`, `region.struct`). Both paths check
 * values the same way, so a record that encodes also stores, and vice versa.
 *
 * @module
 */

import { DecodeError } from "../errors.ts";
import type {
  AtomicField,
  AtomicFieldsOf,
  FieldInfo,
  Layout,
  LayoutSpec,
  RecordOf,
  ScalarType,
  StructView,
} from "../layout.ts";
import { closedError } from "../_common/system_error.ts";

/** Whether this machine stores multi-byte values little-end first. */
export const NATIVE_LITTLE_ENDIAN =
  new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const _encoder = new TextEncoder();
const _decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

const _INTEGER_RANGES: Partial<Record<ScalarType, [number, number]>> = {
  u8: [0, 0xff],
  i8: [-0x80, 0x7f],
  u16: [0, 0xffff],
  i16: [-0x8000, 0x7fff],
  u32: [0, 0xffff_ffff],
  i32: [-0x8000_0000, 0x7fff_ffff],
};

const _BIGINT_RANGES: Partial<Record<ScalarType, [bigint, bigint]>> = {
  u64: [0n, 2n ** 64n - 1n],
  i64: [-(2n ** 63n), 2n ** 63n - 1n],
};

type _TypedArrayConstructor = {
  new (buffer: ArrayBuffer, byteOffset: number, length: number): ArrayLike<
    number | bigint
  >;
  new (length: number): ArrayLike<number | bigint>;
  readonly BYTES_PER_ELEMENT: number;
};

/** The typed array class for each scalar type. */
export const TYPED_ARRAYS: Readonly<
  Record<ScalarType, _TypedArrayConstructor>
> = {
  u8: Uint8Array,
  i8: Int8Array,
  u16: Uint16Array,
  i16: Int16Array,
  u32: Uint32Array,
  i32: Int32Array,
  u64: BigUint64Array,
  i64: BigInt64Array,
  f32: Float32Array,
  f64: Float64Array,
} as unknown as Record<ScalarType, _TypedArrayConstructor>;

/**
 * Checks a value for a scalar field and returns it, or throws: `TypeError`
 * for the wrong JavaScript type, `RangeError` for a value the field cannot
 * hold (integers are never silently wrapped or truncated).
 */
export function checkScalar(
  type: ScalarType,
  value: unknown,
  where: string,
): number | bigint {
  const bigRange = _BIGINT_RANGES[type];
  if (bigRange) {
    if (typeof value !== "bigint") {
      throw new TypeError(
        `Cannot write ${where}: a ${type} field takes a bigint, got ${typeof value}`,
      );
    }
    if (value < bigRange[0] || value > bigRange[1]) {
      throw new RangeError(
        `Cannot write ${where}: ${value} is outside the ${type} range ${
          bigRange[0]
        }..${bigRange[1]}`,
      );
    }
    return value;
  }
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot write ${where}: a ${type} field takes a number, got ${typeof value}`,
    );
  }
  const range = _INTEGER_RANGES[type];
  if (
    range && (!Number.isInteger(value) || value < range[0] || value > range[1])
  ) {
    throw new RangeError(
      `Cannot write ${where}: ${value} is not an integer in the ${type} range ${
        range[0]
      }..${range[1]}`,
    );
  }
  return value;
}

/** Reads one scalar through a DataView in the layout's byte order. */
function _readScalar(
  view: DataView,
  type: ScalarType,
  offset: number,
  little: boolean,
): number | bigint {
  switch (type) {
    case "u8":
      return view.getUint8(offset);
    case "i8":
      return view.getInt8(offset);
    case "u16":
      return view.getUint16(offset, little);
    case "i16":
      return view.getInt16(offset, little);
    case "u32":
      return view.getUint32(offset, little);
    case "i32":
      return view.getInt32(offset, little);
    case "u64":
      return view.getBigUint64(offset, little);
    case "i64":
      return view.getBigInt64(offset, little);
    case "f32":
      return view.getFloat32(offset, little);
    case "f64":
      return view.getFloat64(offset, little);
  }
}

/** Writes one already-checked scalar through a DataView. */
function _writeScalar(
  view: DataView,
  type: ScalarType,
  offset: number,
  value: number | bigint,
  little: boolean,
): void {
  switch (type) {
    case "u8":
      return view.setUint8(offset, value as number);
    case "i8":
      return view.setInt8(offset, value as number);
    case "u16":
      return view.setUint16(offset, value as number, little);
    case "i16":
      return view.setInt16(offset, value as number, little);
    case "u32":
      return view.setUint32(offset, value as number, little);
    case "i32":
      return view.setInt32(offset, value as number, little);
    case "u64":
      return view.setBigUint64(offset, value as bigint, little);
    case "i64":
      return view.setBigInt64(offset, value as bigint, little);
    case "f32":
      return view.setFloat32(offset, value as number, little);
    case "f64":
      return view.setFloat64(offset, value as number, little);
  }
}

/** Encodes a string for a utf8(n) field, or throws before anything is written. */
function _utf8Bytes(
  field: FieldInfo,
  value: unknown,
  where: string,
): Uint8Array {
  if (typeof value !== "string") {
    throw new TypeError(
      `Cannot write ${where}: a utf8 field takes a string, got ${typeof value}`,
    );
  }
  if (value.includes("\0")) {
    throw new TypeError(
      `Cannot write ${where}: the string contains a NUL character, which ends a utf8 field`,
    );
  }
  const bytes = _encoder.encode(value);
  if (bytes.byteLength > field.size) {
    throw new RangeError(
      `Cannot write ${where}: the string is ${bytes.byteLength} bytes of UTF-8, the field holds ${field.size}`,
    );
  }
  return bytes;
}

/** Checks an array value's length and elements; returns it as an array-like. */
function _checkArray(
  field: FieldInfo,
  value: unknown,
  where: string,
): ArrayLike<number | bigint> {
  if (
    typeof value !== "object" || value === null ||
    typeof (value as ArrayLike<unknown>).length !== "number"
  ) {
    throw new TypeError(
      `Cannot write ${where}: an array field takes an array or typed array, got ${typeof value}`,
    );
  }
  const items = value as ArrayLike<unknown>;
  if (items.length !== field.length) {
    throw new RangeError(
      `Cannot write ${where}: it holds exactly ${field.length} elements, got ${items.length}`,
    );
  }
  // A typed array of the field's own type needs no per-element check.
  if (value instanceof TYPED_ARRAYS[field.scalar!]) {
    return value as ArrayLike<number | bigint>;
  }
  for (let i = 0; i < items.length; i++) {
    checkScalar(field.scalar!, items[i], `${where}[${i}]`);
  }
  return items as ArrayLike<number | bigint>;
}

function _decodeUtf8(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return _decoder.decode(end === -1 ? bytes : bytes.subarray(0, end));
}

/** Writes every field of `value` at `base` in `view`, checking all of them first. */
function _writeRecord(
  layout: Layout,
  view: DataView,
  base: number,
  value: Record<string, unknown>,
  what: string,
): void {
  if (typeof value !== "object" || value === null) {
    throw new TypeError(
      `Cannot encode ${what}: expected an object, got ${
        value === null ? "null" : typeof value
      }`,
    );
  }
  const little = layout.endian === "little";
  // Check everything before writing anything: a bad field leaves no half record.
  const checked = layout.fields.map((field) => {
    const where = `field "${field.name}" of ${what}`;
    if (!(field.name in value)) {
      throw new TypeError(
        `Cannot encode ${what}: field "${field.name}" is missing`,
      );
    }
    const raw = value[field.name];
    if (field.kind === "scalar") return checkScalar(field.scalar!, raw, where);
    if (field.kind === "utf8") return _utf8Bytes(field, raw, where);
    return _checkArray(field, raw, where);
  });
  layout.fields.forEach((field, i) => {
    const offset = base + field.offset;
    if (field.kind === "scalar") {
      _writeScalar(view, field.scalar!, offset, checked[i] as number, little);
    } else if (field.kind === "utf8") {
      const bytes = checked[i] as Uint8Array;
      const target = new Uint8Array(
        view.buffer,
        view.byteOffset + offset,
        field.size,
      );
      target.set(bytes);
      target.fill(0, bytes.byteLength);
    } else {
      const items = checked[i] as ArrayLike<number | bigint>;
      const step = _elementSize(field);
      if (
        (step === 1 || little === NATIVE_LITTLE_ENDIAN) &&
        items instanceof TYPED_ARRAYS[field.scalar!]
      ) {
        // Already the field's bytes in this byte order: one copy, not a
        // DataView call per element (a 4 KiB array: ~50 us before).
        const typed = items as unknown as Uint8Array;
        new Uint8Array(view.buffer, view.byteOffset + offset, field.size).set(
          new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength),
        );
        return;
      }
      for (let j = 0; j < items.length; j++) {
        _writeScalar(view, field.scalar!, offset + j * step, items[j], little);
      }
    }
  });
}

function _elementSize(field: FieldInfo): number {
  return field.size / field.length;
}

/** Reads a whole record into a plain object; arrays become new typed arrays. */
function _readRecord(
  layout: Layout,
  view: DataView,
  base: number,
): Record<string, unknown> {
  const little = layout.endian === "little";
  const record: Record<string, unknown> = {};
  for (const field of layout.fields) {
    const offset = base + field.offset;
    if (field.kind === "scalar") {
      record[field.name] = _readScalar(view, field.scalar!, offset, little);
    } else if (field.kind === "utf8") {
      record[field.name] = _decodeUtf8(
        new Uint8Array(view.buffer, view.byteOffset + offset, field.size),
      );
    } else {
      const items = new TYPED_ARRAYS[field.scalar!](
        field.length,
      ) as unknown as {
        [i: number]: number | bigint;
      };
      const step = _elementSize(field);
      if (step === 1 || little === NATIVE_LITTLE_ENDIAN) {
        new Uint8Array((items as unknown as Uint8Array).buffer).set(
          new Uint8Array(view.buffer, view.byteOffset + offset, field.size),
        );
      } else {
        for (let j = 0; j < field.length; j++) {
          items[j] = _readScalar(
            view,
            field.scalar!,
            offset + j * step,
            little,
          );
        }
      }
      record[field.name] = items;
    }
  }
  return record;
}

/**
 * What {@linkcode structCodec} returns: exactly the shape of a `Codec`
 * (codec.ts), spelled out here so that this file does not import codec.ts,
 * which imports it.
 */
export interface RecordCodec<T> {
  /** `"struct"`, for messages. */
  readonly name: string;
  /** The layout, as {@linkcode describeLayout} writes it. */
  readonly format: string;
  /** Encodes a record into exactly `layout.size` bytes. */
  encode(value: T): Uint8Array;
  /** Decodes `layout.size` bytes into a record. */
  decode(bytes: Uint8Array): T;
  /** Encodes a record into the first `layout.size` bytes of `target`; -1 when they do not fit. */
  encodeInto(value: T, target: Uint8Array): number;
}

/**
 * A layout in one line of text that differs whenever the bytes would be
 * read differently: every field's name, type, length and offset, the
 * size and the byte order, e.g.
 * `id:u32@0,temperature:f64@8,label:utf8[32]@16;size=48;little`.
 * Channels record it (or its hash) to tell a peer with another layout.
 */
export function describeLayout(layout: Layout<LayoutSpec>): string {
  const fields = layout.fields.map((field) => {
    const type = field.kind === "scalar"
      ? field.scalar
      : field.kind === "utf8"
      ? `utf8[${field.length}]`
      : `${field.scalar}[${field.length}]`;
    return `${field.name}:${type}@${field.offset}`;
  });
  return `${fields.join(",")};size=${layout.size};${layout.endian}`;
}

/** The codec behind `codecs.struct(layout)`. */
export function structCodec<S extends LayoutSpec>(
  layout: Layout<S>,
): RecordCodec<RecordOf<S>> {
  if (
    typeof layout !== "object" || layout === null ||
    !Array.isArray(layout.fields) || typeof layout.size !== "number"
  ) {
    throw new TypeError(
      "Cannot make a struct codec: expected a layout made by layout({ … })",
    );
  }
  const what = `a struct of ${layout.size} bytes`;
  return {
    name: "struct",
    format: describeLayout(layout),
    encode: (value: RecordOf<S>): Uint8Array => {
      const bytes = new Uint8Array(layout.size);
      _writeRecord(
        layout as Layout,
        new DataView(bytes.buffer),
        0,
        value as Record<string, unknown>,
        what,
      );
      return bytes;
    },
    encodeInto: (value: RecordOf<S>, target: Uint8Array): number => {
      if (target.byteLength < layout.size) return -1;
      // encode() starts from zeros; so must this (padding between fields).
      target.fill(0, 0, layout.size);
      _writeRecord(
        layout as Layout,
        new DataView(target.buffer, target.byteOffset, layout.size),
        0,
        value as Record<string, unknown>,
        what,
      );
      return layout.size;
    },
    decode: (bytes: Uint8Array): RecordOf<S> => {
      if (bytes.byteLength !== layout.size) {
        throw new DecodeError(
          `Cannot decode a struct message: it is ${bytes.byteLength} bytes, the layout is ${layout.size}`,
          bytes,
        );
      }
      try {
        const view = new DataView(
          bytes.buffer as ArrayBuffer,
          bytes.byteOffset,
          bytes.byteLength,
        );
        return _readRecord(layout as Layout, view, 0) as RecordOf<S>;
      } catch (error) {
        throw new DecodeError(
          `Cannot decode a struct message of ${bytes.byteLength} bytes: ${
            (error as Error).message
          }`,
          bytes,
          { cause: error },
        );
      }
    },
  };
}

/** How a record in memory was bound. */
export interface BindOptions {
  /** Setters and atomic writes throw `TypeError`. */
  readOnly: boolean;
  /** The region, for messages: `shared memory "/sensor"`. */
  what: string;
  /** More members for the record (an owning record adds `$close`). */
  extra?: PropertyDescriptorMap;
}

/**
 * Binds a record to `buffer` at `byteOffset`: each field becomes an accessor
 * that reads or writes the memory directly. Aligned native-endian scalars go
 * through one-element typed arrays (the fast path, and what Atomics needs);
 * other scalars go through a DataView in the layout's byte order.
 *
 * When the buffer is detached (its region was closed or resized), every
 * accessor throws `BadResource` instead of returning `undefined`.
 */
export function bindStruct<S extends LayoutSpec>(
  layout: Layout<S>,
  buffer: ArrayBuffer,
  byteOffset: number,
  options: BindOptions,
): StructView<S> {
  const { readOnly, what } = options;
  const view = new DataView(buffer, byteOffset, layout.size);
  const little = layout.endian === "little";
  const native = little === NATIVE_LITTLE_ENDIAN;
  const live = () => {
    if (buffer.detached) throw closedError(what);
  };
  const refuseWrite = (name: string) => {
    if (readOnly) {
      throw new TypeError(
        `Cannot write field "${name}" of ${what}: it was opened read-only`,
      );
    }
  };
  const record: Record<string, unknown> = {};
  const atomics: Record<string, AtomicField<number | bigint>> = {};
  for (const field of layout.fields) {
    const where = `field "${field.name}" of ${what}`;
    const offset = byteOffset + field.offset;
    let get: () => unknown;
    let set: (value: unknown) => void;
    if (field.kind === "scalar") {
      const type = field.scalar!;
      const aligned = offset % field.size === 0;
      if ((native || field.size === 1) && aligned) {
        const cell = new TYPED_ARRAYS[type](buffer, offset, 1) as unknown as {
          [i: number]: number | bigint;
        };
        get = () => {
          live();
          return cell[0];
        };
        set = (value) => {
          live();
          refuseWrite(field.name);
          cell[0] = checkScalar(type, value, where);
        };
        if (type !== "f32" && type !== "f64") {
          atomics[field.name] = _atomicField(
            cell as unknown as Int32Array,
            type,
            where,
            live,
            () => refuseWrite(field.name),
          );
        }
      } else {
        get = () => {
          live();
          return _readScalar(view, type, field.offset, little);
        };
        set = (value) => {
          live();
          refuseWrite(field.name);
          _writeScalar(
            view,
            type,
            field.offset,
            checkScalar(type, value, where),
            little,
          );
        };
        if (type !== "f32" && type !== "f64") {
          atomics[field.name] = _unavailableAtomic(
            where,
            native
              ? "it is not aligned to its size"
              : `the layout is ${layout.endian}-endian and this machine is not`,
          );
        }
      }
    } else if (field.kind === "utf8") {
      const bytes = new Uint8Array(buffer, offset, field.size);
      get = () => {
        live();
        return _decodeUtf8(bytes);
      };
      set = (value) => {
        live();
        refuseWrite(field.name);
        const encoded = _utf8Bytes(field, value, where);
        bytes.set(encoded);
        bytes.fill(0, encoded.byteLength);
      };
    } else {
      const elementSize = _elementSize(field);
      if ((!native && elementSize > 1) || offset % elementSize !== 0) {
        throw new TypeError(
          `Cannot bind ${where} in place: ${
            native
              ? "it is not aligned to its element size"
              : `its ${layout.endian}-endian elements`
          } cannot be a typed array over the memory; use codecs.struct to copy it`,
        );
      }
      const items = new TYPED_ARRAYS[field.scalar!](
        buffer,
        offset,
        field.length,
      ) as unknown as { set(values: ArrayLike<number | bigint>): void };
      get = () => {
        live();
        return items;
      };
      set = (value) => {
        live();
        refuseWrite(field.name);
        items.set(_checkArray(field, value, where));
      };
    }
    Object.defineProperty(record, field.name, { get, set, enumerable: true });
  }
  Object.defineProperties(record, {
    $atomic: { value: Object.freeze(atomics) as AtomicFieldsOf<S> },
    $layout: { value: layout },
    $byteOffset: { value: byteOffset },
    ...options.extra,
  });
  return Object.seal(record) as StructView<S>;
}

function _atomicField(
  cell: Int32Array,
  type: ScalarType,
  where: string,
  live: () => void,
  refuseWrite: () => void,
): AtomicField<number | bigint> {
  // Atomics' signatures are per array type; the cell is the field's own type.
  const A = Atomics as unknown as {
    load(a: unknown, i: number): number | bigint;
    store(a: unknown, i: number, v: unknown): number | bigint;
    add(a: unknown, i: number, v: unknown): number | bigint;
    sub(a: unknown, i: number, v: unknown): number | bigint;
    exchange(a: unknown, i: number, v: unknown): number | bigint;
    compareExchange(
      a: unknown,
      i: number,
      e: unknown,
      r: unknown,
    ): number | bigint;
  };
  const operand = (value: unknown) => {
    if (
      typeof value === "bigint"
        ? type.endsWith("64")
        : typeof value === "number" && !type.endsWith("64") &&
          Number.isInteger(value)
    ) {
      return value;
    }
    throw new TypeError(
      `Cannot update ${where} atomically: expected ${
        type.endsWith("64") ? "a bigint" : "an integer number"
      }, got ${String(value)}`,
    );
  };
  const write = () => {
    live();
    refuseWrite();
  };
  return Object.freeze({
    load: () => {
      live();
      return A.load(cell, 0);
    },
    store: (value: number | bigint) => {
      write();
      return A.store(cell, 0, checkScalar(type, value, where));
    },
    add: (value: number | bigint) => {
      write();
      return A.add(cell, 0, operand(value));
    },
    sub: (value: number | bigint) => {
      write();
      return A.sub(cell, 0, operand(value));
    },
    exchange: (value: number | bigint) => {
      write();
      return A.exchange(cell, 0, checkScalar(type, value, where));
    },
    compareExchange: (
      expected: number | bigint,
      replacement: number | bigint,
    ) => {
      write();
      return A.compareExchange(
        cell,
        0,
        operand(expected),
        checkScalar(type, replacement, where),
      );
    },
  });
}

function _unavailableAtomic(
  where: string,
  why: string,
): AtomicField<number | bigint> {
  const refuse = (): never => {
    throw new TypeError(`Cannot use ${where} atomically: ${why}`);
  };
  return Object.freeze({
    load: refuse,
    store: refuse,
    add: refuse,
    sub: refuse,
    exchange: refuse,
    compareExchange: refuse,
  });
}
