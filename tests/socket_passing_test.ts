/**
 * Descriptor passing (SCM_RIGHTS) over seqpacket sockets: every kind of
 * ipckit handle crosses to another process that has no permission on any
 * name, and works there; an anonymous memfd stays out of every other
 * process's reach; descriptors beyond what a receive takes are closed and
 * the message refused, never leaked.
 */
import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import {
  bindDatagram,
  connect,
  DecodeError,
  Fifo,
  listen,
  MappedFile,
  MessageQueue,
  SharedMemory,
  type SocketChannel,
  socketpair,
} from "../mod.ts";
import {
  commandSucceeds,
  leakChecked,
  runFixture,
  testNeeding,
  uniqueName,
} from "./_helpers.ts";
import {
  abstractName,
  openDescriptors,
  startPeer,
  withTempDir,
} from "./_sockets.ts";

type Ask = Record<string, unknown>;

Deno.test(
  "Every kind of handle crosses to another process over a seqpacket socket and works there without a name",
  leakChecked(() =>
    withTempDir(async (dir) => {
      const name = abstractName("pass");
      await using server = await listen<Ask>({
        abstract: name,
        type: "seqpacket",
      });
      // No --allow-read or --allow-write at all: the descriptors are the access.
      const peer = startPeer("handle_peer.ts", ["--allow-ffi", "--allow-net"], [
        "receive",
        name,
      ]);
      await using child = await server.accept({ timeout: 10_000 });
      assertEquals(child.peer?.pid, peer.process.pid);
      const ask = async (value: Ask, handle: object): Promise<Ask> => {
        await child.send(value, { handles: [handle as never] });
        return (await child.receive({ timeout: 10_000 })).value;
      };

      using named = SharedMemory.open(uniqueName("pass-shm"), {
        create: true,
        size: 4096,
        unlinkOnClose: true,
      });
      named.bytes()[0] = 11;
      assertEquals(await ask({ kind: "shared-memory" }, named), {
        kind: "shared-memory",
        saw: 11,
        name: named.name,
      });
      assertEquals(named.bytes()[1], 22);

      using anonymous = SharedMemory.anonymous(4096);
      anonymous.bytes()[0] = 12;
      assertEquals(await ask({ kind: "anonymous" }, anonymous), {
        kind: "anonymous",
        saw: 12,
        name: "",
      });
      assertEquals(anonymous.bytes()[1], 22);

      await Deno.writeFile(
        `${dir}/data.bin`,
        new Uint8Array(4096).fill(13, 0, 1),
      );
      using file = MappedFile.open(`${dir}/data.bin`);
      assertEquals(await ask({ kind: "mapped-file" }, file), {
        kind: "mapped-file",
        saw: 13,
        path: file.path,
      });
      assertEquals(file.bytes()[1], 33);

      using queue = MessageQueue.open<string>(uniqueName("pass-mq"), {
        create: true,
        unlinkOnClose: true,
      });
      assertEquals(await ask({ kind: "message-queue" }, queue), {
        kind: "message-queue",
        name: queue.name,
      });
      assertEquals(
        (await queue.receive({ timeout: 5000 })).value,
        "from child",
      );

      using fifo = Fifo.create(`${dir}/pass.fifo`);
      {
        await using reader = await fifo.openReader<string>();
        await using writer = await fifo.openWriter<string>({ timeout: 5000 });
        assertEquals(await ask({ kind: "fifo-writer" }, writer), {
          kind: "fifo-writer",
        });
        assertEquals(
          (await reader.receive({ timeout: 5000 })).value,
          "from child",
        );
      }
      {
        await using reader = await fifo.openReader<string>();
        await using writer = await fifo.openWriter<string>({ timeout: 5000 });
        await child.send({ kind: "fifo-reader" }, { handles: [reader] });
        assertEquals((await child.receive({ timeout: 10_000 })).value, {
          kind: "fifo-reader",
          ready: true,
        });
        await writer.send("to child");
        assertEquals((await child.receive({ timeout: 10_000 })).value, {
          kind: "fifo-reader",
          got: "to child",
        });
      }

      const [mine, theirs] = socketpair<string>();
      try {
        assertEquals(await ask({ kind: "socket" }, theirs), { kind: "socket" });
        theirs.close();
        assertEquals(
          (await mine.receive({ timeout: 5000 })).value,
          "over a passed socket",
        );
      } finally {
        mine.close();
        theirs.close();
      }

      const serverName = abstractName("pass-server");
      {
        await using passed = await listen<string>({ abstract: serverName });
        await child.send({ kind: "server" }, { handles: [passed] });
        assertEquals((await child.receive({ timeout: 10_000 })).value, {
          kind: "server",
          listening: true,
        });
        // This process keeps its own copy of the listener: close it, so the
        // child's copy is the one that accepts.
        passed.close();
        await using client = await connect<string>({ abstract: serverName });
        await client.send("to the passed server");
        assertEquals((await child.receive({ timeout: 10_000 })).value, {
          kind: "server",
          got: "to the passed server",
        });
      }

      await using answers = await bindDatagram<string>({ port: 0 });
      {
        await using passed = await bindDatagram<string>({ port: 0 });
        assertEquals(
          await ask({ kind: "datagram", to: answers.addr }, passed),
          { kind: "datagram" },
        );
        const { value, from } = await answers.receive({ timeout: 5000 });
        assertEquals(value, "from a passed datagram socket");
        assertEquals(from, passed.addr);
      }

      await child.send({ kind: "done" });
      const { code, stderr } = await peer.finish();
      assertEquals(code, 0, stderr);
    })
  ),
);

Deno.test(
  "Anonymous shared memory has no name: a third process that opens everything in /dev/shm cannot reach it",
  leakChecked(async () => {
    const marker = `ipckit-memfd-marker-${crypto.randomUUID()}`;
    using memory = SharedMemory.anonymous(4096);
    memory.bytes().set(new TextEncoder().encode(marker));
    assertEquals(memory.name, "");
    // The same marker in a named object is found, so the scan can find one.
    using named = SharedMemory.open(uniqueName("memfd-control"), {
      create: true,
      size: 4096,
      unlinkOnClose: true,
    });
    named.bytes().set(new TextEncoder().encode(`${marker}-named`));
    const result = await runFixture(
      "handle_peer.ts",
      ["--allow-ffi", "--allow-read=/dev/shm"],
      ["scan", marker],
    );
    assertEquals(result.code, 0, result.stderr);
    const { opened, matches } = JSON.parse(result.stdout);
    assert(opened >= 1, `the scan opened nothing: ${result.stdout}`);
    assertEquals(matches, 1, "only the named control object has the marker");
  }),
);

Deno.test(
  "Descriptors beyond maxHandles are closed and the message refused with its bytes, never leaked",
  leakChecked(async () => {
    const [a, b] = socketpair<string>({ type: "seqpacket" });
    using memory = SharedMemory.anonymous(4096);
    try {
      const before = openDescriptors();
      await a.send("two", { handles: [memory, memory] });
      const error = await assertRejects(
        () => b.receive({ maxHandles: 1, timeout: 5000 }),
        DecodeError,
      );
      assertMatch(
        error.message,
        /more descriptors than this receive takes \(maxHandles: 1\); they were closed/,
      );
      assertEquals(new TextDecoder().decode(error.bytes).includes("two"), true);
      // A receive that takes none (the default) refuses any.
      await a.send("one", { handles: [memory] });
      await assertRejects(() => b.receive({ timeout: 5000 }), DecodeError);
      assertEquals(openDescriptors(), before);
      // The channel goes on.
      await a.send("plain");
      assertEquals((await b.receive({ timeout: 5000 })).value, "plain");
      // What is taken is owned by the receiver, until it closes it.
      await a.send("taken", { handles: [memory] });
      const { handles } = await b.receive({ maxHandles: 4, timeout: 5000 });
      assertEquals(openDescriptors(), before + 1);
      for (const handle of handles) handle.close();
      assertEquals(openDescriptors(), before);
    } finally {
      a.close();
      b.close();
    }
  }),
);

Deno.test(
  "Sending handles: only ipckit handles, open ones, at most 253, and only on seqpacket sockets",
  leakChecked(async () => {
    const [a, b] = socketpair<string>({ type: "seqpacket" });
    const [streamA, streamB] = socketpair<string>();
    try {
      await assertRejects(
        () => a.send("x", { handles: [{} as never] }),
        TypeError,
        "is not an ipckit handle",
      );
      const closed = SharedMemory.anonymous(4096);
      closed.close();
      await assertRejects(
        () => a.send("x", { handles: [closed] }),
        Deno.errors.BadResource,
      );
      using memory = SharedMemory.anonymous(4096);
      await assertRejects(
        () => a.send("x", { handles: new Array(254).fill(memory) }),
        RangeError,
      );
      await assertRejects(
        () => streamA.send("x", { handles: [memory] }),
        TypeError,
        "only seqpacket sockets pass handles",
      );
      await assertRejects(
        () => b.receive({ maxHandles: 254 }),
        RangeError,
      );
      // 253 at once is fine.
      await a.send("many", { handles: new Array(253).fill(memory) });
      const { handles } = await b.receive({ maxHandles: 253, timeout: 5000 });
      assertEquals(handles.length, 253);
      for (const handle of handles) handle.close();
    } finally {
      for (
        const channel of [a, b, streamA, streamB] as SocketChannel<string>[]
      ) {
        channel.close();
      }
    }
  }),
);

const python = await commandSucceeds("python3", ["--version"]);
const pythonMissing = python
  ? undefined
  : "python3 is not installed (apt-get install python3)";

testNeeding(pythonMissing, {
  name:
    "Descriptors from a program that is not ipckit, without the handle header, are refused and closed",
  fn: leakChecked(async () => {
    const name = abstractName("foreign");
    await using server = await listen<string>({
      abstract: name,
      type: "seqpacket",
    });
    const sender = new Deno.Command("python3", {
      args: [
        "-c",
        `import socket, os
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect("\\0${name}")
r, w = os.pipe()
socket.send_fds(s, [b'"with a pipe"'], [r, w])
s.send(b'"after"')
s.recv(1)`,
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    await using connection = await server.accept({ timeout: 10_000 });
    const before = openDescriptors();
    const error = await assertRejects(
      () => connection.receive({ maxHandles: 2, timeout: 5000 }),
      DecodeError,
    );
    assertMatch(
      error.message,
      /without ipckit's handle header \(not sent by ipckit\); they were closed/,
    );
    assertEquals(openDescriptors(), before);
    assertEquals((await connection.receive({ timeout: 5000 })).value, "after");
    connection.close();
    const { success, stderr } = await sender.output();
    assert(success, new TextDecoder().decode(stderr));
  }),
});
