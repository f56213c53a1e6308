/**
 * The header every shared-memory object of ipckit's channels starts with
 * (`ShmChannel`, the pub/sub topics, a record opened with
 * `fingerprint: true`): what the bytes after it are, so that a process
 * opening it with another format version, codec or layout is refused with
 * an error naming both, instead of misreading the bytes.
 *
 * ## Memory format (128 bytes at offset 0, native byte order)
 *
 * | offset | type | field |
 * | --- | --- | --- |
 * | 0 | u32 | magic `0x6b637069` (the bytes `ipck` on little-endian machines) |
 * | 4 | i32 | state: 0 fresh, `-pid` being set up by `pid`, 1 ready (`initOnce`) |
 * | 8 | u16 | format version of the object's kind |
 * | 10 | u16 | kind: 1 shm channel, 2 pub/sub topic, 3 record |
 * | 12 | u32 | size of this header: 128 |
 * | 16 | u64 | capacity, in the unit of the kind (ring bytes, slots) |
 * | 24 | u64 | fingerprint: FNV-1a 64 of the format text |
 * | 32 | u8[96] | the format text, UTF-8, NUL-padded, cut at 96 bytes |
 *
 * The creator writes every field, then stores 1 in `state`; an opener
 * reads them only once `state` is 1 (seq-cst atomics order the two).
 *
 * ## The format text (the codec's or layout's fingerprint)
 *
 * A codec is identified by its `name` and, when it has one, its `format`
 * (`codecs.struct` sets it from its layout: every field's name,
 * type, length, offset, the size and the byte order), as
 * `codec <name>` or `codec <name>: <format>`. A record's layout is
 * `layout <fields>`. Two codecs with the same name and format write the
 * same bytes as far as ipckit can tell; a JSON codec carries no schema of
 * its values, so two programs that disagree about a JSON type are not
 * told apart (give such a codec a `format` such as `"order v2"`).
 *
 * @module
 */

import type { Layout, LayoutSpec } from "../layout.ts";
import { describeLayout } from "../_record/struct.ts";
import { INIT_READY, INIT_TIMEOUT_MS, initOnce } from "../_memory/init_once.ts";
import { timeoutError } from "../_common/system_error.ts";

/** The bytes of the header; the object's own data starts after them. */
export const IDENTITY_SIZE = 128;

/** The first word of every header. */
export const IDENTITY_MAGIC = 0x6b637069;

/** The kinds of object, as the header numbers them. */
export const KIND = {
  channel: 1,
  topic: 2,
  record: 3,
} as const;

const _KIND_NAMES: Record<number, string> = {
  1: "a shared-memory channel",
  2: "a pub/sub topic",
  3: "a record",
};

/** Where each field of the header is. */
export const IDENTITY = {
  MAGIC: 0,
  STATE: 4,
  VERSION: 8,
  KIND: 10,
  HEADER_SIZE: 12,
  CAPACITY: 16,
  FINGERPRINT: 24,
  FORMAT: 32,
  FORMAT_BYTES: 96,
} as const;

/** What an object is: what its header records. */
export interface Identity {
  /** One of {@linkcode KIND}. */
  kind: number;
  /** The format version of that kind. */
  version: number;
  /** Its capacity, in the kind's unit. */
  capacity: number;
  /** The codec's or layout's format text ({@linkcode codecFormat}, {@linkcode layoutFormat}). */
  format: string;
}

/** The format text of a codec: its name and format. */
export function codecFormat(codec: { name: string; format?: string }): string {
  return codec.format === undefined
    ? `codec ${codec.name}`
    : `codec ${codec.name}: ${codec.format}`;
}

/** The format text of a record's layout. */
export function layoutFormat(layout: Layout<LayoutSpec>): string {
  return `layout ${describeLayout(layout)}`;
}

const _encoder = new TextEncoder();
const _decoder = new TextDecoder();

/** FNV-1a, 64 bits, of the UTF-8 bytes of `text`. */
export function fingerprintOf(text: string): bigint {
  let hash = 0xcbf29ce484222325n;
  for (const byte of _encoder.encode(text)) {
    hash ^= BigInt(byte);
    hash = (hash * 0x100000001b3n) & 0xffff_ffff_ffff_ffffn;
  }
  return hash;
}

/**
 * Sets up the header at `byteOffset` of `buffer` when this process is the
 * first (and `mayCreate`), running `initialize` for the data after it, or
 * checks it against `identity` when another process set it up.
 *
 * @param what the object, for messages: `shared-memory channel "/frames"`
 * @throws {TypeError} when the bytes hold another kind, version, capacity
 * or format (naming both), or no header at all
 * @throws {Deno.errors.TimedOut} when the process that set it up did not finish
 */
export function setUpIdentity(
  buffer: ArrayBuffer,
  byteOffset: number,
  identity: Identity,
  what: string,
  mayCreate: boolean,
  initialize: () => void,
): void {
  const words = new Int32Array(buffer, byteOffset, IDENTITY_SIZE / 4);
  const view = new DataView(buffer, byteOffset, IDENTITY_SIZE);
  const stateIndex = IDENTITY.STATE / 4;
  if (!mayCreate) {
    // Its creator may be between shm_open and setting it up: give it time.
    const until = performance.now() + INIT_TIMEOUT_MS;
    while (Atomics.load(words, stateIndex) === 0) {
      if (performance.now() > until) {
        throw timeoutError(
          `open ${what}: nobody set it up (its header is still blank)`,
          INIT_TIMEOUT_MS,
        );
      }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
  if (
    Atomics.load(words, stateIndex) === 0 &&
    new Uint8Array(buffer, byteOffset, IDENTITY_SIZE).some((byte) => byte !== 0)
  ) {
    // Not fresh memory, yet never set up: somebody else's bytes.
    checkIdentity(view, identity, what);
    throw new TypeError(`Cannot open ${what}: its header was never set up`);
  }
  initOnce(words, stateIndex, {
    what,
    kind: _KIND_NAMES[identity.kind] ?? "an ipckit object",
    initialize: () => {
      _write(view, identity);
      initialize();
    },
    attach: () => checkIdentity(view, identity, what),
  });
  if (Atomics.load(words, stateIndex) !== INIT_READY) {
    throw new TypeError(`Cannot open ${what}: it was not set up`);
  }
}

function _write(view: DataView, identity: Identity): void {
  const format = _encoder.encode(identity.format);
  const bytes = new Uint8Array(
    view.buffer,
    view.byteOffset + IDENTITY.FORMAT,
    IDENTITY.FORMAT_BYTES,
  );
  bytes.fill(0);
  bytes.set(format.subarray(0, IDENTITY.FORMAT_BYTES));
  const little = _NATIVE_LITTLE;
  view.setUint32(IDENTITY.MAGIC, IDENTITY_MAGIC, little);
  view.setUint16(IDENTITY.VERSION, identity.version, little);
  view.setUint16(IDENTITY.KIND, identity.kind, little);
  view.setUint32(IDENTITY.HEADER_SIZE, IDENTITY_SIZE, little);
  view.setBigUint64(IDENTITY.CAPACITY, BigInt(identity.capacity), little);
  view.setBigUint64(
    IDENTITY.FINGERPRINT,
    fingerprintOf(identity.format),
    little,
  );
}

const _NATIVE_LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** What the header at `view` records. */
export function readIdentity(view: DataView): Identity & {
  magic: number;
  fingerprint: bigint;
} {
  const little = _NATIVE_LITTLE;
  const text = new Uint8Array(
    view.buffer,
    view.byteOffset + IDENTITY.FORMAT,
    IDENTITY.FORMAT_BYTES,
  );
  const end = text.indexOf(0);
  return {
    magic: view.getUint32(IDENTITY.MAGIC, little),
    version: view.getUint16(IDENTITY.VERSION, little),
    kind: view.getUint16(IDENTITY.KIND, little),
    capacity: Number(view.getBigUint64(IDENTITY.CAPACITY, little)),
    fingerprint: view.getBigUint64(IDENTITY.FINGERPRINT, little),
    format: _decoder.decode(text.subarray(0, end < 0 ? text.length : end)),
  };
}

/**
 * Checks the header at `view` against what this process expects.
 *
 * @throws {TypeError} naming what the object holds and what was expected
 */
export function checkIdentity(
  view: DataView,
  expected: Identity,
  what: string,
): void {
  const found = readIdentity(view);
  const kindName = _KIND_NAMES[expected.kind] ?? "an ipckit object";
  if (found.magic !== IDENTITY_MAGIC) {
    throw new TypeError(
      `Cannot open ${what}: its bytes do not start with an ipckit header, so it is not ${kindName}`,
    );
  }
  if (found.kind !== expected.kind) {
    throw new TypeError(
      `Cannot open ${what}: it holds ${
        _KIND_NAMES[found.kind] ?? `kind ${found.kind}`
      }, not ${kindName}`,
    );
  }
  if (found.version !== expected.version) {
    throw new TypeError(
      `Cannot open ${what}: it is in format version ${found.version}, and this ipckit reads version ${expected.version}`,
    );
  }
  if (found.fingerprint !== fingerprintOf(expected.format)) {
    throw new TypeError(
      `Cannot open ${what}: it was made for ${
        JSON.stringify(found.format)
      }, and this process uses ${JSON.stringify(expected.format)}`,
    );
  }
  if (expected.capacity !== 0 && found.capacity !== expected.capacity) {
    throw new TypeError(
      `Cannot open ${what}: its capacity is ${found.capacity}, and ${expected.capacity} was asked for`,
    );
  }
}
