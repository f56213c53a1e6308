/**
 * A FIFO pair (`Fifo.duplex`) to a peer process.
 *
 * @module
 */

import { codecs, Fifo } from "../../mod.ts";
import { channelSession } from "./_channel_session.ts";
import { spawnPeer, stopPeer, tempDir, type Transport } from "./_transport.ts";

async function _connect(): Promise<ReturnType<typeof channelSession>> {
  const dir = await tempDir();
  const base = `${dir}/bench`;
  const peer = spawnPeer("stream_peer.ts", [
    "--allow-ffi",
    `--allow-read=${dir}`,
    `--allow-write=${dir}`,
  ], ["fifo", base]);
  const channel = await Fifo.duplex<Uint8Array>(base, {
    role: "server",
    codec: codecs.bytes(),
    timeout: 30_000,
  });
  return channelSession(channel, async () => {
    await channel[Symbol.asyncDispose]();
    await stopPeer(peer);
    await Deno.remove(dir, { recursive: true });
  });
}

/** The FIFO row of the driver. */
export const fifoTransports: Transport[] = [
  { name: "FIFO pair, async", kind: "ipckit", connect: _connect },
];
