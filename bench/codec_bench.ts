/**
 * In-process cost of the codecs: encoding a value to bytes and decoding it
 * back, per codec and message size (64 B, 4 KiB, 1 MiB of payload). What a
 * message pays before and after it crosses any mechanism.
 *
 * Run: deno task bench (or deno bench bench/codec_bench.ts)
 *
 * @module
 */

import { type Codec, codecs } from "../mod.ts";

const SIZES: [string, number][] = [
  ["64 B", 64],
  ["4 KiB", 4096],
  ["1 MiB", 1 << 20],
];

/** A record with a string of `size` characters: what json and v8 carry. */
const record = (size: number) => ({ id: 7, ok: true, body: "x".repeat(size) });

function benchCodec<T>(
  name: string,
  codec: Codec<T>,
  make: (n: number) => T,
): void {
  for (const [label, size] of SIZES) {
    const value = make(size);
    const bytes = codec.encode(value);
    Deno.bench(`${name} encode ${label}`, {
      group: `encode ${label}`,
      baseline: name === "bytes",
    }, () => {
      codec.encode(value);
    });
    Deno.bench(`${name} decode ${label}`, {
      group: `decode ${label}`,
      baseline: name === "bytes",
    }, () => {
      codec.decode(bytes);
    });
  }
}

benchCodec("bytes", codecs.bytes(), (n) => new Uint8Array(n).fill(7));
benchCodec("text", codecs.text(), (n) => "x".repeat(n));
benchCodec("json", codecs.json(), record);
benchCodec("v8", codecs.v8(), record);
