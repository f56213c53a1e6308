import {
  assert,
  assertEquals,
  assertMatch,
  assertNotMatch,
  assertStrictEquals,
  assertThrows,
} from "@std/assert";
import { IpcError, layout, SharedMemory, utf8 } from "../mod.ts";
import { counter, sensor } from "./fixtures/_sensor.ts";
import {
  commandSucceeds,
  leakChecked,
  runFixture,
  skip,
  spawnFixture,
  testNeeding,
  uniqueName,
} from "./_helpers.ts";
import { bounded } from "./_bounded.ts";

const ALL = ["--allow-ffi", "--allow-read=/dev/shm", "--allow-write=/dev/shm"];

/**
 * Size and permission bits of /dev/shm/<name> as coreutils' stat reports
 * them, or null when it does not exist. (Deno.statSync on /dev needs
 * --allow-all, so the test asks another program.)
 */
function shmStat(name: string): { size: number; mode: number } | null {
  const { success, stdout } = new Deno.Command("stat", {
    args: ["-c", "%s %a", `/dev/shm${name}`],
    stdout: "piped",
    stderr: "null",
  }).outputSync();
  if (!success) return null;
  const [size, mode] = new TextDecoder().decode(stdout).trim().split(" ");
  return { size: Number(size), mode: parseInt(mode, 8) };
}

Deno.test(
  "SharedMemory.open() creates an object of the requested size and reopening reads that size",
  leakChecked(() => {
    const name = uniqueName("shm-size");
    using created = SharedMemory.open(name, {
      create: true,
      size: 10_000,
      unlinkOnClose: true,
    });
    assertEquals(created.size, 10_000);
    assertEquals(shmStat(name), { size: 10_000, mode: 0o600 });
    using opened = SharedMemory.open(name);
    assertEquals(opened.size, 10_000);
    created.bytes()[9_999] = 0xab;
    assertEquals(opened.bytes()[9_999], 0xab);
    assertEquals(opened.name, name);
  }),
);

Deno.test(
  "SharedMemory views read and write the same memory without copying",
  leakChecked(() => {
    const name = uniqueName("shm-views");
    using memory = SharedMemory.open(name, {
      create: true,
      size: 64,
      unlinkOnClose: true,
    });
    assertStrictEquals(memory.buffer, memory.buffer);
    const floats = memory.view(Float64Array, 8, 2);
    floats[1] = 1.5;
    assertEquals(new DataView(memory.buffer).getFloat64(16, true), 1.5);
    assertEquals(memory.view(Uint8Array).length, 64);
    assertEquals(memory.view(Int32Array, 60).length, 1);
    assertThrows(() => memory.view(Int32Array, 2), RangeError);
    assertThrows(() => memory.view(Int32Array, 0, 17), RangeError);
    assertThrows(() => memory.view(Int32Array, 68), RangeError);
    assertThrows(
      () => memory.view(Array as unknown as Int32ArrayConstructor),
      TypeError,
    );
  }),
);

Deno.test(
  "SharedMemory.close() detaches every view it handed out",
  leakChecked(() => {
    const name = uniqueName("shm-detach");
    const memory = SharedMemory.open(name, {
      create: true,
      size: 4096,
      unlinkOnClose: true,
    });
    const buffer = memory.buffer;
    const bytes = memory.bytes();
    const floats = memory.view(Float32Array);
    const data = new DataView(memory.buffer);
    const record = memory.struct(layout({ id: "u32", name: utf8(8) }));
    bytes[0] = 1;
    record.id = 5;
    memory.close();
    memory.close(); // idempotent
    assertEquals(memory.closed, true);
    assertEquals(buffer.detached, true);
    assertEquals(bytes.length, 0);
    assertEquals(bytes[0], undefined);
    assertEquals(floats[0], undefined);
    assertThrows(() => data.getUint8(0), TypeError);
    assertThrows(() => record.id, Deno.errors.BadResource);
    assertThrows(() => (record.name = "x"), Deno.errors.BadResource);
    assertThrows(() => record.$atomic.id.add(1), Deno.errors.BadResource);
    assertThrows(() => memory.bytes(), Deno.errors.BadResource);
    assertThrows(() => memory.view(Uint8Array), Deno.errors.BadResource);
  }),
);

Deno.test(
  "SharedMemory.close() keeps a buffer moved away with transfer() readable instead of unmapping it",
  leakChecked(() => {
    const name = uniqueName("shm-escape");
    const memory = SharedMemory.open(name, {
      create: true,
      size: 4096,
      unlinkOnClose: true,
    });
    memory.bytes()[10] = 7;
    const moved = new Uint8Array(memory.buffer.transfer());
    assertEquals(moved[10], 7);
    memory.close();
    // The range was replaced by zero pages: reading it does not crash.
    assertEquals(moved[10], 0);
    moved[10] = 1;
    assertEquals(moved[10], 1);
  }),
);

Deno.test(
  "SharedMemory.open() rejects bad sizes, names and options before any system call",
  leakChecked(() => {
    const name = uniqueName("shm-bad");
    for (const size of [0, -1, 1.5, Number.MAX_SAFE_INTEGER + 1, NaN]) {
      assertThrows(
        () => SharedMemory.open(name, { create: true, size }),
        RangeError,
        undefined,
        `size ${size}`,
      );
    }
    assertThrows(
      () =>
        SharedMemory.open(name, {
          create: true,
          size: "8" as unknown as number,
        }),
      TypeError,
    );
    for (const bad of ["", "noslash", "/a/b", "/", "/a\0b", "/.."]) {
      assertThrows(() => SharedMemory.open(bad), TypeError, undefined, bad);
    }
    assertThrows(() => SharedMemory.open("/" + "x".repeat(256)), RangeError);
    assertThrows(
      () => SharedMemory.open(name, { create: true, size: 8, readOnly: true }),
      Error,
      "readOnly cannot be combined with create",
    );
    assertThrows(
      () => SharedMemory.open(name, { create: true }),
      Error,
      "create needs a size",
    );
    assertThrows(
      () => SharedMemory.open(name, { exclusive: true }),
      Error,
      "exclusive needs create",
    );
    assertThrows(
      () => SharedMemory.open(name, { create: true, size: 8, mode: 0o1000 }),
      RangeError,
    );
    assertThrows(() => SharedMemory.open(name), Deno.errors.NotFound);
  }),
);

Deno.test(
  "SharedMemory.open() refuses an existing object whose size does not match",
  leakChecked(() => {
    const name = uniqueName("shm-mismatch");
    using memory = SharedMemory.open(name, {
      create: true,
      size: 8192,
      unlinkOnClose: true,
    });
    assertThrows(
      () => SharedMemory.open(name, { size: 4096 }),
      Error,
      "it is 8192 bytes, larger than the 4096 bytes requested",
    );
    assertThrows(
      () => SharedMemory.open(name, { create: true, size: 4096 }),
      RangeError,
    );
    assertThrows(
      () => SharedMemory.open(name, { size: 16384 }),
      Error,
      "smaller than the 16384 bytes requested",
    );
    assertThrows(
      () => SharedMemory.open(name, { create: true, exclusive: true, size: 8 }),
      Deno.errors.AlreadyExists,
    );
    // With create, a smaller object grows (its creator may not have sized it).
    using grown = SharedMemory.open(name, { create: true, size: 16384 });
    assertEquals(grown.size, 16384);
    assertEquals(memory.size, 8192);
  }),
);

Deno.test(
  "SharedMemory.open() fails with ENOSPC instead of SIGBUS when /dev/shm has no room, and leaves nothing behind",
  leakChecked(() => {
    const name = uniqueName("shm-nospace");
    const error = assertThrows(
      () => SharedMemory.open(name, { create: true, size: 2 ** 50 }),
      IpcError,
    );
    assertEquals(error.code, "ENOSPC");
    assertMatch(error.message, /\/dev\/shm has \d+ free/);
    void error;
    assertEquals(shmStat(name), null);
  }),
);

Deno.test(
  "SharedMemory read-only handles never crash on writes and never change the object",
  leakChecked(() => {
    const name = uniqueName("shm-readonly");
    using writer = SharedMemory.open(name, {
      create: true,
      size: 2 * 4096,
      unlinkOnClose: true,
    });
    using reader = SharedMemory.open(name, { readOnly: true });
    assertEquals(reader.readOnly, true);
    // Writes by others show through pages this handle has not written.
    writer.bytes()[0] = 1;
    writer.bytes()[4096] = 2;
    assertEquals(reader.bytes()[0], 1);
    // A write through the read-only handle stays in its private copy.
    reader.bytes()[4096] = 99;
    assertEquals(reader.bytes()[4096], 99);
    assertEquals(writer.bytes()[4096], 2);
    using again = SharedMemory.open(name, { readOnly: true });
    assertEquals(again.bytes()[4096], 2);
    // Records refuse writes outright.
    const record = reader.struct(layout({ flag: "u32" }));
    assertThrows(() => (record.flag = 1), Error, "opened read-only");
    assertThrows(() => record.$atomic.flag.add(1), Error, "opened read-only");
    assertEquals(record.$atomic.flag.load(), 1);
  }),
);

Deno.test(
  "SharedMemory.openStruct() shares a typed record with another process",
  leakChecked(async () => {
    const name = uniqueName("shm-struct");
    using record = SharedMemory.openStruct(name, sensor, {
      create: true,
      unlinkOnClose: true,
    });
    assertEquals(record.$region.size, sensor.size);
    const wrote = await runFixture("shm_sensor.ts", ALL, ["write", name]);
    assertEquals(wrote.code, 0, wrote.stderr);
    assertEquals(record.$atomic.ready.load(), 1);
    assertEquals(record.id, 7);
    assertEquals(record.temperature, 21.5);
    assertEquals(record.label, "kitchen ☀");
    assertEquals(record.count, 1);
    assertEquals(
      [...record.samples],
      [...Array(64).keys()].map((i) => i / 4),
    );

    record.label = "parent";
    record.count = -3;
    const read = await runFixture("shm_sensor.ts", ALL, ["read", name]);
    assertEquals(read.code, 0, read.stderr);
    const seen = JSON.parse(read.stdout);
    assertEquals(seen.label, "parent");
    assertEquals(seen.count, -3);
    assertEquals(seen.id, 7);
  }),
);

Deno.test(
  "SharedMemory atomic fields count exactly when two processes each add 1,000,000 times",
  leakChecked(async () => {
    const name = uniqueName("shm-counter");
    using record = SharedMemory.openStruct(name, counter, {
      create: true,
      unlinkOnClose: true,
    });
    const iterations = 1_000_000;
    const children = [0, 1].map(() =>
      spawnFixture("shm_counter.ts", ALL, [name, String(iterations)])
    );
    // Start only once both children have the record open and are spinning.
    await new Promise((resolve) => setTimeout(resolve, 300));
    record.$atomic.start.store(1);
    const results = await Promise.all(children.map((child) => child.output()));
    for (const result of results) {
      assertEquals(result.code, 0, new TextDecoder().decode(result.stderr));
    }
    assertEquals(record.$atomic.count.load(), 2 * iterations);
    assertEquals(record.$atomic.big.load(), BigInt(2 * iterations));
  }),
);

Deno.test(
  "SharedMemory checks /dev/shm permissions and names the missing flag",
  leakChecked(async () => {
    const name = uniqueName("shm-perm");
    const base = name.slice(1);
    const noRead = await runFixture("region_open.ts", ["--allow-ffi"], [
      "shm",
      name,
      JSON.stringify({ create: true, size: 64 }),
    ]);
    assertEquals(
      noRead.stdout.trim(),
      `NotCapable: Requires read access to "/dev/shm/${base}", run again with --allow-read=/dev/shm`,
    );
    const noWrite = await runFixture(
      "region_open.ts",
      ["--allow-ffi", "--allow-read=/dev/shm"],
      ["shm", name, JSON.stringify({ create: true, size: 64 })],
    );
    assertEquals(
      noWrite.stdout.trim(),
      `NotCapable: Requires write access to "/dev/shm/${base}", run again with --allow-write=/dev/shm`,
    );
    using _memory = SharedMemory.open(name, {
      create: true,
      size: 64,
      unlinkOnClose: true,
    });
    const readOnly = await runFixture(
      "region_open.ts",
      ["--allow-ffi", `--allow-read=/dev/shm/${base}`],
      ["shm", name, JSON.stringify({ readOnly: true })],
    );
    assertEquals(readOnly.stdout.trim(), "ok 64");
  }),
);

/** Python's resource tracker must neither unlink nor warn about our segment. */
const PYTHON_ATTACH = `
import sys
from multiprocessing import resource_tracker, shared_memory

def attach(name, **kw):
    try:
        return shared_memory.SharedMemory(name=name, track=False, **kw)
    except TypeError:
        # Python < 3.13 registers every segment it touches with the resource
        # tracker, which would unlink it at exit: undo that registration.
        shm = shared_memory.SharedMemory(name=name, **kw)
        resource_tracker.unregister(shm._name, "shared_memory")
        return shm

mode, name = sys.argv[1], sys.argv[2]
if mode == "attach":
    shm = attach(name)
    text = bytes(shm.buf[4:36]).rstrip(b"\\0").decode()
    magic = int.from_bytes(shm.buf[0:4], "little")
    shm.buf[100:105] = b"hello"
    print(shm.size, magic, text)
    shm.close()
else:
    shm = attach(name, create=True, size=8192)
    shm.buf[0:5] = b"py-ok"
    shm.close()
`;

async function _python(args: string[]): Promise<Deno.CommandOutput> {
  return await new Deno.Command("python3", {
    args: ["-c", PYTHON_ATTACH, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
}

const PYTHON_MISSING = await commandSucceeds("python3", [
    "-c",
    "import multiprocessing.shared_memory",
  ])
  ? undefined
  : "python3 with multiprocessing.shared_memory is not installed (apt-get install python3)";

Deno.test({
  name:
    "SharedMemory interoperates with Python's multiprocessing.shared_memory",
  ignore: skip("the Python interop test", PYTHON_MISSING),
  fn: leakChecked(async () => {
    const name = uniqueName("shm-python");
    const box = layout({ magic: "u32", text: utf8(32) });
    using memory = SharedMemory.open(name, {
      create: true,
      size: 4096,
      unlinkOnClose: true,
    });
    const record = memory.struct(box);
    record.magic = 0xc0ffee;
    record.text = "from ipckit";
    const attached = await _python(["attach", name.slice(1)]);
    const stderr = new TextDecoder().decode(attached.stderr);
    assertEquals(attached.code, 0, stderr);
    assertEquals(
      new TextDecoder().decode(attached.stdout).trim(),
      `4096 ${0xc0ffee} from ipckit`,
    );
    // Python's resource tracker neither warned nor removed our object.
    assertNotMatch(stderr, /leaked|resource_tracker/);
    assertEquals(shmStat(name)?.size, 4096);
    assertEquals(
      new TextDecoder().decode(memory.bytes().subarray(100, 105)),
      "hello",
    );

    // And the other way round: Python creates (sparse, via ftruncate), we
    // open it for writing (which reserves its pages), read, then remove it.
    const other = uniqueName("shm-python-made");
    const made = await _python(["create", other.slice(1)]);
    assertEquals(made.code, 0, new TextDecoder().decode(made.stderr));
    using theirs = SharedMemory.open(other, { unlinkOnClose: true });
    assertEquals(theirs.size, 8192);
    assertEquals(
      new TextDecoder().decode(theirs.bytes().subarray(0, 5)),
      "py-ok",
    );
    theirs.bytes()[8191] = 1;
  }),
});

/** Whether this process may mount a file system in a private mount namespace. */
const canMountPrivately = Deno.uid() === 0 &&
  await commandSucceeds("unshare", [
    "--mount",
    "--propagation",
    "private",
    "true",
  ]);
const privateMountMissing = canMountPrivately
  ? undefined
  : "it needs root and unshare(1) to mount a small /dev/shm in a private mount namespace";

/**
 * Runs the shm_sparse fixture on a private 1 MiB /dev/shm holding a sparse
 * object `/sparse` of `sparse` bytes, after `fill` KiB of other data;
 * returns its output line and how it ended.
 */
async function onSmallShm(
  how: "readOnly" | "readWrite",
  { sparse, fill }: { sparse: string; fill: number },
): Promise<{ line: string; signal: Deno.Signal | null }> {
  const script = new URL("./fixtures/shm_sparse.ts", import.meta.url).pathname;
  const setup = [
    "mount -t tmpfs -o size=1m tmpfs /dev/shm",
    `truncate -s ${sparse} /dev/shm/sparse`,
    fill > 0
      ? `dd if=/dev/zero of=/dev/shm/fill bs=1k count=${fill} 2>/dev/null`
      : "true",
    `exec "$0" run --quiet --allow-ffi --allow-read=/dev/shm --allow-write=/dev/shm "$1" /sparse "$2"`,
  ].join(" && ");
  const child = new Deno.Command("unshare", {
    args: [
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      setup,
      Deno.execPath(),
      script,
      how,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = await bounded(child.output(), 20_000, "the sparse fixture");
  const line = new TextDecoder().decode(output.stdout).trim();
  const stderr = new TextDecoder().decode(output.stderr).trim();
  return { line: line || stderr, signal: output.signal };
}

for (const how of ["readOnly", "readWrite"] as const) {
  testNeeding(privateMountMissing, {
    name:
      `SharedMemory.open() ${how} over a sparse object on a full /dev/shm fails with ENOSPC instead of dying of SIGBUS`,
    fn: leakChecked(async () => {
      const { line, signal } = await onSmallShm(how, {
        sparse: "4M",
        fill: 1024 - 8,
      });
      assertEquals(signal, null, `the process died: ${line}`);
      assertMatch(
        line,
        /^IpcError ENOSPC: Cannot open shared memory "\/sparse": /,
      );
    }),
  });
}

testNeeding(privateMountMissing, {
  name:
    "SharedMemory.open() readOnly over a sparse object that fits /dev/shm faults its holes in and reads zeros",
  fn: leakChecked(async () => {
    const { line, signal } = await onSmallShm("readOnly", {
      sparse: "512K",
      fill: 0,
    });
    assertEquals(signal, null, `the process died: ${line}`);
    assertEquals(line, `read ${512 * 1024} 0`);
  }),
});

/** st_blocks x 512 of a file in /dev/shm, read with coreutils stat. */
async function allocatedBytes(path: string): Promise<number> {
  const { stdout } = await new Deno.Command("stat", {
    args: ["-c", "%b %B", path],
  }).output();
  const [blocks, unit] = new TextDecoder().decode(stdout).trim().split(" ");
  return Number(blocks) * Number(unit);
}

Deno.test(
  "SharedMemory.open() reserves the holes of an existing sparse object, and a read-only open faults them in",
  leakChecked(async () => {
    for (const readOnly of [false, true]) {
      const name = uniqueName("shm-sparse");
      const path = `/dev/shm${name}`;
      // What Python's shared_memory and plain ftruncate leave: all holes.
      const made = await new Deno.Command("truncate", {
        args: ["-s", "1M", path],
      }).output();
      assert(made.success, "truncate failed");
      try {
        assertEquals(await allocatedBytes(path), 0);
        using memory = SharedMemory.open(name, { readOnly });
        assertEquals(memory.size, 1024 * 1024);
        assertEquals(
          await allocatedBytes(path),
          1024 * 1024,
          `readOnly ${readOnly}`,
        );
        assertEquals(memory.bytes().every((byte) => byte === 0), true);
      } finally {
        SharedMemory.unlink(name);
      }
    }
  }),
);
