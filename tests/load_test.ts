/**
 * Load: several processes at full rate on one object, every message
 * numbered and checksummed, each received exactly once.
 *
 * Counts: 4 producers x 50,000 messages on one message queue, taken by 4
 * consumer processes; 4 writer processes x 50,000 frames on one shared FIFO
 * (one reader: a FIFO's readers would split each other's frames); 4 client
 * processes x 50,000 messages to one Unix socket server; 4 RPC client
 * processes x 25,000 requests with 25 each in flight (100 in all). The RPC
 * run is half size: its handler waits a timer turn per request, so that
 * requests overlap in the server, and 4 x 50,000 took 13 s on this 2-core
 * machine under load; the soak (`deno task bench:soak`) runs it without end.
 * Each test takes 2 to 6 s here.
 */
import { assert, assertEquals } from "@std/assert";
import {
  Fifo,
  listen,
  MessageQueue,
  type RpcEnvelope,
  serve,
  type SocketChannel,
} from "../mod.ts";
import {
  inTempDir,
  leakChecked,
  MQ_FLAGS,
  spawnFixture,
  uniqueName,
} from "./_helpers.ts";
import { bounded } from "./_bounded.ts";
import {
  checksum,
  exactlyOnceProblems,
  type Numbered,
} from "./fixtures/_numbered.ts";

const LIMIT = 60_000;

/** The JSON a child prints, once it exited with success. */
async function resultOf<T>(child: Deno.ChildProcess, what: string): Promise<T> {
  const output = await bounded(child.output(), LIMIT, what);
  const stderr = new TextDecoder().decode(output.stderr);
  assertEquals(output.code, 0, `${what}: ${stderr}`);
  return JSON.parse(new TextDecoder().decode(output.stdout) || "null");
}

async function succeeded(
  child: Deno.ChildProcess,
  what: string,
): Promise<void> {
  const output = await bounded(child.output(), LIMIT, what);
  const stderr = new TextDecoder().decode(output.stderr);
  assertEquals(output.code, 0, `${what}: ${stderr}`);
}

const fsFlags = (dir: string, ...unixPaths: string[]) => [
  "--allow-ffi",
  `--allow-read=${dir}`,
  `--allow-write=${dir}`,
  ...(unixPaths.length
    ? [`--allow-net=${unixPaths.map((path) => `unix:${path}`)}`]
    : []),
];

Deno.test(
  "Load: 4 producer and 4 consumer processes move 4 x 50,000 messages through one queue, each exactly once",
  leakChecked(async () => {
    const name = uniqueName("load-mq");
    await using queue = MessageQueue.open<Numbered | null>(name, {
      create: true,
      unlinkOnClose: true,
    });
    const perProducer = 50_000;
    const consumers = [0, 1, 2, 3].map(() =>
      spawnFixture("consumer.ts", MQ_FLAGS, [name])
    );
    const producers = [0, 1, 2, 3].map((i) =>
      spawnFixture("producer.ts", MQ_FLAGS, [
        "mq",
        name,
        String(i * perProducer),
        String(perProducer),
      ])
    );
    for (const producer of producers) await succeeded(producer, "a producer");
    // One stop sign per consumer, behind every message (same priority).
    for (let i = 0; i < consumers.length; i++) {
      await queue.send(null, { timeout: LIMIT });
    }
    const received: Numbered[] = [];
    for (const consumer of consumers) {
      const { seqs, bad } = await resultOf<{ seqs: number[]; bad: number }>(
        consumer,
        "a consumer",
      );
      assertEquals(bad, 0, "messages with a wrong checksum");
      // The consumer checked each checksum; here: every seq exactly once.
      for (const seq of seqs) received.push({ seq, check: checksum(seq) });
    }
    assertEquals(exactlyOnceProblems(received, 4 * perProducer), []);
  }),
);

Deno.test(
  "Load: 4 writer processes send 4 x 50,000 frames through one shared FIFO, each exactly once",
  leakChecked(() =>
    inTempDir("load", async (dir) => {
      using fifo = Fifo.create(`${dir}/load`);
      await using reader = await fifo.openReader<Numbered>({
        sharedWriters: true,
      });
      const perWriter = 50_000;
      const writers = [0, 1, 2, 3].map((i) =>
        spawnFixture("producer.ts", fsFlags(dir), [
          "fifo-shared",
          fifo.path,
          String(i * perWriter),
          String(perWriter),
          "200",
        ])
      );
      const total = 4 * perWriter;
      const received: Numbered[] = [];
      while (received.length < total) {
        received.push((await reader.receive({ timeout: LIMIT })).value);
      }
      for (const writer of writers) await succeeded(writer, "a writer");
      assertEquals(exactlyOnceProblems(received, total), []);
    })
  ),
);

Deno.test(
  "Load: 4 client processes send 4 x 50,000 messages to one Unix socket server, each exactly once",
  leakChecked(() =>
    inTempDir("load", async (dir) => {
      const path = `${dir}/load.sock`;
      await using server = await listen<Numbered>({ path });
      const perClient = 50_000;
      const clients = [0, 1, 2, 3].map((i) =>
        spawnFixture("producer.ts", fsFlags(dir, path), [
          "unix",
          path,
          String(i * perClient),
          String(perClient),
        ])
      );
      const received: Numbered[] = [];
      const connections: SocketChannel<Numbered>[] = [];
      for (let i = 0; i < clients.length; i++) {
        connections.push(await server.accept({ timeout: LIMIT }));
      }
      await Promise.all(connections.map(async (connection) => {
        using _ = connection;
        for (;;) {
          try {
            received.push((await connection.receive({ timeout: LIMIT })).value);
          } catch (error) {
            if (error instanceof Deno.errors.UnexpectedEof) return;
            throw error;
          }
        }
      }));
      for (const client of clients) await succeeded(client, "a client");
      assertEquals(exactlyOnceProblems(received, 4 * perClient), []);
    })
  ),
);

Deno.test(
  "Load: 4 RPC client processes x 25,000 requests, 100 in flight, against one server: every answer right, each request served once",
  leakChecked(() =>
    inTempDir("load", async (dir) => {
      const path = `${dir}/rpc.sock`;
      type Envelope = RpcEnvelope<Numbered, Numbered>;
      await using server = await listen<Envelope>({ path });
      const perClient = 25_000;
      const clients = [0, 1, 2, 3].map((i) =>
        spawnFixture("rpc_load_client.ts", fsFlags(dir, path), [
          path,
          String(i * perClient),
          String(perClient),
          "25",
        ])
      );
      const seen: Numbered[] = [];
      let most = 0;
      let open = 0;
      const servers: Promise<void>[] = [];
      for (let i = 0; i < clients.length; i++) {
        const connection = await server.accept({ timeout: LIMIT });
        servers.push(
          serve(connection, async (value: Numbered) => {
            open++;
            most = Math.max(most, open);
            seen.push(value);
            // A timer turn, so that requests really overlap in the server.
            await new Promise((resolve) => setTimeout(resolve, 1));
            open--;
            return value;
          }).done.finally(() => connection.close()),
        );
      }
      for (const client of clients) {
        const { answered, wrong } = await resultOf<
          { answered: number; wrong: number }
        >(client, "an RPC client");
        assertEquals([answered, wrong], [perClient, 0]);
      }
      await bounded(Promise.all(servers), LIMIT, "the servers to end");
      assertEquals(exactlyOnceProblems(seen, 4 * perClient), []);
      // Every client's 25 were in progress together, across clients.
      assert(most > 25, `at most ${most} requests were in the server at once`);
    })
  ),
);
