/**
 * `deno task example:nats`: a producer and two workers, each its own
 * process, share jobs through NATS: the workers form a queue group, so each
 * job goes to one of them, and their results come back on a second subject.
 * The worker program (`nats_worker.ts`) is given two channels and nothing
 * else: with `--local` the same program runs on two POSIX message queues
 * instead, unchanged.
 *
 *   deno task example:nats            NATS at $NATS_URL, else a local nats-server
 *   deno task example:nats --local    two message queues on this machine
 *
 * Each child gets only the permission its transport needs
 * (`--allow-net=<host>:<port>`, or the message queue paths). A NATS_URL on
 * another host needs that host in the task's `--allow-net`: the error says
 * which flag to add.
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import { MessageQueue } from "../mod.ts";
import { NatsServer } from "../mechanisms/nats.ts";
import {
  channelsOn,
  type Job,
  type Result,
  type Transport,
} from "./nats_channels.ts";

const flags = parseArgs(Deno.args, { boolean: ["local"] });
const texts = [
  "the quick brown fox",
  "jumps over the lazy dog",
  "hello ipckit",
  "one machine is not enough",
  "queue groups share the work",
  "every job goes to one worker",
];

/** Where the example runs, what the children may touch, and how to clean up. */
async function setUp(): Promise<
  { transport: Transport; childFlags: string[]; cleanUp(): Promise<void> }
> {
  if (flags.local) {
    const suffix = `${Deno.pid}`;
    const names = {
      jobs: `/ipckit-example-nats-jobs-${suffix}`,
      results: `/ipckit-example-nats-results-${suffix}`,
    };
    // The workers open the queues by name: they must exist first.
    const queues = [names.jobs, names.results].map((name) =>
      MessageQueue.open<Job | Result>(name, {
        create: true,
        exclusive: true,
        unlinkOnClose: true,
      })
    );
    return {
      transport: { kind: "local", ...names },
      childFlags: [
        "--allow-ffi",
        "--allow-read=/dev/mqueue",
        "--allow-write=/dev/mqueue",
      ],
      cleanUp: () => {
        for (const queue of queues) queue.close();
        return Promise.resolve();
      },
    };
  }
  const given = Deno.env.get("NATS_URL");
  const server = given ? undefined : await NatsServer.start();
  const url = given ?? server!.url;
  const { hostname, port } = new URL(
    url.includes("://") ? url : `nats://${url}`,
  );
  console.log(
    server
      ? `started nats-server ${server.pid} at ${url} (NATS_URL unset)`
      : `using NATS at ${url}`,
  );
  return {
    transport: { kind: "nats", url },
    childFlags: [`--allow-net=${hostname}:${port || 4222}`],
    cleanUp: async () => await server?.stop(),
  };
}

const { transport, childFlags, cleanUp } = await setUp();
const children: Deno.ChildProcess[] = [];
const run = (script: string, args: string[], stdout: "piped" | "inherit") => {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      ...childFlags,
      new URL(script, import.meta.url).pathname,
      ...args,
    ],
    stdout,
    stderr: "inherit",
  }).spawn();
  children.push(child);
  return child;
};

// Ctrl-C: stop every child and the server, remove the queues.
const onInterrupt = async () => {
  console.log("\ninterrupted: stopping the processes");
  for (const child of children) {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }
  await cleanUp();
  Deno.exit(130);
};
Deno.addSignalListener("SIGINT", onInterrupt);

try {
  await using channels = await channelsOn(transport);
  const results = await channels.results("receive");
  const forwarded: Promise<void>[] = [];

  // Two workers; each says "ready" once its subscription is in place.
  const workers = ["a", "b"].map((name) =>
    run("./nats_worker.ts", [name, JSON.stringify(transport)], "piped")
  );
  for (const worker of workers) {
    const reader = worker.stdout.getReader();
    const { value } = await reader.read();
    if (!new TextDecoder().decode(value).startsWith("ready")) {
      throw new Error("a worker did not start");
    }
    reader.releaseLock();
    // The rest of what it prints (its tally) goes to our stdout.
    forwarded.push((async () => {
      for await (const chunk of worker.stdout) await Deno.stdout.write(chunk);
    })());
  }
  console.log(
    `workers a and b are listening on ${
      transport.kind === "nats"
        ? `NATS ${transport.url}, queue group "workers"`
        : `message queue ${transport.jobs}`
    }`,
  );

  const producer = run(
    "./nats_producer.ts",
    [JSON.stringify(transport), ...texts],
    "inherit",
  );
  const tally = new Map<string, number>();
  for (let i = 0; i < texts.length; i++) {
    const { value } = await results.receive({ timeout: 10_000 });
    tally.set(value.worker, (tally.get(value.worker) ?? 0) + 1);
    console.log(
      `← job ${value.id} done by worker ${value.worker}: ${value.words} words`,
    );
  }
  if (!(await producer.status).success) throw new Error("the producer failed");

  for (const worker of workers) worker.kill("SIGTERM");
  for (const worker of workers) {
    if (!(await worker.status).success) throw new Error("a worker failed");
  }
  await Promise.all(forwarded);
  console.log(
    `crossed: ${texts.length} jobs and ${texts.length} results over ${
      transport.kind === "nats" ? "NATS" : "two message queues"
    }; ${
      [...tally].map(([name, count]) => `worker ${name} took ${count}`).join(
        ", ",
      )
    }`,
  );
} finally {
  Deno.removeSignalListener("SIGINT", onInterrupt);
  // After a failure some may still run: none outlives the example.
  for (const child of children) {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.status;
  }
  await cleanUp();
}
