/**
 * What the cross-process driver needs from each mechanism it measures, and
 * the helpers the transports share.
 *
 * Adding a row: write a transport file that exports a `Transport[]` and
 * register it in bench/driver.ts (TRANSPORTS). A row that faces an ipckit
 * row as an alternative names it in `versus`; a row that has a C limit (a
 * mechanism in bench/c/, registered in bench/transports/c.ts) names it in
 * `limit`, with the waiting policy it matches; a row that can run several
 * sessions at once, or acknowledge one-way messages of any size, says so
 * (`concurrent`, `throughput`) and the driver measures it in those sections
 * too. Every field added later is optional, so older rows keep working.
 *
 * @module
 */

/**
 * Messages at least this long are measured one way: the peer answers each
 * with a short acknowledgement instead of echoing it. Shorter ones are echoed,
 * unless the session was opened with `{ oneWay: true }`.
 */
export const ONE_WAY_BYTES = 64 * 1024;

/**
 * How a row waits for its answer:
 * - `busy`: it retries a non-blocking call (or re-reads shared memory)
 *   before it sleeps, as ipckit's `spin` does (50 µs by default);
 * - `blocking`: it sleeps in the kernel, or in Deno's runtime, at once
 *   (`spin: 0`, and everything Deno's own event loop waits for).
 */
export type Waiting = "busy" | "blocking";

/** The C row a transport is measured against: a mechanism and a waiting policy. */
export interface Limit {
  /** A mechanism key of bench/transports/c.ts, e.g. `mq`, `unix-stream`. */
  mechanism: string;
  waiting: Waiting;
  /**
   * For a C row: its two processes pinned to one CPU or to two; absent,
   * where the scheduler puts them. Blocking C is measured on one CPU (the
   * row others are compared with: each wake-up is a context switch, the
   * fastest a sleeping pair can go) and on two (for context): on a virtual
   * machine a wake-up on the other CPU may first have to bring it out of
   * idle, and left to itself the scheduler flips between the two.
   */
  cpus?: "one" | "two";
}

/** One connected pair: this process and a peer process. */
export interface Session {
  /** Sends `message` to the peer and waits for it to come back. */
  roundTrip(message: Uint8Array): Promise<void> | void;
  /**
   * Sends `count` copies of `message` (at least {@linkcode ONE_WAY_BYTES}
   * long, or any length in a `{ oneWay: true }` session) as fast as the
   * mechanism takes them; resolves once the peer has acknowledged every
   * one. Absent: the driver reports no throughput.
   */
  sendOneWay?(message: Uint8Array, count: number): Promise<void> | void;
  /**
   * The peer processes' ids, so the driver can read their CPU clocks (the
   * CPU price of a row is both processes' time). Absent: no CPU column.
   */
  peers?: readonly number[];
  /** Stops the peer and releases every object the session made. */
  close(): Promise<void>;
}

/** What `connect` may be asked beside the message size. */
export interface ConnectOptions {
  /**
   * The peer acknowledges every message with a short answer, whatever its
   * size, instead of echoing the short ones (for the throughput-against-size
   * section; only asked of a transport with `throughput: true`).
   */
  oneWay?: boolean;
}

/**
 * What a transport that measures in its own process is asked to do. The
 * first five fields are always set; the others only for the sections the
 * transport takes part in (`concurrent`, `throughput`, idle).
 */
export interface Plan {
  /** Message size in bytes. */
  bytes: number;
  /** Round trips to time, after `warmUp` untimed ones (echo sizes). */
  roundTrips: number;
  warmUp: number;
  /** One-way sizes: timed samples of `count` messages, after one untimed. */
  samples: number;
  count: number;
  /** Set: measure one-way bursts at `bytes`, whatever its size. */
  oneWay?: boolean;
  /** Set: run this many pairs at once, each doing round trips for `seconds`. */
  pairs?: number;
  seconds?: number;
  /** Set: after the warm-up, send nothing for this long; report the CPU used. */
  idleSeconds?: number;
}

/** What a measurement made elsewhere reports. */
export interface Measurement {
  /** µs per round trip, or MiB/s per one-way burst; absent for idle. */
  samples?: number[];
  /** Instead of samples (many concurrent round trips): their order statistics. */
  summary?: { median: number; p99: number; count: number };
  /** CPU time of every process involved during the timed part, in ns. */
  cpuNanos?: number;
  /** The peers' share of `cpuNanos` (for idle: what the waiting side used). */
  peerCpuNanos?: number;
  /** Round trips (or one-way messages) the timed part made. */
  operations?: number;
  /** Bytes moved one way in the timed part. */
  bytes?: number;
  /** Wall time of the timed part, in seconds. */
  seconds?: number;
}

/** A mechanism and API style the driver can measure. */
export interface Transport {
  /** Row label, e.g. `message queue, async`. */
  name: string;
  /**
   * ipckit; an alternative a Deno user might pick instead; or the C limit
   * of a mechanism (bench/c/).
   */
  kind: "ipckit" | "alternative" | "limit";
  /** For an alternative: the name of the ipckit row it is compared with. */
  versus?: string;
  /**
   * The C row to compare with: the same mechanism with the same waiting
   * policy. For a `limit` row: which one it is.
   */
  limit?: Limit;
  /**
   * Also measured with 1, 4, 16 and 64 sessions at once (one peer each),
   * all in this process: its `roundTrip` must return a Promise.
   */
  concurrent?: boolean;
  /**
   * Also measured one way at every size from 64 B to 4 MiB: `connect(size,
   * { oneWay: true })` must give a session whose `sendOneWay` takes any size.
   */
  throughput?: boolean;
  /** Why a message size cannot be measured here, or undefined when it can. */
  unsupported?(bytes: number): string | undefined;
  /** Starts the peer and connects to it. */
  connect(maxMessageSize: number, options?: ConnectOptions): Promise<Session>;
  /**
   * For a transport that cannot run inside the driver (it needs its own
   * process flags, or it is C): runs `plan` elsewhere and returns the
   * samples (µs per round trip or MiB/s per one-way sample), or a
   * {@linkcode Measurement}, or a string saying why it cannot.
   */
  measureElsewhere?(plan: Plan): Promise<number[] | Measurement | string>;
}

/**
 * Extra `deno run` flags for every peer, from the environment: e.g.
 * `IPCKIT_BENCH_PEER_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof"` profiles
 * the peers of a run (where the time goes on the other side).
 */
export function peerFlags(): string[] {
  const flags = Deno.permissions.querySync({
      name: "env",
      variable: "IPCKIT_BENCH_PEER_FLAGS",
    }).state === "granted"
    ? Deno.env.get("IPCKIT_BENCH_PEER_FLAGS")
    : undefined;
  return flags ? flags.split(" ").filter(Boolean) : [];
}

/**
 * Starts a bench fixture in a second Deno process. A peer whose stdin is
 * `piped` can tell when the driver is gone, however it ended: its stdin
 * ends (the System V peers clean up then).
 */
export function spawnPeer(
  fixture: string,
  flags: string[],
  args: string[],
  stdout: "null" | "piped" = "null",
  stdin: "null" | "piped" = "null",
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      ...flags,
      ...peerFlags(),
      new URL(`../fixtures/${fixture}`, import.meta.url).pathname,
      ...args,
    ],
    stdin,
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
