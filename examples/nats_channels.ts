/**
 * The two channels of `deno task example:nats`, opened on the transport the
 * example runs on: subjects on a NATS server (a queue group for the jobs),
 * or two POSIX message queues on this machine. The worker and the producer
 * get a `Channel` either way and never know which.
 *
 * @module
 */

import { type Channel, MessageQueue } from "../mod.ts";
import { Nats } from "../mechanisms/nats.ts";

/** What a worker is asked to do. */
export interface Job {
  id: number;
  text: string;
}

/** What it answers. */
export interface Result {
  id: number;
  words: number;
  worker: string;
}

/** Where the channels are; passed to each process as JSON. */
export type Transport =
  | { kind: "nats"; url: string }
  | { kind: "local"; jobs: string; results: string };

/** Which end of a channel a process uses. */
export type End = "send" | "receive";

/** Opens this process's ends of the channels; dispose to close them all. */
export interface Channels extends AsyncDisposable {
  jobs(end: End): Promise<Channel<Job>>;
  results(end: End): Promise<Channel<Result>>;
}

const SUBJECTS = {
  jobs: "ipckit.example.jobs",
  results: "ipckit.example.results",
} as const;

/** Connects to `transport` (a NATS server, or nothing for local queues). */
export async function channelsOn(transport: Transport): Promise<Channels> {
  const opened: Channel<unknown>[] = [];
  const keep = <T>(channel: Channel<T>) => (opened.push(channel), channel);
  const closeAll = () => opened.forEach((channel) => channel.close());

  if (transport.kind === "local") {
    const open = <T>(name: string, end: End) =>
      Promise.resolve(keep(MessageQueue.open<T>(name, {
        read: end === "receive",
        write: end === "send",
      })));
    return {
      jobs: (end) => open<Job>(transport.jobs, end),
      results: (end) => open<Result>(transport.results, end),
      [Symbol.asyncDispose]: () => Promise.resolve(closeAll()),
    };
  }

  const nats = await Nats.connect({ servers: transport.url });
  const open = async <T>(subject: string, end: End, queue?: string) =>
    keep(
      await nats.channel<T>(subject, {
        queue,
        read: end === "receive",
        write: end === "send",
      }),
    );
  return {
    // Workers share the queue group "workers": each job goes to one of them.
    jobs: (end) => open<Job>(SUBJECTS.jobs, end, "workers"),
    results: (end) => open<Result>(SUBJECTS.results, end),
    [Symbol.asyncDispose]: async () => {
      closeAll();
      await nats.close();
    },
  };
}
