/**
 * `deno task example:mq`: a producer hands typed jobs to a consumer in a
 * second Deno process through one POSIX message queue and collects typed
 * results through another. Urgent jobs carry a higher priority and overtake
 * the rest. Both queues are removed at the end, also on Ctrl-C.
 *
 * @module
 */

import { MessageQueue } from "../mod.ts";
import type { Job, Result } from "./message_queue_types.ts";

const jobsName = `/ipckit-example-jobs-${Deno.pid}`;
const resultsName = `/ipckit-example-results-${Deno.pid}`;

// The consumer opens both queues by name, so they must exist before it starts.
await using jobs = MessageQueue.open<Job>(jobsName, {
  create: true,
  exclusive: true,
  unlinkOnClose: true,
});
await using results = MessageQueue.open<Result>(resultsName, {
  create: true,
  exclusive: true,
  unlinkOnClose: true,
});

const consumer = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "--allow-ffi",
    "--allow-read=/dev/mqueue",
    "--allow-write=/dev/mqueue",
    new URL("./message_queue_consumer.ts", import.meta.url).pathname,
    jobsName,
    resultsName,
  ],
  stdout: "inherit",
  stderr: "inherit",
}).spawn();

// Ctrl-C: stop the consumer and remove both queues before leaving.
const onInterrupt = () => {
  console.log("\ninterrupted: removing the queues");
  consumer.kill("SIGTERM");
  jobs.close();
  results.close();
  Deno.exit(130);
};
Deno.addSignalListener("SIGINT", onInterrupt);

const texts = [
  "the quick brown fox",
  "jumps over",
  "the lazy dog",
  "URGENT: disk almost full",
  "hello ipckit",
];
console.log(
  `producer ${Deno.pid}: jobs on ${jobsName}, results on ${resultsName}`,
);
for (const [id, text] of texts.entries()) {
  const priority = text.startsWith("URGENT") ? 9 : 1;
  await jobs.send({ kind: "count", id, text }, { priority });
  console.log(`→ job ${id} (priority ${priority}): ${JSON.stringify(text)}`);
}
await jobs.send({ kind: "stop" }, { priority: 0 });

for (let received = 0; received < texts.length; received++) {
  const { value } = await results.receive({ timeout: 10_000 });
  console.log(
    `← result for job ${value.id} from process ${value.worker}: ${value.words} words, ${value.letters} letters`,
  );
}

const status = await consumer.status;
Deno.removeSignalListener("SIGINT", onInterrupt);
console.log(`consumer exited with code ${status.code}; queues removed`);
if (!status.success) Deno.exit(1);
