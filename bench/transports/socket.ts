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
  type ConnectOptions,
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

async function _unix(
  type: "stream" | "seqpacket",
  options: ConnectOptions = {},
): Promise<Session> {
  const dir = await tempDir();
  const path = `${dir}/bench.sock`;
  const peer = spawnPeer(
    "stream_peer.ts",
    _netFlags(dir, path),
    [
      type === "stream" ? "unix" : "seqpacket",
      path,
      ...(options.oneWay ? ["--ack"] : []),
    ],
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
  }, [peer.pid]);
}

async function _tcp(): Promise<Session> {
  const peer = spawnPeer("stream_peer.ts", _netFlags(), ["tcp"], "piped");
  const { port } = JSON.parse(await firstLine(peer));
  const channel = await connect<Uint8Array>({ port, codec: codecs.bytes() });
  return channelSession(channel, async () => {
    channel.close();
    await stopPeer(peer);
  }, [peer.pid]);
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
  }, [peer.pid]);
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
    peers: [peer.pid],
    roundTrip: async (message) => {
      await writeFrame(conn, message);
      await frames.read();
    },
    sendOneWay: async (message, count) => {
      const acks = (async () => {
        for (let i = 0; i < count; i++) await frames.read();
      })();
      acks.catch(() => {}); // rejected below; see channelSession
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
  // ipckit's sockets are its own descriptors, read and written through
  // libc on the main thread: a wait spins before it parks on the reactor,
  // so their C limit is the busy-waiting one.
  {
    name: UNIX_ROW,
    kind: "ipckit",
    limit: { mechanism: "unix-stream", waiting: "busy" },
    concurrent: true,
    throughput: true,
    connect: (_size, options) => _unix("stream", options),
  },
  {
    name: "Unix seqpacket socket, async",
    kind: "ipckit",
    limit: { mechanism: "unix-seqpacket", waiting: "busy" },
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
    // Deno's own socket: its waits sleep in Deno's event loop at once.
    limit: { mechanism: "unix-stream", waiting: "blocking" },
    connect: _denoUnix,
  },
  {
    name: "TCP 127.0.0.1, async",
    kind: "ipckit",
    limit: { mechanism: "tcp", waiting: "busy" },
    connect: _tcp,
  },
  {
    name: "UDP 127.0.0.1, async",
    kind: "ipckit",
    limit: { mechanism: "udp", waiting: "busy" },
    unsupported: (bytes) =>
      bytes > UDP_MAX_PAYLOAD_IPV4
        ? `a ${bytes}-byte message does not fit in one UDP datagram (at most ${UDP_MAX_PAYLOAD_IPV4} bytes)`
        : undefined,
    connect: _udp,
  },
];
