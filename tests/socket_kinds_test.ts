/**
 * What ipckit's own sockets add: seqpacket boundaries, abstract names,
 * socket files born with their mode, stale files told from live ones
 * without touching them, peer credentials and `allow`, concurrent waits,
 * half-close, backpressure, and bad input refused before any system call.
 * (EMFILE while accepting is in socket_test.ts.)
 */
import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import {
  bindDatagram,
  codecs,
  connect,
  DecodeError,
  listen,
  type SocketChannel,
  socketpair,
} from "../mod.ts";
import { reactor } from "../mechanisms/_wait/reactor.ts";
import { commandSucceeds, leakChecked, testNeeding } from "./_helpers.ts";
import {
  abstractName,
  flagsFor,
  openDescriptors,
  readLine,
  startPeer,
  withTempDir,
} from "./_sockets.ts";

const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;

Deno.test(
  "A seqpacket socket keeps message boundaries: each send is one receive, unframed",
  leakChecked(async () => {
    const [a, b] = socketpair<Uint8Array>({
      type: "seqpacket",
      codec: codecs.bytes(),
    });
    try {
      for (const size of [1, 3, 1000, 60_000]) {
        await a.send(new Uint8Array(size).fill(size & 0xff));
      }
      for (const size of [1, 3, 1000, 60_000]) {
        const { value, handles } = await b.receive({ timeout: 5000 });
        assertEquals(value.byteLength, size);
        assertEquals(value[size - 1], size & 0xff);
        assertEquals(handles, []);
      }
      assertEquals(a.type, "seqpacket");
    } finally {
      a.close();
      b.close();
    }
  }),
);

Deno.test(
  "An empty message or one above maxMessageSize on a seqpacket socket is refused, and the next still arrives",
  leakChecked(async () => {
    const name = abstractName("packet-limit");
    const bytes = codecs.bytes();
    await using server = await listen<Uint8Array>({
      abstract: name,
      type: "seqpacket",
      codec: bytes,
      maxMessageSize: 1000,
    });
    const accepted = server.accept({ timeout: 5000 });
    await using sender = await connect<Uint8Array>({
      abstract: name,
      type: "seqpacket",
      codec: bytes,
      maxMessageSize: 100_000,
    });
    await using receiver = await accepted;
    const empty = await assertRejects(
      () => sender.send(new Uint8Array(0)),
      RangeError,
    );
    assertMatch(empty.message, /empty packet reads as the end/);
    await assertRejects(() => receiver.send(new Uint8Array(1001)), RangeError);
    // The receiver drops what it cannot take, and says how big it was.
    await sender.send(new Uint8Array(70_000));
    const error = await assertRejects(
      () => receiver.receive({ timeout: 5000 }),
      DecodeError,
    );
    assertMatch(
      error.message,
      /a 70000-byte message is larger than maxMessageSize 1000/,
    );
    await sender.send(new Uint8Array([7]));
    assertEquals(
      (await receiver.receive({ timeout: 5000 })).value,
      new Uint8Array([7]),
    );
  }),
);

Deno.test(
  "An abstract socket has no file, and its name is free again once the server closes",
  leakChecked(() =>
    withTempDir(async (dir) => {
      const name = abstractName("abstract");
      const before = [...Deno.readDirSync(dir)];
      for (let round = 0; round < 2; round++) {
        await using server = await listen<string>({ abstract: name });
        assertEquals(server.addr, { transport: "unix", path: `\0${name}` });
        const accepted = server.accept({ timeout: 5000 });
        await using client = await connect<string>({ abstract: name });
        await using peer = await accepted;
        await client.send(`round ${round}`);
        assertEquals(
          (await peer.receive({ timeout: 5000 })).value,
          `round ${round}`,
        );
        await assertRejects(
          () => listen({ abstract: name }),
          Deno.errors.AddrInUse,
        );
      }
      assertEquals([...Deno.readDirSync(dir)], before);
      await assertRejects(
        () => connect({ abstract: name }),
        Deno.errors.ConnectionRefused,
      );
    })
  ),
);

/** The permission bits of a file, through lstat. */
function modeOf(path: string): number {
  return Deno.lstatSync(path).mode! & 0o777;
}

Deno.test(
  "A socket file is born with mode 0o600, or the mode asked for, whatever the umask",
  leakChecked(() =>
    withTempDir(async (dir) => {
      // A child with umask 000: Deno's own sockets got 0o777 there.
      const path = `${dir}/wide-umask.sock`;
      const child = new Deno.Command("sh", {
        args: [
          "-c",
          'umask 000 && exec "$0" "$@"',
          Deno.execPath(),
          "run",
          "--quiet",
          ...flagsFor({ path }, dir),
          `${FIXTURES}socket_echo.ts`,
          "serve",
          JSON.stringify({ path }),
        ],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const reader = child.stdout.getReader();
      await readLine(reader);
      assertEquals(modeOf(path), 0o600);
      child.kill("SIGKILL");
      await child.status;
      reader.releaseLock();
      await child.stdout.cancel();
      await child.stderr.cancel();

      {
        await using server = await listen({
          path: `${dir}/group.sock`,
          mode: 0o660,
        });
        assertEquals(modeOf(`${dir}/group.sock`), 0o660 & ~0o022);
        server.close();
      }
      {
        await using _socket = await bindDatagram({ path: `${dir}/d.sock` });
        assertEquals(modeOf(`${dir}/d.sock`), 0o600);
      }
    })
  ),
);

const socat = await commandSucceeds("socat", ["-V"]);
const root = Deno.uid() === 0 && await commandSucceeds("setpriv", ["--help"]);
const socatMissing = socat
  ? undefined
  : "socat is not installed (apt-get install socat)";
const otherUidMissing = socatMissing ??
  (root ? undefined : "it needs root and setpriv to connect as another uid");

testNeeding(socatMissing, {
  name:
    "A stale socket file is replaced, and a live single-connection server (socat without fork) loses nothing to the check",
  fn: leakChecked(() =>
    withTempDir(async (dir) => {
      const path = `${dir}/once.sock`;
      // socat without fork takes one connection, then exits: a stream
      // connect as a liveness probe used it up.
      const once = new Deno.Command("socat", {
        args: [`UNIX-LISTEN:${path}`, "EXEC:cat"],
        stdout: "null",
        stderr: "piped",
      }).spawn();
      for (let i = 0; i < 200; i++) {
        try {
          Deno.lstatSync(path);
          break;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      }
      const error = await assertRejects(
        () => listen({ path }),
        Deno.errors.AddrInUse,
      );
      assertMatch(error.message, /another process is using it/);
      // Its one connection is still there for the real client.
      await using client = await connect<string>({
        path,
        framing: "lines",
        codec: codecs.text(),
        timeout: 5000,
      });
      await client.send("still listening");
      assertEquals(
        (await client.receive({ timeout: 5000 })).value,
        "still listening",
      );
      await client.closeWrite();
      assert((await once.status).success);
      await once.stderr.cancel();

      // A file no socket is bound to (left by a crashed server) is replaced.
      const crashed = startPeer("socket_echo.ts", flagsFor({ path }, dir), [
        "serve",
        JSON.stringify({ path }),
      ]);
      await crashed.line();
      crashed.process.kill("SIGKILL");
      await crashed.finish();
      assertEquals(Deno.lstatSync(path).isSocket, true);
      await using server = await listen<string>({ path });
      const accepted = server.accept({ timeout: 5000 });
      await using again = await connect<string>({ path });
      await using peer = await accepted;
      await again.send("replaced");
      assertEquals((await peer.receive({ timeout: 5000 })).value, "replaced");
    })
  ),
});

Deno.test(
  "Every accepted Unix connection carries the peer's pid, uid and gid",
  leakChecked(() =>
    withTempDir(async (dir) => {
      const path = `${dir}/creds.sock`;
      await using server = await listen<unknown>({ path });
      const peer = startPeer("socket_echo.ts", flagsFor({ path }, dir), [
        "connect",
        JSON.stringify({ path }),
      ]);
      {
        await using connection = await server.accept({ timeout: 10_000 });
        assertEquals(connection.peer, {
          pid: peer.process.pid,
          uid: Deno.uid(),
          gid: Deno.gid(),
        });
        await connection.closeWrite();
        await connection.ready({ timeout: 10_000 });
      }
      assertEquals((await peer.finish()).code, 0);
      // And the client knows who listens.
      const accepted = server.accept({ timeout: 5000 });
      await using client = await connect({ path });
      (await accepted).close();
      assertEquals(client.peer?.pid, Deno.pid);
    })
  ),
);

testNeeding(otherUidMissing, {
  name:
    "listen({ allow }) refuses a connection from another uid before reading any of its bytes",
  fn: leakChecked(async () => {
    const name = abstractName("allow");
    const asked: number[] = [];
    await using server = await listen<string>({
      abstract: name,
      framing: "lines",
      codec: codecs.text(),
      allow: (peer) => {
        asked.push(peer.uid);
        return peer.uid === Deno.uid();
      },
    });
    const accepted = server.accept({ timeout: 10_000 });
    // nobody (65534) connects first and sends a line.
    const stranger = new Deno.Command("setpriv", {
      args: [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "socat",
        "-t",
        "2",
        "-",
        `ABSTRACT-CONNECT:${name}`,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = stranger.stdin.getWriter();
    await writer.write(new TextEncoder().encode("let me in\n"));
    for (let i = 0; i < 500 && asked.length === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assertEquals(asked, [65534]);
    // Closed unread: the stranger reads the end at once.
    await writer.close();
    const { stdout } = await stranger.output();
    assertEquals(stdout.byteLength, 0);
    // The next, from this user, is the one accept() returns.
    await using friend = await connect<string>({
      abstract: name,
      framing: "lines",
      codec: codecs.text(),
    });
    await friend.send("hello");
    await using connection = await accepted;
    assertEquals(connection.peer?.uid, Deno.uid());
    assertEquals((await connection.receive({ timeout: 5000 })).value, "hello");
    assertEquals(asked, [65534, Deno.uid()]);
  }),
});

Deno.test(
  "Concurrent receive() calls on one datagram socket each get their own datagram",
  leakChecked(async () => {
    await using receiver = await bindDatagram<number>({ port: 0 });
    await using sender = await bindDatagram<number>({
      port: 0,
      peer: receiver.addr,
    });
    const receives = Array.from(
      { length: 8 },
      () => receiver.receive({ timeout: 5000 }),
    );
    for (let i = 0; i < 8; i++) await sender.send(i);
    const values = (await Promise.all(receives)).map(({ value }) => value);
    assertEquals(values.toSorted(), [0, 1, 2, 3, 4, 5, 6, 7]);
  }),
);

Deno.test(
  "Concurrent accept() calls each get their own connection, and concurrent packet receives their own packet",
  leakChecked(async () => {
    const name = abstractName("accepts");
    await using server = await listen<number>({
      abstract: name,
      type: "seqpacket",
    });
    const accepts = Array.from(
      { length: 4 },
      () => server.accept({ timeout: 5000 }),
    );
    const clients = await Promise.all(
      Array.from(
        { length: 4 },
        () => connect<number>({ abstract: name, type: "seqpacket" }),
      ),
    );
    const connections = await Promise.all(accepts);
    try {
      assertEquals(new Set(connections).size, 4);
      const receives = Array.from(
        { length: 6 },
        () => connections[0].receive({ timeout: 5000 }),
      );
      // Whichever client is connections[0]'s peer: send from all four.
      for (const [index, client] of clients.entries()) {
        for (let i = 0; i < 6; i++) await client.send(index * 10 + i);
      }
      const got = (await Promise.all(receives)).map(({ value }) => value);
      assertEquals(new Set(got).size, 6);
      assertEquals(new Set(got.map((value) => Math.floor(value / 10))).size, 1);
    } finally {
      for (const channel of [...clients, ...connections]) channel.close();
    }
  }),
);

Deno.test(
  "Waits that time out or are aborted leave nothing registered, and take nothing",
  leakChecked(async () => {
    await using socket = await bindDatagram<number>({ port: 0 });
    await using sender = await bindDatagram<number>({
      port: 0,
      peer: socket.addr,
    });
    const waiting = Array.from(
      { length: 2000 },
      () =>
        socket.receive({ timeout: 20 }).then(
          () => "received",
          (error) => error.name,
        ),
    );
    const controller = new AbortController();
    const aborted = socket.receive({ signal: controller.signal }).catch((
      error,
    ) => error);
    controller.abort(new Error("stop"));
    assertEquals(new Set(await Promise.all(waiting)), new Set(["TimedOut"]));
    assertEquals((await aborted).message, "stop");
    assertEquals(reactor().waiters, 0);
    await sender.send(42);
    assertEquals((await socket.receive({ timeout: 5000 })).value, 42);
  }),
);

Deno.test(
  "connect() to a Unix listener whose backlog is full waits, then times out",
  leakChecked(async () => {
    const name = abstractName("backlog");
    await using server = await listen({ abstract: name, backlog: 1 });
    const queued: SocketChannel<unknown>[] = [];
    try {
      // Never accepted: the kernel queues backlog + 1, then refuses with EAGAIN.
      for (let i = 0; i < 8; i++) {
        try {
          queued.push(await connect({ abstract: name, timeout: 200 }));
        } catch (error) {
          assert(error instanceof Deno.errors.TimedOut, String(error));
          assertMatch(error.message, /timed out after 200 ms/);
          return;
        }
      }
      throw new Error("every connect succeeded although nothing accepts");
    } finally {
      for (const channel of queued) channel.close();
      server.close();
    }
  }),
);

Deno.test(
  "A seqpacket send waits while the receiver does not read, and half-close ends the peer's iteration",
  leakChecked(async () => {
    // A small send buffer, so that what the kernel holds is soon full.
    const [a, b] = socketpair<Uint8Array>({
      type: "seqpacket",
      codec: codecs.bytes(),
      sendBufferSize: 65_536,
    });
    try {
      let sent = 0;
      const sending = (async () => {
        for (let i = 0; i < 200; i++) {
          await a.send(new Uint8Array(4096).fill(i));
          sent++;
        }
        await a.closeWrite();
      })();
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert(sent < 200, "every send completed although nobody read");
      const received: number[] = [];
      for await (const { value } of b) received.push(value[0]);
      await sending;
      assertEquals(received, Array.from({ length: 200 }, (_, i) => i));
      await b.send(new Uint8Array([1]));
      assertEquals(
        (await a.receive({ timeout: 5000 })).value,
        new Uint8Array([1]),
      );
    } finally {
      a.close();
      b.close();
    }
  }),
);

Deno.test(
  "A peer that closes in the middle of a frame gives a DecodeError with the bytes that came",
  leakChecked(async () => {
    const name = abstractName("midframe");
    await using server = await listen<Uint8Array>({
      abstract: name,
      codec: codecs.bytes(),
    });
    const accepted = server.accept({ timeout: 5000 });
    const raw = await connect<string>({
      abstract: name,
      framing: "lines",
      codec: codecs.text(),
    });
    // A peer writes a "frames" header announcing 100 bytes (0x64), then
    // "abc" and a newline, and closes.
    await raw.send("\0\0\0d" + "abc");
    raw.close();
    await using connection = await accepted;
    const error = await assertRejects(
      () => connection.receive({ timeout: 5000 }),
      DecodeError,
    );
    assertMatch(
      error.message,
      /the stream ended inside a message, after 8 bytes/,
    );
  }),
);

Deno.test(
  "Bad socket input is refused before any system call: no descriptor is opened",
  leakChecked(async () => {
    const before = openDescriptors();
    const [a, b] = socketpair<string>();
    const cases: [
      () => Promise<unknown>,
      ErrorConstructor | typeof TypeError,
    ][] = [
      [
        () => listen({ path: "/tmp/x.sock", type: "datagram" as never }),
        TypeError,
      ],
      [() => listen({ port: 0, type: "seqpacket" } as never), TypeError],
      [
        () =>
          listen({ path: "/tmp/x.sock", type: "seqpacket", framing: "lines" }),
        TypeError,
      ],
      [() => listen({ port: 0, mode: 0o600 } as never), TypeError],
      [() => listen({ port: 0, allow: () => true } as never), TypeError],
      [() => listen({ path: "/tmp/x.sock", mode: 0o1777 }), RangeError],
      [() => listen({ abstract: "" }), TypeError],
      [() => listen({ abstract: "x".repeat(107) }), RangeError],
      [() => listen({ path: "/tmp/x.sock", prot: 1 } as never), TypeError],
      [
        () =>
          connect({
            abstract: "a",
            maxMessageSize: 1 << 25,
            type: "seqpacket",
          }),
        RangeError,
      ],
      [() => connect({ path: "/tmp/\ud800.sock" }), TypeError],
      [
        () => bindDatagram({ port: 0, peer: { path: "/tmp/a.sock" } }),
        TypeError,
      ],
      [() => bindDatagram({ port: 0, mode: 0o600 } as never), TypeError],
      [() => a.send("x", { handles: [b] }), TypeError],
      [() => a.receive({ maxHandles: 1 }), TypeError],
    ];
    for (const [call, kind] of cases) {
      await assertRejects(call, kind as ErrorConstructor);
    }
    a.close();
    b.close();
    assertEquals(openDescriptors(), before);
  }),
);

Deno.test(
  "TCP and UDP work over IPv6, and a host name is looked up (getaddrinfo) as Deno would",
  leakChecked(async () => {
    await using server = await listen<string>({ hostname: "::1", port: 0 });
    assertEquals((server.addr as Deno.NetAddr).hostname, "::1");
    const { port } = server.addr as Deno.NetAddr;
    const accepted = server.accept({ timeout: 5000 });
    await using client = await connect<string>({ hostname: "::1", port });
    await using peer = await accepted;
    await client.send("over IPv6");
    assertEquals((await peer.receive({ timeout: 5000 })).value, "over IPv6");

    await using v4 = await listen<string>({ port: 0 });
    const v4Accepted = v4.accept({ timeout: 5000 });
    await using named = await connect<string>({
      hostname: "localhost",
      port: (v4.addr as Deno.NetAddr).port,
      timeout: 5000,
    });
    (await v4Accepted).close();
    assertEquals((named.remoteAddr as Deno.NetAddr).hostname, "127.0.0.1");
    const unknown = await assertRejects(
      () => connect({ hostname: "no-such-host.invalid", port: 1 }),
      Deno.errors.NotFound,
    );
    assertMatch(unknown.message, /looking up "no-such-host\.invalid" failed/);

    await using a = await bindDatagram<string>({ hostname: "::1", port: 0 });
    await using b = await bindDatagram<string>({
      hostname: "::1",
      port: 0,
      peer: a.addr,
    });
    await b.send("udp over IPv6");
    const message = await a.receive({ timeout: 5000 });
    assertEquals(message.from, b.addr);
    await a.reply(message, "back");
    assertEquals((await b.receive({ timeout: 5000 })).value, "back");
  }),
);

Deno.test(
  "Unix sockets ask for a 1 MiB send buffer unless told otherwise: a seqpacket message is limited by it",
  leakChecked(async () => {
    const bytes = codecs.bytes();
    // The kernel's default (about 208 KiB) would refuse this packet.
    const [a, b] = socketpair<Uint8Array>({
      type: "seqpacket",
      codec: bytes,
      maxMessageSize: 600_000,
    });
    try {
      await a.send(new Uint8Array(500_000).fill(5));
      const { value } = await b.receive({ timeout: 5000 });
      assertEquals(value.byteLength, 500_000);
    } finally {
      a.close();
      b.close();
    }
    const [small, other] = socketpair<Uint8Array>({
      type: "seqpacket",
      codec: bytes,
      sendBufferSize: 4096,
    });
    try {
      const error = await assertRejects(
        () => small.send(new Uint8Array(60_000)),
        Error,
      );
      assertEquals((error as { code?: string }).code, "EMSGSIZE");
      assertMatch(error.message, /more than the socket's send buffer holds/);
    } finally {
      small.close();
      other.close();
    }
    await assertRejects(
      () => connect({ abstract: "x", sendBufferSize: 100 }),
      RangeError,
    );
  }),
);

Deno.test(
  "A datagram larger than the receiver's maxMessageSize is a DecodeError with its first bytes, and the next one still arrives",
  leakChecked(() =>
    withTempDir(async (dir) => {
      const bytes = codecs.bytes();
      await using receiver = await bindDatagram<Uint8Array>({
        path: `${dir}/small.dg`,
        codec: bytes,
        maxMessageSize: 100,
      });
      await using sender = await bindDatagram<Uint8Array>({
        path: `${dir}/big.dg`,
        codec: bytes,
        maxMessageSize: 10_000,
        peer: receiver.addr,
      });
      await sender.send(new Uint8Array(5000).fill(9));
      const error = await assertRejects(
        () => receiver.receive({ timeout: 5000 }),
        DecodeError,
      );
      assertMatch(error.message, /is larger than maxMessageSize 100/);
      assertEquals(error.bytes.length, 64);
      await sender.send(new Uint8Array([1, 2, 3]));
      assertEquals(
        (await receiver.receive({ timeout: 5000 })).value,
        new Uint8Array([1, 2, 3]),
      );
    })
  ),
);
