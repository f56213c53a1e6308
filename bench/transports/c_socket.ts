/**
 * The C limit of the socket rows: `bench/c/socket_pingpong.c`, compiled
 * with the system's `cc` on first use, busy-waiting on non-blocking
 * descriptors or blocking in the kernel, over a Unix stream socket, a Unix
 * seqpacket socket or TCP on loopback. The C client times its own round
 * trips; this transport only starts both ends and reads the times.
 *
 * @module
 */

import { type Plan, tempDir, type Transport } from "./_transport.ts";

const SOURCE = new URL("../c/socket_pingpong.c", import.meta.url).pathname;
let _binary: Promise<string | undefined> | undefined;

/** Compiles the ping-pong once; undefined (with a note) where there is no C compiler. */
function compiled(): Promise<string | undefined> {
  _binary ??= (async () => {
    const dir = await tempDir();
    // The binary lives as long as this process: removed when it ends.
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch {
        // Gone already.
      }
    });
    const binary = `${dir}/socket_pingpong`;
    try {
      const { success, stderr } = await new Deno.Command("cc", {
        args: ["-O2", "-o", binary, SOURCE],
        stderr: "piped",
      }).output();
      if (!success) {
        console.error(
          `bench: cannot compile ${SOURCE}: ${
            new TextDecoder().decode(stderr)
          }`,
        );
        return undefined;
      }
      return binary;
    } catch {
      console.error("bench: no C compiler (cc): the C rows are skipped");
      return undefined;
    }
  })();
  return _binary;
}

async function _measure(
  kind: "unix" | "seqpacket" | "tcp",
  wait: "busy" | "block",
  plan: Plan,
): Promise<number[]> {
  const binary = await compiled();
  if (!binary) return [];
  const dir = await tempDir();
  const path = `${dir}/c.sock`;
  const server = new Deno.Command(binary, {
    args: ["server", kind, kind === "tcp" ? "0" : path, wait],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  try {
    const reader = server.stdout.getReader();
    const { value } = await reader.read();
    reader.releaseLock();
    const first = new TextDecoder().decode(value).trim();
    const where = kind === "tcp" ? first : path;
    const { stdout, success } = await new Deno.Command(binary, {
      args: [
        "client",
        kind,
        where,
        wait,
        String(plan.warmUp + plan.roundTrips),
        String(plan.bytes),
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (!success) throw new Error(`the C ${kind} client failed`);
    return new TextDecoder().decode(stdout).trim().split("\n")
      .slice(plan.warmUp)
      .map((line) => Number(line) / 1000);
  } finally {
    await server.status;
    await server.stdout.cancel().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

/** Row name of the C limit of `kind` with `wait`, as the socket runner reports it. */
export function cRowName(
  kind: "unix" | "seqpacket" | "tcp",
  wait: "busy" | "block",
): string {
  const what = kind === "unix"
    ? "Unix stream socket"
    : kind === "seqpacket"
    ? "Unix seqpacket socket"
    : "TCP 127.0.0.1";
  return `C ping-pong, ${what}, ${
    wait === "busy" ? "busy-waiting" : "blocking"
  }`;
}

/** The C rows: each kind, busy-waiting and blocking. */
export const cSocketTransports: Transport[] = (
  ["unix", "seqpacket", "tcp"] as const
).flatMap((kind) =>
  (["busy", "block"] as const).map((wait): Transport => ({
    name: cRowName(kind, wait),
    kind: "alternative",
    unsupported: (bytes) =>
      bytes > 65_536 ? "the C ping-pong measures round trips only" : undefined,
    connect: () => Promise.reject(new Error("measured elsewhere")),
    measureElsewhere: (plan) => _measure(kind, wait, plan),
  }))
);
