import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import {
  bindDatagram,
  codecs,
  connect,
  DecodeError,
  listen,
  type SocketChannel,
  type SocketServer,
  UDP_MAX_PAYLOAD_IPV4,
} from "../mod.ts";
import {
  commandSucceeds,
  leakChecked,
  runFixture,
  skip,
  spawnFixture,
} from "./_helpers.ts";
import { bounded, collectWithin, LineReader } from "./_bounded.ts";
import { withTempDir } from "./_sockets.ts";

type Numbered = { n: number; pid: number };

/** The least a child needs: loopback, and exactly the Unix socket paths it uses. */
function childFlags(dir: string, ...unixPaths: string[]): string[] {
  return [
    "--allow-ffi",
    `--allow-read=${dir}`,
    `--allow-write=${dir}`,
    `--allow-net=${["127.0.0.1", ...unixPaths.map((path) => `unix:${path}`)]}`,
  ];
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Reads a child's stdout until `line` appears. */
async function waitForLine(
  child: Deno.ChildProcess,
  line: string,
): Promise<ReadableStreamDefaultReader<Uint8Array>> {
  const reader = child.stdout.getReader();
  const decoder = new TextDecoder();
  let seen = "";
  while (!seen.split("\n").includes(line)) {
    const { done, value } = await bounded(reader.read(), 20_000, line);
    if (done) throw new Error(`child ended before printing ${line}: ${seen}`);
    seen += decoder.decode(value, { stream: true });
  }
  return reader;
}

/** Serves one child over a stream socket: hello, three round trips, half-close. */
async function exchangeWithChild(
  server: SocketServer<Numbered>,
  address: { path?: string; hostname?: string; port?: number },
  dir: string,
): Promise<void> {
  const unixPaths = address.path ? [address.path] : [];
  const child = spawnFixture("socket_peer.ts", childFlags(dir, ...unixPaths), [
    "stream",
    JSON.stringify(address),
  ]);
  await using connection = await server.accept({ timeout: 10_000 });
  const hello = await connection.receive({ timeout: 10_000 });
  assertEquals(hello.value.n, 0);
  assertEquals(hello.value.pid, child.pid);
  for (const n of [10, 20, 30]) {
    await connection.send({ n, pid: Deno.pid });
    const { value } = await connection.receive({ timeout: 10_000 });
    assertEquals(value, { n: n + 1, pid: child.pid });
  }
  await connection.closeWrite();
  // The child's loop ends at our half-close; then it closes, ending ours.
  const rest = await collectWithin(connection, 10_000, "the child's close");
  assertEquals(rest, []);
  const output = await bounded(child.output(), 20_000, "the child");
  assertEquals(output.code, 0, new TextDecoder().decode(output.stderr));
}

Deno.test(
  "listen() and connect() exchange typed messages with another process over a Unix socket",
  leakChecked(() =>
    withTempDir(async (dir) => {
      const path = `${dir}/peer.sock`;
      await using server = await listen<Numbered>({ path });
      assertEquals((server.addr as Deno.UnixAddr).path, path);
      await exchangeWithChild(server, { path }, dir);
    })
  ),
);

Deno.test(
  "listen() and connect() exchange typed messages with another process over TCP",
  leakChecked(() =>
    withTempDir(async (dir) => {
      await using server = await listen<Numbered>({ port: 0 });
      const { hostname, port } = server.addr as Deno.NetAddr;
      assertEquals(hostname, "127.0.0.1");
      await exchangeWithChild(server, { hostname, port }, dir);
    })
  ),
);

for (const kind of ["udp", "unix"] as const) {
  Deno.test(
    `bindDatagram() exchanges typed ${kind} datagrams with another process, with the sender's address`,
    leakChecked(() =>
      withTempDir(async (dir) => {
        const own = kind === "udp" ? { port: 0 } : { path: `${dir}/parent.dg` };
        const childAddress = kind === "udp"
          ? { port: 0 }
          : { path: `${dir}/child.dg` };
        await using socket = await bindDatagram<Numbered>(own);
        const unixPaths = kind === "unix"
          ? [own.path!, childAddress.path!]
          : [];
        const child = spawnFixture(
          "socket_peer.ts",
          childFlags(dir, ...unixPaths),
          [
            "datagram",
            JSON.stringify(childAddress),
            JSON.stringify(socket.addr),
          ],
        );
        const hello = await socket.receive({ timeout: 10_000 });
        assertEquals(hello.value, { n: 0, pid: child.pid });
        if (kind === "unix") {
          assertEquals(hello.from, {
            transport: "unixpacket",
            path: childAddress.path!,
          });
        } else {
          assertEquals(hello.from.transport, "udp");
          assertEquals((hello.from as Deno.NetAddr).hostname, "127.0.0.1");
        }
        await socket.send({ n: 41, pid: Deno.pid }, { to: hello.from });
        const answer = await socket.receive({ timeout: 10_000 });
        assertEquals(answer.value, { n: 42, pid: child.pid });
        const output = await bounded(child.output(), 20_000, "the child");
        assertEquals(output.code, 0, new TextDecoder().decode(output.stderr));
        if (kind === "unix") {
          assertEquals(await exists(childAddress.path!), false);
          socket.close();
          assertEquals(await exists(own.path!), false);
        }
      })
    ),
  );
}

Deno.test(
  "A Unix socket server with 50 concurrent clients in another process answers every one",
  leakChecked(() =>
    withTempDir(async (dir) => {
      const path = `${dir}/many.sock`;
      type Ask = { client: number; round: number };
      await using server = await listen<Ask>({ path });
      let open = 0;
      let mostOpen = 0;
      const serving = (async () => {
        const handlers: Promise<void>[] = [];
        for await (const connection of server) {
          handlers.push((async () => {
            using _ = connection;
            open++;
            mostOpen = Math.max(mostOpen, open);
            for await (const { value } of connection) {
              await connection.send(value);
            }
            open--;
          })());
          if (handlers.length === 50) break;
        }
        await Promise.all(handlers);
      })();
      const result = await bounded(
        runFixture("socket_many_clients.ts", childFlags(dir, path), [
          JSON.stringify({ path }),
          "50",
          "20",
        ]),
        30_000,
        "the 50 clients",
      );
      assertEquals(result.code, 0, result.stderr);
      await bounded(serving, 10_000, "the server to finish");
      const answered: number[] = JSON.parse(result.stdout);
      assertEquals(answered.length, 50);
      assertEquals(answered, new Array(50).fill(20));
      // Clients were served side by side, not one after another.
      assert(mostOpen > 1, `at most ${mostOpen} connection(s) open at once`);
    })
  ),
);

Deno.test(
  "A slow reader makes send() wait instead of buffering without bound",
  leakChecked(() =>
    withTempDir(async (dir) => {
      const path = `${dir}/slow.sock`;
      await using server = await listen<Uint8Array>({
        path,
        codec: codecs.bytes(),
      });
      const accepted = server.accept({ timeout: 5000 });
      await using writer = await connect<Uint8Array>({
        path,
        codec: codecs.bytes(),
        timeout: 5000,
      });
      await using reader = await accepted;
      const message = new Uint8Array(64 * 1024);
      const total = 512; // 32 MiB in all
      let sent = 0;
      const sending = (async () => {
        for (let i = 0; i < total; i++) {
          message[0] = i & 0xff;
          await writer.send(message, { timeout: 20_000 });
          sent++;
        }
      })();
      // Give the writer time to fill every buffer between the two ends.
      let before = -1;
      while (before !== sent) {
        before = sent;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const bufferedBytes = sent * message.byteLength;
      assert(sent < total, "every send completed although nobody read");
      // What is in flight is bounded by the kernel's socket buffers.
      assert(
        bufferedBytes <= 16 * 1024 * 1024,
        `${bufferedBytes} bytes were accepted with no reader`,
      );
      for (let i = 0; i < total; i++) {
        const { value } = await reader.receive({ timeout: 10_000 });
        assertEquals(value.byteLength, message.byteLength);
        assertEquals(value[0], i & 0xff);
      }
      await bounded(sending, 20_000, "the sends to complete");
      assertEquals(sent, total);
    })
  ),
);

Deno.test(
  "SocketChannel.closeWrite() half-closes: the peer's iteration ends and it can still answer",
  leakChecked(() =>
    withTempDir(async (dir) => {
      const path = `${dir}/half.sock`;
      await using server = await listen<string>({ path, codec: codecs.text() });
      const accepted = server.accept({ timeout: 5000 });
      await using client = await connect<string>({
        path,
        codec: codecs.text(),
        timeout: 5000,
      });
      await using peer = await accepted;
      await client.send("a", { timeout: 5000 });
      await client.send("b", { timeout: 5000 });
      await bounded(client.closeWrite(), 5000, "the half-close");
      const received = (await collectWithin(peer, 5000, "the half-close"))
        .map(({ value }) => value);
      assertEquals(received, ["a", "b"]);
      await peer.send("got 2", { timeout: 5000 });
      assertEquals((await client.receive({ timeout: 5000 })).value, "got 2");
      peer.close();
      await assertRejects(
        () => client.receive({ timeout: 5000 }),
        Deno.errors.UnexpectedEof,
      );
    })
  ),
);

Deno.test(
  "A Unix listener removes its socket file on close and replaces only a stale one",
  leakChecked(() =>
    withTempDir(async (dir) => {
      const path = `${dir}/stale.sock`;
      // A server that crashes leaves its socket file behind.
      const crashed = spawnFixture(
        "socket_listener_then_wait.ts",
        childFlags(dir, path),
        [
          path,
        ],
      );
      const reader = await waitForLine(crashed, "listening");
      const listenError = await assertRejects(
        () => listen({ path }),
        Deno.errors.AddrInUse,
      );
      assertMatch(listenError.message, /another process is using it/);
      crashed.kill("SIGKILL");
      await bounded(crashed.status, 10_000, "the killed listener");
      reader.releaseLock();
      await crashed.stdout.cancel();
      await crashed.stderr.cancel();
      assertEquals((await Deno.lstat(path)).isSocket, true);
      const connectError = await assertRejects(
        () => connect({ path, timeout: 5000 }),
        Deno.errors.ConnectionRefused,
      );
      assertMatch(
        connectError.message,
        /stale\.sock": nothing is listening there/,
      );

      const server = await listen<string>({ path });
      const connecting = connect<string>({ path, timeout: 5000 });
      await using accepted = await server.accept({ timeout: 5000 });
      await using client = await connecting;
      await client.send("still works", { timeout: 5000 });
      assertEquals(
        (await accepted.receive({ timeout: 5000 })).value,
        "still works",
      );
      server.close();
      assertEquals(await exists(path), false);
    })
  ),
);

Deno.test(
  "listen() leaves a path that is not a socket alone",
  leakChecked(() =>
    withTempDir(async (dir) => {
      const path = `${dir}/notes.txt`;
      await Deno.writeTextFile(path, "keep me");
      const error = await assertRejects(
        () => listen({ path }),
        Deno.errors.AlreadyExists,
      );
      assertMatch(error.message, /exists and is not a socket/);
      assertEquals(await Deno.readTextFile(path), "keep me");
    })
  ),
);

Deno.test(
  "connect() names the address when nothing listens there",
  leakChecked(() =>
    withTempDir(async (dir) => {
      const pathError = await assertRejects(
        () => connect({ path: `${dir}/missing.sock`, timeout: 5000 }),
        Deno.errors.NotFound,
      );
      assertMatch(pathError.message, /missing\.sock.*no socket file exists/);
      await using server = await listen({ port: 0 });
      const { port } = server.addr as Deno.NetAddr;
      server.close();
      const portError = await assertRejects(
        () => connect({ port, timeout: 5000 }),
        Deno.errors.ConnectionRefused,
      );
      assertMatch(
        portError.message,
        /TCP 127\.0\.0\.1:\d+: nothing is listening/,
      );
    })
  ),
);

Deno.test(
  "Bad socket options are rejected before any system call",
  async () => {
    await assertRejects(() => listen({ port: 70000 }), RangeError);
    await assertRejects(() => listen({ path: "" }), TypeError);
    await assertRejects(
      () => listen({ path: `/tmp/${"x".repeat(120)}` }),
      RangeError,
    );
    await assertRejects(
      () => listen({ path: "/tmp/a", port: 1 } as never),
      TypeError,
      "give one of path, abstract or hostname/port",
    );
    await assertRejects(
      () => listen({ port: 0, framing: "words" as never }),
      TypeError,
    );
    await assertRejects(
      () => connect({ port: 1, maxMessageSize: 0 }),
      RangeError,
    );
    await assertRejects(
      () => bindDatagram({ port: 0, maxMessageSize: 70_000 }),
      RangeError,
    );
  },
);

/** An echo server that keeps serving while some clients misbehave. */
async function echoServer(
  server: SocketServer<unknown>,
  errors: unknown[],
): Promise<void> {
  const serveOne = async (connection: SocketChannel<unknown>) => {
    using _ = connection;
    try {
      for await (const { value } of connection) {
        await connection.send(value, { timeout: 5000 });
      }
    } catch (error) {
      errors.push(error);
    }
  };
  for await (const connection of server) serveOne(connection);
}

Deno.test(
  "A peer that sends garbage or an oversized frame header is cut off and the server keeps serving",
  leakChecked(() =>
    withTempDir(async (dir) => {
      const path = `${dir}/garbage.sock`;
      const server = await listen<unknown>({ path, maxMessageSize: 1024 });
      const errors: unknown[] = [];
      const serving = echoServer(server, errors);

      for (
        const garbage of [
          new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
          new Uint8Array([0x00, 0x10, 0x00, 0x00]), // announces 1 MiB > 1024
        ]
      ) {
        const raw = await bounded(
          Deno.connect({ transport: "unix", path }),
          5000,
          "a raw connection",
        );
        await bounded(raw.write(garbage), 5000, "a raw write");
        // The server closes the connection: we read end-of-stream.
        assertEquals(
          await bounded(raw.read(new Uint8Array(16)), 5000, "the cut-off"),
          null,
        );
        raw.close();
      }
      await using good = await connect<unknown>({ path, timeout: 5000 });
      await good.send({ still: "served" }, { timeout: 5000 });
      assertEquals((await good.receive({ timeout: 5000 })).value, {
        still: "served",
      });
      assertEquals(errors.length, 2);
      for (const error of errors) {
        assert(error instanceof DecodeError);
        assertMatch(error.message, /above maxMessageSize 1024/);
      }
      server.close();
      await bounded(serving, 5000, "the server to stop");
    })
  ),
);

Deno.test(
  "A datagram above the size limit is a RangeError and nothing is sent",
  leakChecked(async () => {
    await using receiver = await bindDatagram<Uint8Array>({
      port: 0,
      codec: codecs.bytes(),
    });
    await using sender = await bindDatagram<Uint8Array>({
      port: 0,
      codec: codecs.bytes(),
      peer: receiver.addr,
    });
    const error = await assertRejects(
      () => sender.send(new Uint8Array(UDP_MAX_PAYLOAD_IPV4 + 1)),
      RangeError,
    );
    assertMatch(error.message, /above the datagram limit of 65507 bytes/);
    await sender.send(new Uint8Array(UDP_MAX_PAYLOAD_IPV4), { timeout: 5000 });
    const { value } = await receiver.receive({ timeout: 5000 });
    assertEquals(value.byteLength, UDP_MAX_PAYLOAD_IPV4);
    await assertRejects(
      () => receiver.receive({ timeout: 50 }),
      Deno.errors.TimedOut,
    );
  }),
);

Deno.test(
  "Sockets need Deno's own permissions: --allow-net for TCP; read, write and net on a Unix path",
  leakChecked(() =>
    withTempDir(async (dir) => {
      await using server = await listen({ port: 0 });
      const { port } = server.addr as Deno.NetAddr;
      const tcp = await bounded(
        runFixture("socket_connect_only.ts", ["--allow-ffi"], [
          JSON.stringify({ port }),
        ]),
        20_000,
        "the child",
      );
      assertEquals(
        tcp.stdout,
        `NotCapable: Requires net access to "127.0.0.1:${port}", run again with --allow-net=127.0.0.1:${port}\n`,
      );
      const path = `${dir}/perm.sock`;
      await using unixServer = await listen({ path });
      const withoutNet = await bounded(
        runFixture(
          "socket_connect_only.ts",
          ["--allow-ffi", `--allow-read=${dir}`, `--allow-write=${dir}`],
          [JSON.stringify({ path })],
        ),
        20_000,
        "the child",
      );
      assertEquals(
        withoutNet.stdout,
        `NotCapable: Requires net access to "unix:${path}", run again with --allow-net=unix:${path}\n`,
      );
      const withoutWrite = await bounded(
        runFixture(
          "socket_connect_only.ts",
          ["--allow-ffi", `--allow-read=${dir}`, `--allow-net=unix:${path}`],
          [JSON.stringify({ path })],
        ),
        20_000,
        "the child",
      );
      assertEquals(
        withoutWrite.stdout,
        `NotCapable: Requires write access to "${path}", run again with --allow-write=${path}\n`,
      );
      const enough = await bounded(
        runFixture(
          "socket_connect_only.ts",
          [
            "--allow-ffi",
            `--allow-read=${dir}`,
            `--allow-write=${dir}`,
            `--allow-net=unix:${path}`,
          ],
          [JSON.stringify({ path })],
        ),
        20_000,
        "the child",
      );
      assertEquals(enough.stdout, "connected\n");
      unixServer.close();
    })
  ),
);

const SOCAT_MISSING = await commandSucceeds("socat", ["-V"])
  ? undefined
  : "socat is not installed (apt-get install socat)";

Deno.test({
  name:
    "Line framing talks JSON Lines with socat on both ends of a Unix socket",
  ignore: skip("the socat interop test", SOCAT_MISSING),
  fn: leakChecked(() =>
    withTempDir(async (dir) => {
      // socat is the client: it sends two lines and prints what comes back.
      const path = `${dir}/lines.sock`;
      type Job = { job: string };
      await using server = await listen<Job>({ path, framing: "lines" });
      const serving = (async () => {
        await using connection = await server.accept({ timeout: 10_000 });
        for await (const { value } of connection) {
          await connection.send({ job: value.job.toUpperCase() }, {
            timeout: 5000,
          });
        }
      })();
      const client = new Deno.Command("socat", {
        args: ["-t", "5", "-", `UNIX-CONNECT:${path}`],
        stdin: "piped",
        stdout: "piped",
      }).spawn();
      const writer = client.stdin.getWriter();
      await writer.write(
        new TextEncoder().encode('{"job":"resize"}\r\n{"job":"crop"}\n'),
      );
      const output = client.output();
      // socat half-closes after stdin ends, so the server's loop ends too.
      await writer.close();
      const { stdout, success } = await bounded(output, 10_000, "socat");
      await bounded(serving, 10_000, "the server");
      assert(success);
      assertEquals(
        new TextDecoder().decode(stdout),
        '{"job":"RESIZE"}\n{"job":"CROP"}\n',
      );

      // socat is the server: an echo service; we connect with lines framing.
      const echoPath = `${dir}/echo.sock`;
      const echo = new Deno.Command("socat", {
        args: [`UNIX-LISTEN:${echoPath}`, "EXEC:cat"],
        stdout: "null",
        stderr: "piped",
      }).spawn();
      let channel: SocketChannel<Job> | undefined;
      for (let attempt = 0; !channel; attempt++) {
        try {
          channel = await connect<Job>({
            path: echoPath,
            framing: "lines",
            timeout: 5000,
          });
        } catch (error) {
          if (attempt > 100) throw error;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
      await channel.send({ job: "echo me" }, { timeout: 5000 });
      assertEquals((await channel.receive({ timeout: 5000 })).value, {
        job: "echo me",
      });
      await bounded(channel.closeWrite(), 5000, "the half-close");
      assertEquals(await collectWithin(channel, 5000, "socat's close"), []);
      channel.close();
      assert((await bounded(echo.status, 10_000, "socat")).success);
      await echo.stderr.cancel();
    })
  ),
});

Deno.test(
  "A Unix datagram socket sends while a receive waits on it",
  leakChecked(() =>
    withTempDir(async (dir) => {
      await using a = await bindDatagram<string>({ path: `${dir}/a.dg` });
      await using b = await bindDatagram<string>({ path: `${dir}/b.dg` });
      const waiting = a.receive({ timeout: 5000 });
      // Deno's own Unix datagram sockets failed this send with "Busy".
      await a.send("hi", { to: b.addr });
      const request = await b.receive({ timeout: 5000 });
      assertEquals(request.value, "hi");
      await b.reply(request, "hi yourself");
      assertEquals((await waiting).value, "hi yourself");
    })
  ),
);

Deno.test(
  "for await over a SocketServer survives EMFILE: it reports it, backs off, and accepts again once descriptors are free",
  leakChecked(() =>
    withTempDir(async (dir) => {
      const path = `${dir}/emfile.sock`;
      const script = new URL("./fixtures/socket_emfile.ts", import.meta.url)
        .pathname;
      const flags = childFlags(dir, path).join(" ");
      // 64 descriptors: Deno needs some, the rest runs out after a few dozen.
      const server = new Deno.Command("sh", {
        args: [
          "-c",
          `ulimit -n 64 && exec "$0" run --quiet ${flags} "$1" "$2" 100`,
          Deno.execPath(),
          script,
          path,
        ],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const lines = new LineReader(server.stdout);
      const stdin = server.stdin.getWriter();
      const clients: SocketChannel<unknown>[] = [];
      try {
        assertEquals(await lines.next(), "ready");
        // The backlog holds what the server cannot accept yet.
        for (let i = 0; i < 100; i++) {
          clients.push(await connect({ path, timeout: 5000 }));
        }
        let errors = 0;
        let line = await lines.next();
        while (line.startsWith("error ")) {
          assertEquals(line, "error EMFILE");
          errors++;
          // Free its descriptors: the same iteration must go on accepting.
          await stdin.write(new TextEncoder().encode("release\n"));
          line = await lines.next();
        }
        assert(errors > 0, "the server never ran out of descriptors");
        assertMatch(line, /^accepted 100 after \d+ failed accepts$/);
        const status = await bounded(server.status, 10_000, "the server");
        assertEquals(status.code, 0);
      } finally {
        for (const client of clients) client.close();
        await stdin.close().catch(() => {});
        try {
          server.kill("SIGKILL");
        } catch {
          // It exited already, as it should.
        }
        await bounded(server.status, 10_000, "the server to exit");
        await lines.cancel();
        await server.stderr.cancel();
      }
    })
  ),
);
