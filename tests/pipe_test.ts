import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "@std/assert";
import {
  type Channel,
  type ChildChannel,
  ChildProcessError,
  connect,
  DecodeError,
  spawn,
  type SpawnOptions,
} from "../mod.ts";
import { readWholeFile } from "../ffi/file.ts";
import { leakChecked, runFixture } from "./_helpers.ts";

const CHILD = new URL("./fixtures/pipe_child.ts", import.meta.url).pathname;

/**
 * Starts the pipe fixture in `mode`; the child needs no permissions at all,
 * but `--allow-ffi` for the `direct` modes.
 */
function spawnChild<TSend, TReceive>(
  mode: string,
  ...args: string[]
): ChildChannel<TSend, TReceive> {
  return spawn<TSend, TReceive>(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      ...(mode.includes("direct") ? ["--allow-ffi"] : []),
      CHILD,
      mode,
      ...args,
    ],
  });
}

/** What the fixture's doubling modes take and answer. */
type _Asked = { n: number };
type _Doubled = { n: number; doubled: number };

/** Sends `{ n }` to a doubling child and checks that it answers `n * 2`. */
async function assertDoubles(
  child: ChildChannel<_Asked, _Doubled>,
  n: number,
): Promise<void> {
  await child.send({ n });
  assertEquals((await child.receive({ timeout: 10_000 })).value, {
    n,
    doubled: n * 2,
  });
}

/**
 * Sends 0 to `count` - 1 to a doubling child while reading its answers
 * until it ends, and checks that each came back doubled, in order, none
 * lost.
 */
async function assertDoublesAll(
  child: ChildChannel<_Asked, _Doubled>,
  count: number,
): Promise<void> {
  const sending = (async () => {
    for (let n = 0; n < count; n++) await child.send({ n });
    await child.closeWrite();
  })();
  let expected = 0;
  for await (const { value } of child) {
    assertEquals(value, { n: expected, doubled: expected * 2 });
    expected++;
  }
  await sending;
  assertEquals(expected, count);
}

/**
 * The kernel's state letter for `pid` ("S", "Z" for a zombie…), or undefined
 * once the process is gone and reaped. (cat, because Deno's file API asks for
 * --allow-all under /proc.)
 */
async function processEntry(pid: number): Promise<string | undefined> {
  const { success, stdout } = await new Deno.Command("cat", {
    args: [`/proc/${pid}/stat`],
    stderr: "null",
  }).output();
  if (!success) return undefined;
  // "pid (comm) state …": comm may hold spaces, so split after the last ")".
  const stat = new TextDecoder().decode(stdout);
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
}

for (const mode of ["double", "double-direct"]) {
  Deno.test(
    `spawn() answers 10,000 requests through a Deno child's parentChannel${
      mode === "double" ? "" : " in direct mode"
    }, none lost`,
    leakChecked(async () => {
      await using child = spawnChild<_Asked, _Doubled>(mode);
      await assertDoublesAll(child, 10_000);
      assertEquals((await child.status).code, 0);
    }),
  );
}

Deno.test(
  "A child that exits with a non-zero code surfaces as ChildProcessError with the code, and is reaped",
  leakChecked(async () => {
    await using child = spawnChild<string, string>("exit", "3");
    await child.send("x");
    assertEquals((await child.receive({ timeout: 10_000 })).value, "bye x");
    const error = await assertRejects(
      () => child.receive({ timeout: 10_000 }),
      ChildProcessError,
      "exited with code 3",
    );
    assertEquals(error.exitCode, 3);
    assertEquals(error.signal, null);
    assertEquals(error.pid, child.pid);
    // Sending to the dead child reports how it ended too.
    const sendError = await assertRejects(
      () => child.send("again"),
      ChildProcessError,
    );
    assertEquals(sendError.exitCode, 3);
    assertEquals(await processEntry(child.pid), undefined, "child not reaped");
  }),
);

Deno.test(
  "A child killed by a signal surfaces as ChildProcessError naming the signal",
  leakChecked(async () => {
    await using child = spawnChild<string, string>("kill-self");
    await child.send("now");
    const messages: string[] = [];
    const error = await assertRejects(
      async () => {
        for await (const { value } of child) messages.push(value);
      },
      ChildProcessError,
      "killed by SIGKILL",
    );
    assertEquals(error.signal, "SIGKILL");
    assertEquals(error.exitCode, 137);
    assertEquals(messages, ["dying now"]);
    assertEquals(await processEntry(child.pid), undefined, "child not reaped");
  }),
);

Deno.test(
  "A frame cut short when the child exits is a DecodeError with the bytes received",
  leakChecked(async () => {
    await using child = spawnChild<string, string>("truncated");
    const error = await assertRejects(
      () => child.receive({ timeout: 10_000 }),
      DecodeError,
      "after 7 bytes",
    );
    assertEquals(error.bytes.join(), "0,0,0,100,1,2,3");
    // The child exited 0: what follows is the plain end of the stream.
    await assertRejects(
      () => child.receive({ timeout: 10_000 }),
      Deno.errors.UnexpectedEof,
    );
  }),
);

Deno.test(
  "spawn() talks JSON lines with cat, a program that knows nothing of ipckit",
  leakChecked(async () => {
    await using cat = spawn<{ word: string }, { word: string }>("cat", {
      framing: "lines",
    });
    // With one type for both directions it is a Channel<T>.
    const channel: Channel<{ word: string }> = cat;
    for (const word of ["one", "two", "three"]) await channel.send({ word });
    await cat.closeWrite();
    const words: string[] = [];
    for await (const { value } of channel) words.push(value.word);
    assertEquals(words, ["one", "two", "three"]);
  }),
);

Deno.test(
  "ChildChannel.close() ends a child that is still running, and nothing is left behind",
  leakChecked(async () => {
    const child = spawnChild<string, string>("ignore-stdin");
    child.close();
    const status = await child.status;
    assertEquals(status.signal, "SIGTERM");
    assertEquals(await processEntry(child.pid), undefined, "child not reaped");
    child.close(); // idempotent
  }),
);

Deno.test(
  "await using on a ChildChannel gives a child that ignores stdin exitTimeout, then kills it",
  leakChecked(async () => {
    let child: ChildChannel<string, string> | undefined;
    {
      await using running = spawn<string, string>(Deno.execPath(), {
        args: [
          "run",
          "--quiet",
          CHILD,
          "ignore-stdin",
        ],
        exitTimeout: 200,
      });
      child = running;
    }
    // It ignored its closed stdin, so the dispose had to kill it.
    assertEquals((await child.status).signal, "SIGKILL");
    assertEquals(await processEntry(child.pid), undefined, "child not reaped");
  }),
);

Deno.test(
  "spawn() rejects bad arguments before starting anything",
  () => {
    assertThrows(
      () => spawn(42 as unknown as string),
      TypeError,
    );
    assertThrows(
      () => spawn("cat", { args: ["ok", 1 as unknown as string] }),
      TypeError,
      "args must be an array of strings",
    );
    // The arguments go in the options, as Deno.Command takes them.
    assertThrows(
      () => spawn("cat", ["-u"] as unknown as { args: string[] }),
      TypeError,
      "pass the arguments as { args: [...] }",
    );
    assertThrows(
      () => spawn("cat", { framing: "csv" as "lines" }),
      TypeError,
    );
    assertThrows(() => spawn("cat", { maxMessageSize: -1 }), RangeError);
    assertThrows(
      () => spawn("cat", { stderr: "file" as "null" }),
      TypeError,
    );
    assertThrows(() => spawn("cat", { exitTimeout: -5 }), RangeError);
    assertThrows(
      () => spawn("ipckit-no-such-command-here"),
      Deno.errors.NotFound,
    );
  },
);

Deno.test(
  "parentChannel({ direct: true }) refuses a stdin that is not a pipe",
  async () => {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--allow-ffi", CHILD, "direct-error"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr).trim();
    assertMatch(
      stderr,
      /^TypeError: Cannot open the channel to the parent: stdin is .+, not a pipe/,
    );
  },
);

/** Starts the pipe fixture with --allow-ffi: the child can take the socket spawn() offers. */
function spawnFastChild<TSend, TReceive>(
  mode: string,
  options: SpawnOptions<TSend, TReceive> = {},
): ChildChannel<TSend, TReceive> {
  return spawn<TSend, TReceive>(Deno.execPath(), {
    ...options,
    args: ["run", "--quiet", "--allow-ffi", CHILD, mode],
  });
}

Deno.test(
  "spawn() talks to a Deno child with --allow-ffi over a Unix socket; what was sent before it connected comes first, in order",
  leakChecked(async () => {
    await using child = spawnFastChild<_Asked, _Doubled>("slow-double");
    // The child connects only 300 ms after it starts: these go over stdin.
    assertEquals(child.transport, "pending");
    await assertDoublesAll(child, 10_000);
    assertEquals(child.transport, "socket");
    assertEquals((await child.status).code, 0);
  }),
);

Deno.test(
  "spawn() falls back to stdio for a child without --allow-ffi, or when told not to offer a socket",
  leakChecked(async () => {
    for (
      const child of [
        spawnChild<_Asked, _Doubled>("double"),
        spawnFastChild<_Asked, _Doubled>("double", { socket: false }),
      ]
    ) {
      await using _ = child;
      await assertDoubles(child, 2);
      assertEquals(child.transport, "stdio");
    }
  }),
);

Deno.test(
  "A child whose environment names another parent, or a socket nobody offers, talks over stdio",
  leakChecked(async () => {
    for (
      const offer of [
        `1:ipckit-spawn-1-00000000000000000000000000000000`,
        `${Deno.pid}:ipckit-spawn-${Deno.pid}-00000000000000000000000000000000`,
      ]
    ) {
      await using child = spawnFastChild<_Asked, _Doubled>("double", {
        socket: false,
        env: { IPCKIT_PARENT_CHANNEL: offer },
      });
      await assertDoubles(child, 5);
      assertEquals(child.transport, "stdio");
    }
  }),
);

Deno.test(
  "Only the child itself may take the socket spawn() offers: another process is closed unread",
  leakChecked(async () => {
    await using child = spawnFastChild<_Asked, _Doubled>("slow-double");
    // The name is in /proc/net/unix for anyone to read, as an attacker would.
    const table = readWholeFile("/proc/net/unix");
    assert(typeof table === "string");
    const match = new RegExp(`@(ipckit-spawn-${Deno.pid}-[0-9a-f]{32})`).exec(
      table,
    );
    assert(match, "the offered socket is not listed");
    await using impostor = await connect<unknown>({
      abstract: match[1],
      timeout: 5000,
    });
    await impostor.send({ n: 1 }).catch(() => {});
    const refused = await impostor.receive({ timeout: 5000 }).then(
      () => "a message",
      (error) => error.constructor.name,
    );
    // Closed unread: the end of the stream, or a reset for the bytes it sent.
    assert(
      refused === "UnexpectedEof" || refused === "ConnectionReset",
      `the impostor got ${refused}`,
    );
    await assertDoubles(child, 3);
    await assertDoubles(child, 4);
    assertEquals(child.transport, "socket");
  }),
);

for (const busy of [false, true]) {
  Deno.test(
    `Once a child takes the socket, what it prints on stdout goes to the parent's stderr${
      busy
        ? ", also when it prints before the parent has looked at the socket"
        : ""
    }`,
    leakChecked(async () => {
      const result = await runFixture(
        "spawn_parent.ts",
        ["--allow-ffi", "--allow-run", "--allow-read"],
        busy ? ["busy"] : [],
      );
      assertEquals(result.code, 0, result.stderr);
      assertEquals(result.stdout.trim(), "socket");
      assertMatch(result.stderr, /a line on stdout/);
    }),
  );
}
