/**
 * Object names as bytes. The kernel stores a name as bytes, not text: a
 * program may create `/dev/shm/caf\xe9` (Latin-1 "café"), which is not
 * UTF-8 and which a JavaScript string cannot hold. The inventory therefore
 * reads, matches and removes names by their exact bytes, and shows them in
 * one escaped form that turns back into the same bytes:
 *
 * - a byte that is not part of valid UTF-8 is written `\xHH` (two lowercase
 *   hex digits), so `caf\xe9`;
 * - so are control characters (bytes 0x01 to 0x1f and 0x7f), which would
 *   break a table or a terminal: a newline is `\x0a`;
 * - a backslash is written `\\`;
 * - everything else is itself.
 *
 * {@linkcode parseObjectName} reads that form back, and rejects any other
 * backslash so that a typo cannot name a different object.
 *
 * @module
 */

import { NAME_MAX } from "../_kernel/names.ts";

const _BACKSLASH = 0x5c;
const _SLASH = 0x2f;
const _encoder = new TextEncoder();

/** The escaped form of a name's bytes (see the module doc). */
export function formatObjectName(bytes: Uint8Array): string {
  let text = "";
  let i = 0;
  while (i < bytes.length) {
    const length = _sequenceLength(bytes, i);
    if (length === 0) {
      text += _hex(bytes[i]);
      i++;
      continue;
    }
    const byte = bytes[i];
    if (length === 1) {
      if (byte === _BACKSLASH) text += "\\\\";
      else if (byte < 0x20 || byte === 0x7f) text += _hex(byte);
      else text += String.fromCharCode(byte);
    } else {
      text += new TextDecoder().decode(bytes.subarray(i, i + length));
    }
    i += length;
  }
  return text;
}

/**
 * The bytes an escaped name stands for.
 *
 * @throws {TypeError} on a backslash that does not start `\\` or `\xHH`, or
 *   a lone UTF-16 surrogate (which has no UTF-8 form)
 */
export function parseObjectName(text: string): Uint8Array {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (char === "\\") {
      const next = text[i + 1];
      if (next === "\\") {
        bytes.push(_BACKSLASH);
        i++;
        continue;
      }
      const hex = text.slice(i + 2, i + 4);
      if (next === "x" && /^[0-9a-fA-F]{2}$/.test(hex)) {
        bytes.push(parseInt(hex, 16));
        i += 3;
        continue;
      }
      throw new TypeError(
        `Cannot read object name ${
          JSON.stringify(text)
        }: a backslash must start \\\\ (a backslash) or \\xHH (one byte in hex)`,
      );
    }
    const code = text.codePointAt(i)!;
    if (code >= 0xd800 && code <= 0xdfff) {
      throw new TypeError(
        `Cannot read object name ${
          JSON.stringify(text)
        }: it contains a lone UTF-16 surrogate`,
      );
    }
    const encoded = _encoder.encode(String.fromCodePoint(code));
    bytes.push(...encoded);
    if (code > 0xffff) i++;
  }
  return new Uint8Array(bytes);
}

/** A name as bytes: a string is taken as UTF-8, exactly (no escapes). */
export function nameBytes(name: string | Uint8Array): Uint8Array {
  if (typeof name !== "string") return name;
  for (let i = 0; i < name.length; i++) {
    const code = name.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdbff) {
      const low = name.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        i++;
        continue;
      }
    }
    if (code >= 0xd800 && code <= 0xdfff) {
      throw new TypeError(
        `Cannot use object name ${
          JSON.stringify(name)
        }: it contains a lone UTF-16 surrogate`,
      );
    }
  }
  return _encoder.encode(name);
}

/**
 * Checks a name given as bytes: one leading `/`, no other `/`, no NUL, not
 * `.` or `..`, at most `maxBytes` bytes after the slash.
 *
 * @returns the name without its leading slash
 * @throws {TypeError} when the name is malformed
 * @throws {RangeError} when it is too long
 */
export function validateNameBytes(
  name: Uint8Array,
  maxBytes: number = NAME_MAX,
): Uint8Array {
  const shown = JSON.stringify(formatObjectName(name));
  const bad = (why: string) =>
    new TypeError(`Cannot use object name ${shown}: ${why}`);
  if (name.length === 0) throw bad("it is empty");
  if (name[0] !== _SLASH) throw bad('it must start with "/"');
  const base = name.subarray(1);
  if (base.length === 0) throw bad('it needs characters after the "/"');
  if (base.includes(_SLASH)) {
    throw bad('it must not contain "/" after the first');
  }
  if (base.includes(0)) throw bad("it must not contain a NUL character");
  if (
    (base.length === 1 && base[0] === 0x2e) ||
    (base.length === 2 && base[0] === 0x2e && base[1] === 0x2e)
  ) {
    throw bad('"." and ".." are reserved');
  }
  if (base.length > maxBytes) {
    throw new RangeError(
      `Cannot use object name ${
        JSON.stringify(formatObjectName(name.subarray(0, 21)) + "…")
      }: it is ${base.length} bytes long, the limit is ${maxBytes}`,
    );
  }
  return base;
}

/** Whether `bytes` starts with `prefix`. */
export function startsWithBytes(
  bytes: Uint8Array,
  prefix: Uint8Array,
): boolean {
  if (prefix.length > bytes.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    if (bytes[i] !== prefix[i]) return false;
  }
  return true;
}

/** Whether two byte strings are equal. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && startsWithBytes(a, b);
}

/** Orders names by their bytes, as `ls` does in the C locale. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

function _hex(byte: number): string {
  return `\\x${byte.toString(16).padStart(2, "0")}`;
}

/**
 * The length of the valid UTF-8 sequence that starts at `i`, or 0 when the
 * byte there does not start one (a stray continuation byte, an overlong
 * form, a surrogate, a code point past U+10FFFF, a truncated sequence).
 */
function _sequenceLength(bytes: Uint8Array, i: number): number {
  const lead = bytes[i];
  if (lead < 0x80) return 1;
  let length: number;
  let min: number;
  if (lead >= 0xc2 && lead <= 0xdf) [length, min] = [2, 0x80];
  else if (lead >= 0xe0 && lead <= 0xef) [length, min] = [3, 0x800];
  else if (lead >= 0xf0 && lead <= 0xf4) [length, min] = [4, 0x10000];
  else return 0;
  if (i + length > bytes.length) return 0;
  let code = lead & (0xff >> (length + 1));
  for (let k = 1; k < length; k++) {
    const byte = bytes[i + k];
    if ((byte & 0xc0) !== 0x80) return 0;
    code = (code << 6) | (byte & 0x3f);
  }
  if (code < min || code > 0x10ffff) return 0;
  if (code >= 0xd800 && code <= 0xdfff) return 0;
  return length;
}
