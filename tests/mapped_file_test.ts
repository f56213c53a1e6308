import { assert, assertEquals, assertThrows } from "@std/assert";
import { IpcError, MappedFile } from "../mod.ts";
import { sensor } from "./fixtures/_sensor.ts";
import { cString, O } from "../ffi/c.ts";
import { libc } from "../ffi/load.ts";
import { reserve } from "../mechanisms/_memory/mapping.ts";
import { commandSucceeds, leakChecked, runFixture, skip } from "./_helpers.ts";

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
    assertEquals(file.size, 8192);
    assertEquals(file.shared, true);
    assertEquals(Deno.statSync(tmp.path).size, 8192);
    assertEquals(Deno.statSync(tmp.path).mode! & 0o777, 0o600);
    file.bytes().set(new TextEncoder().encode("hello"), 4096);
    file.flush({ byteOffset: 4096, byteLength: 5 });
    file.flush({ async: true });
    const onDisk = Deno.readFileSync(tmp.path);
    assertEquals(
      new TextDecoder().decode(onDisk.subarray(4096, 4101)),
      "hello",
    );
    using again = MappedFile.open(new URL(`file://${tmp.path}`));
    assertEquals(again.size, 8192);
    assertEquals(again.bytes()[4096], "h".charCodeAt(0));
    assertThrows(() => file.flush({ byteOffset: 8193 }), RangeError);
    assertThrows(() => file.flush({ byteLength: 8193 }), RangeError);
  }),
);

Deno.test(
  "MappedFile with shared: false is copy-on-write and leaves the file untouched",
  leakChecked(() => {
    using tmp = tempFile();
    Deno.writeFileSync(tmp.path, new Uint8Array([1, 2, 3, 4]));
    using file = MappedFile.open(tmp.path, { shared: false });
    assertEquals(file.shared, false);
    file.bytes()[0] = 9;
    assertEquals(file.bytes()[0], 9);
    assertEquals([...Deno.readFileSync(tmp.path)], [1, 2, 3, 4]);
    assertThrows(() => file.resize(8), Error, "mapped privately");
    using readOnly = MappedFile.open(tmp.path, { readOnly: true });
    readOnly.bytes()[1] = 9; // private copy: no crash, no change
    assertEquals([...Deno.readFileSync(tmp.path)], [1, 2, 3, 4]);
    assertThrows(() => readOnly.resize(8), Error, "mapped read-only");
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
    assertEquals(before.length, 0);
    assertEquals(file.size, 3 * 4096);
    assertEquals(Deno.statSync(tmp.path).size, 3 * 4096);
    const grown = file.bytes();
    assertEquals(grown[0], 5);
    grown[3 * 4096 - 1] = 6;
    file.resize(100);
    assertEquals(grown.length, 0);
    assertEquals(Deno.statSync(tmp.path).size, 100);
    assertEquals(file.bytes()[0], 5);
    assertThrows(() => file.resize(0), RangeError);
    assertThrows(() => file.resize(2.5), RangeError);
  }),
);

Deno.test(
  "MappedFile rejects bad paths, sizes and option combinations",
  leakChecked(() => {
    using tmp = tempFile();
    assertThrows(() => MappedFile.open(""), TypeError);
    assertThrows(() => MappedFile.open("/tmp/a\0b"), TypeError);
    assertThrows(
      () =>
        MappedFile.open(tmp.path, { create: true, size: 8, readOnly: true }),
      Error,
      "readOnly cannot be combined with create",
    );
    for (const size of [0, -1, 0.5, Number.MAX_SAFE_INTEGER + 1]) {
      assertThrows(
        () => MappedFile.open(tmp.path, { create: true, size }),
        RangeError,
      );
    }
    assertThrows(() => MappedFile.open(tmp.path), Deno.errors.NotFound);
    assertThrows(() => MappedFile.open(tmp.dir), Error, "it is a directory");
    const fifo = `${tmp.dir}/fifo`;
    new Deno.Command("mkfifo", { args: [fifo] }).outputSync();
    // O_RDWR does not wait for a peer on a FIFO (Linux), so this reaches fstat.
    assertThrows(() => MappedFile.open(fifo), Error, "not a regular file");
    Deno.writeFileSync(tmp.path, new Uint8Array(0));
    assertThrows(() => MappedFile.open(tmp.path), Error, "it is empty");
    Deno.writeFileSync(tmp.path, new Uint8Array(64));
    assertThrows(
      () => MappedFile.open(tmp.path, { size: 32 }),
      Error,
      "larger than the 32 bytes requested",
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
    assertEquals(wrote.code, 0, wrote.stderr);
    assertEquals(record.$atomic.ready.load(), 1);
    assertEquals(record.label, "kitchen ☀");
    assertEquals(record.samples[63], 63 / 4);
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
    assertEquals(
      shared.stdout.trim(),
      `NotCapable: Requires write access to "${tmp.path}", run again with --allow-write=${tmp.path}`,
    );
    const unread = await runFixture("region_open.ts", ["--allow-ffi"], [
      "file",
      tmp.path,
      JSON.stringify({ readOnly: true }),
    ]);
    assertEquals(
      unread.stdout.trim(),
      `NotCapable: Requires read access to "${tmp.path}", run again with --allow-read=${tmp.path}`,
    );
    // A private mapping only reads the file.
    const priv = await runFixture("region_open.ts", readOnlyFlags, [
      "file",
      tmp.path,
      JSON.stringify({ shared: false }),
    ]);
    assertEquals(priv.stdout.trim(), "ok 16");
  }),
);

/** Mounts a small tmpfs on `dir`; whether it worked. */
function mountSmallTmpfs(dir: string): Promise<boolean> {
  return commandSucceeds("mount", [
    "-t",
    "tmpfs",
    "-o",
    "size=256k",
    "tmpfs",
    dir,
  ]);
}

/** Why a small tmpfs cannot be mounted here, found by trying once. */
async function tmpfsMissing(): Promise<string | undefined> {
  if (Deno.uid() !== 0) return "mounting a small tmpfs needs root";
  using probe = tempFile();
  if (!(await mountSmallTmpfs(probe.dir))) {
    return "mount -t tmpfs failed here (no CAP_SYS_ADMIN?)";
  }
  await commandSucceeds("umount", [probe.dir]);
  return undefined;
}

const TMPFS_MISSING = await tmpfsMissing();

Deno.test({
  name:
    "MappedFile fails with ENOSPC on a full file system and removes the file it created",
  ignore: skip("the full file system test", TMPFS_MISSING),
  fn: leakChecked(async (t) => {
    using tmp = tempFile();
    if (!(await mountSmallTmpfs(tmp.dir))) {
      throw new Error(`Cannot mount a small tmpfs on ${tmp.dir}`);
    }
    try {
      const path = `${tmp.dir}/big.bin`;
      const error = assertThrows(
        () => MappedFile.open(path, { create: true, size: 1 << 20 }),
        IpcError,
      );
      assertEquals(error.code, "ENOSPC");
      assertThrows(() => Deno.statSync(path), Deno.errors.NotFound);
      using small = MappedFile.open(path, { create: true, size: 128 * 1024 });
      await t.step(
        "growing past the free space fails and keeps the mapping",
        () => {
          const view = small.bytes();
          const error = assertThrows(() => small.resize(1 << 20), IpcError);
          assertEquals(error.code, "ENOSPC");
          assertEquals(small.size, 128 * 1024);
          view[128 * 1024 - 1] = 1; // still mapped: growing failed before unmapping
          assertEquals(small.bytes()[128 * 1024 - 1], 1);
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
          assert(fd >= 0);
          try {
            // Overstating what is already allocated skips the fstatvfs check,
            // as a race with another process would: the reservation still fails.
            const error = assertThrows(
              () => reserve(fd, 1 << 30, 1 << 20, "reserve raced.bin", "tmpfs"),
              IpcError,
            );
            assertEquals(error.code, "ENOSPC");
            assertEquals(error.syscall, "posix_fallocate");
            assertEquals(Deno.statSync(raced).size, 0);
          } finally {
            libc().symbols.close(fd);
          }
        },
      );
    } finally {
      await new Deno.Command("umount", { args: [tmp.dir] }).output();
    }
  }),
});
