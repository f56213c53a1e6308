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
  type Session,
  stopPeer,
  type Transport,
} from "./_transport.ts";

const PEER = new URL("../fixtures/stream_peer.ts", import.meta.url).pathname;
const PIPE_ROW = "pipe to a child (spawn), async";

function _ipckit(direct: boolean): Promise<Session> {
  const bytes = codecs.bytes();
  const child = spawn<Uint8Array, Uint8Array>(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      ...(direct ? ["--allow-ffi"] : []),
      PEER,
      direct ? "pipe-direct" : "pipe",
    ],
    sendCodec: bytes,
    receiveCodec: bytes,
  });
  return Promise.resolve(
    channelSession(child, () => child[Symbol.asyncDispose]()),
  );
}

/** Raw bytes: the peer echoes them, or acks each `size` bytes with one byte. */
function _command(size: number): Promise<Session> {
  const oneWay = size >= ONE_WAY_BYTES;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
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
    roundTrip: async (message) => {
      await writer.write(message);
      await readBytes(message.byteLength);
    },
    sendOneWay: async (message, count) => {
      const acks = readBytes(count);
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
  { name: PIPE_ROW, kind: "ipckit", connect: () => _ipckit(false) },
  {
    name: "pipe to a child (spawn), child with direct: true",
    kind: "ipckit",
    connect: () => _ipckit(true),
  },
  {
    name: "Deno.Command stdin/stdout (raw bytes)",
    kind: "alternative",
    versus: PIPE_ROW,
    connect: _command,
  },
  {
    name: "node:child_process fork() IPC",
    kind: "alternative",
    versus: PIPE_ROW,
    connect: _fork,
  },
];
