/**
 * The worker of `deno task example:nats`: one program that runs unchanged
 * on a local message queue or on NATS, because all it is given is two
 * channels. It counts the words of each job until it is told to stop
 * (SIGTERM), then says how many jobs it did.
 *
 * @module
 */

import type { Channel } from "../mod.ts";
import {
  channelsOn,
  type Job,
  type Result,
  type Transport,
} from "./nats_channels.ts";

/** Works every job that `jobs` brings until it is closed; returns how many. */
export async function work(
  name: string,
  jobs: Channel<Job>,
  results: Channel<Result>,
): Promise<number> {
  let done = 0;
  for await (const { value: job } of jobs) {
    const words = job.text.split(/\s+/).filter(Boolean).length;
    await results.send({ id: job.id, words, worker: name });
    done++;
  }
  return done;
}

if (import.meta.main) {
  const [name, transport] = Deno.args;
  await using channels = await channelsOn(JSON.parse(transport) as Transport);
  const jobs = await channels.jobs("receive");
  const results = await channels.results("send");
  // Closing the jobs channel ends the loop in work() quietly.
  Deno.addSignalListener("SIGTERM", () => jobs.close());
  console.log("ready");
  const done = await work(name, jobs, results);
  console.log(
    `  worker ${name} (process ${Deno.pid}): ${done} job${
      done === 1 ? "" : "s"
    }, stopping`,
  );
}
