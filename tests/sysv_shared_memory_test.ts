import { assert, assertEquals, assertThrows } from "@std/assert";
import { layout, SysvSharedMemory, utf8 } from "../mod.ts";
import { leakChecked, runFixture, uniqueKey } from "./_helpers.ts";
import { kernelLimit, PEER_FLAGS } from "./_sysv.ts";

Deno.test(
  "SysvSharedMemory: two processes add to one counter with Atomics and the total is exact",
  leakChecked(async () => {
    using segment = SysvSharedMemory.open(uniqueKey(), {
      create: true,
      exclusive: true,
      size: 4096,
      unlinkOnClose: true,
    });
    const counter = segment.view(Int32Array, 0, 1);
    const child = runFixture("sysv_peer.ts", PEER_FLAGS, [
      "shm-add",
      String(segment.key),
      "100000",
    ]);
    for (let i = 0; i < 100_000; i++) Atomics.add(counter, 0, 1);
    const result = await child;
    assertEquals(result.code, 0, result.stderr);
    assertEquals(Atomics.load(counter, 0), 200_000);
  }),
);

Deno.test(
  "SysvSharedMemory: views are detached before shmdt, and attach counts follow the handles",
  leakChecked(() => {
    const first = SysvSharedMemory.open(uniqueKey(), {
      create: true,
      exclusive: true,
      size: 1024,
    });
    const second = SysvSharedMemory.open(first.key);
    assertEquals(first.attributes().attachments, 2);
    assertEquals(first.attributes().creatorPid, Deno.pid);
    const bytes = first.bytes();
    const data = new DataView(first.buffer);
    bytes[0] = 42;
    assertEquals(second.bytes()[0], 42);
    first.close();
    assertEquals(bytes.length, 0);
    assertEquals(bytes[0], undefined);
    assertThrows(() => data.getUint8(0), TypeError);
    assertEquals(second.attributes().attachments, 1);
    second.remove();
    // Marked: the segment lives on until its last attachment goes.
    assertEquals(second.bytes()[0], 42);
    second.close();
    assertThrows(() => SysvSharedMemory.open(first.key), Deno.errors.NotFound);
  }),
);

Deno.test(
  "SysvSharedMemory dropped without close() is detached by the safety net, which maps zero pages over it",
  leakChecked(async () => {
    const { code, stdout, stderr } = await runFixture(
      "sysv_dropped.ts",
      ["--v8-flags=--expose-gc", ...PEER_FLAGS],
      [String(uniqueKey())],
    );
    assertEquals(code, 0, stderr);
    // Zero pages mapped in place: the kernel counts that as the detach, and
    // a buffer that escaped with transfer() still points at memory.
    assertEquals(JSON.parse(stdout), { before: 2, after: 1, calls: ["mmap"] });
  }),
);

Deno.test(
  "SysvSharedMemory.openStruct() binds a record with $atomic fields",
  leakChecked(() => {
    const sensor = layout({ count: "u32", label: utf8(16) });
    using record = SysvSharedMemory.openStruct(uniqueKey(), sensor, {
      create: true,
      exclusive: true,
      unlinkOnClose: true,
    });
    record.label = "kitchen";
    record.$atomic.count.add(3);
    using view = SysvSharedMemory.open(record.$region.key);
    const again = view.struct(sensor);
    assertEquals(again.label, "kitchen");
    assertEquals(again.count, 3);
  }),
);

Deno.test(
  "SysvSharedMemory.open() refuses sizes above shmmax, naming it, and an existing segment smaller than asked",
  leakChecked(() => {
    const shmmax = kernelLimit("shmmax");
    if (shmmax < Number.MAX_SAFE_INTEGER) {
      assertThrows(
        () =>
          SysvSharedMemory.open(uniqueKey(), {
            create: true,
            size: shmmax + 1,
          }),
        RangeError,
        `/proc/sys/kernel/shmmax = ${shmmax}`,
      );
    }
    using small = SysvSharedMemory.open(uniqueKey(), {
      create: true,
      exclusive: true,
      size: 100,
      unlinkOnClose: true,
    });
    assertThrows(
      () => SysvSharedMemory.open(small.key, { size: 200 }),
      RangeError,
      "smaller than the 200 bytes",
    );
    assertThrows(
      () => SysvSharedMemory.open(small.key, { create: true }),
      TypeError,
      "create needs a size",
    );
    assertThrows(
      () => SysvSharedMemory.open(small.key, { size: -1 }),
      RangeError,
    );
    assert(small.size === 100);
  }),
);

Deno.test(
  "SysvSharedMemory.open() with create adopts only our own segment within the mode",
  leakChecked(() => {
    using wide = SysvSharedMemory.open(uniqueKey(), {
      create: true,
      exclusive: true,
      size: 64,
      mode: 0o644,
      unlinkOnClose: true,
    });
    assertThrows(
      () => SysvSharedMemory.open(wide.key, { create: true, size: 64 }),
      Deno.errors.PermissionDenied,
      "mode 0o644",
    );
    using same = SysvSharedMemory.open(wide.key, {
      create: true,
      size: 64,
      mode: 0o644,
    });
    assertEquals(same.id, wide.id);
  }),
);
