/**
 * Hostile input: every decoder fed 100,000 cases from a fixed seed (so a
 * failure is reproducible) of random bytes, and of valid encodings with
 * bits flipped, bytes cut off, spliced or repeated. Only DecodeError,
 * RangeError or TypeError may escape; nothing may hang (each run has a
 * bound), and memory stays bounded by the configured maximum.
 */
import { assert, assertEquals } from "@std/assert";
import {
  array,
  type Channel,
  client,
  type Codec,
  codecs,
  DecodeError,
  layout,
  type Message,
  RemoteError,
  type RpcEnvelope,
  serve,
  utf8,
  validated,
} from "../mod.ts";
import { leakChecked, spawnFixture } from "./_helpers.ts";
import { bounded } from "./_bounded.ts";
import { allowed, generator, hostileBytes } from "./fixtures/_fuzz.ts";

const CASES = 100_000;

/** Runs CASES hostile inputs through `decode`; returns how many decoded. */
function fuzzDecoder(
  seed: number,
  samples: Uint8Array[],
  decode: (bytes: Uint8Array) => unknown,
  what: string,
): number {
  const random = generator(seed);
  let decoded = 0;
  for (let i = 0; i < CASES; i++) {
    const bytes = hostileBytes(random, samples, 64);
    try {
      decode(bytes);
      decoded++;
    } catch (error) {
      allowed(error, `${what}, case ${i} of seed ${seed}`);
    }
  }
  return decoded;
}

const sampleValues: unknown[] = [
  null,
  true,
  0,
  -1.5,
  2 ** 53,
  "",
  "héllo wörld",
  [],
  [1, [2, [3]]],
  { kind: "request", id: 1, value: { op: "echo" } },
  { a: { b: { c: "deep" } }, list: [1, "two", null] },
];

function encodedSamples<T>(codec: Codec<T>, values: T[]): Uint8Array[] {
  return values.map((value) => codec.encode(value));
}

for (
  const [name, codec, values] of [
    ["json", codecs.json(), sampleValues],
    ["text", codecs.text(), ["", "plain", "ünïcödé ✓", "\u{1F600}", "a\nb"]],
    ["bytes", codecs.bytes(), [new Uint8Array([1, 2, 3]), new Uint8Array(0)]],
    [
      "v8",
      codecs.v8(),
      [
        ...sampleValues,
        new Map([["k", 1n << 70n]]),
        new Set([1, "x"]),
        new Date(0),
        new Uint16Array([1, 2, 3]),
        /re/g,
        { nested: [new Map(), new Float64Array(4)] },
      ],
    ],
  ] as [string, Codec<unknown>, unknown[]][]
) {
  Deno.test(
    `Fuzz: codecs.${name}() lets only DecodeError, RangeError or TypeError escape from 100,000 hostile inputs`,
    leakChecked(() => {
      const samples = encodedSamples(codec, values);
      const decoded = fuzzDecoder(0x1badc0de, samples, codec.decode, name);
      assert(decoded > 0, "not even the valid samples decoded");
    }),
  );
}

Deno.test(
  "Fuzz: codecs.struct() lets only DecodeError, RangeError or TypeError escape from 100,000 hostile inputs",
  leakChecked(() => {
    const record = layout({
      a: "u8",
      b: "i16",
      c: "u32",
      d: "i64",
      e: "f64",
      name: utf8(12),
      points: array("i32", 3),
      big: "u64",
    });
    const codec = codecs.struct(record);
    const samples = [
      codec.encode({
        a: 1,
        b: -2,
        c: 3,
        d: -4n,
        e: 0.5,
        name: "cam",
        points: new Int32Array([1, 2, 3]),
        big: 2n ** 63n,
      }),
      codec.encode({
        a: 255,
        b: 32767,
        c: 0,
        d: 0n,
        e: Number.NaN,
        name: "ünïcödé",
        points: new Int32Array(3),
        big: 0n,
      }),
    ];
    const decoded = fuzzDecoder(0x5eed, samples, codec.decode, "struct");
    assert(decoded > 0);
  }),
);

Deno.test(
  "Fuzz: a validated codec lets only DecodeError, RangeError or TypeError escape from 100,000 hostile inputs",
  leakChecked(() => {
    const codec = validated(codecs.json(), {
      "~standard": {
        version: 1,
        vendor: "fuzz",
        validate: (value) =>
          typeof (value as { id?: unknown })?.id === "number"
            ? { value }
            : { issues: [{ message: "id must be a number" }] },
      },
    });
    const samples = encodedSamples(codecs.json(), [
      { id: 1 },
      { id: "1" },
      ...sampleValues,
    ]);
    const decoded = fuzzDecoder(0xfeed, samples, codec.decode, "validated");
    assert(decoded > 0);
  }),
);

for (const framing of ["frames", "lines"] as const) {
  Deno.test(
    `Fuzz: the ${framing} reader lets only DecodeError, RangeError or TypeError escape from 100,000 hostile streams, within maxMessageSize`,
    leakChecked(async () => {
      // In a child, which may collect garbage on demand to measure memory.
      const child = spawnFixture("fuzz_frames.ts", ["--v8-flags=--expose-gc"], [
        framing,
        String(framing === "frames" ? 0xf4a3e5 : 0x11e5),
        String(CASES),
        "256",
      ]);
      const output = await bounded(child.output(), 120_000, "the fuzzer");
      const stderr = new TextDecoder().decode(output.stderr);
      assertEquals(output.code, 0, stderr);
      const { messages, longest, grew } = JSON.parse(
        new TextDecoder().decode(output.stdout),
      );
      assert(messages > 0, "no valid message came through");
      assert(longest <= 256, `a message of ${longest} bytes came through`);
      // After GC nothing is kept across cases: less than a few limits' worth.
      assert(grew < 1024 * 1024, `memory grew by ${grew} bytes`);
    }),
  );
}

/** A channel whose receive() hands out `values` (then waits), for RPC fuzzing. */
class ScriptedChannel<T> implements Channel<T, Message<T>> {
  closed = false;
  sent: T[] = [];
  #values: unknown[];
  // An index, not shift(): shift() on a large array moves every element.
  #next = 0;
  #parked: (() => void) | undefined;
  constructor(values: unknown[]) {
    this.#values = values;
  }
  send(value: T): Promise<void> {
    this.sent.push(value);
    return Promise.resolve();
  }
  receive(options: { signal?: AbortSignal } = {}): Promise<Message<T>> {
    if (this.closed) {
      return Promise.reject(new Deno.errors.BadResource("closed"));
    }
    if (this.#next < this.#values.length) {
      return Promise.resolve({ value: this.#values[this.#next++] as T });
    }
    // Nothing yet: wait for push() or close().
    return new Promise((resolve, reject) => {
      const fail = () => reject(new Deno.errors.BadResource("closed"));
      this.#parked = () => {
        options.signal?.removeEventListener("abort", fail);
        this.#parked = undefined;
        if (this.closed) fail();
        else resolve({ value: this.#values[this.#next++] as T });
      };
      options.signal?.addEventListener("abort", fail, { once: true });
    });
  }
  /** Resolves at once when a value is there; RPC code never waits on it. */
  ready(): Promise<void> {
    if (this.closed) {
      return Promise.reject(new Deno.errors.BadResource("closed"));
    }
    return this.#next < this.#values.length
      ? Promise.resolve()
      : Promise.reject(new Deno.errors.TimedOut("nothing scripted yet"));
  }
  push(value: unknown): void {
    this.#values.push(value);
    this.#parked?.();
  }
  close(): void {
    this.closed = true;
    this.#parked?.();
  }
  [Symbol.dispose](): void {
    this.close();
  }
  async *[Symbol.asyncIterator](): AsyncGenerator<Message<T>> {}
}

/** Hostile envelopes: random JSON-ish values and corrupted good ones. */
function hostileEnvelopes(seed: number, ids: number[]): unknown[] {
  const random = generator(seed);
  const int = (n: number) => Math.floor(random() * n);
  const anything = (depth = 0): unknown => {
    switch (int(depth > 2 ? 6 : 9)) {
      case 0:
        return null;
      case 1:
        return undefined;
      case 2:
        return int(2) === 0;
      case 3:
        return [0, -1, 1.5, 2 ** 60, Number.NaN, ids[int(ids.length)]][int(6)];
      case 4:
        return [
          "",
          "request",
          "response",
          "error",
          "x".repeat(int(20)),
        ][int(5)];
      case 5:
        return 12345678901234567890n;
      case 6:
        return Array.from({ length: int(4) }, () => anything(depth + 1));
      default: {
        const object: Record<string, unknown> = {};
        for (const key of ["kind", "id", "value", "error", "name", "message"]) {
          if (int(2)) object[key] = anything(depth + 1);
        }
        return object;
      }
    }
  };
  return Array.from({ length: CASES }, () => {
    if (int(3) > 0) return anything();
    const envelope: Record<string, unknown> = {
      kind: ["response", "error", "request"][int(3)],
      id: ids[int(ids.length)],
    };
    if (int(2)) envelope.value = anything(1);
    if (int(2)) {
      envelope.error = int(2)
        ? anything(1)
        : { name: anything(2), message: anything(2) };
    }
    return envelope;
  });
}

Deno.test(
  "Fuzz: an RPC client survives 100,000 hostile envelopes: only DecodeErrors reach its callers, and it keeps serving",
  leakChecked(async () => {
    type Envelope = RpcEnvelope<number, unknown>;
    const channel = new ScriptedChannel<Envelope>([]);
    const reported: unknown[] = [];
    using calls = client<number, unknown>(channel, {
      onError: (error) => reported.push(error),
    });
    // Pending requests with ids 1..50 for the envelopes to hit.
    const outcomes = Array.from(
      { length: 50 },
      (_, i) =>
        calls.request(i, { timeout: 60_000 }).then(
          (value) => ({ value }),
          (error) => ({ error }),
        ),
    );
    const ids = channel.sent.map((envelope) => envelope.id);
    for (const envelope of hostileEnvelopes(0xe11e, ids)) {
      channel.push(envelope);
    }
    const last = calls.request(-1, { timeout: 60_000 });
    const lastId = channel.sent.at(-1)!.id;
    channel.push({ kind: "response", id: lastId, value: "still here" });
    assertEquals(await bounded(last, 60_000, "the last answer"), "still here");
    for (const error of reported) allowed(error, "onError");
    for (const outcome of await Promise.all(outcomes)) {
      if ("error" in outcome) {
        // A well-formed error envelope is a RemoteError; anything else that
        // concerns the call is a DecodeError. Nothing else reaches callers.
        const { error } = outcome;
        assert(
          error instanceof DecodeError || error instanceof RemoteError,
          String(error),
        );
      }
    }
    assert(calls.dropped >= reported.length);
    channel.close();
  }),
);

Deno.test(
  "Fuzz: serve() survives 100,000 hostile envelopes: its handler sees only well-formed requests",
  leakChecked(async () => {
    type Envelope = RpcEnvelope<unknown, unknown>;
    const envelopes = hostileEnvelopes(0x5e7e, [1, 2, 3, 7]);
    const channel = new ScriptedChannel<Envelope>(envelopes);
    const reported: unknown[] = [];
    let handled = 0;
    const server = serve(channel, (value: unknown) => {
      handled++;
      return value;
    }, { onError: (error) => reported.push(error) });
    const expected = envelopes.filter((envelope) => {
      const e = envelope as { kind?: unknown; id?: unknown } | null;
      return typeof e === "object" && e !== null && e.kind === "request" &&
        Number.isSafeInteger(e.id);
    }).length;
    // Wait until every envelope is taken, then stop the server.
    await bounded(
      (async () => {
        while (handled + reported.length < envelopes.length) {
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      })(),
      60_000,
      "the server to take every envelope",
    );
    server.close();
    await bounded(server.done, 5000, "the server to stop");
    assertEquals(handled, expected);
    for (const error of reported) {
      assert(error instanceof DecodeError, String(error));
    }
    assert(channel.sent.every((envelope) => envelope.kind !== "request"));
  }),
);
