/**
 * Payloads as nats.js hands them over are Node `Buffer`s, whose `slice()`
 * is a view rather than a copy. Codecs and `DecodeError` copy with
 * `slice()` to own what they keep, so every payload is turned into a plain
 * `Uint8Array` over the same memory before it reaches them.
 *
 * @module
 */

/** A plain `Uint8Array` over the same bytes (no copy). */
export function plainBytes(data: Uint8Array): Uint8Array {
  return Object.getPrototypeOf(data) === Uint8Array.prototype
    ? data
    : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
