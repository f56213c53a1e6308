import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  array,
  codecs,
  DecodeError,
  layout,
  SharedMemory,
  utf8,
} from "../mod.ts";
import { leakChecked, uniqueName } from "./_helpers.ts";

Deno.test("layout() places fields at their natural alignment like a C compiler", () => {
  const sensor = layout({
    id: "u32",
    temperature: "f64",
    count: "i32",
    label: utf8(32),
    samples: array("f32", 64),
  });
  // struct { uint32_t id; double t; int32_t count; char label[32]; float s[64]; }
  assertEquals(
    sensor.fields.map((f) => [f.name, f.offset, f.size]),
    [
      ["id", 0, 4],
      ["temperature", 8, 8],
      ["count", 16, 4],
      ["label", 20, 32],
      ["samples", 52, 256],
    ],
  );
  assertEquals(sensor.align, 8);
  assertEquals(sensor.size, 312);
  const packed = layout({ tag: "u8", value: "f64" }, { packed: true });
  assertEquals(packed.fields[1].offset, 1);
  assertEquals(packed.size, 9);
  const placed = layout({ a: "u32", b: { type: "u16", offset: 10 }, c: "u8" });
  assertEquals(placed.fields.map((f) => f.offset), [0, 10, 12]);
  assertEquals(placed.size, 16);
});

Deno.test("layout() rejects unknown types, overlaps and bad sizes", () => {
  assertThrows(
    () => layout({ x: "u31" as "u32" }),
    Error,
    'field "x" has unknown type "u31"',
  );
  assertThrows(() => layout({ x: { kind: "blob" } as never }), TypeError);
  assertThrows(
    () => layout({ a: "u32", b: { type: "u16", offset: 2 } }),
    Error,
    'field "b" (bytes 2-3) overlaps field "a" (bytes 0-3)',
  );
  assertThrows(
    () => layout({ a: { type: "u32", offset: 2 } }),
    Error,
    "not aligned to 4 bytes",
  );
  assertThrows(() => layout({ a: { type: "u32", offset: -4 } }), RangeError);
  assertThrows(() => utf8(0), RangeError);
  assertThrows(() => utf8(1.5), RangeError);
  assertThrows(() => array("f32", -1), RangeError);
  assertThrows(() => array("f16" as "f32", 4), TypeError);
  assertThrows(() => layout({}), RangeError);
  assertThrows(() => layout({ $atomic: "u8" }), Error, "reserved");
  assertThrows(
    () => layout({ a: "u8" }, { endian: "middle" as "big" }),
    TypeError,
  );
});

Deno.test("codecs.struct() round-trips a record and writes the layout's byte order", () => {
  const frame = layout({
    seq: "u64",
    width: "u16",
    delta: "i8",
    name: utf8(6),
    points: array("i16", 2),
  }, { endian: "big" });
  const codec = codecs.struct(frame);
  const bytes = codec.encode({
    seq: 258n,
    width: 0x0102,
    delta: -1,
    name: "cam",
    points: new Int16Array([1, -2]),
  });
  assertEquals(bytes.byteLength, frame.size);
  assertEquals(
    [...bytes],
    [
      ...[0, 0, 0, 0, 0, 0, 1, 2], // seq, big-endian
      ...[1, 2], // width
      0xff, // delta
      ...[0x63, 0x61, 0x6d, 0, 0, 0], // "cam" padded
      0, // padding to i16 alignment
      ...[0, 1, 0xff, 0xfe], // points
      0,
      0, // record padding to a multiple of 8
    ],
  );
  const decoded = codec.decode(bytes);
  assertEquals(decoded.seq, 258n);
  assertEquals(decoded.width, 0x0102);
  assertEquals(decoded.delta, -1);
  assertEquals(decoded.name, "cam");
  assertEquals([...decoded.points], [1, -2]);
  assert(decoded.points instanceof Int16Array);
});

Deno.test("codecs.struct() rejects bad values before writing and bad bytes as DecodeError", () => {
  const codec = codecs.struct(layout({ n: "u8", s: utf8(4), big: "i64" }));
  const ok = { n: 1, s: "ab", big: 1n };
  assertThrows(() => codec.encode({ ...ok, n: 256 }), RangeError);
  assertThrows(() => codec.encode({ ...ok, n: 1.5 }), RangeError);
  assertThrows(
    () => codec.encode({ ...ok, big: 1 as unknown as bigint }),
    TypeError,
  );
  assertThrows(() => codec.encode({ ...ok, big: 2n ** 63n }), RangeError);
  assertThrows(
    () => codec.encode({ ...ok, s: "héllo" }),
    Error,
    "6 bytes of UTF-8, the field holds 4",
  );
  assertThrows(
    () => codec.encode({ n: 1, s: "ab" } as typeof ok),
    Error,
    'field "big" is missing',
  );
  const error = assertThrows(
    () => codec.decode(new Uint8Array(3)),
    DecodeError,
  );
  assertEquals(error.bytes.byteLength, 3);
  const invalidUtf8 = codec.encode(ok);
  invalidUtf8[1] = 0xff;
  assertThrows(() => codec.decode(invalidUtf8), DecodeError);
});

Deno.test(
  "A record in shared memory writes nothing when a string is longer than its utf8 field",
  leakChecked(() => {
    const name = uniqueName("layout-utf8");
    using record = SharedMemory.openStruct(
      name,
      layout({ label: utf8(8), n: "u16" }),
      { create: true, unlinkOnClose: true },
    );
    record.label = "short";
    assertThrows(() => (record.label = "much too long"), RangeError);
    assertEquals(record.label, "short");
    assertThrows(() => (record.n = 70_000), RangeError);
    assertThrows(() => (record.n = -1), RangeError);
    assertEquals(record.n, 0);
    // A shorter string clears the rest of the field.
    record.label = "ab";
    assertEquals([...record.$region.bytes().subarray(0, 8)], [
      0x61,
      0x62,
      0,
      0,
      0,
      0,
      0,
      0,
    ]);
  }),
);

Deno.test(
  "A record in shared memory and codecs.struct() agree byte for byte",
  leakChecked(() => {
    const pair = layout({
      x: "f32",
      id: "u64",
      tag: utf8(5),
      v: array("u16", 3),
    });
    using record = SharedMemory.openStruct(uniqueName("layout-agree"), pair, {
      create: true,
      unlinkOnClose: true,
    });
    record.x = 0.5;
    record.id = 99n;
    record.tag = "hi";
    record.v = new Uint16Array([1, 2, 3]);
    const encoded = codecs.struct(pair).encode({
      x: 0.5,
      id: 99n,
      tag: "hi",
      v: new Uint16Array([1, 2, 3]),
    });
    assertEquals(record.$region.bytes(), encoded);
    // Types follow the layout: this line would not compile otherwise.
    const typed: { x: number; id: bigint; tag: string; v: Uint16Array } =
      record;
    assertEquals(typed.v.length, 3);
    assertThrows(
      () => (record.v = new Uint16Array(2)),
      Error,
      "exactly 3 elements",
    );
  }),
);

Deno.test(
  "Atomic field operations return the old value and refuse what they cannot do atomically",
  leakChecked(() => {
    const mixed = layout(
      { a: "i32", b: { type: "u16", offset: 5 }, c: "u64", f: "f64" },
      { packed: true },
    );
    using record = SharedMemory.openStruct(uniqueName("layout-atomic"), mixed, {
      create: true,
      unlinkOnClose: true,
    });
    const { a, b, c } = record.$atomic;
    assertEquals(a.add(5), 0);
    assertEquals(a.sub(2), 5);
    assertEquals(a.exchange(10), 3);
    assertEquals(a.compareExchange(10, 11), 10);
    assertEquals(a.compareExchange(10, 12), 11);
    assertEquals(a.load(), 11);
    assertEquals(a.store(-4), -4);
    assertEquals(record.a, -4);
    assertThrows(() => a.add(1.5), TypeError);
    assertThrows(() => a.store(2 ** 31), RangeError);
    assertThrows(() => b.add(1), Error, "not aligned");
    record.b = 7; // unaligned plain access still works
    assertEquals(record.b, 7);
    // c sits at offset 7 in this packed layout: also not atomic
    assertThrows(() => c.load(), Error, "not aligned");
    assertEquals("f" in record.$atomic, false);
  }),
);
