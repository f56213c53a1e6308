/**
 * Many `receive()` calls in flight on one handle: every channel kind hands
 * each concurrent receive its own message, exactly once, while another
 * process sends.
 */
import { assertEquals } from "@std/assert";
import {
  bindDatagram,
  type Channel,
  duplex,
  Fifo,
  listen,
  type Message,
  MessageQueue,
  spawn,
} from "../mod.ts";
import {
  inTempDir,
  leakChecked,
  MQ_FLAGS,
  spawnFixture,
  uniqueName,
} from "./_helpers.ts";
import { exactlyOnceProblems, type Numbered } from "./fixtures/_numbered.ts";

/** A bound on every wait: a regression fails instead of hanging. */
const TIMEOUT = 20_000;

/** What the concurrent receives are made on. */
type _Receiver = Pick<Channel<Numbered, Message<Numbered>>, "receive">;

/**
 * Runs `receivers` receive loops on `channel` at once until `total`
 * receives have been issued, and returns what they got.
 */
async function receiveConcurrently(
  channel: _Receiver,
  receivers: number,
  total: number,
): Promise<Numbered[]> {
  const received: Numbered[] = [];
  let issued = 0;
  const loop = async () => {
    while (issued < total) {
      issued++;
      received.push((await channel.receive({ timeout: TIMEOUT })).value);
    }
  };
  await Promise.all(Array.from({ length: receivers }, loop));
  return received;
}

/** A producer child, whose failure ends the test at once, with its stderr. */
class Producer {
  #output: Promise<Deno.CommandOutput>;
  /** Rejects as soon as the child exits unsuccessfully; never resolves. */
  readonly failed: Promise<never>;

  constructor(child: Deno.ChildProcess) {
    this.#output = child.output();
    this.failed = this.#output.then((output) => {
      if (output.code === 0) return new Promise<never>(() => {});
      throw new Error(
        `the producer failed: ${new TextDecoder().decode(output.stderr)}`,
      );
    });
    this.failed.catch(() => {}); // reported by the race or by succeeded()
  }

  /** Receives as {@linkcode receiveConcurrently} does, unless the child fails first. */
  receive(
    channel: _Receiver,
    receivers: number,
    total: number,
  ): Promise<Numbered[]> {
    return Promise.race([
      receiveConcurrently(channel, receivers, total),
      this.failed,
    ]);
  }

  /** Waits for the child and fails with its stderr unless it succeeded. */
  async succeeded(): Promise<void> {
    const output = await this.#output;
    assertEquals(output.code, 0, new TextDecoder().decode(output.stderr));
  }
}

/**
 * Starts a producer child (`producer.ts` with `flags`; `args` say where it
 * sends) that sends messages 0 to `total` - 1, receives them with
 * `receivers` concurrent loops on `channel`, and fails unless the child
 * succeeded and each message came exactly once.
 */
async function assertEachOnce(
  channel: _Receiver,
  receivers: number,
  total: number,
  flags: string[],
  args: string[],
): Promise<void> {
  const producer = new Producer(
    spawnFixture("producer.ts", flags, [...args, "0", String(total)]),
  );
  const received = await producer.receive(channel, receivers, total);
  await producer.succeeded();
  assertEquals(exactlyOnceProblems(received, total), []);
}

function netFlags(dir: string, ...unixPaths: string[]): string[] {
  return [
    "--allow-ffi",
    `--allow-read=${dir}`,
    `--allow-write=${dir}`,
    `--allow-net=${["127.0.0.1", ...unixPaths.map((path) => `unix:${path}`)]}`,
  ];
}

for (
  const [title, receivers, total] of [
    [
      "MessageQueue gives 8 concurrent receives on one handle 800 messages from another process, each exactly once",
      8,
      800,
    ],
    [
      "MessageQueue serves a two-worker pool on one handle 1,000 messages, each exactly once",
      2,
      1000,
    ],
  ] as const
) {
  Deno.test(
    title,
    leakChecked(async () => {
      const name = uniqueName("conc-mq");
      await using queue = MessageQueue.open<Numbered>(name, {
        create: true,
        unlinkOnClose: true,
      });
      await assertEachOnce(queue, receivers, total, MQ_FLAGS, ["mq", name]);
    }),
  );
}

Deno.test(
  "MessageQueue gives concurrent sync and async receivers distinct messages when tryReceive() interleaves",
  leakChecked(async () => {
    const name = uniqueName("conc-mixed");
    await using queue = MessageQueue.open<Numbered>(name, {
      create: true,
      unlinkOnClose: true,
      maxMessages: 10,
    });
    const producer = new Producer(spawnFixture("producer.ts", MQ_FLAGS, [
      "mq",
      name,
      "0",
      "600",
    ]));
    const received: Numbered[] = [];
    let issued = 0;
    const asyncLoop = async () => {
      while (issued < 600) {
        issued++;
        received.push((await queue.receive({ timeout: TIMEOUT })).value);
      }
    };
    // A poller that takes what is there between the async receives' turns.
    const pollLoop = async () => {
      while (issued < 600) {
        try {
          const { value } = queue.tryReceive();
          issued++;
          received.push(value);
        } catch (error) {
          if (!(error instanceof Deno.errors.WouldBlock)) throw error;
          await new Promise((resolve) => setTimeout(resolve, 0));
        }
      }
    };
    await Promise.all([asyncLoop(), asyncLoop(), asyncLoop(), pollLoop()]);
    await producer.succeeded();
    assertEquals(exactlyOnceProblems(received, 600), []);
  }),
);

Deno.test(
  "duplex() over two message queues gives 8 concurrent receives 800 messages, each exactly once",
  leakChecked(async () => {
    const requests = uniqueName("conc-dup-a");
    const replies = uniqueName("conc-dup-b");
    await using channel = duplex(
      MessageQueue.open<Numbered>(requests, {
        create: true,
        unlinkOnClose: true,
      }),
      MessageQueue.open<Numbered>(replies, {
        create: true,
        unlinkOnClose: true,
      }),
    );
    await assertEachOnce(channel, 8, 800, MQ_FLAGS, ["mq", replies]);
  }),
);

Deno.test(
  "A FIFO reader gives 8 concurrent receives 2,000 frames from another process, each exactly once",
  leakChecked(() =>
    inTempDir("conc", async (dir) => {
      using fifo = Fifo.create(`${dir}/conc`);
      await using reader = await fifo.openReader<Numbered>();
      await assertEachOnce(
        reader,
        8,
        2000,
        ["--allow-ffi", `--allow-read=${dir}`, `--allow-write=${dir}`],
        ["fifo", fifo.path],
      );
    })
  ),
);

Deno.test(
  "A spawned child's pipe gives 8 concurrent receives 2,000 messages, each exactly once",
  leakChecked(async () => {
    const script = new URL("./fixtures/producer.ts", import.meta.url).pathname;
    await using child = spawn<never, Numbered>(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        script,
        "pipe",
        "0",
        "2000",
      ],
    });
    const received = await receiveConcurrently(child, 8, 2000);
    assertEquals(exactlyOnceProblems(received, 2000), []);
    assertEquals((await child.status).code, 0);
  }),
);

for (const transport of ["unix", "tcp"] as const) {
  Deno.test(
    `A ${transport} socket connection gives 8 concurrent receives 2,000 messages, each exactly once`,
    leakChecked(() =>
      inTempDir("conc", async (dir) => {
        const path = `${dir}/conc.sock`;
        await using server = await listen<Numbered>(
          transport === "unix" ? { path } : { port: 0 },
        );
        const where = transport === "unix"
          ? path
          : String((server.addr as Deno.NetAddr).port);
        const producer = new Producer(
          spawnFixture("producer.ts", netFlags(dir, path), [
            transport,
            where,
            "0",
            "2000",
          ]),
        );
        await using connection = await server.accept({ timeout: TIMEOUT });
        const received = await producer.receive(connection, 8, 2000);
        await producer.succeeded();
        assertEquals(exactlyOnceProblems(received, 2000), []);
      })
    ),
  );
}

Deno.test(
  "SocketServer gives 4 concurrent accepts 4 distinct connections",
  leakChecked(() =>
    inTempDir("conc", async (dir) => {
      const path = `${dir}/accepts.sock`;
      await using server = await listen<Numbered>({ path });
      const producers = [0, 1, 2, 3].map((i) =>
        new Producer(spawnFixture("producer.ts", netFlags(dir, path), [
          "unix",
          path,
          String(i * 10),
          "10",
        ]))
      );
      const connections = await Promise.all(
        [0, 1, 2, 3].map(() => server.accept({ timeout: TIMEOUT })),
      );
      assertEquals(new Set(connections).size, 4);
      const received: Numbered[] = [];
      await Promise.all(connections.map(async (connection) => {
        for await (const { value } of connection) received.push(value);
        connection.close();
      }));
      for (const producer of producers) await producer.succeeded();
      assertEquals(exactlyOnceProblems(received, 40), []);
    })
  ),
);

Deno.test(
  "A Unix datagram socket gives 8 concurrent receives 800 datagrams, each exactly once",
  leakChecked(() =>
    inTempDir("conc", async (dir) => {
      const path = `${dir}/conc-dgram.sock`;
      const sender = `${dir}/conc-sender.sock`;
      await using socket = await bindDatagram<Numbered>({ path });
      await assertEachOnce(socket, 8, 800, netFlags(dir, sender, path), [
        "unixgram",
        sender,
        path,
      ]);
    })
  ),
);

Deno.test(
  "A UDP socket gives 8 concurrent receives 800 datagrams, each exactly once",
  leakChecked(() =>
    inTempDir("conc", async (dir) => {
      await using socket = await bindDatagram<Numbered>({ port: 0 });
      const port = String((socket.addr as Deno.NetAddr).port);
      await assertEachOnce(socket, 8, 800, netFlags(dir), ["udp", port]);
    })
  ),
);
