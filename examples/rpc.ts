/**
 * Request/response with a child process over its stdin/stdout. The same
 * `serve`/`client` pair works over sockets, FIFOs and message-queue pairs.
 *
 *     deno task example:rpc
 *
 * @module
 */
import {
  client,
  FramedChannel,
  RemoteError,
  type RpcEnvelope,
  serve,
} from "../mod.ts";

type Ask = { op: "add"; a: number; b: number } | {
  op: "div";
  a: number;
  b: number;
};
type Envelope = RpcEnvelope<Ask, number>;

if (Deno.args[0] === "server") {
  // The child: answers on stdout until its stdin ends.
  using channel = new FramedChannel<Envelope>({
    readable: Deno.stdin.readable,
    writable: Deno.stdout.writable,
  });
  await serve(channel, (ask) => {
    if (ask.op === "add") return ask.a + ask.b;
    if (ask.b === 0) throw new RangeError("division by zero");
    return ask.a / ask.b;
  }).done;
} else {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", new URL(import.meta.url).pathname, "server"],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const channel = new FramedChannel<Envelope>({
    readable: child.stdout,
    writable: child.stdin,
  });
  {
    using calc = client(channel);
    const sums = await Promise.all(
      [1, 2, 3].map((a) => calc.request({ op: "add", a, b: 10 })),
    );
    console.log("three requests in flight:", sums);
    try {
      await calc.request({ op: "div", a: 1, b: 0 }, { timeout: 1000 });
    } catch (error) {
      if (!(error instanceof RemoteError)) throw error;
      console.log(`the child threw ${error.name}: ${error.message}`);
    }
  }
  await channel.closeWrite();
  console.log("child exited with", (await child.status).code);
  channel.close();
}
