/**
 * `NatsServer`: a local `nats-server` process for development, tests and
 * examples — started on a free port, with a JetStream directory of its own
 * when asked, killed or restarted on the same port and directory, and
 * stopped by its pid.
 *
 * @module
 */

import { checkFlag, checkInteger, checkOptionKeys } from "../_common/checks.ts";

/**
 * How to start a local server.
 *
 * @example
 * ```ts
 * import type { NatsServerOptions } from "@ipckit/ipckit/nats";
 *
 * const options: NatsServerOptions = { jetstream: true, port: 0 };
 * ```
 */
export interface NatsServerOptions {
  /** The address to listen on. Default `127.0.0.1`: private until you say otherwise. */
  host?: string;
  /** The port; `0` (the default) lets the server pick a free one. */
  port?: number;
  /** Enable JetStream, which work queues need. Default `false`. */
  jetstream?: boolean;
  /**
   * Where JetStream keeps its files. Default: a fresh temporary directory,
   * removed by `stop()`. A directory you give is kept.
   */
  storeDir?: string;
  /** The program to run. Default `nats-server` on the PATH. */
  executable?: string;
  /** Words put before the program, e.g. `["ip", "netns", "exec", "blue"]`. */
  prefix?: string[];
  /** More arguments for the server, e.g. cluster routes. */
  args?: string[];
  /** Milliseconds the server may take to be ready. Default 10,000. */
  timeout?: number;
}

const _KNOWN = [
  "host",
  "port",
  "jetstream",
  "storeDir",
  "executable",
  "prefix",
  "args",
  "timeout",
] as const;

/** How many lines of the server's log are kept for error messages. */
const _LOG_LINES = 40;

/**
 * A `nats-server` process this program started. Needs `--allow-run` for
 * the program (and `--allow-write` on the temporary directory for
 * JetStream). Stop it with `stop()` (or `await using`); `kill()` and
 * `restart()` are there to test what clients do when a server dies.
 *
 * @example A server for a test
 * ```ts ignore
 * // deno run --allow-run=nats-server --allow-write=/tmp --allow-net=127.0.0.1 test.ts
 * import { Nats, NatsServer } from "@ipckit/ipckit/nats";
 *
 * await using server = await NatsServer.start({ jetstream: true });
 * await using nats = await Nats.connect({ servers: server.url });
 * ```
 */
export class NatsServer implements AsyncDisposable {
  /** The address clients connect to, e.g. `nats://127.0.0.1:39917`. */
  readonly url: string;
  /** The host it listens on. */
  readonly host: string;
  /** The port it listens on (the same after a restart). */
  readonly port: number;
  /** The JetStream directory, when JetStream is on. */
  readonly storeDir: string | undefined;
  #child: Deno.ChildProcess;
  #log: Promise<string[]>;
  readonly #command: { program: string; args: string[]; timeout: number };
  readonly #ownsStore: boolean;
  #stopped = false;

  private constructor(
    started: _Started,
    command: { program: string; args: string[]; timeout: number },
    host: string,
    storeDir: string | undefined,
    ownsStore: boolean,
  ) {
    this.#child = started.child;
    this.#log = started.log;
    this.port = started.port;
    this.host = host;
    this.url = `nats://${
      host.includes(":") ? `[${host}]` : host
    }:${started.port}`;
    this.#command = command;
    this.storeDir = storeDir;
    this.#ownsStore = ownsStore;
  }

  /**
   * Starts `nats-server` and waits until it accepts clients.
   *
   * @param options port, JetStream, program
   * @returns the running server
   * @throws {TypeError} / {RangeError} for a bad option
   * @throws {Deno.errors.NotFound} when `nats-server` is not installed
   * @throws {Deno.errors.TimedOut} when it is not ready within `timeout`
   * @throws {Error} with the end of its log when it exits early
   *
   * @example
   * ```ts ignore
   * await using server = await NatsServer.start({ jetstream: true });
   * console.log(server.url);
   * ```
   */
  static async start(options: NatsServerOptions = {}): Promise<NatsServer> {
    const action = "start nats-server";
    checkOptionKeys(options, _KNOWN, action);
    checkFlag(options.jetstream, "jetstream", action);
    const port = checkInteger(options.port, "port", action, 0, 0, 65535);
    const timeout = checkInteger(options.timeout, "timeout", action, 10_000, 1);
    for (const key of ["host", "storeDir", "executable"] as const) {
      const value = options[key];
      if (value !== undefined && (typeof value !== "string" || value === "")) {
        throw new TypeError(
          `Cannot ${action}: ${key} must be a non-empty string`,
        );
      }
    }
    for (const key of ["prefix", "args"] as const) {
      const value = options[key];
      if (
        value !== undefined &&
        !(Array.isArray(value) && value.every((v) => typeof v === "string"))
      ) {
        throw new TypeError(
          `Cannot ${action}: ${key} must be an array of strings`,
        );
      }
    }
    const host = options.host ?? "127.0.0.1";
    const ownsStore = options.jetstream === true && !options.storeDir;
    const storeDir = options.jetstream
      ? options.storeDir ??
        await Deno.makeTempDir({ prefix: "ipckit-nats-js-" })
      : undefined;
    const [program, ...prefixArgs] = [
      ...(options.prefix ?? []),
      options.executable ?? "nats-server",
    ];
    const serverArgs = [
      "-a",
      host,
      ...(storeDir ? ["-js", "-sd", storeDir] : []),
      ...(options.args ?? []),
    ];
    const command = {
      program,
      args: [...prefixArgs, ...serverArgs],
      timeout,
    };
    try {
      const started = await _spawn(command, port === 0 ? -1 : port);
      return new NatsServer(started, command, host, storeDir, ownsStore);
    } catch (error) {
      if (ownsStore) await Deno.remove(storeDir!, { recursive: true });
      throw error;
    }
  }

  /** The server process's id. */
  get pid(): number {
    return this.#child.pid;
  }

  /**
   * Kills the server (SIGKILL by default: no goodbye to its clients) and
   * waits for it to exit. Its JetStream directory stays, for `restart()`.
   *
   * @param signal the signal to send
   *
   * @example
   * ```ts ignore
   * await server.kill();
   * await server.restart();
   * ```
   */
  async kill(signal: Deno.Signal = "SIGKILL"): Promise<void> {
    try {
      this.#child.kill(signal);
    } catch (error) {
      // Already exited: nothing to kill.
      if (!(error instanceof TypeError)) throw error;
    }
    await this.#child.status;
    await this.#log;
  }

  /**
   * Starts the server again on the same port with the same JetStream
   * directory; kills it first if it still runs.
   *
   * @throws {Error} as `start()` does
   *
   * @example
   * ```ts ignore
   * await server.restart();
   * ```
   */
  async restart(): Promise<void> {
    if (this.#stopped) {
      throw new Deno.errors.BadResource(
        "Cannot restart nats-server: it was stopped",
      );
    }
    await this.kill();
    const started = await _spawn(this.#command, this.port);
    this.#child = started.child;
    this.#log = started.log;
  }

  /**
   * Stops the server (SIGTERM, then SIGKILL after 5 s) and removes the
   * JetStream directory it made. Idempotent.
   *
   * @example
   * ```ts ignore
   * await server.stop();
   * ```
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const timer = setTimeout(() => this.kill().catch(() => {}), 5_000);
    try {
      await this.kill("SIGTERM");
    } finally {
      clearTimeout(timer);
    }
    if (this.#ownsStore && this.storeDir) {
      await Deno.remove(this.storeDir, { recursive: true });
    }
  }

  /** Stops the server; see {@linkcode NatsServer.stop}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

interface _Started {
  child: Deno.ChildProcess;
  port: number;
  /** Resolves with the last lines of the log once the process exits. */
  log: Promise<string[]>;
}

/** Runs the server and waits for "Server is ready", reading the port it bound. */
async function _spawn(
  command: { program: string; args: string[]; timeout: number },
  port: number,
): Promise<_Started> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(command.program, {
      args: [...command.args, "-p", String(port)],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(
        `Cannot start nats-server: "${command.program}" is not installed (on Debian: apt-get install nats-server)`,
        { cause: error },
      );
    }
    throw error;
  }
  const ready = Promise.withResolvers<number>();
  const lines: string[] = [];
  let bound: number | undefined;
  // The log is read to the end, whatever happens, so the server never
  // blocks on a full pipe.
  const log = (async () => {
    const decoder = new TextDecoderStream();
    let rest = "";
    for await (const chunk of child.stderr.pipeThrough(decoder)) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        if (lines.length > _LOG_LINES) lines.shift();
        const listening = line.match(
          /Listening for client connections on .*:(\d+)\s*$/,
        );
        if (listening) bound = Number(listening[1]);
        if (/Server is ready/.test(line) && bound !== undefined) {
          ready.resolve(bound);
        }
      }
    }
    ready.reject(
      new Error(
        `Cannot start nats-server: it exited before it was ready:\n${
          lines.join("\n")
        }`,
      ),
    );
    return lines;
  })();
  const timer = setTimeout(
    () =>
      ready.reject(
        new Deno.errors.TimedOut(
          `Cannot start nats-server: not ready after ${command.timeout} ms:\n${
            lines.join("\n")
          }`,
        ),
      ),
    command.timeout,
  );
  try {
    return { child, port: await ready.promise, log };
  } catch (error) {
    try {
      child.kill("SIGKILL");
    } catch { /* it exited */ }
    await child.status;
    await log;
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
