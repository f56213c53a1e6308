import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  array,
  codecs,
  DecodeError,
  layout,
  type StandardSchemaV1,
  validated,
} from "../mod.ts";

const encoder = new TextEncoder();

function schema<T>(
  check: (value: unknown) => value is T,
  message: string,
): StandardSchemaV1<unknown, T> {
  return {
    "~standard": {
      version: 1,
      vendor: "test",
      validate: (value) =>
        check(value) ? { value } : { issues: [{ message, path: ["id"] }] },
    },
  };
}

const hasNumericId = (value: unknown): value is { id: number } =>
  typeof (value as { id?: unknown })?.id === "number";

Deno.test("codecs round-trip the values they are made for", () => {
  const json = codecs.json<{ a: number[] }>();
  assertEquals(json.decode(json.encode({ a: [1, 2] })), { a: [1, 2] });
  const text = codecs.text();
  assertEquals(text.decode(text.encode("héllo ✓")), "héllo ✓");
  const bytes = codecs.bytes();
  assertEquals(
    bytes.decode(new Uint8Array([1, 2, 3])),
    new Uint8Array([1, 2, 3]),
  );
  const v8 = codecs.v8<{ when: Date; set: Set<number>; n: bigint }>();
  const value = { when: new Date(0), set: new Set([1]), n: 10n ** 30n };
  assertEquals(v8.decode(v8.encode(value)), value);
});

Deno.test("codecs.bytes() decode returns a copy the caller may keep", () => {
  const source = new Uint8Array([1, 2, 3]);
  const decoded = codecs.bytes().decode(source);
  source[0] = 99;
  assertEquals(decoded[0], 1);
});

Deno.test("codecs.json() reports malformed input as DecodeError with the bytes", () => {
  const raw = encoder.encode("{broken");
  const error = assertThrows(
    () => codecs.json().decode(raw),
    DecodeError,
    "Cannot decode a json message of 7 bytes",
  );
  assertEquals(new TextDecoder().decode(error.bytes), "{broken");
});

Deno.test("codecs.text() rejects invalid UTF-8 instead of replacing it", () => {
  assertThrows(
    () => codecs.text().decode(new Uint8Array([0xff, 0xfe])),
    DecodeError,
  );
});

Deno.test("codecs refuse values they cannot represent before encoding", () => {
  assertThrows(() => codecs.json().encode(undefined), TypeError);
  assertThrows(() => codecs.text().encode(5 as unknown as string), TypeError);
  assertThrows(
    () => codecs.bytes().encode("x" as unknown as Uint8Array),
    TypeError,
  );
});

Deno.test("A codec with a schema rejects invalid values with their issues and bytes", () => {
  const codec = codecs.json({
    schema: schema(hasNumericId, "id must be a number"),
  });
  assertEquals(codec.decode(codec.encode({ id: 3 })).id, 3);
  const raw = encoder.encode('{"id":"three"}');
  const error = assertThrows(
    () => codec.decode(raw),
    DecodeError,
    "fails validation: id must be a number",
  );
  assertEquals(error.issues[0].message, "id must be a number");
  assertEquals(error.bytes.length, raw.length);
});

Deno.test("validated() reports an asynchronous schema as a DecodeError", () => {
  const asyncSchema: StandardSchemaV1<unknown, string> = {
    "~standard": {
      version: 1,
      vendor: "async-lib",
      validate: (value) => Promise.resolve({ value: String(value) }),
    },
  };
  const codec = validated(codecs.text(), asyncSchema);
  const raw = encoder.encode("x");
  const error = assertThrows(
    () => codec.decode(raw),
    DecodeError,
    "the async-lib schema validates asynchronously",
  );
  assertEquals(error.bytes, raw);
  assert(error.bytes !== raw, "the error owns a copy of the bytes");
});

Deno.test("DecodeError owns a copy of the bytes it reports", () => {
  const buffer = encoder.encode("{bad");
  let caught: DecodeError | undefined;
  try {
    codecs.json().decode(buffer);
  } catch (error) {
    caught = error as DecodeError;
  }
  buffer.fill(0);
  assertEquals(new TextDecoder().decode(caught!.bytes), "{bad");
});

Deno.test(
  "codecs.struct() copies typed-array fields whole and keeps their byte order",
  () => {
    for (const endian of ["little", "big"] as const) {
      const record = layout({
        tag: "u8",
        samples: array("u16", 3),
        weights: array("f64", 2),
        raw: array("u8", 5),
      }, { endian });
      const codec = codecs.struct(record);
      const bytes = codec.encode({
        tag: 1,
        samples: new Uint16Array([0x0102, 0x0304, 0xfffe]),
        weights: new Float64Array([1.5, -2]),
        raw: new Uint8Array([9, 8, 7, 6, 5]),
      });
      const view = new DataView(bytes.buffer, bytes.byteOffset);
      const little = endian === "little";
      assertEquals(view.getUint16(2, little), 0x0102, endian);
      assertEquals(view.getUint16(6, little), 0xfffe, endian);
      assertEquals(view.getFloat64(8, little), 1.5, endian);
      assertEquals(view.getFloat64(16, little), -2, endian);
      assertEquals([...bytes.subarray(24, 29)], [9, 8, 7, 6, 5]);
      const decoded = codec.decode(bytes);
      assertEquals([...decoded.samples], [0x0102, 0x0304, 0xfffe]);
      assertEquals([...decoded.weights], [1.5, -2]);
      assertEquals([...decoded.raw], [9, 8, 7, 6, 5]);
    }
  },
);

Deno.test(
  "Codec.encodeInto() writes exactly what encode() returns, even over old bytes, or -1 when it does not fit",
  () => {
    const padded = layout({ tag: "u8", value: "f64" }); // 7 bytes of padding
    const cases: [
      string,
      {
        encode(v: never): Uint8Array;
        encodeInto?(v: never, t: Uint8Array): number;
      },
      unknown,
    ][] = [
      ["json", codecs.json(), { a: [1, "é"] }],
      ["text", codecs.text(), "héllo ✓"],
      ["bytes", codecs.bytes(), new Uint8Array([1, 2, 3])],
      ["struct", codecs.struct(padded), { tag: 7, value: 1.5 }],
    ];
    for (const [name, codec, value] of cases) {
      const expected = codec.encode(value as never);
      const target = new Uint8Array(64).fill(0xee);
      const written = codec.encodeInto!(value as never, target);
      assertEquals(written, expected.length, name);
      assertEquals(target.subarray(0, written), expected, name);
      assertEquals(
        codec.encodeInto!(value as never, new Uint8Array(expected.length - 1)),
        -1,
        name,
      );
    }
  },
);
