/**
 * What the cross-process driver needs from each mechanism it measures, and
 * the helpers the transports share.
 *
 * @module
 */

/**
 * Messages at least this long are measured one way: the peer answers each
 * with a short acknowledgement instead of echoing it. Shorter ones are echoed.
 */
export const ONE_WAY_BYTES = 64 * 1024;

/** One connected pair: this process and a peer process. */
export interface Session {
  /** Sends `message` to the peer and waits for it to come back. */
  roundTrip(message: Uint8Array): Promise<void> | void;
  /**
   * Sends `count` copies of `message` (at least {@linkcode ONE_WAY_BYTES}
   * long) as fast as the mechanism takes them; resolves once the peer has
   * acknowledged every one. Absent: the driver reports no throughput.
   */
  sendOneWay?(message: Uint8Array, count: number): Promise<void> | void;
  /** Stops the peer and releases every object the session made. */
  close(): Promise<void>;
}

/** What a transport that measures in its own process is asked to do. */
export interface Plan {
  /** Message size in bytes. */
  bytes: number;
  /** Round trips to time, after `warmUp` untimed ones (echo sizes). */
  roundTrips: number;
  warmUp: number;
  /** One-way sizes: timed samples of `count` messages, after one untimed. */
  samples: number;
  count: number;
}

/** A mechanism and API style the driver can measure. */
export interface Transport {
  /** Row label, e.g. `message queue, async`. */
  name: string;
  /** Whether this is ipckit or an alternative a Deno user might pick instead. */
  kind: "ipckit" | "alternative";
  /** For an alternative: the name of the ipckit row it is compared with. */
  versus?: string;
  /** Why a message size cannot be measured here, or undefined when it can. */
  unsupported?(bytes: number): string | undefined;
  /** Starts the peer and connects to it. */
  connect(maxMessageSize: number): Promise<Session>;
  /**
   * For a transport that cannot run inside the driver (it needs its own
   * process flags): runs `plan` elsewhere and returns the samples, µs per
   * round trip or MiB/s per one-way sample.
   */
  measureElsewhere?(plan: Plan): Promise<number[]>;
}

/** Starts a bench fixture in a second Deno process. */
export function spawnPeer(
  fixture: string,
  flags: string[],
  args: string[],
  stdout: "null" | "piped" = "null",
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      ...flags,
      new URL(`../fixtures/${fixture}`, import.meta.url).pathname,
      ...args,
    ],
    stdin: "null",
    stdout,
    stderr: "inherit",
  }).spawn();
}

/**
 * Reads the first line a peer prints (its address, or "ready"), then lets
 * the rest of its output go. Rejects if the peer ends or `timeout` passes.
 */
export async function firstLine(
  child: Deno.ChildProcess,
  timeout = 30_000,
): Promise<string> {
  const reader = child.stdout.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const timer = setTimeout(() => reader.cancel("peer too slow"), timeout);
  try {
    while (!text.includes("\n")) {
      const { done, value } = await reader.read();
      if (done) throw new Error("the peer ended before it was ready");
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    clearTimeout(timer);
  }
  reader.releaseLock();
  // Nothing else is read from it: drain so the peer never blocks on stdout.
  child.stdout.pipeTo(new WritableStream()).catch(() => {});
  return text.split("\n")[0];
}

/** A fresh temporary directory for socket and FIFO files. */
export function tempDir(): Promise<string> {
  return Deno.makeTempDir({ prefix: "ipckit-bench-" });
}

/** Waits for a peer to exit, killing it if it does not within `ms`. */
export async function stopPeer(
  child: Deno.ChildProcess,
  ms = 5_000,
): Promise<void> {
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, ms);
  try {
    await child.status;
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `connecting`; if it fails, stops the peer and removes `dir`. */
export async function orStopPeer<T>(
  peer: Deno.ChildProcess,
  dir: string | undefined,
  connecting: () => Promise<T>,
): Promise<T> {
  try {
    return await connecting();
  } catch (error) {
    try {
      peer.kill("SIGKILL");
    } catch { /* already gone */ }
    await peer.status;
    if (dir) await Deno.remove(dir, { recursive: true });
    throw error;
  }
}
