/**
 * Channels whose two directions carry different types, checked by the
 * compiler (the `@ts-expect-error` lines fail to compile if the types stop
 * telling the directions apart) and by a round trip.
 */
import { assertEquals } from "@std/assert";
import {
  type Channel,
  client,
  FramedChannel,
  type Message,
  type RpcEnvelope,
  serve,
} from "../mod.ts";
import { leakChecked } from "./_helpers.ts";

type Job = { id: number; file: string };
type Done = { id: number; bytes: number };

/** Two in-memory byte pipes joined into a pair of framed ends. */
function _pair<A, B>(): [FramedChannel<A, B>, FramedChannel<B, A>] {
  const there = new TransformStream<Uint8Array, Uint8Array>();
  const back = new TransformStream<Uint8Array, Uint8Array>();
  return [
    new FramedChannel<A, B>({
      readable: back.readable,
      writable: there.writable,
    }),
    new FramedChannel<B, A>({
      readable: there.readable,
      writable: back.writable,
    }),
  ];
}

Deno.test(
  "A FramedChannel sends one type and receives another, with no cast",
  leakChecked(async () => {
    const [client, worker] = _pair<Job, Done>();
    using _client = client;
    using _worker = worker;
    // A channel of two types is a Channel<TSend, Message<TReceive>>.
    const asChannel: Channel<Job, Message<Done>> = client;
    // An in-memory pipe takes a frame only as it is read: receive first.
    const jobs = worker.receive({ timeout: 1000 });
    await asChannel.send({ id: 1, file: "cat.png" });
    const { value: job } = await jobs;
    assertEquals(job.file, "cat.png");
    const results = client.receive({ timeout: 1000 });
    await worker.send({ id: job.id, bytes: job.file.length * 1000 });
    const { value: done } = await results;
    assertEquals(done, { id: 1, bytes: 7000 });
    // @ts-expect-error the client sends jobs, not results
    const wrong: Parameters<typeof client.send>[0] = { id: 1, bytes: 2 };
    void wrong;
  }),
);

Deno.test(
  "serve<Req, Res>() takes the same type arguments as client<Req, Res>()",
  leakChecked(async () => {
    const [calls, answers] = _pair<
      RpcEnvelope<number, string>,
      RpcEnvelope<number, string>
    >();
    const server = serve<number, string>(answers, (n) => `#${n}`);
    using caller = client<number, string>(calls);
    assertEquals(await caller.request(7, { timeout: 1000 }), "#7");
    server.close();
    calls.close();
    answers.close();
    await server.done;
  }),
);
