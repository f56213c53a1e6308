/**
 * Descriptor passing (`SCM_RIGHTS`): which ipckit handles can be sent over
 * a Unix socket, how the receiver tells what kind each descriptor is, and
 * how it turns one back into a working handle.
 *
 * Each public mechanism whose handles can travel registers them here (this
 * file imports none of them): {@linkcode markPassable} on every handle it
 * creates says how to find its descriptor, and {@linkcode registerAdopter}
 * says how to build a handle of that kind around a descriptor that arrived.
 *
 * ## On the wire
 *
 * A packet that carries descriptors starts with a small header that names
 * the kind of each, in order, and then carries the codec's bytes:
 *
 *     00 ff 69 70 6b 01   magic ("\0\xffipk") and version 1
 *     u32 big-endian       length of the JSON that follows
 *     JSON                 [{ "kind": "shared-memory", "meta": {…} }, …]
 *     …                    the value, as the codec encoded it
 *
 * Only packets that carry descriptors have it, so every other packet is
 * the codec's bytes alone, as any other program sends them. The header is
 * trusted only together with descriptors the kernel delivered: a packet
 * whose header does not match its descriptors is refused and they are
 * closed.
 *
 * @module
 */

import { DecodeError } from "../errors.ts";

/** The kinds of handle that can be passed. */
export type PassableKind =
  | "shared-memory"
  | "mapped-file"
  | "message-queue"
  | "fifo"
  | "socket"
  | "datagram";

/** A handle's descriptor and what the receiver needs to rebuild it. */
export interface PassableDescription {
  /** What kind of handle it is. */
  kind: PassableKind;
  /** The descriptor to send (the sender keeps its own; the kernel duplicates it). */
  fd: number;
  /** Small JSON facts for the receiver: a name, a path, read-only or not. */
  meta: Record<string, string | number | boolean>;
}

/** Builds a handle around a descriptor that arrived; it owns `fd` only if it returns. */
export type Adopter = (
  fd: number,
  meta: Record<string, unknown>,
) => object;

const _describers = new WeakMap<object, () => PassableDescription>();
const _adopters = new Map<PassableKind, Adopter>();

/** Makes `handle` sendable; `describe` is asked when it is sent, so a closed handle can refuse. */
export function markPassable(
  handle: object,
  describe: () => PassableDescription,
): void {
  _describers.set(handle, describe);
}

/** What `handle` is and which descriptor to send, or undefined when it cannot be sent. */
export function describePassable(
  handle: unknown,
): PassableDescription | undefined {
  if (typeof handle !== "object" || handle === null) return undefined;
  return _describers.get(handle)?.();
}

/** Says how to rebuild handles of `kind` (each mechanism registers its own). */
export function registerAdopter(kind: PassableKind, adopter: Adopter): void {
  _adopters.set(kind, adopter);
}

/**
 * Builds the handle for a descriptor that arrived. On failure `fd` is
 * still the caller's to close.
 *
 * @throws {DecodeError} when no mechanism of that kind is loaded, or the
 * descriptor is not what the sender said
 */
export function adoptDescriptor(
  kind: string,
  fd: number,
  meta: Record<string, unknown>,
  action: string,
): object {
  const adopter = _adopters.get(kind as PassableKind);
  if (!adopter) {
    throw new DecodeError(
      `Cannot ${action}: a descriptor arrived as a "${kind}", which no loaded ipckit module can take`,
      new Uint8Array(0),
    );
  }
  return adopter(fd, meta);
}

const _MAGIC = [0x00, 0xff, 0x69, 0x70, 0x6b, 0x01] as const;
const _PREFIX_BYTES = _MAGIC.length + 4;
/** The most header bytes a receiver reads before refusing the packet. */
export const MAX_HANDLE_HEADER_BYTES = 16 * 1024;

const _encoder = new TextEncoder();
const _decoder = new TextDecoder();

/** The header and `body` as one packet. */
export function withHandleHeader(
  descriptions: readonly PassableDescription[],
  body: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const json = _encoder.encode(
    JSON.stringify(descriptions.map(({ kind, meta }) => ({ kind, meta }))),
  );
  const packet = new Uint8Array(_PREFIX_BYTES + json.byteLength + body.length);
  packet.set(_MAGIC);
  new DataView(packet.buffer).setUint32(_MAGIC.length, json.byteLength, false);
  packet.set(json, _PREFIX_BYTES);
  packet.set(body, _PREFIX_BYTES + json.byteLength);
  return packet;
}

/** What a header said: the kinds in order, and where the codec's bytes begin. */
export interface HandleHeader {
  /** One entry per descriptor, in the order the kernel delivered them. */
  handles: { kind: string; meta: Record<string, unknown> }[];
  /** Offset of the codec's bytes in the packet. */
  bodyStart: number;
}

/**
 * Reads the header of a packet that arrived with `count` descriptors.
 *
 * @throws {DecodeError} when there is none, it is malformed, or it names
 * another number of descriptors than arrived
 */
export function readHandleHeader(
  packet: Uint8Array,
  count: number,
  action: string,
): HandleHeader {
  const refuse = (why: string) =>
    new DecodeError(
      `Cannot ${action}: a message arrived with ${count} descriptor(s) ${why}; they were closed`,
      packet.slice(),
    );
  if (
    packet.byteLength < _PREFIX_BYTES ||
    _MAGIC.some((byte, i) => packet[i] !== byte)
  ) {
    throw refuse("but without ipckit's handle header (not sent by ipckit)");
  }
  const view = new DataView(
    packet.buffer,
    packet.byteOffset,
    packet.byteLength,
  );
  const length = view.getUint32(_MAGIC.length, false);
  if (
    length > MAX_HANDLE_HEADER_BYTES ||
    _PREFIX_BYTES + length > packet.byteLength
  ) {
    throw refuse("and a handle header of impossible length");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(
      _decoder.decode(packet.subarray(_PREFIX_BYTES, _PREFIX_BYTES + length)),
    );
  } catch {
    throw refuse("and a handle header that is not JSON");
  }
  if (
    !Array.isArray(parsed) || parsed.length !== count ||
    !parsed.every((entry) =>
      typeof entry === "object" && entry !== null &&
      typeof entry.kind === "string" && typeof entry.meta === "object" &&
      entry.meta !== null
    )
  ) {
    throw refuse(
      `and a handle header that does not describe ${count} handle(s)`,
    );
  }
  return { handles: parsed, bodyStart: _PREFIX_BYTES + length };
}
