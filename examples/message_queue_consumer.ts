/**
 * The consumer of `deno task example:mq`, started by the producer in a second
 * process: receives jobs in priority order and sends back results.
 *
 * @module
 */

import { MessageQueue } from "../mod.ts";
import type { Job, Result } from "./message_queue_types.ts";

const [jobsName, resultsName] = Deno.args;
using jobs = MessageQueue.open<Job>(jobsName, { write: false });
using results = MessageQueue.open<Result>(resultsName, { read: false });

for await (const { value: job, priority } of jobs) {
  if (job.kind === "stop") break;
  console.log(
    `  consumer ${Deno.pid} got job ${job.id} (priority ${priority})`,
  );
  await results.send({
    id: job.id,
    words: job.text.split(/\s+/).filter(Boolean).length,
    letters: job.text.replace(/[^\p{L}]/gu, "").length,
    worker: Deno.pid,
  });
}
