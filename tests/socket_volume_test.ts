/**
 * 10,000 messages each way, with another process, on every socket kind:
 * each echoed message comes back whole, once, and in order.
 */
import { assertEquals } from "@std/assert";
import {
  bindDatagram,
  connect,
  type DatagramChannel,
  type SocketChannel,
  type SocketOptions,
} from "../mod.ts";
import { leakChecked } from "./_helpers.ts";
import { abstractName, flagsFor, startPeer, withTempDir } from "./_sockets.ts";

const COUNT = 10_000;
type Numbered = { i: number; pad: string };

/** Sends COUNT numbered messages while receiving their echoes; checks each. */
async function streamBoth(channel: SocketChannel<Numbered>): Promise<void> {
  const pad = "x".repeat(40);
  const receiving = (async () => {
    for (let i = 0; i < COUNT; i++) {
      const { value } = await channel.receive({ timeout: 20_000 });
      if (value.i !== i || value.pad !== pad) {
        throw new Error(`echo ${i} came back as ${JSON.stringify(value)}`);
      }
    }
  })();
  for (let i = 0; i < COUNT; i++) await channel.send({ i, pad });
  await receiving;
  await channel.closeWrite();
}

const streamKinds: Record<
  string,
  (
    dir: string,
  ) => {
    path?: string;
    abstract?: string;
    port?: number;
    type?: "stream" | "seqpacket";
  }
> = {
  "a Unix stream socket": (dir) => ({ path: `${dir}/v.sock` }),
  "a Unix seqpacket socket": (dir) => ({
    path: `${dir}/v.sock`,
    type: "seqpacket",
  }),
  "an abstract Unix stream socket": () => ({ abstract: abstractName("vol") }),
  "an abstract Unix seqpacket socket": () => ({
    abstract: abstractName("vol"),
    type: "seqpacket",
  }),
  "TCP": () => ({ port: 0 }),
};

for (const [kind, address] of Object.entries(streamKinds)) {
  Deno.test(
    `${COUNT} messages cross each way over ${kind} to another process, in order`,
    leakChecked(() =>
      withTempDir(async (dir) => {
        const options = address(dir);
        const peer = startPeer("socket_echo.ts", flagsFor(options, dir), [
          "serve",
          JSON.stringify(options),
        ]);
        const addr = JSON.parse(await peer.line()) as Deno.Addr;
        const target = "port" in addr
          ? { port: (addr as Deno.NetAddr).port }
          : options;
        {
          await using channel = await connect<Numbered>({
            ...target,
            timeout: 10_000,
          } as SocketOptions<Numbered>);
          await streamBoth(channel);
          // The peer ends its echo at our half-close, then closes.
          await channel.ready({ timeout: 10_000 });
        }
        const { code, stderr } = await peer.finish();
        assertEquals(code, 0, stderr);
      })
    ),
  );
}

/** Sends COUNT datagrams with at most `window` unanswered, checking each echo. */
async function datagramBoth(socket: DatagramChannel<unknown>): Promise<void> {
  // Below net.unix.max_dgram_qlen (10 by default): a Unix datagram sender
  // beyond it waits, and a UDP receiver beyond its buffer drops.
  const window = 8;
  let sent = 0;
  for (let i = 0; i < COUNT; i++) {
    while (sent < COUNT && sent - i < window) {
      await socket.send({ i: sent, pad: "y".repeat(40) });
      sent++;
    }
    const { value } = await socket.receive({ timeout: 20_000 });
    assertEquals((value as Numbered).i, i);
  }
  await socket.send("stop");
}

const datagramKinds: Record<
  string,
  (dir: string) => { own: object; peer: object }
> = {
  "Unix datagram sockets": (dir) => ({
    own: { path: `${dir}/mine.dg` },
    peer: { path: `${dir}/peer.dg` },
  }),
  "abstract Unix datagram sockets": () => ({
    own: { abstract: abstractName("vol-own") },
    peer: { abstract: abstractName("vol-peer") },
  }),
  "UDP": () => ({ own: { port: 0 }, peer: { port: 0 } }),
};

for (const [kind, addresses] of Object.entries(datagramKinds)) {
  Deno.test(
    `${COUNT} datagrams cross each way over ${kind} to another process, in order`,
    leakChecked(() =>
      withTempDir(async (dir) => {
        const { own, peer: peerAddress } = addresses(dir);
        const flags = "path" in peerAddress
          ? [
            "--allow-ffi",
            `--allow-read=${dir}`,
            `--allow-write=${dir}`,
            `--allow-net=unix:${(peerAddress as { path: string }).path},unix:${
              (own as { path: string }).path
            }`,
          ]
          : flagsFor(peerAddress);
        const peer = startPeer("socket_echo.ts", flags, [
          "datagram",
          JSON.stringify(peerAddress),
        ]);
        const addr = JSON.parse(await peer.line()) as Deno.Addr;
        {
          await using socket = await bindDatagram<unknown>({
            ...own,
            peer: addr,
          } as never);
          await datagramBoth(socket);
        }
        const { code, stderr } = await peer.finish();
        assertEquals(code, 0, stderr);
      })
    ),
  );
}
