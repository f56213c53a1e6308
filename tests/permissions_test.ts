/**
 * The README's permission table, row by row: each operation runs in a child
 * with exactly the row's flags and succeeds, then once per flag with that
 * flag removed and fails with the NotCapable message that names it.
 *
 * The rows are data: a mechanism that is rewritten or added (sockets on
 * libc, System V objects) changes or adds a row here and in the README.
 *
 * @module
 */

import { emptyDir } from "@std/fs";
import { fromFileUrl } from "@std/path";
import { assertEquals, assertMatch } from "@std/assert";
import {
  bindDatagram,
  Fifo,
  listen,
  MessageQueue,
  Semaphore,
  SharedMemory,
  SysvMessageQueue,
  SysvSemaphoreSet,
  SysvSharedMemory,
} from "../mod.ts";
import { leakChecked, uniqueKey, uniqueName } from "./_helpers.ts";

const PROBE = fromFileUrl(
  new URL("./fixtures/permission_probe.ts", import.meta.url),
);

/** What a row needs set up, the flags it claims, and how to undo it. */
interface Prepared {
  /** The probe's argument: an object name, a path, a port, a pid. */
  argument: string;
  /** The permission flags the README gives the operation. */
  flags: string[];
  /** Flags that are no permission (none since sockets left `--unstable-net`), always given. */
  always?: string[];
  /** Further flag sets that must fail, and the message they fail with. */
  alsoFails?: { flags: string[]; message: RegExp }[];
  /** Talks to the child while it runs (answers a UDP server). */
  drive?: (lines: AsyncIterator<string>) => Promise<void>;
  cleanup?: () => Promise<void> | void;
}

interface Row {
  /** The operation, as the README's table names it. */
  operation: string;
  /** The operation's name in fixtures/permission_probe.ts. */
  probe: string;
  prepare: (dir: string) => Promise<Prepared> | Prepared;
}

/** A free TCP port on 127.0.0.1, found by binding port 0. */
function freePort(transport: "tcp"): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0, transport });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** A free UDP port on 127.0.0.1 (Deno's own UDP API needs --unstable-net). */
async function freeUdpPort(): Promise<number> {
  await using socket = await bindDatagram({ hostname: "127.0.0.1", port: 0 });
  return (socket.addr as Deno.NetAddr).port;
}

/** A message queue made for a row, unlinked afterwards. */
function queue(flags: string[]): Prepared {
  const name = uniqueName("perm-mq");
  MessageQueue.open(name, { create: true }).close();
  return {
    argument: name,
    flags,
    cleanup: () => _quietly(() => MessageQueue.unlink(name)),
  };
}

/** A shared memory object made for a row, unlinked afterwards. */
function memory(flags: string[]): Prepared {
  const name = uniqueName("perm-shm");
  SharedMemory.open(name, { create: true, size: 4096 }).close();
  return {
    argument: name,
    flags,
    cleanup: () => _quietly(() => SharedMemory.unlink(name)),
  };
}

/** A file of `size` zero bytes in the row's directory. */
async function file(
  dir: string,
  name: string,
  size: number,
  flags: string[],
): Promise<Prepared> {
  await Deno.writeFile(`${dir}/${name}`, new Uint8Array(size));
  return { argument: `${dir}/${name}`, flags };
}

/** A socket path in the row's directory, with what listening on it needs. */
function socketPath(dir: string): Prepared {
  return {
    argument: `${dir}/app.sock`,
    flags: [
      "--allow-ffi",
      `--allow-read=${dir}`,
      `--allow-write=${dir}`,
      `--allow-net=unix:${dir}/app.sock`,
    ],
  };
}

/** A System V queue made for a row, removed afterwards. */
function sysvQueue(flags: string[]): Prepared {
  const queue = SysvMessageQueue.open(uniqueKey(), {
    create: true,
    exclusive: true,
  });
  const key = queue.key;
  queue.close();
  return {
    argument: String(key),
    flags,
    cleanup: () => _removeSysvQueue(key),
  };
}

function _removeSysvQueue(key: number): void {
  _quietly(() => SysvMessageQueue.open(key).remove());
}

function _quietly(remove: () => void): void {
  try {
    remove();
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

const ROWS: Row[] = [
  {
    operation: "receive from a message queue",
    probe: "mq-receive",
    prepare: () => queue(["--allow-ffi", "--allow-read=/dev/mqueue"]),
  },
  {
    operation: "send to a message queue",
    probe: "mq-send",
    prepare: () => queue(["--allow-ffi", "--allow-write=/dev/mqueue"]),
  },
  {
    operation: "create a message queue (to send)",
    probe: "mq-create",
    prepare: () => {
      const name = uniqueName("perm-mq-new");
      return {
        argument: name,
        flags: ["--allow-ffi", "--allow-write=/dev/mqueue"],
        cleanup: () => _quietly(() => MessageQueue.unlink(name)),
      };
    },
  },
  {
    operation: "unlink a message queue",
    probe: "mq-unlink",
    prepare: () => queue(["--allow-ffi", "--allow-write=/dev/mqueue"]),
  },
  {
    operation: "map shared memory read-only",
    probe: "shm-read",
    prepare: () => memory(["--allow-ffi", "--allow-read=/dev/shm"]),
  },
  {
    operation: "map shared memory read-write",
    probe: "shm-write",
    prepare: () =>
      memory([
        "--allow-ffi",
        "--allow-read=/dev/shm",
        "--allow-write=/dev/shm",
      ]),
  },
  {
    operation: "map shared memory read-only with unlinkOnClose",
    probe: "shm-read-unlink-on-close",
    prepare: () =>
      memory([
        "--allow-ffi",
        "--allow-read=/dev/shm",
        "--allow-write=/dev/shm",
      ]),
  },
  {
    operation: "unlink shared memory",
    probe: "shm-unlink",
    prepare: () => memory(["--allow-ffi", "--allow-write=/dev/shm"]),
  },
  {
    operation: "open a named semaphore",
    probe: "sem-open",
    prepare: () => {
      const name = uniqueName("perm-sem");
      Semaphore.open(name, { create: true }).close();
      return {
        argument: name,
        flags: [
          "--allow-ffi",
          "--allow-read=/dev/shm",
          "--allow-write=/dev/shm",
        ],
        cleanup: () => _quietly(() => Semaphore.unlink(name)),
      };
    },
  },
  {
    operation: "receive from a System V message queue",
    probe: "sysv-msg-receive",
    prepare: () => sysvQueue(["--allow-ffi", "--allow-read=/proc/sysvipc"]),
  },
  {
    operation: "send to a System V message queue",
    probe: "sysv-msg-send",
    prepare: () => sysvQueue(["--allow-ffi", "--allow-write=/proc/sysvipc"]),
  },
  {
    operation: "create a System V message queue (to send)",
    probe: "sysv-msg-create",
    prepare: () => {
      const key = uniqueKey();
      return {
        argument: String(key),
        flags: ["--allow-ffi", "--allow-write=/proc/sysvipc"],
        cleanup: () => _removeSysvQueue(key),
      };
    },
  },
  {
    operation: "remove a System V message queue",
    probe: "sysv-msg-remove",
    prepare: () => sysvQueue(["--allow-ffi", "--allow-write=/proc/sysvipc"]),
  },
  {
    operation: "attach System V shared memory",
    probe: "sysv-shm-attach",
    prepare: () => {
      const segment = SysvSharedMemory.open(uniqueKey(), {
        create: true,
        exclusive: true,
        size: 4096,
      });
      const key = segment.key;
      segment.close();
      return {
        argument: String(key),
        flags: [
          "--allow-ffi",
          "--allow-read=/proc/sysvipc",
          "--allow-write=/proc/sysvipc",
        ],
        cleanup: () =>
          SysvSharedMemory.open(key, { unlinkOnClose: true }).close(),
      };
    },
  },
  {
    operation: "open a System V semaphore set",
    probe: "sysv-sem-open",
    prepare: () => {
      const set = SysvSemaphoreSet.open(uniqueKey(), {
        create: true,
        exclusive: true,
        count: 1,
      });
      const key = set.key;
      set.close();
      return {
        argument: String(key),
        flags: [
          "--allow-ffi",
          "--allow-read=/proc/sysvipc",
          "--allow-write=/proc/sysvipc",
        ],
        cleanup: () => SysvSemaphoreSet.open(key).remove(),
      };
    },
  },
  {
    operation: "lock a file, exclusive",
    probe: "file-lock-exclusive",
    prepare: (dir) =>
      file(dir, "app.lock", 0, [
        "--allow-ffi",
        `--allow-read=${dir}`,
        `--allow-write=${dir}`,
      ]),
  },
  {
    operation: "lock a file, shared only (write: false)",
    probe: "file-lock-shared",
    prepare: (dir) =>
      file(dir, "app.lock", 0, ["--allow-ffi", `--allow-read=${dir}`]),
  },
  {
    operation: "map a file read-only",
    probe: "mapped-read",
    prepare: (dir) =>
      file(dir, "data.bin", 4096, ["--allow-ffi", `--allow-read=${dir}`]),
  },
  {
    operation: "map a file read-write",
    probe: "mapped-write",
    prepare: (dir) =>
      file(dir, "data.bin", 4096, [
        "--allow-ffi",
        `--allow-read=${dir}`,
        `--allow-write=${dir}`,
      ]),
  },
  {
    operation: "create a FIFO",
    probe: "fifo-create",
    prepare: (dir) => ({
      argument: `${dir}/new.fifo`,
      flags: ["--allow-ffi", `--allow-write=${dir}`],
    }),
  },
  {
    operation: "open a FIFO to read",
    probe: "fifo-read",
    prepare: (dir) => {
      // Disposing the handle removes the FIFO it created: hold it until then.
      const fifo = Fifo.create(`${dir}/jobs.fifo`);
      return {
        argument: fifo.path,
        flags: ["--allow-ffi", `--allow-read=${dir}`],
        cleanup: () => fifo[Symbol.dispose](),
      };
    },
  },
  {
    operation: "open a FIFO to write",
    probe: "fifo-write",
    prepare: async (dir) => {
      const fifo = Fifo.create(`${dir}/jobs.fifo`);
      // A writer's open waits for a reader: this process is the reader.
      const reader = await Fifo.openReader(fifo.path);
      return {
        argument: fifo.path,
        flags: ["--allow-ffi", `--allow-write=${dir}`],
        cleanup: async () => {
          await reader.close();
          fifo[Symbol.dispose]();
        },
      };
    },
  },
  {
    operation: "spawn a child with pipes",
    probe: "spawn",
    prepare: () => ({ argument: "true", flags: ["--allow-run=true"] }),
  },
  {
    operation: "listen on a Unix socket",
    probe: "unix-listen",
    prepare: socketPath,
  },
  {
    operation: "listen on a Unix seqpacket socket",
    probe: "seqpacket-listen",
    prepare: socketPath,
  },
  {
    operation: "listen on an abstract Unix name",
    probe: "abstract-listen",
    prepare: () => {
      const name = `ipckit-test-perm-${Deno.pid}-${crypto.randomUUID()}`;
      return {
        argument: name,
        flags: ["--allow-ffi", "--allow-net"],
        alsoFails: [{
          // A list cannot name an abstract socket: Deno asks for all of net.
          flags: ["--allow-ffi", "--allow-net=127.0.0.1"],
          message: new RegExp(
            `^NotCapable: Requires net access to "unix:@${name}".*run again with --allow-net\\b`,
          ),
        }],
      };
    },
  },
  {
    operation: "bind a Unix datagram socket and send to another",
    probe: "unix-datagram-send",
    prepare: async (dir) => {
      const peer = await bindDatagram<string>({ path: `${dir}/peer.dg` });
      return {
        argument: dir,
        flags: [
          "--allow-ffi",
          `--allow-read=${dir}`,
          `--allow-write=${dir}`,
          `--allow-net=unix:${dir}/own.dg,unix:${dir}/peer.dg`,
        ],
        alsoFails: [{
          // Its own path only: it binds, but may not send to the peer.
          flags: [
            "--allow-ffi",
            `--allow-read=${dir}`,
            `--allow-write=${dir}`,
            `--allow-net=unix:${dir}/own.dg`,
          ],
          message: new RegExp(
            `^NotCapable: Requires net access to "unix:${dir}/peer\\.dg"`,
          ),
        }],
        cleanup: () => peer.close(),
      };
    },
  },
  {
    operation: "make a socket pair",
    probe: "socketpair",
    prepare: () => ({ argument: "", flags: ["--allow-ffi"] }),
  },
  {
    operation: "connect to a Unix socket",
    probe: "unix-connect",
    prepare: async (dir) => {
      const path = `${dir}/app.sock`;
      const server = await listen({ path });
      return {
        argument: path,
        flags: [
          "--allow-ffi",
          `--allow-read=${dir}`,
          `--allow-write=${dir}`,
          `--allow-net=unix:${path}`,
        ],
        cleanup: () => server.close(),
      };
    },
  },
  {
    operation: "listen on TCP",
    probe: "tcp-listen",
    prepare: () => {
      const port = freePort("tcp");
      return {
        argument: String(port),
        flags: ["--allow-ffi", `--allow-net=127.0.0.1:${port}`],
      };
    },
  },
  {
    operation: "connect over TCP",
    probe: "tcp-connect",
    prepare: () => {
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const { port } = listener.addr as Deno.NetAddr;
      return {
        argument: String(port),
        flags: ["--allow-ffi", `--allow-net=127.0.0.1:${port}`],
        cleanup: () => listener.close(),
      };
    },
  },
  {
    operation: "a UDP server that replies",
    probe: "udp-reply",
    prepare: async () => {
      const port = await freeUdpPort();
      // The sender, this process: replying needs net access to its address.
      const sender = await bindDatagram<string>({
        hostname: "127.0.0.1",
        port: 0,
        peer: { hostname: "127.0.0.1", port },
      });
      const from = (sender.addr as Deno.NetAddr).port;
      return {
        argument: String(port),
        flags: [
          "--allow-ffi",
          `--allow-net=127.0.0.1:${port},127.0.0.1:${from}`,
        ],
        alsoFails: [{
          // Only the server's own address: it binds and receives, but may
          // not answer.
          flags: ["--allow-ffi", `--allow-net=127.0.0.1:${port}`],
          message: new RegExp(
            `^NotCapable: Requires net access to "127\\.0\\.0\\.1:${from}"`,
          ),
        }],
        drive: async (lines) => {
          const first = await lines.next();
          if (first.done || first.value !== "bound") return;
          await sender.send("ping");
          try {
            await sender.receive({ timeout: 2000 });
          } catch (error) {
            if (!(error instanceof Deno.errors.TimedOut)) throw error;
          }
        },
        cleanup: () => sender.close(),
      };
    },
  },
  {
    operation: "listen for a signal",
    probe: "signal-listen",
    prepare: () => ({ argument: "", flags: [] }),
  },
  {
    operation: "send a signal",
    probe: "signal-send",
    prepare: () => {
      const target = new Deno.Command("sleep", {
        args: ["30"],
        stdout: "null",
        stderr: "null",
      }).spawn();
      return {
        argument: String(target.pid),
        flags: ["--allow-run"],
        cleanup: async () => {
          target.kill("SIGKILL");
          await target.status;
        },
      };
    },
  },
];

/** Lines of a stream, as an iterator the row's `drive` can pull from. */
async function* lines(
  stream: ReadableStream<Uint8Array>,
): AsyncGenerator<string> {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    let end: number;
    while ((end = pending.indexOf("\n")) >= 0) {
      yield pending.slice(0, end);
      pending = pending.slice(end + 1);
    }
  }
  if (pending) yield pending;
}

/** Runs the probe with `flags`; resolves to its last line of output. */
async function probe(
  row: Row,
  prepared: Prepared,
  flags: string[],
): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      ...(prepared.always ?? []),
      ...flags,
      PROBE,
      row.probe,
      prepared.argument,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  try {
    const said: string[] = [];
    const iterator = lines(child.stdout);
    const recording: AsyncIterator<string> = {
      next: async () => {
        const line = await iterator.next();
        if (!line.done) said.push(line.value);
        return line;
      },
    };
    if (prepared.drive) await prepared.drive(recording);
    for (let line = await recording.next(); !line.done;) {
      line = await recording.next();
    }
    const [status, stderr] = await Promise.all([
      child.status,
      new Response(child.stderr).text(),
    ]);
    assertEquals(status.code, 0, `${row.probe}: ${stderr}`);
    return said.at(-1) ?? "";
  } finally {
    clearTimeout(timer);
  }
}

/** The message Deno or ipckit gives when `flag` is missing. */
function missing(flag: string): RegExp {
  const name = /^--allow-([a-z]+)/.exec(flag)![1];
  return new RegExp(
    `^NotCapable: Requires ${name} access\\b.*run again with (the )?--allow-${name}\\b`,
  );
}

/** The cases of a row: its flags, each flag removed, and its `alsoFails`. */
type Case = (prepared: Prepared) => { flags: string[]; expect: RegExp | "ok" };

function casesOf(prepared: Prepared): { name: string; pick: Case }[] {
  const cases: { name: string; pick: Case }[] = [{
    name: "with exactly its flags",
    pick: (p) => ({ flags: p.flags, expect: "ok" }),
  }];
  prepared.flags.forEach((flag, index) =>
    cases.push({
      name: `without ${flag.split("=")[0]}`,
      pick: (p) => ({
        flags: p.flags.filter((_, other) => other !== index),
        expect: missing(p.flags[index]),
      }),
    })
  );
  (prepared.alsoFails ?? []).forEach((_, index) =>
    cases.push({
      name: `with ${prepared.alsoFails![index].flags.join(" ")}`,
      pick: (p) => ({
        flags: p.alsoFails![index].flags,
        expect: p.alsoFails![index].message,
      }),
    })
  );
  return cases;
}

for (const row of ROWS) {
  Deno.test(
    `the permission table: ${row.operation} works with exactly its flags and fails without each`,
    leakChecked(async () => {
      const dir = await Deno.makeTempDir({ prefix: "ipckit-test-perm-" });
      try {
        let cases: { name: string; pick: Case }[] | undefined;
        for (let index = 0; index < (cases?.length ?? 1); index++) {
          // Each case is prepared afresh: an unlink or a create uses its
          // object up, and ports differ from one preparation to the next.
          const prepared = await row.prepare(dir);
          try {
            cases ??= casesOf(prepared);
            const { name, pick } = cases[index];
            const { flags, expect } = pick(prepared);
            const said = await probe(row, prepared, flags);
            if (expect === "ok") assertEquals(said, "ok", name);
            else assertMatch(said, expect, name);
          } finally {
            await prepared.cleanup?.();
          }
          await emptyDir(dir);
        }
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    }),
  );
}
