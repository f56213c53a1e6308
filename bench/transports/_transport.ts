/**
 * What the cross-process driver needs from each mechanism it measures.
 *
 * @module
 */

/** One connected pair: this process and an echoing peer process. */
export interface Session {
  /** Sends `message` to the peer and waits for it to come back. */
  roundTrip(message: Uint8Array): Promise<void> | void;
  /** Stops the peer and releases every object the session made. */
  close(): Promise<void>;
}

/** A mechanism and API style the driver can measure. */
export interface Transport {
  /** Row label, e.g. `message queue, async`. */
  name: string;
  /** Whether this is ipckit or an alternative a Deno user might pick instead. */
  kind: "ipckit" | "alternative";
  /** Starts the peer and connects to it. */
  connect(maxMessageSize: number): Promise<Session>;
}

/** Starts a bench fixture in a second Deno process. */
export function spawnPeer(
  fixture: string,
  flags: string[],
  args: string[],
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      ...flags,
      new URL(`../fixtures/${fixture}`, import.meta.url).pathname,
      ...args,
    ],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
}
