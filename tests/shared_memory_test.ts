import assert from "node:assert/strict";
import { IpcError, layout, SharedMemory, utf8 } from "../mod.ts";
import { counter, sensor } from "./fixtures/_sensor.ts";
import {
  leakChecked,
  runFixture,
  spawnFixture,
  uniqueName,
} from "./_helpers.ts";

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
    assert.equal(created.size, 10_000);
    assert.deepEqual(shmStat(name), { size: 10_000, mode: 0o600 });
    using opened = SharedMemory.open(name);
    assert.equal(opened.size, 10_000);
    created.bytes()[9_999] = 0xab;
    assert.equal(opened.bytes()[9_999], 0xab);
    assert.equal(opened.name, name);
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
    assert.equal(memory.buffer, memory.buffer);
    const floats = memory.view(Float64Array, 8, 2);
    floats[1] = 1.5;
    assert.equal(new DataView(memory.buffer).getFloat64(16, true), 1.5);
    assert.equal(memory.view(Uint8Array).length, 64);
    assert.equal(memory.view(Int32Array, 60).length, 1);
    assert.throws(() => memory.view(Int32Array, 2), RangeError);
    assert.throws(() => memory.view(Int32Array, 0, 17), RangeError);
    assert.throws(() => memory.view(Int32Array, 68), RangeError);
    assert.throws(
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
    assert.equal(memory.closed, true);
    assert.equal(buffer.detached, true);
    assert.equal(bytes.length, 0);
    assert.equal(bytes[0], undefined);
    assert.equal(floats[0], undefined);
    assert.throws(() => data.getUint8(0), TypeError);
    assert.throws(() => record.id, Deno.errors.BadResource);
    assert.throws(() => (record.name = "x"), Deno.errors.BadResource);
    assert.throws(() => record.$atomic.id.add(1), Deno.errors.BadResource);
    assert.throws(() => memory.bytes(), Deno.errors.BadResource);
    assert.throws(() => memory.view(Uint8Array), Deno.errors.BadResource);
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
    assert.equal(moved[10], 7);
    memory.close();
    // The range was replaced by zero pages: reading it does not crash.
    assert.equal(moved[10], 0);
    moved[10] = 1;
    assert.equal(moved[10], 1);
  }),
);

Deno.test(
  "SharedMemory.open() rejects bad sizes, names and options before any system call",
  leakChecked(() => {
    const name = uniqueName("shm-bad");
    for (const size of [0, -1, 1.5, Number.MAX_SAFE_INTEGER + 1, NaN]) {
      assert.throws(
        () => SharedMemory.open(name, { create: true, size }),
        RangeError,
        `size ${size}`,
      );
    }
    assert.throws(
      () =>
        SharedMemory.open(name, {
          create: true,
          size: "8" as unknown as number,
        }),
      TypeError,
    );
    for (const bad of ["", "noslash", "/a/b", "/", "/a\0b", "/.."]) {
      assert.throws(() => SharedMemory.open(bad), TypeError, bad);
    }
    assert.throws(() => SharedMemory.open("/" + "x".repeat(256)), RangeError);
    assert.throws(
      () => SharedMemory.open(name, { create: true, size: 8, readOnly: true }),
      /readOnly cannot be combined with create/,
    );
    assert.throws(
      () => SharedMemory.open(name, { create: true }),
      /create needs a size/,
    );
    assert.throws(
      () => SharedMemory.open(name, { exclusive: true }),
      /exclusive needs create/,
    );
    assert.throws(
      () => SharedMemory.open(name, { create: true, size: 8, mode: 0o1000 }),
      RangeError,
    );
    assert.throws(() => SharedMemory.open(name), Deno.errors.NotFound);
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
    assert.throws(
      () => SharedMemory.open(name, { size: 4096 }),
      /it is 8192 bytes, larger than the 4096 bytes requested/,
    );
    assert.throws(
      () => SharedMemory.open(name, { create: true, size: 4096 }),
      RangeError,
    );
    assert.throws(
      () => SharedMemory.open(name, { size: 16384 }),
      /smaller than the 16384 bytes requested/,
    );
    assert.throws(
      () => SharedMemory.open(name, { create: true, exclusive: true, size: 8 }),
      Deno.errors.AlreadyExists,
    );
    // With create, a smaller object grows (its creator may not have sized it).
    using grown = SharedMemory.open(name, { create: true, size: 16384 });
    assert.equal(grown.size, 16384);
    assert.equal(memory.size, 8192);
  }),
);

Deno.test(
  "SharedMemory.open() fails with ENOSPC instead of SIGBUS when /dev/shm has no room, and leaves nothing behind",
  leakChecked(() => {
    const name = uniqueName("shm-nospace");
    const error = assert.throws(
      () => SharedMemory.open(name, { create: true, size: 2 ** 50 }),
      (error: unknown) => {
        assert.ok(error instanceof IpcError);
        assert.equal(error.code, "ENOSPC");
        assert.match(error.message, /\/dev\/shm has \d+ free/);
        return true;
      },
    );
    void error;
    assert.equal(shmStat(name), null);
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
    assert.equal(reader.readOnly, true);
    // Writes by others show through pages this handle has not written.
    writer.bytes()[0] = 1;
    writer.bytes()[4096] = 2;
    assert.equal(reader.bytes()[0], 1);
    // A write through the read-only handle stays in its private copy.
    reader.bytes()[4096] = 99;
    assert.equal(reader.bytes()[4096], 99);
    assert.equal(writer.bytes()[4096], 2);
    using again = SharedMemory.open(name, { readOnly: true });
    assert.equal(again.bytes()[4096], 2);
    // Records refuse writes outright.
    const record = reader.struct(layout({ flag: "u32" }));
    assert.throws(() => (record.flag = 1), /opened read-only/);
    assert.throws(() => record.$atomic.flag.add(1), /opened read-only/);
    assert.equal(record.$atomic.flag.load(), 1);
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
    assert.equal(record.$region.size, sensor.size);
    const wrote = await runFixture("shm_sensor.ts", ALL, ["write", name]);
    assert.equal(wrote.code, 0, wrote.stderr);
    assert.equal(record.$atomic.ready.load(), 1);
    assert.equal(record.id, 7);
    assert.equal(record.temperature, 21.5);
    assert.equal(record.label, "kitchen ☀");
    assert.equal(record.count, 1);
    assert.deepEqual(
      [...record.samples],
      [...Array(64).keys()].map((i) => i / 4),
    );

    record.label = "parent";
    record.count = -3;
    const read = await runFixture("shm_sensor.ts", ALL, ["read", name]);
    assert.equal(read.code, 0, read.stderr);
    const seen = JSON.parse(read.stdout);
    assert.equal(seen.label, "parent");
    assert.equal(seen.count, -3);
    assert.equal(seen.id, 7);
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
      assert.equal(result.code, 0, new TextDecoder().decode(result.stderr));
    }
    assert.equal(record.$atomic.count.load(), 2 * iterations);
    assert.equal(record.$atomic.big.load(), BigInt(2 * iterations));
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
    assert.equal(
      noRead.stdout.trim(),
      `NotCapable: Requires read access to "/dev/shm/${base}", run again with --allow-read=/dev/shm`,
    );
    const noWrite = await runFixture(
      "region_open.ts",
      ["--allow-ffi", "--allow-read=/dev/shm"],
      ["shm", name, JSON.stringify({ create: true, size: 64 })],
    );
    assert.equal(
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
    assert.equal(readOnly.stdout.trim(), "ok 64");
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

async function _python(args: string[]): Promise<Deno.CommandOutput | null> {
  try {
    return await new Deno.Command("python3", {
      args: ["-c", PYTHON_ATTACH, ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

Deno.test(
  "SharedMemory interoperates with Python's multiprocessing.shared_memory",
  leakChecked(async () => {
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
    if (attached === null) {
      console.log("skipped: python3 is not installed");
      return;
    }
    const stderr = new TextDecoder().decode(attached.stderr);
    assert.equal(attached.code, 0, stderr);
    assert.equal(
      new TextDecoder().decode(attached.stdout).trim(),
      `4096 ${0xc0ffee} from ipckit`,
    );
    // Python's resource tracker neither warned nor removed our object.
    assert.doesNotMatch(stderr, /leaked|resource_tracker/);
    assert.equal(shmStat(name)?.size, 4096);
    assert.equal(
      new TextDecoder().decode(memory.bytes().subarray(100, 105)),
      "hello",
    );

    // And the other way round: Python creates (sparse, via ftruncate), we
    // open it for writing (which reserves its pages), read, then remove it.
    const other = uniqueName("shm-python-made");
    const made = await _python(["create", other.slice(1)]);
    assert.ok(made);
    assert.equal(made.code, 0, new TextDecoder().decode(made.stderr));
    using theirs = SharedMemory.open(other, { unlinkOnClose: true });
    assert.equal(theirs.size, 8192);
    assert.equal(
      new TextDecoder().decode(theirs.bytes().subarray(0, 5)),
      "py-ok",
    );
    theirs.bytes()[8191] = 1;
  }),
);
