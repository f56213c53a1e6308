import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  maxMessage,
  recordSize,
  RING,
  Ring,
  WRAP,
} from "../mechanisms/_ring/ring.ts";

/** A fresh ring whose positions both start at `start`. */
function _ring(capacity: number, start: number): Ring {
  const buffer = new ArrayBuffer(RING.DATA + capacity);
  new Uint32Array(buffer, RING.HEAD, 1)[0] = start;
  new Uint32Array(buffer, RING.TAIL, 1)[0] = start;
  const ring = new Ring(buffer, capacity);
  ring.startProducing();
  ring.startConsuming();
  return ring;
}

function _write(ring: Ring, message: Uint8Array): boolean {
  const at = ring.reserve(message.length);
  if (at < 0) return false;
  ring.data.set(message, at);
  ring.publish(message.length);
  return true;
}

function _read(ring: Ring): Uint8Array | undefined {
  const slot = ring.peek();
  if (!slot) return undefined;
  const copy = ring.data.slice(slot.offset, slot.offset + slot.length);
  ring.consume(slot);
  return copy;
}

function _message(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (seed * 31 + i) & 0xff);
}

Deno.test(
  "Ring carries every message size from every start position, wrapping where it must",
  () => {
    const capacity = 64;
    for (let start = 0; start < capacity; start += 8) {
      for (let length = 0; length <= maxMessage(capacity); length++) {
        const ring = _ring(capacity, start);
        // Two messages, so that the second one meets the end of the ring
        // at every offset too.
        const first = _message(length, start);
        const second = _message(maxMessage(capacity) - length, length);
        assert(_write(ring, first), `write ${length} at ${start}`);
        assertEquals(_read(ring), first, `read ${length} at ${start}`);
        assert(_write(ring, second), `write after ${length} at ${start}`);
        assertEquals(_read(ring), second);
        assertEquals(_read(ring), undefined);
        assertEquals(ring.used(), 0);
      }
    }
  },
);

Deno.test("Ring positions wrap past 2^32 without losing a byte", () => {
  const ring = _ring(256, 0xffff_ffff - 7 - 64);
  for (let i = 0; i < 100; i++) {
    const message = _message(i % 40, i);
    assert(_write(ring, message));
    assertEquals(_read(ring), message, `message ${i}`);
  }
  assert(new Uint32Array(ring.headWord.buffer, RING.HEAD, 1)[0] < 0x1_0000);
});

Deno.test("Ring.reserve() refuses a record that does not fit until room is freed", () => {
  const capacity = 64;
  const ring = _ring(capacity, 0);
  let written = 0;
  while (_write(ring, _message(8, written))) written++;
  assertEquals(written, capacity / recordSize(8), "a full ring");
  assertEquals(ring.used(), capacity);
  assertEquals(ring.reserve(0), -1);
  assertEquals(_read(ring), _message(8, 0));
  assert(_write(ring, _message(8, 99)), "room again");
  for (let i = 1; i < written; i++) assertEquals(_read(ring), _message(8, i));
  assertEquals(_read(ring), _message(8, 99));
});

Deno.test("Ring.peek() refuses crafted lengths and wrap markers", () => {
  const ring = _ring(64, 0);
  assert(_write(ring, _message(4, 1)));
  const view = new DataView(ring.data.buffer, RING.DATA, 64);
  view.setUint32(0, 1000, true);
  assertThrows(() => ring.peek(), RangeError, "claims 1000 bytes");
  view.setUint32(0, WRAP, true);
  assertThrows(() => ring.peek(), RangeError, "skips 64 bytes");
  new Uint32Array(ring.data.buffer, RING.HEAD, 1)[0] = 1 << 20;
  const reopened = new Ring(ring.data.buffer, 64);
  assertThrows(() => reopened.peek(), RangeError, "positions are corrupt");
});
