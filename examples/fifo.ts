/**
 * Named pipes: a server and a stranger process talking over a FIFO pair,
 * then plain `echo` writing lines into a FIFO that ipckit reads.
 *
 *   deno task example:fifo
 *
 * @module
 */

import { codecs, Fifo } from "../mod.ts";

type Request = { op: "add"; a: number; b: number } | { op: "bye" };
type Reply = { sum: number } | { bye: true };

const [role, base] = Deno.args;

if (role === "client") {
  // The stranger: it knows only the path.
  // Each side names what it sends, then what it receives.
  await using server = await Fifo.duplex<Request, Reply>(base, {
    role: "client",
    timeout: 10_000,
  });
  await server.send({ op: "add", a: 2, b: 40 });
  console.log("client got", (await server.receive()).value);
  await server.send({ op: "bye" });
  console.log("client got", (await server.receive()).value);
} else {
  const dir = await Deno.makeTempDir({ prefix: "ipckit-example-" });
  try {
    const client = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-ffi",
        `--allow-read=${dir}`,
        `--allow-write=${dir}`,
        new URL(import.meta.url).pathname,
        "client",
        `${dir}/adder`,
      ],
    }).spawn();
    {
      await using clients = await Fifo.duplex<Reply, Request>(`${dir}/adder`, {
        role: "server",
        timeout: 10_000,
        unlinkOnClose: true,
      });
      for await (const { value: request } of clients) {
        if (request.op === "bye") {
          await clients.send({ bye: true });
          break;
        }
        await clients.send({ sum: request.a + request.b });
      }
    }
    await client.status;

    // Interop: any program that writes lines can talk to a "lines" reader.
    using fifo = Fifo.create(`${dir}/lines`, { unlinkOnClose: true });
    await using reader = await fifo.openReader<string>({
      framing: "lines",
      codec: codecs.text(),
    });
    const echo = new Deno.Command("sh", {
      args: ["-c", `echo hello from echo > '${fifo.path}'`],
    }).output();
    for await (const { value } of reader) console.log("read line:", value);
    await echo;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
