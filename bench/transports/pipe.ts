/**
 * Anonymous pipes to a child: ipckit's `spawn()`/`parentChannel()`, beside
 * what a Deno user would write without it: `Deno.Command` with piped
 * stdin/stdout carrying raw bytes, and `node:child_process` `fork()` with
 * its built-in message channel.
 *
 * @module
 */

import { fork } from "node:child_process";
import { codecs, spawn } from "../../mod.ts";
import { channelSession } from "./_channel_session.ts";
import {
  ONE_WAY_BYTES,
  peerFlags,
  type Session,
  stopPeer,
  type Transport,
} from "./_transport.ts";

const PEER = new URL("../fixtures/stream_peer.ts", import.meta.url).pathname;
const PIPE_ROW = "pipe to a child (spawn), async";
/** spawn() with a child that has --allow-ffi: it talks over the offered socket. */
export const SPAWN_SOCKET_ROW =
  "spawn(), child with --allow-ffi (takes the socket)";

/**
 * `stdio`: a child without --allow-ffi (Deno's own stdio); `direct`: the
 * child reads its pipes through libc; `socket`: a child with --allow-ffi and
 * default options, which takes the Unix socket spawn() offers.
 */
function _ipckit(mode: "stdio" | "direct" | "socket"): Promise<Session> {
  const bytes = codecs.bytes();
  const child = spawn<Uint8Array, Uint8Array>(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      ...(mode === "stdio" ? [] : ["--allow-ffi"]),
      ...peerFlags(),
      PEER,
      mode === "direct" ? "pipe-direct" : "pipe",
    ],
    sendCodec: bytes,
    receiveCodec: bytes,
  });
  return Promise.resolve(
    channelSession(child, () => child[Symbol.asyncDispose](), [child.pid]),
  );
}

/** Raw bytes: the peer echoes them, or acks each `size` bytes with one byte. */
function _command(size: number): Promise<Session> {
  const oneWay = size >= ONE_WAY_BYTES;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      ...peerFlags(),
      PEER,
      ...(oneWay ? ["raw-sink", `${size}`] : [
        "raw-echo",
      ]),
    ],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  const reader = child.stdout.getReader();
  const readBytes = async (wanted: number) => {
    for (let got = 0; got < wanted;) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the child closed its stdout");
      got += value.byteLength;
    }
  };
  return Promise.resolve({
    peers: [child.pid],
    roundTrip: async (message) => {
      await writer.write(message);
      await readBytes(message.byteLength);
    },
    sendOneWay: async (message, count) => {
      const acks = readBytes(count);
      acks.catch(() => {}); // rejected below; see channelSession
      for (let i = 0; i < count; i++) await writer.write(message);
      await acks;
    },
    close: async () => {
      await writer.close();
      reader.releaseLock();
      await child.stdout.cancel();
      await stopPeer(child);
    },
  });
}

/** Node's fork(): a child with a message channel, structured clone on it. */
function _fork(): Promise<Session> {
  const child = fork(
    new URL("../fixtures/fork_echo.mjs", import.meta.url).pathname,
    [],
    {
      serialization: "advanced",
      stdio: ["ignore", "ignore", "inherit", "ipc"],
    },
  );
  const waiting: (() => void)[] = [];
  child.on("message", () => waiting.shift()?.());
  const next = () => new Promise<void>((resolve) => waiting.push(resolve));
  return Promise.resolve({
    ...(child.pid ? { peers: [child.pid] } : {}),
    roundTrip: (message) => {
      const reply = next();
      child.send(message);
      return reply;
    },
    sendOneWay: async (message, count) => {
      const acks = Array.from({ length: count }, next);
      for (let i = 0; i < count; i++) child.send(message);
      await Promise.all(acks);
    },
    close: async () => {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.disconnect();
      await exited;
    },
  });
}

/** The pipe rows of the driver: ipckit and the two alternatives. */
export const pipeTransports: Transport[] = [
  // A child without --allow-ffi speaks on its stdio, and the parent's end
  // is a Deno stream: both sleep in Deno's runtime at once, so the C limit
  // is the blocking one.
  {
    name: PIPE_ROW,
    kind: "ipckit",
    limit: { mechanism: "pipe", waiting: "blocking" },
    connect: () => _ipckit("stdio"),
  },
  // A child with --allow-ffi takes the Unix socket spawn() offers: ipckit
  // reads and writes it on both ends, spinning before it parks.
  {
    name: SPAWN_SOCKET_ROW,
    kind: "ipckit",
    limit: { mechanism: "unix-stream", waiting: "busy" },
    connect: () => _ipckit("socket"),
  },
  {
    name: "pipe to a child (spawn), child with direct: true",
    kind: "ipckit",
    // Only the child spins (on its pipes); the parent's end is a Deno stream.
    limit: { mechanism: "pipe", waiting: "blocking" },
    connect: () => _ipckit("direct"),
  },
  {
    name: "Deno.Command stdin/stdout (raw bytes)",
    kind: "alternative",
    versus: PIPE_ROW,
    limit: { mechanism: "pipe", waiting: "blocking" },
    connect: _command,
  },
  {
    // Node's IPC channel is a Unix socketpair under the hood.
    name: "node:child_process fork() IPC",
    kind: "alternative",
    versus: PIPE_ROW,
    limit: { mechanism: "unix-stream", waiting: "blocking" },
    connect: _fork,
  },
];
