/**
 * Typed messages over a Unix socket, TCP and UDP, and shared memory handed
 * over a seqpacket socket, in one process for brevity (each end works the
 * same from another process or machine).
 *
 *     deno task example:socket
 *
 * @module
 */
import {
  bindDatagram,
  connect,
  listen,
  SharedMemory,
  socketpair,
} from "../mod.ts";

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
      // Who connected, as the kernel recorded it: pid, uid, gid.
      console.log("unix socket: a client, pid", connection.peer?.pid);
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

// Seqpacket: one message per packet, and descriptors can travel with it.
// Anonymous shared memory has no name anyone could open: it is handed over.
const [left, right] = socketpair<string>({ type: "seqpacket" });
{
  using memory = SharedMemory.anonymous(4096);
  memory.bytes()[0] = 42;
  await left.send("a buffer for you", { handles: [memory] });
  const { value, handles } = await right.receive({ maxHandles: 1 });
  using received = handles[0] as SharedMemory;
  console.log("seqpacket:", value, "- its first byte is", received.bytes()[0]);
}
left.close();
right.close();
