/**
 * A FIFO pair (`Fifo.duplex`) to a peer process.
 *
 * @module
 */

import { codecs, Fifo } from "../../mod.ts";
import { channelSession } from "./_channel_session.ts";
import {
  type ConnectOptions,
  spawnPeer,
  stopPeer,
  tempDir,
  type Transport,
} from "./_transport.ts";

async function _connect(
  _size: number,
  options: ConnectOptions = {},
): Promise<ReturnType<typeof channelSession>> {
  const dir = await tempDir();
  const base = `${dir}/bench`;
  const peer = spawnPeer("stream_peer.ts", [
    "--allow-ffi",
    `--allow-read=${dir}`,
    `--allow-write=${dir}`,
  ], ["fifo", base, ...(options.oneWay ? ["--ack"] : [])]);
  const channel = await Fifo.duplex<Uint8Array>(base, {
    role: "server",
    codec: codecs.bytes(),
    timeout: 30_000,
  });
  return channelSession(channel, async () => {
    await channel[Symbol.asyncDispose]();
    await stopPeer(peer);
    await Deno.remove(dir, { recursive: true });
  }, [peer.pid]);
}

/** The FIFO row of the driver. */
export const fifoTransports: Transport[] = [
  {
    name: "FIFO pair, async",
    kind: "ipckit",
    limit: { mechanism: "fifo", waiting: "busy" },
    throughput: true,
    connect: _connect,
  },
];
