/**
 * Codecs turn values into bytes and back, so every mechanism can carry typed
 * messages. Any codec can check what it decodes against a schema that
 * implements the Standard Schema interface (Zod, Valibot, ArkType, …), so data
 * from another process is validated at the boundary instead of trusted.
 *
 * @example A JSON codec with a hand-written Standard Schema validator
 * ```ts
 * import { codecs, type StandardSchemaV1 } from "@ipckit/ipckit";
 *
 * const job: StandardSchemaV1<unknown, { id: number }> = {
 *   "~standard": {
 *     version: 1,
 *     vendor: "example",
 *     validate: (value) =>
 *       typeof (value as { id?: unknown })?.id === "number"
 *         ? { value: value as { id: number } }
 *         : { issues: [{ message: "id must be a number" }] },
 *   },
 * };
 * const codec = codecs.json({ schema: job });
 * const bytes = codec.encode({ id: 7 });
 * console.log(codec.decode(bytes).id); // 7
 * ```
 *
 * @module
 */

import { deserialize, serialize } from "node:v8";
import { DecodeError } from "./errors.ts";
import type { Layout, LayoutSpec, RecordOf } from "./layout.ts";
import { structCodec } from "./_record/struct.ts";
import { checkOptionKeys, optionKeys } from "./_common/checks.ts";

/**
 * Turns values of type `T` into bytes and back.
 *
 * `decode` may be handed a view into a buffer that the caller reuses for the
 * next message, so it must not keep a reference to `bytes`.
 *
 * @example A codec for unsigned 32-bit counters
 * ```ts
 * import type { Codec } from "@ipckit/ipckit";
 *
 * const u32: Codec<number> = {
 *   name: "u32",
 *   encode: (value) => {
 *     const bytes = new Uint8Array(4);
 *     new DataView(bytes.buffer).setUint32(0, value, true);
 *     return bytes;
 *   },
 *   decode: (bytes) =>
 *     new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true),
 * };
 * console.log(u32.decode(u32.encode(42))); // 42
 * ```
 *
 * @category Typed messages
 */
export interface Codec<T> {
  /** A short name used in error messages, e.g. `"json"`. */
  readonly name: string;
  /**
   * What else identifies the bytes, beyond `name`: for `codecs.struct`
   * the layout's fields, offsets, size and byte order. Shared-memory
   * channels record `name` and `format` and refuse a peer whose codec
   * differs; set it on your own codec to version its wire format
   * (`"frame v2"`). Default: none.
   */
  readonly format?: string;
  /** Encodes a value; throws `TypeError` or `RangeError` for values it cannot represent. */
  encode(value: T): Uint8Array;
  /** Decodes bytes; throws {@linkcode DecodeError} with the raw bytes when it cannot. */
  decode(bytes: Uint8Array): T;
  /**
   * Optional: encodes `value` straight into `target` and returns how many
   * bytes it wrote, or -1 when they do not fit (then `target` holds
   * nothing of value). Shared-memory channels use it to encode into the
   * ring itself, with no buffer in between. It must write exactly what
   * `encode` returns. Throws like `encode` for values it cannot represent.
   */
  encodeInto?(value: T, target: Uint8Array): number;
}

/**
 * One problem a schema found, as the Standard Schema specification describes it.
 *
 * @category Typed messages
 */
export interface StandardSchemaIssue {
  /** What is wrong. */
  readonly message: string;
  /** Where in the value, as keys or `{ key }` segments. */
  readonly path?: readonly (PropertyKey | { readonly key: PropertyKey })[];
}

/**
 * The result of a Standard Schema validation: a value, or issues.
 *
 * @category Typed messages
 */
export type StandardSchemaResult<Output> =
  | { readonly value: Output; readonly issues?: undefined }
  | { readonly issues: readonly StandardSchemaIssue[] };

/**
 * The Standard Schema v1 interface (standardschema.dev), which validation
 * libraries implement under the `~standard` key.
 *
 * @example A schema written by hand
 * ```ts
 * import type { StandardSchemaV1 } from "@ipckit/ipckit";
 *
 * const positive: StandardSchemaV1<unknown, number> = {
 *   "~standard": {
 *     version: 1,
 *     vendor: "example",
 *     validate: (value) =>
 *       typeof value === "number" && value > 0
 *         ? { value }
 *         : { issues: [{ message: "expected a positive number" }] },
 *   },
 * };
 * ```
 *
 * @category Typed messages
 */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  /** The Standard Schema properties. */
  readonly "~standard": {
    /** The version of the specification: 1. */
    readonly version: 1;
    /** The library that made the schema. */
    readonly vendor: string;
    /** Validates an unknown value. */
    readonly validate: (
      value: unknown,
    ) => StandardSchemaResult<Output> | Promise<StandardSchemaResult<Output>>;
    /** Type-only carrier of the input and output types. */
    readonly types?: { readonly input: Input; readonly output: Output };
  };
}

/**
 * Options every built-in codec takes.
 *
 * @category Typed messages
 */
export interface CodecOptions<T> {
  /** A schema that every decoded value must pass; its output is what `decode` returns. */
  schema?: StandardSchemaV1<unknown, T>;
}

/**
 * Wraps a codec so that every decoded value is checked by a Standard Schema.
 * A value that fails raises {@linkcode DecodeError} with the issues and the
 * raw bytes. Validators must answer synchronously: a decoded message is
 * handed over at once, and an asynchronous validator is reported as an error.
 *
 * @example Text of fewer than 10 characters
 * ```ts
 * import { codecs, validated, type StandardSchemaV1 } from "@ipckit/ipckit";
 *
 * const short: StandardSchemaV1<unknown, string> = {
 *   "~standard": {
 *     version: 1,
 *     vendor: "example",
 *     validate: (v) =>
 *       typeof v === "string" && v.length < 10 ? { value: v } : { issues: [{ message: "too long" }] },
 *   },
 * };
 * const codec = validated(codecs.text(), short);
 * console.log(codec.decode(codec.encode("hi")));
 * ```
 *
 * @category Typed messages
 */
export function validated<T>(
  codec: Codec<unknown>,
  schema: StandardSchemaV1<unknown, T>,
): Codec<T> {
  return {
    name: codec.name,
    // Validation does not change the bytes: the same wire format.
    ...(codec.format === undefined ? {} : { format: codec.format }),
    ...(codec.encodeInto === undefined ? {} : {
      encodeInto: (value: T, target: Uint8Array) =>
        codec.encodeInto!(value, target),
    }),
    encode: (value: T) => codec.encode(value),
    decode: (bytes: Uint8Array): T => {
      const decoded = codec.decode(bytes);
      const result = schema["~standard"].validate(decoded);
      if (result instanceof Promise) {
        throw new DecodeError(
          `Cannot validate a ${codec.name} message: the ${
            schema["~standard"].vendor
          } schema validates asynchronously, and codecs decode synchronously`,
          bytes,
        );
      }
      if (result.issues) {
        const summary = result.issues.map((issue) => issue.message).join("; ");
        throw new DecodeError(
          `Cannot accept a ${codec.name} message: it fails validation: ${summary}`,
          bytes,
          { issues: result.issues.map(_plainIssue) },
        );
      }
      return result.value;
    },
  };
}

function _plainIssue(
  issue: StandardSchemaIssue,
): { message: string; path?: readonly unknown[] } {
  return issue.path ? { message: issue.message, path: issue.path } : {
    message: issue.message,
  };
}

const _CODEC_KEYS = optionKeys<CodecOptions<unknown>>({ schema: true });

function _withSchema<T>(
  codec: Codec<unknown>,
  options: CodecOptions<T> | undefined,
): Codec<T> {
  return options?.schema ? validated(codec, options.schema) : codec as Codec<T>;
}

/** Runs a decoder and turns whatever it throws into a DecodeError that keeps the bytes. */
function _decoding<T>(
  name: string,
  bytes: Uint8Array,
  decode: () => T,
): T {
  try {
    return decode();
  } catch (error) {
    throw new DecodeError(
      `Cannot decode a ${name} message of ${bytes.byteLength} bytes: ${
        (error as Error).message
      }`,
      bytes,
      { cause: error },
    );
  }
}

const _encoder = new TextEncoder();

/** UTF-8 of `text` into `target`: its length, or -1 when it does not fit. */
function _utf8Into(text: string, target: Uint8Array): number {
  // A UTF-16 unit takes at most 3 bytes: most texts are known to fit.
  if (text.length > target.byteLength) return -1;
  const { read, written } = _encoder.encodeInto(text, target);
  return read === text.length ? written : -1;
}

// fatal: invalid UTF-8 is an error, not silently replaced characters.
const _decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function _json<T = unknown>(options?: CodecOptions<T>): Codec<T> {
  checkOptionKeys(options, _CODEC_KEYS, "make a json codec");
  const codec: Codec<unknown> = {
    name: "json",
    encode: (value) => {
      const text = JSON.stringify(value);
      if (text === undefined) {
        throw new TypeError(
          `Cannot encode ${typeof value} as JSON: it has no JSON form`,
        );
      }
      return _encoder.encode(text);
    },
    encodeInto: (value, target) => {
      const text = JSON.stringify(value);
      if (text === undefined) {
        throw new TypeError(
          `Cannot encode ${typeof value} as JSON: it has no JSON form`,
        );
      }
      return _utf8Into(text, target);
    },
    decode: (bytes) =>
      _decoding("json", bytes, () => JSON.parse(_decoder.decode(bytes))),
  };
  return _withSchema(codec, options);
}

function _text(options?: CodecOptions<string>): Codec<string> {
  checkOptionKeys(options, _CODEC_KEYS, "make a text codec");
  const codec: Codec<unknown> = {
    name: "text",
    encode: (value) => {
      if (typeof value !== "string") {
        throw new TypeError(
          `Cannot encode ${typeof value} as text: expected a string`,
        );
      }
      return _encoder.encode(value);
    },
    encodeInto: (value, target) => {
      if (typeof value !== "string") {
        throw new TypeError(
          `Cannot encode ${typeof value} as text: expected a string`,
        );
      }
      return _utf8Into(value, target);
    },
    decode: (bytes) => _decoding("text", bytes, () => _decoder.decode(bytes)),
  };
  return _withSchema(codec, options);
}

function _bytes(options?: CodecOptions<Uint8Array>): Codec<Uint8Array> {
  checkOptionKeys(options, _CODEC_KEYS, "make a bytes codec");
  const codec: Codec<unknown> = {
    name: "bytes",
    encode: (value) => {
      if (!(value instanceof Uint8Array)) {
        throw new TypeError(
          `Cannot encode ${typeof value} as bytes: expected a Uint8Array`,
        );
      }
      return value;
    },
    encodeInto: (value, target) => {
      if (!(value instanceof Uint8Array)) {
        throw new TypeError(
          `Cannot encode ${typeof value} as bytes: expected a Uint8Array`,
        );
      }
      if (value.byteLength > target.byteLength) return -1;
      target.set(value);
      return value.byteLength;
    },
    // A copy, because the caller may reuse the buffer behind `bytes`.
    decode: (bytes) => bytes.slice(),
  };
  return _withSchema(codec, options);
}

function _v8<T = unknown>(options?: CodecOptions<T>): Codec<T> {
  checkOptionKeys(options, _CODEC_KEYS, "make a v8 codec");
  const codec: Codec<unknown> = {
    name: "v8",
    encode: (value) => serialize(value),
    decode: (bytes) => _decoding("v8", bytes, () => deserialize(bytes)),
  };
  return _withSchema(codec, options);
}

/**
 * The built-in codecs.
 *
 * - `json<T>()`: JSON text in UTF-8; the default for every channel.
 * - `text()`: strings as UTF-8; invalid UTF-8 is a {@linkcode DecodeError}.
 * - `bytes()`: raw bytes; decoding copies, so the result is yours to keep.
 * - `v8<T>()`: the structured-clone format of `node:v8` (Maps, Sets, Dates,
 *   bigints, typed arrays, cycles); both ends must run V8.
 * - `struct(layout)`: a fixed binary record described by `layout()`, the
 *   same definition that `SharedMemory.openStruct` lays out in memory.
 *   Encoding checks every field (a string longer than its `utf8(n)` field, an
 *   integer out of range) before writing anything.
 *
 * @example Maps and bigints through the v8 codec
 * ```ts
 * import { codecs } from "@ipckit/ipckit";
 *
 * const codec = codecs.v8<Map<string, bigint>>();
 * const copy = codec.decode(codec.encode(new Map([["big", 2n ** 70n]])));
 * console.log(copy.get("big")); // 1180591620717411303424n
 * ```
 *
 * @category Typed messages
 */
export const codecs: {
  /** JSON text in UTF-8, optionally validated by a schema. */
  json<T = unknown>(options?: CodecOptions<T>): Codec<T>;
  /** UTF-8 strings. */
  text(options?: CodecOptions<string>): Codec<string>;
  /** Raw bytes, copied on decode. */
  bytes(options?: CodecOptions<Uint8Array>): Codec<Uint8Array>;
  /** V8's structured-clone serialization through `node:v8`. */
  v8<T = unknown>(options?: CodecOptions<T>): Codec<T>;
  /** A fixed binary record of `layout`, in the layout's byte order. */
  struct<S extends LayoutSpec>(layout: Layout<S>): Codec<RecordOf<S>>;
} = { json: _json, text: _text, bytes: _bytes, v8: _v8, struct: structCodec };
