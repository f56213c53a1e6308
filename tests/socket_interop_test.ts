/**
 * ipckit's sockets talk to programs nobody here wrote: Python's `socket`
 * module, Node's `net` and `dgram`, and `socat`, over Unix stream,
 * seqpacket and datagram sockets, abstract names, TCP and UDP, with ipckit
 * as the server and as the client. Each program that is missing skips its
 * tests with a printed reason.
 */
import { assertEquals } from "@std/assert";
import {
  bindDatagram,
  codecs,
  connect,
  type DatagramChannel,
  listen,
  type SocketChannel,
  type SocketOptions,
} from "../mod.ts";
import { commandSucceeds, leakChecked, testNeeding } from "./_helpers.ts";
import { abstractName, readLine, withTempDir } from "./_sockets.ts";

const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;
const ROUNDS = 50;

const python = await commandSucceeds("python3", ["--version"]);
const node = await commandSucceeds("node", ["--version"]);
const socat = await commandSucceeds("socat", ["-V"]);
/** Why a test of `program` cannot run here, or undefined. */
function missing(present: boolean, program: string): string | undefined {
  return present
    ? undefined
    : `${program} is not installed (apt-get install ${
      program === "node" ? "nodejs" : program
    })`;
}

/** A program started for one test, read line by line, killed at the end. */
class Foreign {
  readonly process: Deno.ChildProcess;
  #reader: ReadableStreamDefaultReader<Uint8Array>;

  constructor(program: string, args: string[]) {
    this.process = new Deno.Command(program, {
      args,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#reader = this.process.stdout.getReader();
  }

  line(): Promise<string> {
    return readLine(this.#reader);
  }

  async end(): Promise<void> {
    const timer = setTimeout(() => this.process.kill("SIGKILL"), 10_000);
    try {
      this.#reader.releaseLock();
      await Promise.all([
        this.process.status,
        this.process.stdout.cancel(),
        this.process.stderr.cancel(),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** ROUNDS round trips of distinct values, each echoed back whole. */
async function exchange(
  channel: SocketChannel<unknown> | DatagramChannel<unknown>,
): Promise<void> {
  for (let i = 0; i < ROUNDS; i++) {
    const value = { i, text: `message ${i} ${"é".repeat(i)}` };
    await channel.send(value);
    assertEquals((await channel.receive({ timeout: 10_000 })).value, value);
  }
}

/** Waits until a socket file or abstract name answers (socat starts asynchronously). */
async function until<T>(attempt: () => Promise<T>): Promise<T> {
  for (let i = 0;; i++) {
    try {
      return await attempt();
    } catch (error) {
      if (i > 200) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/** A port nothing listens on now (for programs that cannot print theirs). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

type StreamKind = "unix" | "abstract" | "seqpacket" | "tcp";

/** The ipckit options for a stream kind, given the foreign program's address. */
function ipckitOptions(
  kind: StreamKind,
  address: string,
): SocketOptions<unknown> {
  switch (kind) {
    case "unix":
      return { path: address };
    case "abstract":
      return { abstract: address };
    case "seqpacket":
      return { path: address, type: "seqpacket" };
    case "tcp":
      return { port: Number(address) };
  }
}

const streamKinds: StreamKind[] = ["unix", "abstract", "seqpacket", "tcp"];
const programs = [
  {
    name: "Python",
    missing: missing(python, "python3"),
    run: ["python3", `${FIXTURES}peer.py`],
  },
  {
    name: "Node",
    missing: missing(node, "node"),
    run: ["node", `${FIXTURES}peer.mjs`],
  },
];

for (const program of programs) {
  for (const kind of streamKinds) {
    // Node's net module has no seqpacket sockets; and Node 20 (libuv)
    // binds and connects abstract names with the whole 108-byte sun_path,
    // so its "x" is "x" and 106 NULs, a name that programs which pass the
    // name's own length (Python, socat, ipckit) never meet.
    if (
      program.name === "Node" && (kind === "seqpacket" || kind === "abstract")
    ) continue;
    testNeeding(program.missing, {
      name: `connect() talks to a ${program.name} server over ${kind} sockets`,
      fn: leakChecked(() =>
        withTempDir(async (dir) => {
          const address = kind === "abstract"
            ? abstractName("interop")
            : kind === "tcp"
            ? "0"
            : `${dir}/peer.sock`;
          const [command, ...args] = program.run;
          const peer = new Foreign(command, [...args, kind, "serve", address]);
          try {
            const ready = await peer.line();
            const options = ipckitOptions(
              kind,
              kind === "tcp" ? ready : address,
            );
            await using channel = await connect<unknown>(
              { ...options, timeout: 10_000 } as
                & SocketOptions<unknown>
                & { timeout: number },
            );
            await exchange(channel);
          } finally {
            await peer.end();
          }
        })
      ),
    });

    testNeeding(program.missing, {
      name: `listen() serves a ${program.name} client over ${kind} sockets`,
      fn: leakChecked(() =>
        withTempDir(async (dir) => {
          const options = ipckitOptions(
            kind,
            kind === "abstract"
              ? abstractName("interop")
              : kind === "tcp"
              ? "0"
              : `${dir}/ipckit.sock`,
          );
          await using server = await listen<unknown>(options);
          const address = kind === "tcp"
            ? String((server.addr as Deno.NetAddr).port)
            : kind === "abstract"
            ? (options as { abstract: string }).abstract
            : (options as { path: string }).path;
          const [command, ...args] = program.run;
          const peer = new Foreign(command, [
            ...args,
            kind,
            "connect",
            address,
          ]);
          try {
            await using channel = await server.accept({ timeout: 10_000 });
            await exchange(channel);
            await channel.closeWrite();
            // The client closes once our side has ended.
            await channel.ready({ timeout: 10_000 });
          } finally {
            await peer.end();
          }
        })
      ),
    });
  }
}

for (const program of programs) {
  const kinds = program.name === "Python" ? ["dgram", "udp"] : ["udp"];
  for (const kind of kinds) {
    testNeeding(program.missing, {
      name: `bindDatagram() talks to a ${program.name} peer over ${
        kind === "udp" ? "UDP" : "Unix datagrams"
      }`,
      fn: leakChecked(() =>
        withTempDir(async (dir) => {
          const [command, ...args] = program.run;
          const peerPath = `${dir}/peer.dg`;
          const peer = new Foreign(command, [
            ...args,
            kind,
            "serve",
            peerPath,
          ]);
          try {
            const ready = await peer.line();
            await using socket = await bindDatagram<unknown>(
              kind === "udp"
                ? { port: 0, peer: { port: Number(ready) } }
                : { path: `${dir}/mine.dg`, peer: { path: peerPath } },
            );
            await exchange(socket);
            await socket.send("stop");
          } finally {
            await peer.end();
          }
        })
      ),
    });
  }
}

/** socat commands that echo with cat, for each kind. */
const socatServers: Record<
  string,
  (dir: string) => { args: string[]; options: SocketOptions<string> }
> = {
  "a Unix stream socket": (dir) => ({
    args: [`UNIX-LISTEN:${dir}/s.sock`, "EXEC:cat"],
    options: { path: `${dir}/s.sock` },
  }),
  "an abstract name": () => {
    const name = abstractName("socat");
    return {
      args: [`ABSTRACT-LISTEN:${name}`, "EXEC:cat"],
      options: { abstract: name },
    };
  },
  "a Unix seqpacket socket": (dir) => ({
    args: [`UNIX-LISTEN:${dir}/p.sock,socktype=5`, "EXEC:cat"],
    options: { path: `${dir}/p.sock`, type: "seqpacket" },
  }),
  "TCP": () => {
    const port = freePort();
    return {
      args: [`TCP4-LISTEN:${port},bind=127.0.0.1,reuseaddr`, "EXEC:cat"],
      options: { port },
    };
  },
};

for (const [kind, server] of Object.entries(socatServers)) {
  testNeeding(missing(socat, "socat"), {
    name: `connect() talks to a socat echo server over ${kind}`,
    fn: leakChecked(() =>
      withTempDir(async (dir) => {
        const { args, options } = server(dir);
        const peer = new Foreign("socat", args);
        try {
          const seqpacket = "type" in options;
          await using channel = await until(() =>
            connect<string>({
              ...options,
              codec: codecs.text(),
              ...(seqpacket ? {} : { framing: "lines" }),
            } as SocketOptions<string>)
          );
          for (let i = 0; i < ROUNDS; i++) {
            await channel.send(`line ${i}`);
            const { value } = await channel.receive({ timeout: 10_000 });
            assertEquals(value, `line ${i}`);
          }
        } finally {
          await peer.end();
        }
      })
    ),
  });
}

for (
  const [kind, make] of Object.entries({
    "UDP": () => {
      const port = freePort();
      return {
        args: [`UDP4-RECVFROM:${port},bind=127.0.0.1,fork`, "EXEC:cat"],
        own: { port: 0 },
        peer: { port },
      };
    },
    "Unix datagrams": (dir: string) => ({
      args: [`UNIX-RECVFROM:${dir}/peer.dg,fork`, "EXEC:cat"],
      own: { path: `${dir}/mine.dg` },
      peer: { path: `${dir}/peer.dg` },
    }),
  } as Record<
    string,
    (dir: string) => { args: string[]; own: object; peer: object }
  >)
) {
  testNeeding(missing(socat, "socat"), {
    name: `bindDatagram() talks to a socat echo over ${kind}`,
    fn: leakChecked(() =>
      withTempDir(async (dir) => {
        const { args, own, peer: peerAddress } = make(dir);
        const peer = new Foreign("socat", args);
        try {
          await using socket = await bindDatagram<string>({
            ...own,
            peer: peerAddress,
            codec: codecs.text(),
          } as never);
          for (let i = 0; i < 5; i++) {
            // socat may not be bound yet: resend until the echo comes.
            const value = await until(async () => {
              await socket.send(`datagram ${i}`);
              return (await socket.receive({ timeout: 200 })).value;
            });
            assertEquals(value, `datagram ${i}`);
          }
        } finally {
          peer.process.kill("SIGTERM");
          await peer.end();
        }
      })
    ),
  });
}
