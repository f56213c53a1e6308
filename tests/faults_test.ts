/**
 * Faults: a peer killed with SIGKILL at the worst moment. The survivors get
 * a clear error or recover as documented, within their timeouts, and the
 * kernel objects stay usable.
 */
import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import {
  client,
  connect,
  DecodeError,
  duplex,
  listen,
  MessageQueue,
  Mutex,
  type RpcEnvelope,
  Semaphore,
  SharedMemory,
} from "../mod.ts";
import {
  inTempDir,
  leakChecked,
  spawnFixture,
  uniqueName,
} from "./_helpers.ts";
import { bounded, LineReader } from "./_bounded.ts";
import type { Ask } from "./fixtures/_rpc_handler.ts";

const IPC_FLAGS = [
  "--allow-ffi",
  "--allow-read=/dev/mqueue,/dev/shm,/proc",
  "--allow-write=/dev/mqueue,/dev/shm",
];

/** A child the test kills: started, awaited at `ready`, killed, reaped. */
class Victim {
  #child: Deno.ChildProcess;
  #lines: LineReader;

  constructor(fixture: string, flags: string[], args: string[]) {
    this.#child = spawnFixture(fixture, flags, args);
    this.#lines = new LineReader(this.#child.stdout);
  }

  get pid(): number {
    return this.#child.pid;
  }

  /** Waits for the child to print `line` (its "I am in place" sign). */
  async ready(line: string): Promise<void> {
    assertEquals(await this.#lines.next(20_000), line);
  }

  /** Kills it with SIGKILL and waits until it is gone. */
  async kill(): Promise<void> {
    this.#child.kill("SIGKILL");
    const status = await bounded(this.#child.status, 10_000, "the victim");
    assertEquals(status.signal, "SIGKILL");
    await this.#lines.cancel();
    await this.#child.stderr.cancel();
  }
}

Deno.test(
  "Faults: a consumer killed while waiting in receive() takes nothing; the queue serves the survivors",
  leakChecked(async () => {
    const name = uniqueName("fault-mq");
    using queue = MessageQueue.open<string>(name, {
      create: true,
      unlinkOnClose: true,
    });
    const victim = new Victim("fault_peer.ts", IPC_FLAGS, ["mq-receive", name]);
    await victim.ready("waiting");
    await victim.kill();
    await queue.send("for the living", { timeout: 1000 });
    assertEquals(queue.attributes().currentMessages, 1);
    assertEquals(
      (await queue.receive({ timeout: 1000 })).value,
      "for the living",
    );
  }),
);

Deno.test(
  "Faults: a producer killed in the middle of a frame gives the reader a DecodeError with the partial frame; the server serves the next client",
  leakChecked(() =>
    inTempDir("fault", async (dir) => {
      const path = `${dir}/fault.sock`;
      await using server = await listen<unknown>({ path });
      const victim = new Victim(
        "fault_peer.ts",
        [
          `--allow-read=${dir}`,
          `--allow-write=${dir}`,
          `--allow-net=unix:${path}`,
        ],
        ["partial-frame", path],
      );
      await using connection = await server.accept({ timeout: 10_000 });
      await victim.ready("sent");
      const receiving = connection.receive({ timeout: 10_000 });
      // The end of the stream may reach it before kill() returns: handled
      // now, asserted below.
      receiving.catch(() => {});
      await victim.kill();
      const error = await assertRejects(() => receiving, DecodeError);
      assertMatch(error.message, /ended inside a message, after 14 bytes/);
      assertEquals(error.bytes.length, 14);
      await using next = await connect<string>({ path, timeout: 5000 });
      await using accepted = await server.accept({ timeout: 5000 });
      await next.send("next client", { timeout: 5000 });
      assertEquals(
        (await accepted.receive({ timeout: 5000 })).value,
        "next client",
      );
    })
  ),
);

Deno.test(
  "Faults: a Mutex holder killed with SIGKILL is recovered from once, and the mutex works across processes afterwards",
  leakChecked(async () => {
    const name = uniqueName("fault-mutex");
    using mutex = Mutex.open(name, { create: true, unlinkOnClose: true });
    const victim = new Victim("mutex_hold.ts", IPC_FLAGS, [name]);
    await victim.ready("locked false");
    const waiting = mutex.lock({ timeout: 10_000 });
    await victim.kill();
    const guard = await waiting;
    assertEquals(guard.recovered, true);
    guard.release();
    // Another process takes it normally now: no second recovery.
    const other = spawnFixture("mutex_try.ts", IPC_FLAGS, [name, "5000"]);
    const output = await bounded(other.output(), 20_000, "the other process");
    assertEquals(
      new TextDecoder().decode(output.stdout).trim(),
      "recovered false",
    );
    using again = await mutex.lock({ timeout: 1000 });
    assertEquals(again.recovered, false);
    assertEquals(mutex.recoveries, 1);
  }),
);

Deno.test(
  "Faults: a semaphore waiter killed with SIGKILL takes no count; a post reaches the survivors",
  leakChecked(async () => {
    const name = uniqueName("fault-sem");
    using semaphore = Semaphore.open(name, {
      create: true,
      initial: 0,
      unlinkOnClose: true,
    });
    const victim = new Victim("fault_peer.ts", IPC_FLAGS, ["sem-wait", name]);
    await victim.ready("waiting");
    await victim.kill();
    semaphore.post();
    assertEquals(semaphore.value, 1);
    await semaphore.wait({ timeout: 1000 });
    assertEquals(semaphore.value, 0);
    // And a waiter in another process is woken by the next post.
    const survivor = new Victim("fault_peer.ts", IPC_FLAGS, ["sem-wait", name]);
    await survivor.ready("waiting");
    semaphore.post();
    await survivor.ready("took");
    await survivor.kill().catch(() => {}); // it may have exited already
  }),
);

Deno.test(
  "Faults: a shared-memory peer killed with SIGKILL leaves the object mapped, readable, writable and removable",
  leakChecked(async () => {
    const name = uniqueName("fault-shm");
    using memory = SharedMemory.open(name, { create: true, size: 4096 });
    const word = memory.view(Int32Array, 0, 1);
    const victim = new Victim("fault_peer.ts", IPC_FLAGS, ["shm-writer", name]);
    await victim.ready("running");
    await victim.kill();
    const last = Atomics.load(word, 0);
    assert(last > 0, "the peer wrote nothing");
    // Nobody writes any more: the value stays, and it is ours to change.
    await new Promise((resolve) => setTimeout(resolve, 50));
    assertEquals(Atomics.load(word, 0), last);
    Atomics.store(word, 0, -1);
    using reopened = SharedMemory.open(name);
    assertEquals(reopened.view(Int32Array, 0, 1)[0], -1);
    SharedMemory.unlink(name);
  }),
);

Deno.test(
  "Faults: an RPC server killed over a socket fails every pending request with BadResource at once, not at its timeout",
  leakChecked(() =>
    inTempDir("fault", async (dir) => {
      const path = `${dir}/rpc.sock`;
      type Envelope = RpcEnvelope<Ask, unknown>;
      const server = new Victim(
        "rpc_server.ts",
        [
          "--allow-ffi",
          `--allow-read=${dir}`,
          `--allow-write=${dir}`,
          `--allow-net=unix:${path}`,
        ],
        ["unix", path],
      );
      await server.ready(JSON.stringify({ transport: "unix", path }));
      await using channel = await connect<Envelope>({ path, timeout: 5000 });
      using calls = client<Ask, unknown>(channel);
      assertEquals(
        await calls.request({ op: "echo", value: 1 }, { timeout: 5000 }),
        1,
      );
      // Each outcome is taken as it comes, so none is an unhandled rejection.
      const outcomes = [1, 2, 3].map((value) =>
        calls.request({ op: "echo", value, delay: 10_000 }, { timeout: 20_000 })
          .then(() => new Error("it was answered"), (error) => error)
      );
      const started = performance.now();
      await server.kill();
      for (const outcome of outcomes) {
        const error = await outcome;
        assert(error instanceof Deno.errors.BadResource, String(error));
        assertMatch(
          error.message,
          /^Cannot get an RPC response: the channel (closed|broke)/,
        );
      }
      const took = performance.now() - started;
      assert(took < 10_000, `the requests failed only after ${took} ms`);
      await assertRejects(
        () => calls.request({ op: "echo", value: 4 }, { timeout: 5000 }),
        Error,
      );
    })
  ),
);

Deno.test(
  "Faults: an RPC server killed over message queues times requests out; a new server on the same queues answers again",
  leakChecked(async () => {
    type Envelope = RpcEnvelope<Ask, unknown>;
    const requests = uniqueName("fault-rpc-req");
    const replies = uniqueName("fault-rpc-rep");
    const open = (name: string) =>
      MessageQueue.open<Envelope>(name, { create: true, unlinkOnClose: true });
    using channel = duplex(open(requests), open(replies));
    using calls = client<Ask, unknown>(channel);
    const flags = [
      "--allow-ffi",
      "--allow-read=/dev/mqueue",
      "--allow-write=/dev/mqueue",
    ];
    const first = new Victim("rpc_server.ts", flags, ["mq", requests, replies]);
    await first.ready("ready");
    assertEquals(
      await calls.request({ op: "echo", value: "a" }, { timeout: 5000 }),
      "a",
    );
    const slow = calls.request({ op: "echo", value: "b", delay: 10_000 }, {
      timeout: 300,
    });
    await first.kill();
    // Queues have no end of stream: the documented outcome is the timeout.
    await assertRejects(() => slow, Deno.errors.TimedOut);
    assertEquals(calls.pending, 0);
    const second = new Victim("rpc_server.ts", flags, [
      "mq",
      requests,
      replies,
    ]);
    await second.ready("ready");
    assertEquals(
      await calls.request({ op: "echo", value: "c" }, { timeout: 5000 }),
      "c",
    );
    await second.kill();
  }),
);
