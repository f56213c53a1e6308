import {
  assert,
  assertEquals,
  assertNotEquals,
  assertThrows,
} from "@std/assert";
import { codecs, layout, SharedMemory } from "../mod.ts";
import {
  codecFormat,
  fingerprintOf,
  IDENTITY_SIZE,
  KIND,
  setUpIdentity,
} from "../mechanisms/_ring/identity.ts";
import { Side } from "../mechanisms/_ring/liveness.ts";
import {
  processStartTime,
  sameProcessAlive,
} from "../mechanisms/_kernel/process_state.ts";
import { leakChecked, uniqueName } from "./_helpers.ts";

const sensor = layout({ id: "u32", temperature: "f64" });
// The same 16 bytes, read another way: what a bare struct cannot tell.
const sensorV2 = layout({ id: "u32", temperature: "f32", humidity: "f64" });

Deno.test(
  "SharedMemory.openStruct() with fingerprint refuses another layout of the same size, naming both",
  leakChecked(() => {
    const name = uniqueName("identity");
    using record = SharedMemory.openStruct(name, sensor, {
      create: true,
      fingerprint: true,
      unlinkOnClose: true,
    });
    record.temperature = 21.5;
    assertEquals(record.$byteOffset, IDENTITY_SIZE);
    assertEquals(record.$region.size, IDENTITY_SIZE + sensor.size);
    using again = SharedMemory.openStruct(name, sensor, { fingerprint: true });
    assertEquals(again.temperature, 21.5);
    const error = assertThrows(
      () => SharedMemory.openStruct(name, sensorV2, { fingerprint: true }),
      TypeError,
    );
    assertThrows(
      () =>
        SharedMemory.openStruct(name, sensorV2, {
          create: true,
          fingerprint: true,
          unlinkOnClose: true,
        }),
      TypeError,
    );
    // The refused open did not remove the object it refused.
    SharedMemory.openStruct(name, sensor, { fingerprint: true }).$close();
    assert(
      error.message.includes("id:u32@0,temperature:f64@8;size=16;little") &&
        error.message.includes(
          "id:u32@0,temperature:f32@4,humidity:f64@8;size=16;little",
        ),
      error.message,
    );
  }),
);

Deno.test(
  "SharedMemory.openStruct() without fingerprint still binds the bare struct at offset 0",
  leakChecked(() => {
    const name = uniqueName("identity-bare");
    using record = SharedMemory.openStruct(name, sensor, {
      create: true,
      unlinkOnClose: true,
    });
    assertEquals(record.$byteOffset, 0);
    assertEquals(record.$region.size, sensor.size);
    // A bare object is not mistaken for one with a header.
    assertThrows(
      () => SharedMemory.openStruct(name, sensor, { fingerprint: true }),
      RangeError,
    );
  }),
);

Deno.test(
  "The identity header refuses another kind, version, codec or foreign bytes",
  () => {
    const buffer = new ArrayBuffer(IDENTITY_SIZE);
    const json = {
      kind: KIND.channel,
      version: 1,
      capacity: 4096,
      format: codecFormat(codecs.json()),
    };
    setUpIdentity(buffer, 0, json, "channel x", true, () => {});
    setUpIdentity(buffer, 0, json, "channel x", false, () => {});
    assertThrows(
      () =>
        setUpIdentity(
          buffer,
          0,
          { ...json, version: 2 },
          "channel x",
          true,
          () => {},
        ),
      TypeError,
      "it is in format version 1, and this ipckit reads version 2",
    );
    assertThrows(
      () =>
        setUpIdentity(
          buffer,
          0,
          { ...json, kind: KIND.topic },
          "channel x",
          true,
          () => {},
        ),
      TypeError,
      "it holds a shared-memory channel, not a pub/sub topic",
    );
    assertThrows(
      () =>
        setUpIdentity(
          buffer,
          0,
          { ...json, format: codecFormat(codecs.struct(sensor)) },
          "channel x",
          true,
          () => {},
        ),
      TypeError,
      'it was made for "codec json", and this process uses "codec struct: id:u32@0',
    );
    const foreign = new ArrayBuffer(IDENTITY_SIZE);
    new Uint8Array(foreign)[0] = 0x7f;
    assertThrows(
      () => setUpIdentity(foreign, 0, json, "channel y", true, () => {}),
      TypeError,
      "do not start with an ipckit header",
    );
  },
);

Deno.test("fingerprintOf() differs between layouts and is FNV-1a 64", () => {
  assertEquals(fingerprintOf(""), 0xcbf29ce484222325n);
  assertEquals(fingerprintOf("a"), 0xaf63dc4c8601ec8cn);
  assertNotEquals(
    fingerprintOf(codecFormat(codecs.struct(sensor))),
    fingerprintOf(codecFormat(codecs.struct(sensorV2))),
  );
});

Deno.test(
  "A side's record tells a dead holder and a reused pid from a live one",
  leakChecked(async () => {
    const own = processStartTime(Deno.pid);
    assert(own !== undefined && own > 0n);
    const child = new Deno.Command("sleep", { args: ["10"] }).spawn();
    const started = processStartTime(child.pid)!;
    assert(started >= own);
    assert(sameProcessAlive(child.pid, started));
    assert(
      !sameProcessAlive(child.pid, started + 1n),
      "another start time is another process",
    );
    const buffer = new ArrayBuffer(16);
    const words = new Int32Array(buffer);
    const starts = new BigInt64Array(buffer, 8, 1);
    words[0] = child.pid;
    starts[0] = started;
    const side = new Side(buffer, 0);
    assert(side.alive());
    assertEquals(side.claim(), child.pid, "a live holder keeps it");
    child.kill("SIGKILL");
    await child.status;
    assert(!side.alive());
    assertEquals(side.claim(), 0, "a dead holder's side is taken over");
    assertEquals(side.pid, Deno.pid);
    assertEquals(side.claim(), Deno.pid, "taken once per process");
    side.release();
    assertEquals(side.pid, 0);
  }),
);
