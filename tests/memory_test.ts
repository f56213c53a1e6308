/**
 * A server that runs for months must stay flat: what ipckit keeps per wait
 * given up on, per distinct object name, per frame header, and per request
 * a client never reads the answer of. Each is measured in a child process
 * (tests/fixtures/memory_probe.ts), after garbage collection.
 */
import { assert, assertEquals } from "@std/assert";
import { connect, type RpcEnvelope } from "../mod.ts";
import { inTempDir, leakChecked, spawnFixture } from "./_helpers.ts";
import { bounded, LineReader } from "./_bounded.ts";

const PROBE_FLAGS = [
  "--v8-flags=--expose-gc",
  "--allow-ffi",
  "--allow-net",
  "--allow-read",
  "--allow-write=/dev/mqueue,/dev/shm,/tmp",
];
/** Heap a given-up wait may keep, in bytes; before the fixes it was ~2,400. */
const PER_WAIT_LIMIT = 200;
/** Heap a distinct name may keep, in bytes; before the fix it was ~400-900. */
const PER_NAME_LIMIT = 100;

async function probe(args: string[]): Promise<Record<string, number>> {
  const child = spawnFixture("memory_probe.ts", PROBE_FLAGS, args);
  const output = await bounded(child.output(), 60_000, "the memory probe");
  const stderr = new TextDecoder().decode(output.stderr);
  assertEquals(output.code, 0, stderr);
  return JSON.parse(new TextDecoder().decode(output.stdout));
}

for (const kind of ["accept", "udp", "unixgram", "stream", "fifo", "mq"]) {
  Deno.test(
    `A ${kind} wait that times out or is aborted keeps no memory (20,000 waits)`,
    leakChecked(() =>
      inTempDir("mem", async (dir) => {
        const result = await probe(["waits", kind, "20000", dir]);
        for (const [how, bytes] of Object.entries(result)) {
          assert(
            bytes < PER_WAIT_LIMIT,
            `each ${how} wait kept ${bytes.toFixed(0)} bytes`,
          );
        }
      })
    ),
  );
}

Deno.test(
  "Opening and removing 20,000 distinct queues, shared memory objects, semaphores and FIFOs keeps no memory",
  leakChecked(() =>
    inTempDir("mem", async (dir) => {
      const result = await probe(["names", "20000", dir]);
      for (const [kind, bytes] of Object.entries(result)) {
        assert(
          bytes < PER_NAME_LIMIT,
          `each ${kind} name kept ${bytes.toFixed(0)} bytes`,
        );
      }
    })
  ),
);

Deno.test(
  "FramedChannel does not allocate what a frame header announces before the payload arrives",
  leakChecked(async () => {
    const { grew } = await probe(["header"]);
    // 64 MiB announced, 3 bytes sent: a buffer of a few KiB is fair.
    assert(grew < 1024 * 1024, `the reader allocated ${grew} bytes`);
  }),
);

Deno.test(
  "serve() stays bounded when a client sends requests and never reads the answers",
  leakChecked(() =>
    inTempDir("mem", async (dir) => {
      const path = `${dir}/flood.sock`;
      const server = spawnFixture("memory_probe.ts", PROBE_FLAGS, [
        "flood-server",
        path,
      ]);
      const lines = new LineReader(server.stdout);
      try {
        let line = await lines.next();
        while (line !== "ready") line = await lines.next();
        type Envelope = RpcEnvelope<string, string>;
        await using channel = await connect<Envelope>({ path, timeout: 5000 });
        const value = "x".repeat(4096);
        let sent = 0;
        try {
          for (; sent < 20_000; sent++) {
            // Never receives: once the server stops reading, this blocks.
            await channel.send({ kind: "request", id: sent + 1, value }, {
              timeout: 1000,
            });
          }
        } catch (error) {
          if (!(error instanceof Deno.errors.TimedOut)) throw error;
        }
        let peak = 0;
        for (let i = 0; i < 5; i++) {
          line = await lines.next();
          while (!line.startsWith("heap ")) line = await lines.next();
          peak = Math.max(peak, Number(line.slice(5)));
        }
        console.log(
          `sent ${sent} requests of 4 KiB before the server pushed back; its heap grew by at most ${
            (peak / 1048576).toFixed(1)
          } MiB`,
        );
        assert(sent < 20_000, "the server never pushed back");
        assert(
          peak < 16 * 1024 * 1024,
          `the server's heap grew by ${peak} bytes`,
        );
      } finally {
        server.kill("SIGKILL");
        await lines.cancel();
        await bounded(server.status, 10_000, "the server to exit");
        await server.stderr.cancel();
      }
    })
  ),
);
