import { fromFileUrl } from "@std/path";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertStrictEquals,
  assertThrows,
} from "@std/assert";
import {
  codecs,
  DecodeError,
  Fifo,
  type FramedChannel,
  IpcError,
  SHARED_FIFO_MAX_MESSAGE,
} from "../mod.ts";
import { leakChecked, runFixture, skip, spawnFixture } from "./_helpers.ts";
import { OTHER_USER_MISSING, otherUserDeno, runArgv } from "./_machine.ts";
import { bounded, LineReader } from "./_bounded.ts";
import { rejectsBeforeAnySystemCall } from "./_syscalls.ts";
import {
  checksum,
  exactlyOnceProblems,
  type Numbered,
} from "./fixtures/_numbered.ts";

const FLAGS = ["--allow-ffi", "--allow-read=/tmp", "--allow-write=/tmp"];

/** Runs `body` in a fresh temporary directory, then checks it holds nothing unexpected and removes it. */
function inTempDir(
  body: (dir: string) => Promise<void>,
  { expectEmpty = true } = {},
): (t: Deno.TestContext) => Promise<void> {
  return leakChecked(async () => {
    const dir = await Deno.makeTempDir({ prefix: "ipckit-test-fifo-" });
    try {
      await body(dir);
      if (expectEmpty) {
        const left = [...Deno.readDirSync(dir)].map((entry) => entry.name);
        assertEquals(left, [], `left behind in ${dir}: ${left.join(", ")}`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

function sh(script: string): Promise<Deno.CommandOutput> {
  return new Deno.Command("sh", { args: ["-c", script], stderr: "piped" })
    .output();
}

/** Deno.symlink needs unscoped permissions; ln does not. */
async function symlink(target: string, path: string): Promise<void> {
  const { success } = await new Deno.Command("ln", {
    args: ["-s", target, path],
  })
    .output();
  assert(success, `ln -s ${target} ${path} failed`);
}

Deno.test(
  "Fifo.duplex carries 10,000 messages each way with another process, none lost or reordered",
  inTempDir(async (dir) => {
    const base = `${dir}/echo`;
    const child = spawnFixture("fifo_peer.ts", FLAGS, ["duplex-echo", base]);
    {
      await using server = await Fifo.duplex<{ seq: number; echoed?: boolean }>(
        base,
        { role: "server", timeout: 30_000, unlinkOnClose: true },
      );
      const count = 10_000;
      const sending = (async () => {
        for (let seq = 0; seq < count; seq++) await server.send({ seq });
      })();
      for (let expected = 0; expected < count; expected++) {
        const { value } = await server.receive({ timeout: 30_000 });
        assertEquals(value, { seq: expected, echoed: true });
      }
      await sending;
    }
    // The server closed: the client's iteration ended and it exited cleanly.
    const output = await child.output();
    assertEquals(output.code, 0, new TextDecoder().decode(output.stderr));
  }),
);

Deno.test(
  "A FIFO reader receives every frame a writer process sends, then its iteration ends when the writer closes",
  inTempDir(async (dir) => {
    using fifo = Fifo.create(`${dir}/frames`, { unlinkOnClose: true });
    await using reader = await fifo.openReader<{ seq: number }>();
    const child = spawnFixture("fifo_peer.ts", FLAGS, [
      "write",
      fifo.path,
      "10000",
    ]);
    let expected = 0;
    for await (const { value } of reader) {
      assertEquals(value.seq, expected++);
    }
    assertEquals(expected, 10_000);
    const output = await child.output();
    assertEquals(output.code, 0, new TextDecoder().decode(output.stderr));
  }),
);

Deno.test(
  "A FIFO reader reads the lines echo and printf write, including a last line without newline",
  inTempDir(async (dir) => {
    using fifo = Fifo.create(`${dir}/lines`, { unlinkOnClose: true });
    await using reader = await fifo.openReader<string>({
      framing: "lines",
      codec: codecs.text(),
    });
    const writing = sh(
      `{ echo hello; printf 'wörld\\r\\nno newline'; } > '${fifo.path}'`,
    );
    const lines: string[] = [];
    for await (const { value } of reader) lines.push(value);
    assertEquals((await writing).code, 0);
    assertEquals(lines, ["hello", "wörld", "no newline"]);
  }),
);

Deno.test(
  "coreutils cat reads the JSON lines a FIFO writer sends",
  inTempDir(async (dir) => {
    using fifo = Fifo.create(`${dir}/to-cat`, { unlinkOnClose: true });
    const cat = new Deno.Command("cat", {
      args: [fifo.path],
      stdout: "piped",
    }).output();
    {
      await using writer = await fifo.openWriter<{ n: number }>({
        framing: "lines",
        timeout: 10_000,
      });
      for (let n = 0; n < 3; n++) await writer.send({ n });
    }
    const output = await cat;
    assertEquals(
      new TextDecoder().decode(output.stdout),
      '{"n":0}\n{"n":1}\n{"n":2}\n',
    );
  }),
);

Deno.test(
  "A 10 MiB message crosses a FIFO intact through partial reads and writes",
  inTempDir(async (dir) => {
    using fifo = Fifo.create(`${dir}/big`, { unlinkOnClose: true });
    await using reader = await fifo.openReader<Uint8Array>({
      codec: codecs.bytes(),
    });
    await using writer = await fifo.openWriter<Uint8Array>({
      codec: codecs.bytes(),
      timeout: 5000,
    });
    const big = new Uint8Array(10 * 1024 * 1024);
    crypto.getRandomValues(big.subarray(0, 65536));
    for (let i = 65536; i < big.length; i++) {
      big[i] = big[i - 65536] ^ (i >> 16);
    }
    const receiving = reader.receive({ timeout: 30_000 });
    await writer.send(big);
    const { value } = await receiving;
    assertEquals(value.byteLength, big.byteLength);
    assert(value.every((byte, i) => byte === big[i]), "bytes differ");
  }),
);

Deno.test(
  "A FIFO reader waiting for its first writer keeps timers running, and a writer that closes without writing ends it",
  inTempDir(async (dir) => {
    using fifo = Fifo.create(`${dir}/idle`, { unlinkOnClose: true });
    await using reader = await fifo.openReader<string>();
    let ticks = 0;
    const interval = setInterval(() => ticks++, 10);
    try {
      const receiving = reader.receive();
      let settled = false;
      receiving.then(() => settled = true, () => settled = true);
      // Ten ticks, however slowly a loaded machine schedules them: a
      // reader that blocked the thread would give none at all.
      const started = performance.now();
      while (ticks < 10 && performance.now() - started < 5000) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert(ticks >= 10, `only ${ticks} timer ticks in 5 s`);
      assertEquals(settled, false, "receive() settled with no writer");
      // A writer comes and goes without a byte: that is the end of stream.
      assertEquals((await sh(`: > '${fifo.path}'`)).code, 0);
      await assertRejects(() => receiving, Deno.errors.UnexpectedEof);
    } finally {
      clearInterval(interval);
    }
  }),
);

Deno.test(
  "Fifo.openWriter waits for a reader without freezing timers, and honours timeout and signal",
  inTempDir(async (dir) => {
    using fifo = Fifo.create(`${dir}/no-reader`, { unlinkOnClose: true });
    let ticks = 0;
    const interval = setInterval(() => ticks++, 10);
    try {
      await assertRejects(
        () => fifo.openWriter({ timeout: 300 }),
        Deno.errors.TimedOut,
        "timed out after 300 ms",
      );
      assert(ticks >= 10, `only ${ticks} timer ticks in 300 ms`);
      const reason = new Error("stop waiting");
      const error = await assertRejects(
        () => fifo.openWriter({ signal: AbortSignal.abort(reason) }),
      );
      assertStrictEquals(error, reason);
      // A reader that comes later lets a waiting writer in.
      const opening = fifo.openWriter<string>({ timeout: 10_000 });
      await new Promise((resolve) => setTimeout(resolve, 50));
      await using reader = await fifo.openReader<string>();
      await using writer = await opening;
      await writer.send("late");
      assertEquals((await reader.receive({ timeout: 1000 })).value, "late");
    } finally {
      clearInterval(interval);
    }
  }),
);

Deno.test(
  "Fifo.openWriter with nonBlocking and no reader fails with ENXIO",
  inTempDir(async (dir) => {
    using fifo = Fifo.create(`${dir}/enxio`, { unlinkOnClose: true });
    const error = await assertRejects(
      () => fifo.openWriter({ nonBlocking: true }),
      IpcError,
      "no process has it open for reading",
    );
    assertEquals(error.code, "ENXIO");
    assertEquals(error.syscall, "open");
  }),
);

Deno.test(
  "Writing after the reader closed fails with BrokenPipe and the process survives (no SIGPIPE)",
  inTempDir(async (dir) => {
    using fifo = Fifo.create(`${dir}/broken`, { unlinkOnClose: true });
    const reader = await fifo.openReader<string>();
    await using writer = await fifo.openWriter<string>({ timeout: 1000 });
    await writer.send("first");
    reader.close();
    const error: Error & { code?: string } = await assertRejects(
      () => writer.send("second"),
      Deno.errors.BrokenPipe,
      "reading end is closed",
    );
    assertEquals(error.code, "EPIPE");
    // SIGPIPE is ignored by the Deno runtime: bit 13 of SigIgn is set.
    // (Deno's file API asks for --allow-all under /proc, so cat reads it.)
    const { stdout } = await new Deno.Command("cat", {
      args: [`/proc/${Deno.pid}/status`],
    }).output();
    const status = new TextDecoder().decode(stdout);
    const ignored = BigInt(`0x${/SigIgn:\s*([0-9a-f]+)/.exec(status)![1]}`);
    assertEquals((ignored >> 12n) & 1n, 1n);
  }),
);

Deno.test(
  "Fifo.create refuses a regular file, a directory and a symbolic link at the path, and adopts an existing FIFO",
  inTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/file`, "keep me");
    await Deno.mkdir(`${dir}/dir`);
    using target = Fifo.create(`${dir}/target`, { unlinkOnClose: true });
    await symlink(target.path, `${dir}/link`);
    for (
      const [name, kind] of [
        ["file", "a regular file"],
        ["dir", "a directory"],
        ["link", "a symbolic link"],
      ]
    ) {
      const error: Error & { code?: string } = assertThrows(
        () => Fifo.create(`${dir}/${name}`),
        Deno.errors.AlreadyExists,
        `is ${kind}, not a FIFO`,
      );
      assertEquals(error.code, "EEXIST");
    }
    assertEquals(await Deno.readTextFile(`${dir}/file`), "keep me");
    {
      using adopted = Fifo.create(target.path);
      assertEquals(adopted.created, false);
    }
    assert((await Deno.lstat(target.path)).isFifo, "adopter removed it");
    assertThrows(
      () => Fifo.create(target.path, { exclusive: true }),
      Deno.errors.AlreadyExists,
    );
    await Deno.remove(`${dir}/link`);
    await Deno.remove(`${dir}/dir`);
    await Deno.remove(`${dir}/file`);
  }),
);

Deno.test(
  "Opening a path that is not a FIFO fails: missing, regular file, directory, symbolic link",
  inTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/file`, "");
    await Deno.mkdir(`${dir}/dir`);
    using target = Fifo.create(`${dir}/target`, { unlinkOnClose: true });
    await symlink(target.path, `${dir}/link`);
    await assertRejects(
      () => Fifo.openReader(`${dir}/missing`),
      Deno.errors.NotFound,
      "it does not exist",
    );
    await assertRejects(
      () => Fifo.openWriter(`${dir}/missing`, { nonBlocking: true }),
      Deno.errors.NotFound,
    );
    for (
      const [name, kind] of [["file", "regular file"], ["dir", "directory"]]
    ) {
      const error = await assertRejects(
        () => Fifo.openReader(`${dir}/${name}`),
        IpcError,
        `it is a ${kind}, not a FIFO`,
      );
      assertEquals(error.code, "EINVAL");
    }
    const error = await assertRejects(
      () => Fifo.openReader(`${dir}/link`),
      IpcError,
      "does not follow symbolic links",
    );
    assertEquals(error.code, "ELOOP");
    await Deno.remove(`${dir}/link`);
    await Deno.remove(`${dir}/dir`);
    await Deno.remove(`${dir}/file`);
  }),
);

Deno.test(
  "Fifo.create reports a missing parent directory",
  inTempDir((dir) => {
    assertThrows(
      () => Fifo.create(`${dir}/no/such/parent`),
      Deno.errors.NotFound,
      "parent directory does not exist",
    );
    return Promise.resolve();
  }),
);

Deno.test({
  name:
    "Fifo.create reports a parent directory the kernel will not let this user write",
  ignore: skip("the unwritable-parent test", OTHER_USER_MISSING),
  fn: inTempDir(async (dir) => {
    // As root every directory is writable, so run the child as another user.
    await Deno.chmod(dir, 0o755);
    const script = fromFileUrl(
      new URL("./fixtures/fifo_peer.ts", import.meta.url),
    );
    await using other = await otherUserDeno();
    const output = await runArgv(
      other.argv([
        "run",
        "--quiet",
        ...FLAGS,
        script,
        "create",
        `${dir}/denied`,
      ]),
    );
    assertEquals(output.code, 0, output.stderr);
    assertMatch(
      output.stdout,
      /^PermissionDenied: Cannot create FIFO ".*\/denied": the kernel denied write access to its parent directory/,
    );
  }),
});

Deno.test(
  "Fifo.create without --allow-write on the path fails with NotCapable naming the flag",
  inTempDir(async (dir) => {
    const result = await runFixture("fifo_peer.ts", [
      "--allow-ffi",
      "--allow-read=/tmp",
    ], ["create", `${dir}/nope`]);
    assertEquals(result.code, 0, result.stderr);
    assertEquals(
      result.stdout.trim(),
      `NotCapable: Requires write access to "${dir}/nope", run again with --allow-write=${dir}/nope`,
    );
  }),
);

Deno.test(
  "A frame header above maxMessageSize is rejected before its payload arrives",
  inTempDir(async (dir) => {
    using fifo = Fifo.create(`${dir}/huge`, { unlinkOnClose: true });
    await using reader = await fifo.openReader({ maxMessageSize: 1024 });
    // Only the header is written: the reader must not wait for 2 GiB.
    const writing = sh(`printf '\\177\\377\\377\\377' > '${fifo.path}'`);
    const error = await assertRejects(
      () => reader.receive({ timeout: 5000 }),
      DecodeError,
      "announces 2147483647 bytes, above maxMessageSize 1024",
    );
    assertEquals(error.bytes.length, 4);
    assertEquals((await writing).code, 0);
  }),
);

Deno.test(
  "A frame cut short by the end of the stream is a DecodeError with the bytes received",
  inTempDir(async (dir) => {
    using fifo = Fifo.create(`${dir}/cut`, { unlinkOnClose: true });
    await using reader = await fifo.openReader();
    const writing = sh(`printf '\\0\\0\\0\\144abc' > '${fifo.path}'`);
    const error = await assertRejects(
      () => reader.receive({ timeout: 5000 }),
      DecodeError,
      "ended inside a message, after 7 bytes",
    );
    assertEquals(new TextDecoder().decode(error.bytes.subarray(4)), "abc");
    assertEquals((await writing).code, 0);
  }),
);

Deno.test(
  "Fifo rejects bad arguments with TypeError or RangeError before any system call",
  inTempDir(async (dir) => {
    const path = `${dir}/x`;
    type Case = [string, () => unknown, typeof TypeError | typeof RangeError];
    const cases: Case[] = [
      ["an empty path", () => Fifo.create(""), TypeError],
      ["a NUL", () => Fifo.create(`${dir}/a\0b`), TypeError],
      [
        "an https: URL",
        () => Fifo.create(new URL("https://example.com/x")),
        TypeError,
      ],
      ["mode 0o1777", () => Fifo.create(path, { mode: 0o1777 }), RangeError],
      [
        "framing words",
        () => Fifo.openReader(path, { framing: "words" as "lines" }),
        TypeError,
      ],
      [
        "maxMessageSize 0",
        () => Fifo.openWriter(path, { maxMessageSize: 0 }),
        RangeError,
      ],
      ["timeout -1", () => Fifo.openWriter(path, { timeout: -1 }), RangeError],
      [
        "a shared writer's maxMessageSize",
        () =>
          Fifo.openWriter(path, { sharedWriters: true, maxMessageSize: 1e6 }),
        RangeError,
      ],
      [
        "role peer",
        () => Fifo.duplex(path, { role: "peer" as "server" }),
        TypeError,
      ],
      [
        "duplex mode",
        () => Fifo.duplex(path, { role: "server", mode: -1 }),
        RangeError,
      ],
    ];
    for (const [what, attempt, ErrorClass] of cases) {
      await rejectsBeforeAnySystemCall(attempt, ErrorClass, [dir], what);
    }
  }),
);

const SHARED_FLAGS = (dir: string) => [
  "--allow-ffi",
  `--allow-read=${dir}`,
  `--allow-write=${dir}`,
];

/** Receives until `done()` says so, every wait bounded. */
async function receiveUntil(
  reader: FramedChannel<Numbered>,
  done: (received: Numbered[]) => boolean,
): Promise<Numbered[]> {
  const received: Numbered[] = [];
  while (!done(received)) {
    received.push((await reader.receive({ timeout: 20_000 })).value);
  }
  return received;
}

Deno.test(
  "A shared FIFO carries 4 writer processes x 2,000 frames of every size up to PIPE_BUF, each exactly once",
  inTempDir(async (dir) => {
    using fifo = Fifo.create(`${dir}/shared`, { unlinkOnClose: true });
    await using reader = await fifo.openReader<Numbered>({
      sharedWriters: true,
    });
    const writers = [0, 1, 2, 3].map((i) =>
      spawnFixture("producer.ts", SHARED_FLAGS(dir), [
        "fifo-shared",
        fifo.path,
        String(i * 2000),
        "2000",
      ])
    );
    const received = await receiveUntil(reader, (r) => r.length === 8000);
    for (const writer of writers) {
      const output = await writer.output();
      assertEquals(output.code, 0, new TextDecoder().decode(output.stderr));
    }
    assertEquals(exactlyOnceProblems(received, 8000), []);
    const largest = Math.max(
      ...received.map((m) =>
        new TextEncoder().encode(JSON.stringify(m)).length
      ),
    );
    assertEquals(largest, SHARED_FIFO_MAX_MESSAGE);
  }),
);

Deno.test(
  "A shared FIFO loses no message of the other writers when one writer is killed with SIGKILL mid-stream",
  inTempDir(async (dir) => {
    using fifo = Fifo.create(`${dir}/killed`, { unlinkOnClose: true });
    await using reader = await fifo.openReader<Numbered>({
      sharedWriters: true,
    });
    // The victim writes full-size frames until it dies; its seqs start at
    // 1,000,000 so they are told apart from the survivors' 0..5,999.
    const victim = spawnFixture("producer.ts", SHARED_FLAGS(dir), [
      "fifo-shared",
      fifo.path,
      "1000000",
      "1000000000",
    ]);
    const victimOut = new LineReader(victim.stdout);
    assertEquals(await victimOut.next(), "started");
    const survivors = [0, 1, 2].map((i) =>
      spawnFixture("producer.ts", SHARED_FLAGS(dir), [
        "fifo-shared",
        fifo.path,
        String(i * 2000),
        "2000",
      ])
    );
    const fromSurvivors = (r: Numbered[]) => r.filter((m) => m.seq < 1e6);
    const received = await receiveUntil(
      reader,
      (r) => r.length >= 500 && r.some((m) => m.seq >= 1e6),
    );
    // Killed while the pipe is full and it waits to write: with atomic
    // frames, it cannot die with half a frame in the FIFO.
    victim.kill("SIGKILL");
    assertEquals(
      (await bounded(victim.status, 10_000, "the victim")).signal,
      "SIGKILL",
    );
    await victimOut.cancel();
    await victim.stderr.cancel();
    received.push(
      ...await receiveUntil(
        reader,
        (r) =>
          fromSurvivors(received).length + fromSurvivors(r).length === 6000,
      ),
    );
    for (const survivor of survivors) {
      const output = await survivor.output();
      assertEquals(output.code, 0, new TextDecoder().decode(output.stderr));
    }
    assertEquals(exactlyOnceProblems(fromSurvivors(received), 6000), []);
    // What the victim got out is intact and in its order: a prefix of what
    // it wrote, every frame whole.
    const victims = received.filter((m) => m.seq >= 1e6);
    assert(victims.length > 0);
    assertEquals(
      victims.map((m) => m.seq),
      victims.map((_, i) => 1e6 + i),
    );
    for (const m of victims) assertEquals(m.check, checksum(m.seq));
  }),
);

Deno.test(
  "A shared FIFO writer refuses a message above PIPE_BUF with a RangeError before writing anything",
  inTempDir(async (dir) => {
    using fifo = Fifo.create(`${dir}/big`, { unlinkOnClose: true });
    await using reader = await fifo.openReader<string>({
      sharedWriters: true,
      codec: codecs.text(),
    });
    await using writer = await fifo.openWriter<string>({
      sharedWriters: true,
      codec: codecs.text(),
      timeout: 5000,
    });
    await assertRejects(
      () => writer.send("x".repeat(SHARED_FIFO_MAX_MESSAGE + 1)),
      RangeError,
      `the message is ${
        SHARED_FIFO_MAX_MESSAGE + 1
      } bytes, and a FIFO shared by several writers carries at most ${SHARED_FIFO_MAX_MESSAGE}`,
    );
    assertEquals(writer.closed, false);
    await writer.send("x".repeat(SHARED_FIFO_MAX_MESSAGE));
    await writer.send("after");
    assertEquals(
      (await reader.receive({ timeout: 5000 })).value.length,
      SHARED_FIFO_MAX_MESSAGE,
    );
    assertEquals((await reader.receive({ timeout: 5000 })).value, "after");
    await assertRejects(
      () =>
        fifo.openWriter({
          sharedWriters: true,
          maxMessageSize: SHARED_FIFO_MAX_MESSAGE + 1,
        }),
      RangeError,
      "the most a FIFO shared by several writers carries",
    );
    await assertRejects(
      () =>
        fifo.openReader({
          sharedWriters: true,
          framing: "lines",
          maxMessageSize: 4096,
        }),
      RangeError,
      "above 4095",
    );
    await assertRejects(
      () => fifo.openWriter({ sharedWriters: "yes" as never }),
      TypeError,
    );
  }),
);

Deno.test(
  "A shared FIFO reader keeps receiving when one writer leaves before the next comes",
  inTempDir(async (dir) => {
    using fifo = Fifo.create(`${dir}/relay`, { unlinkOnClose: true });
    await using reader = await fifo.openReader<Numbered>({
      sharedWriters: true,
    });
    const received: Numbered[] = [];
    for (const start of [0, 100, 200]) {
      const writer = spawnFixture("producer.ts", SHARED_FLAGS(dir), [
        "fifo-shared",
        fifo.path,
        String(start),
        "100",
      ]);
      received.push(...await receiveUntil(reader, (r) => r.length === 100));
      // Gone before the next one opens: without a write end of its own the
      // reader would see the end of the stream here.
      const output = await bounded(writer.output(), 20_000, "a writer");
      assertEquals(output.code, 0, new TextDecoder().decode(output.stderr));
    }
    assertEquals(exactlyOnceProblems(received, 300), []);
    await assertRejects(
      () => reader.receive({ timeout: 50 }),
      Deno.errors.TimedOut,
    );
  }),
);

Deno.test(
  "A shared FIFO reader rejects a frame header it cannot trust and closes",
  inTempDir(async (dir) => {
    using fifo = Fifo.create(`${dir}/untrusted`, { unlinkOnClose: true });
    await using reader = await fifo.openReader({ sharedWriters: true });
    // A writer that did not declare the FIFO shared sends a larger frame.
    await using writer = await fifo.openWriter<string>({
      codec: codecs.text(),
      timeout: 5000,
    });
    const sending = writer.send("y".repeat(10_000));
    const error = await assertRejects(
      () => reader.receive({ timeout: 5000 }),
      DecodeError,
      `announces 10000 bytes, above maxMessageSize ${SHARED_FIFO_MAX_MESSAGE}`,
    );
    assertEquals([...error.bytes], [0, 0, 0x27, 0x10]);
    assertEquals(reader.closed, true);
    await sending.catch(() => {}); // the reader is gone: a broken pipe, or sent
  }),
);
