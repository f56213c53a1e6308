/**
 * Stream and datagram sockets to a peer process: ipckit's `connect()` on a
 * Unix socket and on TCP, `bindDatagram()` on UDP, beside the hand-written
 * alternative: `Deno.connect` on a Unix socket with length-prefixed frames.
 *
 * @module
 */

import {
  bindDatagram,
  codecs,
  connect,
  SEQPACKET_DEFAULT_MAX,
  UDP_MAX_PAYLOAD_IPV4,
} from "../../mod.ts";
import { FrameReader, writeFrame } from "../fixtures/_deno_framing.ts";
import { channelSession } from "./_channel_session.ts";
import {
  firstLine,
  orStopPeer,
  type Session,
  spawnPeer,
  stopPeer,
  tempDir,
  type Transport,
} from "./_transport.ts";

const UNIX_ROW = "Unix socket, async";

function _netFlags(dir?: string, path?: string): string[] {
  const flags = ["--allow-ffi", "--allow-net=127.0.0.1"];
  if (dir && path) {
    flags[1] += `,unix:${path}`;
    flags.push(`--allow-read=${dir}`, `--allow-write=${dir}`);
  }
  return flags;
}

async function _unix(type: "stream" | "seqpacket"): Promise<Session> {
  const dir = await tempDir();
  const path = `${dir}/bench.sock`;
  const peer = spawnPeer(
    "stream_peer.ts",
    _netFlags(dir, path),
    [type === "stream" ? "unix" : "seqpacket", path],
    "piped",
  );
  const channel = await orStopPeer(
    peer,
    dir,
    async () => (await firstLine(peer),
      await connect<Uint8Array>({ path, codec: codecs.bytes(), type })),
  );
  return channelSession(channel, async () => {
    channel.close();
    await stopPeer(peer);
    await Deno.remove(dir, { recursive: true });
  });
}

async function _tcp(): Promise<Session> {
  const peer = spawnPeer("stream_peer.ts", _netFlags(), ["tcp"], "piped");
  const { port } = JSON.parse(await firstLine(peer));
  const channel = await connect<Uint8Array>({ port, codec: codecs.bytes() });
  return channelSession(channel, async () => {
    channel.close();
    await stopPeer(peer);
  });
}

async function _udp(): Promise<Session> {
  const peer = spawnPeer("stream_peer.ts", _netFlags(), ["udp"], "piped");
  const { port } = JSON.parse(await firstLine(peer));
  const socket = await bindDatagram<Uint8Array>({
    port: 0,
    peer: { port },
    codec: codecs.bytes(),
  });
  return channelSession(socket, async () => {
    socket.close();
    peer.kill("SIGTERM");
    await stopPeer(peer);
  });
}

/** Deno.connect on a Unix socket, frames written and parsed by hand. */
async function _denoUnix(): Promise<Session> {
  const dir = await tempDir();
  const path = `${dir}/bench.sock`;
  const peer = spawnPeer(
    "stream_peer.ts",
    _netFlags(dir, path),
    ["deno-unix", path],
    "piped",
  );
  const conn = await orStopPeer(
    peer,
    dir,
    async () => (await firstLine(peer),
      await Deno.connect({ transport: "unix", path })),
  );
  const frames = new FrameReader(conn);
  return {
    roundTrip: async (message) => {
      await writeFrame(conn, message);
      await frames.read();
    },
    sendOneWay: async (message, count) => {
      const acks = (async () => {
        for (let i = 0; i < count; i++) await frames.read();
      })();
      for (let i = 0; i < count; i++) await writeFrame(conn, message);
      await acks;
    },
    close: async () => {
      conn.close();
      await stopPeer(peer);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** The socket rows of the driver. */
export const socketTransports: Transport[] = [
  { name: UNIX_ROW, kind: "ipckit", connect: () => _unix("stream") },
  {
    name: "Unix seqpacket socket, async",
    kind: "ipckit",
    unsupported: (bytes) =>
      bytes > SEQPACKET_DEFAULT_MAX
        ? `a ${bytes}-byte message is more than one seqpacket message carries by default (${SEQPACKET_DEFAULT_MAX} bytes)`
        : undefined,
    connect: () => _unix("seqpacket"),
  },
  {
    name: "Deno.connect Unix socket + hand-written frames",
    kind: "alternative",
    versus: UNIX_ROW,
    connect: _denoUnix,
  },
  { name: "TCP 127.0.0.1, async", kind: "ipckit", connect: _tcp },
  {
    name: "UDP 127.0.0.1, async",
    kind: "ipckit",
    unsupported: (bytes) =>
      bytes > UDP_MAX_PAYLOAD_IPV4
        ? `a ${bytes}-byte message does not fit in one UDP datagram (at most ${UDP_MAX_PAYLOAD_IPV4} bytes)`
        : undefined,
    connect: _udp,
  },
];
