/**
 * Helpers for the socket tests: a temporary directory, the flags a child
 * needs for an address, reading a child's lines with a bound, and counting
 * this process's open descriptors.
 *
 * @module
 */

import { listDirectory } from "../ffi/dir.ts";
import { inTempDir, spawnFixture } from "./_helpers.ts";

/** Runs `body` with a fresh directory under /tmp, removed afterwards. */
export function withTempDir(
  body: (dir: string) => Promise<void>,
): Promise<void> {
  return inTempDir("sock", body);
}

/** A name for an abstract socket that no other test or run uses. */
export function abstractName(prefix: string): string {
  const random = crypto.getRandomValues(new Uint32Array(2)).join("-");
  return `ipckit-test-${prefix}-${Deno.pid}-${random}`;
}

/**
 * Exactly the flags Deno 2.9 (and ipckit) ask for to use `address`, plus
 * `--allow-ffi`: a Unix path's read, write and net; an abstract name's
 * `--allow-net`; a loopback port's net.
 */
export function flagsFor(
  address: { path?: string; abstract?: string; port?: number },
  dir?: string,
): string[] {
  if (address.path) {
    const where = dir ?? address.path;
    return [
      "--allow-ffi",
      `--allow-read=${where}`,
      `--allow-write=${where}`,
      `--allow-net=unix:${address.path}`,
    ];
  }
  if (address.abstract) return ["--allow-ffi", "--allow-net"];
  return ["--allow-ffi", "--allow-net=127.0.0.1"];
}

/** Reads one line of a child's stdout within `timeoutMs`, keeping the rest readable. */
export async function readLine(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  timeoutMs = 20_000,
): Promise<string> {
  const decoder = new TextDecoder();
  let seen = "";
  const deadline = Date.now() + timeoutMs;
  while (!seen.includes("\n")) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`no line within ${timeoutMs} ms: ${seen}`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const { done, value } = await Promise.race([
      reader.read(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no line within ${timeoutMs} ms: ${seen}`)),
          left,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    if (done) throw new Error(`the child ended before a line: ${seen}`);
    seen += decoder.decode(value, { stream: true });
  }
  return seen.slice(0, seen.indexOf("\n"));
}

/** A running fixture whose stdout is read line by line. */
export interface Peer {
  process: Deno.ChildProcess;
  /** The next line it prints. */
  line(timeoutMs?: number): Promise<string>;
  /** Waits for it to exit (killing it after `timeoutMs`), and returns its code and stderr. */
  finish(timeoutMs?: number): Promise<{ code: number; stderr: string }>;
}

/** Starts a fixture and returns a handle that reads its lines. */
export function startPeer(
  fixture: string,
  flags: string[],
  args: string[],
): Peer {
  const process = spawnFixture(fixture, flags, args);
  const reader = process.stdout.getReader();
  return {
    process,
    line: (timeoutMs) => readLine(reader, timeoutMs),
    finish: async (timeoutMs = 20_000) => {
      const timer = setTimeout(() => {
        try {
          process.kill("SIGKILL");
        } catch {
          // Exited already.
        }
      }, timeoutMs);
      try {
        reader.releaseLock();
        const [status, stderr] = await Promise.all([
          process.status,
          new Response(process.stderr).text(),
          process.stdout.cancel(),
        ]);
        return { code: status.code, stderr };
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** How many descriptors this process has open (its /proc/self/fd, read through libc). */
export function openDescriptors(): number {
  const listed = listDirectory("/proc/self/fd");
  if (typeof listed === "number") {
    throw new Error(`cannot list /proc/self/fd: errno ${-listed}`);
  }
  // The listing's own descriptor is among them while it runs.
  return listed.length - 1;
}
