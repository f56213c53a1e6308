import assert from "node:assert/strict";
import { IpcError, MappedFile } from "../mod.ts";
import { sensor } from "./fixtures/_sensor.ts";
import { cString, O } from "../ffi/c.ts";
import { libc } from "../ffi/load.ts";
import { reserve } from "../mechanisms/_memory/mapping.ts";
import { commandSucceeds, leakChecked, runFixture } from "./_helpers.ts";

function tempFile(): { dir: string; path: string } & Disposable {
  const dir = Deno.makeTempDirSync({ prefix: "ipckit-test-mmap-" });
  return {
    dir,
    path: `${dir}/data.bin`,
    [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }),
  };
}

Deno.test(
  "MappedFile.open() creates a file of the requested size and shared writes reach it",
  leakChecked(() => {
    using tmp = tempFile();
    using file = MappedFile.open(tmp.path, { create: true, size: 8192 });
    assert.equal(file.size, 8192);
    assert.equal(file.shared, true);
    assert.equal(Deno.statSync(tmp.path).size, 8192);
    assert.equal(Deno.statSync(tmp.path).mode! & 0o777, 0o600);
    file.bytes().set(new TextEncoder().encode("hello"), 4096);
    file.flush({ byteOffset: 4096, byteLength: 5 });
    file.flush({ async: true });
    const onDisk = Deno.readFileSync(tmp.path);
    assert.equal(
      new TextDecoder().decode(onDisk.subarray(4096, 4101)),
      "hello",
    );
    using again = MappedFile.open(new URL(`file://${tmp.path}`));
    assert.equal(again.size, 8192);
    assert.equal(again.bytes()[4096], "h".charCodeAt(0));
    assert.throws(() => file.flush({ byteOffset: 8193 }), RangeError);
    assert.throws(() => file.flush({ byteLength: 8193 }), RangeError);
  }),
);

Deno.test(
  "MappedFile with shared: false is copy-on-write and leaves the file untouched",
  leakChecked(() => {
    using tmp = tempFile();
    Deno.writeFileSync(tmp.path, new Uint8Array([1, 2, 3, 4]));
    using file = MappedFile.open(tmp.path, { shared: false });
    assert.equal(file.shared, false);
    file.bytes()[0] = 9;
    assert.equal(file.bytes()[0], 9);
    assert.deepEqual([...Deno.readFileSync(tmp.path)], [1, 2, 3, 4]);
    assert.throws(() => file.resize(8), /mapped privately/);
    using readOnly = MappedFile.open(tmp.path, { readOnly: true });
    readOnly.bytes()[1] = 9; // private copy: no crash, no change
    assert.deepEqual([...Deno.readFileSync(tmp.path)], [1, 2, 3, 4]);
    assert.throws(() => readOnly.resize(8), /mapped read-only/);
  }),
);

Deno.test(
  "MappedFile.resize() grows and shrinks the file and detaches old views",
  leakChecked(() => {
    using tmp = tempFile();
    using file = MappedFile.open(tmp.path, { create: true, size: 4096 });
    const before = file.bytes();
    before[0] = 5;
    file.resize(3 * 4096);
    assert.equal(before.length, 0);
    assert.equal(file.size, 3 * 4096);
    assert.equal(Deno.statSync(tmp.path).size, 3 * 4096);
    const grown = file.bytes();
    assert.equal(grown[0], 5);
    grown[3 * 4096 - 1] = 6;
    file.resize(100);
    assert.equal(grown.length, 0);
    assert.equal(Deno.statSync(tmp.path).size, 100);
    assert.equal(file.bytes()[0], 5);
    assert.throws(() => file.resize(0), RangeError);
    assert.throws(() => file.resize(2.5), RangeError);
  }),
);

Deno.test(
  "MappedFile rejects bad paths, sizes and option combinations",
  leakChecked(() => {
    using tmp = tempFile();
    assert.throws(() => MappedFile.open(""), TypeError);
    assert.throws(() => MappedFile.open("/tmp/a\0b"), TypeError);
    assert.throws(
      () =>
        MappedFile.open(tmp.path, { create: true, size: 8, readOnly: true }),
      /readOnly cannot be combined with create/,
    );
    for (const size of [0, -1, 0.5, Number.MAX_SAFE_INTEGER + 1]) {
      assert.throws(
        () => MappedFile.open(tmp.path, { create: true, size }),
        RangeError,
      );
    }
    assert.throws(() => MappedFile.open(tmp.path), Deno.errors.NotFound);
    assert.throws(() => MappedFile.open(tmp.dir), /it is a directory/);
    const fifo = `${tmp.dir}/fifo`;
    new Deno.Command("mkfifo", { args: [fifo] }).outputSync();
    // O_RDWR does not wait for a peer on a FIFO (Linux), so this reaches fstat.
    assert.throws(() => MappedFile.open(fifo), /not a regular file/);
    Deno.writeFileSync(tmp.path, new Uint8Array(0));
    assert.throws(() => MappedFile.open(tmp.path), /it is empty/);
    Deno.writeFileSync(tmp.path, new Uint8Array(64));
    assert.throws(
      () => MappedFile.open(tmp.path, { size: 32 }),
      /larger than the 32 bytes requested/,
    );
  }),
);

Deno.test(
  "MappedFile shares a typed record with another process",
  leakChecked(async () => {
    using tmp = tempFile();
    using record = MappedFile.openStruct(tmp.path, sensor, { create: true });
    const flags = [
      "--allow-ffi",
      `--allow-read=${tmp.path}`,
      `--allow-write=${tmp.path}`,
    ];
    const wrote = await runFixture("shm_sensor.ts", flags, [
      "write",
      tmp.path,
      "file",
    ]);
    assert.equal(wrote.code, 0, wrote.stderr);
    assert.equal(record.$atomic.ready.load(), 1);
    assert.equal(record.label, "kitchen ☀");
    assert.equal(record.samples[63], 63 / 4);
  }),
);

Deno.test(
  "MappedFile checks permissions on the file's own path",
  leakChecked(async () => {
    using tmp = tempFile();
    Deno.writeFileSync(tmp.path, new Uint8Array(16));
    const readOnlyFlags = ["--allow-ffi", `--allow-read=${tmp.path}`];
    const shared = await runFixture("region_open.ts", readOnlyFlags, [
      "file",
      tmp.path,
      "{}",
    ]);
    assert.equal(
      shared.stdout.trim(),
      `NotCapable: Requires write access to "${tmp.path}", run again with --allow-write=${tmp.path}`,
    );
    const unread = await runFixture("region_open.ts", ["--allow-ffi"], [
      "file",
      tmp.path,
      JSON.stringify({ readOnly: true }),
    ]);
    assert.equal(
      unread.stdout.trim(),
      `NotCapable: Requires read access to "${tmp.path}", run again with --allow-read=${tmp.path}`,
    );
    // A private mapping only reads the file.
    const priv = await runFixture("region_open.ts", readOnlyFlags, [
      "file",
      tmp.path,
      JSON.stringify({ shared: false }),
    ]);
    assert.equal(priv.stdout.trim(), "ok 16");
  }),
);

Deno.test(
  "MappedFile fails with ENOSPC on a full file system and removes the file it created",
  leakChecked(async (t) => {
    using tmp = tempFile();
    const mounted = await commandSucceeds("mount", [
      "-t",
      "tmpfs",
      "-o",
      "size=256k",
      "tmpfs",
      tmp.dir,
    ]);
    if (!mounted) {
      console.log("skipped: cannot mount a small tmpfs (needs root)");
      return;
    }
    try {
      const path = `${tmp.dir}/big.bin`;
      assert.throws(
        () => MappedFile.open(path, { create: true, size: 1 << 20 }),
        (error: unknown) =>
          error instanceof IpcError && error.code === "ENOSPC",
      );
      assert.throws(() => Deno.statSync(path), Deno.errors.NotFound);
      using small = MappedFile.open(path, { create: true, size: 128 * 1024 });
      await t.step(
        "growing past the free space fails and keeps the mapping",
        () => {
          const view = small.bytes();
          assert.throws(
            () => small.resize(1 << 20),
            (error: unknown) =>
              error instanceof IpcError && error.code === "ENOSPC",
          );
          assert.equal(small.size, 128 * 1024);
          view[128 * 1024 - 1] = 1; // still mapped: growing failed before unmapping
          assert.equal(small.bytes()[128 * 1024 - 1], 1);
        },
      );
      small.close();
      await t.step(
        "posix_fallocate refuses on its own when the free-space check is passed",
        () => {
          const raced = `${tmp.dir}/raced.bin`;
          const fd = libc().symbols.open(
            cString(raced),
            O.RDWR | O.CREAT,
            0o600,
          );
          assert.ok(fd >= 0);
          try {
            // Overstating what is already allocated skips the fstatvfs check,
            // as a race with another process would: the reservation still fails.
            assert.throws(
              () => reserve(fd, 1 << 30, 1 << 20, "reserve raced.bin", "tmpfs"),
              (error: unknown) =>
                error instanceof IpcError && error.code === "ENOSPC" &&
                error.syscall === "posix_fallocate",
            );
            assert.equal(Deno.statSync(raced).size, 0);
          } finally {
            libc().symbols.close(fd);
          }
        },
      );
    } finally {
      await new Deno.Command("umount", { args: [tmp.dir] }).output();
    }
  }),
);
