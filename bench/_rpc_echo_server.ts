/**
 * The benchmark's echo server, in its own process: `stdio`, `unix <path>`,
 * `tcp`, `udp`, or `mq <requests> <replies>`. Socket
 * servers print their address on stdout when ready; `mq` prints "ready".
 */
import {
  bindDatagram,
  duplex,
  FramedChannel,
  listen,
  MessageQueue,
  type RpcEnvelope,
  serve,
} from "../mod.ts";

type Envelope = RpcEnvelope<string, string>;
const echo = (value: string): string => value;
const [transport, ...rest] = Deno.args;

switch (transport) {
  case "stdio": {
    using channel = new FramedChannel<Envelope>({
      readable: Deno.stdin.readable,
      writable: Deno.stdout.writable,
    });
    await serve(channel, echo).done;
    break;
  }
  case "unix":
  case "tcp": {
    await using server = await listen<Envelope>(
      transport === "unix" ? { path: rest[0] } : { port: 0 },
    );
    console.log(JSON.stringify(server.addr));
    await using connection = await server.accept();
    await serve(connection, echo).done;
    break;
  }
  case "udp": {
    await using socket = await bindDatagram<Envelope>({ port: 0 });
    console.log(JSON.stringify(socket.addr));
    await serve(socket, echo).done;
    break;
  }
  case "mq": {
    using channel = duplex(
      MessageQueue.open<Envelope>(rest[1], { read: false }),
      MessageQueue.open<Envelope>(rest[0], { write: false }),
    );
    console.log("ready");
    await serve(channel, echo).done;
    break;
  }
  default:
    throw new Error(`unknown transport ${transport}`);
}
