/**
 * Typed messages over a Unix socket, TCP and UDP, in one process for brevity
 * (each end works the same from another process or machine).
 *
 *     deno task example:socket
 *
 * @module
 */
import { bindDatagram, connect, listen } from "../mod.ts";

type Job = { id: number; file: string };
type Done = { id: number; bytes: number };

// Unix socket: a server that answers every job on every connection. Each
// end names what it sends, then what it receives.
const path = "/tmp/ipckit-example.sock";
await using server = await listen<Done, Job>({ path });
const serving = (async () => {
  for await (const connection of server) {
    (async () => {
      using _ = connection;
      for await (const { value: job } of connection) {
        await connection.send({ id: job.id, bytes: job.file.length * 1000 });
      }
    })();
  }
})();
{
  await using client = await connect<Job, Done>({ path, timeout: 1000 });
  await client.send({ id: 1, file: "cat.png" });
  console.log("unix socket:", (await client.receive({ timeout: 1000 })).value);
}

// TCP: the same API with a host and port (port 0 picks a free one).
await using tcpServer = await listen<string>({ port: 0 });
const { port } = tcpServer.addr as Deno.NetAddr;
const tcpClient = await connect<string>({ port });
await using tcpPeer = await tcpServer.accept({ timeout: 1000 });
await tcpClient.send("hello over TCP");
await tcpClient.closeWrite(); // half-close: "no more from me"
for await (const { value } of tcpPeer) console.log("tcp:", value);
await tcpPeer.send("and goodbye");
console.log("tcp reply after half-close:", (await tcpClient.receive()).value);
tcpClient.close();

// UDP: one message per datagram, with the sender's address.
await using udpServer = await bindDatagram<string>({ port: 0 });
await using udpClient = await bindDatagram<string>({
  port: 0,
  peer: udpServer.addr,
});
await udpClient.send("ping");
const ping = await udpServer.receive({ timeout: 1000 });
const sender = ping.from as Deno.NetAddr; // a UDP socket's peers are IP addresses
console.log(`udp: ${ping.value} from ${sender.hostname}:${sender.port}`);
await udpServer.send("pong", { to: ping.from });
console.log("udp reply:", (await udpClient.receive({ timeout: 1000 })).value);

server.close();
await serving;
