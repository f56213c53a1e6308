/**
 * Helpers for the NATS tests: whether `nats-server` can be had, a server per
 * test, and peers in other processes whose output is read line by line,
 * every read bounded by a timeout.
 *
 * @module
 */

import { commandSucceeds } from "./_helpers.ts";
import {
  Nats,
  NatsServer,
  type NatsServerOptions,
} from "../mechanisms/nats.ts";

/** Why the tests that need `nats-server` skip, or undefined when it is here. */
export const natsServerMissing: string | undefined =
  await commandSucceeds("nats-server", ["--version"])
    ? undefined
    : "nats-server is not installed (apt-get install nats-server)";

/**
 * Runs `body` with a fresh server (JetStream on) and a connection to it;
 * stops both and removes the server's directory afterwards, also on failure.
 */
export async function withNats(
  body: (server: NatsServer, nats: Nats) => Promise<void>,
  options: NatsServerOptions = {},
): Promise<void> {
  await using server = await NatsServer.start({ jetstream: true, ...options });
  await using nats = await Nats.connect({
    servers: server.url,
    reconnectWait: 100,
  });
  await body(server, nats);
}

/** The flags a peer needs to reach `server`, and nothing else. */
export function peerFlags(server: { host: string; port: number }): string[] {
  return [`--allow-net=${server.host}:${server.port}`];
}

/**
 * A fixture in another process. Its stdout is read as lines; stderr is
 * kept for the failure message.
 */
export class Peer implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly #lines: AsyncIterator<string>;
  readonly #stderr: Promise<string>;
  /** Every line read so far. */
  readonly seen: string[] = [];

  constructor(
    fixture: string,
    flags: string[],
    args: string[],
    prefix: string[] = [],
  ) {
    const script = new URL(`./fixtures/${fixture}`, import.meta.url).pathname;
    const [program, ...prefixArgs] = [...prefix, Deno.execPath()];
    this.child = new Deno.Command(program, {
      args: [...prefixArgs, "run", "--quiet", ...flags, script, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#lines = _lines(this.child.stdout);
    this.#stderr = new Response(this.child.stderr).text();
  }

  /** The next line, or a failure naming what the peer said, after `timeout` ms. */
  async line(timeout = 30_000): Promise<string> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(
              `no line from the peer within ${timeout} ms; it printed:\n${
                this.seen.join("\n")
              }`,
            ),
          ),
        timeout,
      );
    });
    try {
      const next = await Promise.race([this.#lines.next(), expired]);
      if (next.done) {
        throw new Error(
          `the peer ended; it printed:\n${
            this.seen.join("\n")
          }\nstderr:\n${await this
            .#stderr}`,
        );
      }
      this.seen.push(next.value);
      return next.value;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The next line, parsed as JSON. */
  async json<T = unknown>(timeout?: number): Promise<T> {
    return JSON.parse(await this.line(timeout)) as T;
  }

  /** Reads lines until one is `expected`. */
  async until(expected: string, timeout = 30_000): Promise<void> {
    const deadline = performance.now() + timeout;
    while (
      await this.line(Math.max(1, deadline - performance.now())) !== expected
    ) { /* keep reading */ }
  }

  /** Waits for the peer to exit (killing it after `timeout`); returns its status. */
  async exit(timeout = 30_000): Promise<Deno.CommandStatus> {
    const timer = setTimeout(() => this.kill(), timeout);
    try {
      const status = await this.child.status;
      // Drain what is left so that the streams close.
      while (!(await this.#lines.next()).done) { /* drop */ }
      await this.#stderr;
      return status;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits for a clean exit and fails with the peer's stderr otherwise. */
  async finished(timeout?: number): Promise<void> {
    const status = await this.exit(timeout);
    if (!status.success) {
      throw new Error(
        `the peer exited with ${status.code}: ${await this.#stderr}`,
      );
    }
  }

  /** Sends `signal` (SIGKILL by default); it is fine if the peer already exited. */
  kill(signal: Deno.Signal = "SIGKILL"): void {
    try {
      this.child.kill(signal);
    } catch { /* already exited */ }
  }

  /** Kills the peer and waits for it: nothing is left running after a test. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.kill();
    await this.exit();
  }
}

async function* _lines(
  stream: ReadableStream<Uint8Array>,
): AsyncGenerator<string, void> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop()!;
    yield* parts;
  }
  if (rest) yield rest;
}
