/**
 * The C limit of every mechanism: the programs in bench/c/, compiled at
 * bench time with the system's `cc`, each run as a blocking and as a
 * busy-waiting row. Both ends of a C row are C (the program forks its
 * server), so a C row is what the mechanism costs on this machine without
 * Deno, V8 or ipckit; an ipckit row names its C row in `limit`.
 *
 * Adding a mechanism: one C file in bench/c/ (see bench/c/_harness.h) and
 * one entry in {@linkcode C_MECHANISMS}. Every `_*.c` file in bench/c/ is a
 * shared helper linked into every program.
 *
 * @module
 */

import type {
  Limit,
  Measurement,
  Plan,
  Transport,
  Waiting,
} from "./_transport.ts";
import { ONE_WAY_BYTES } from "./_transport.ts";

/** A C mechanism: one file in bench/c/. */
export interface CMechanism {
  /** The key ipckit rows name in `limit.mechanism`. */
  key: string;
  /** Its file in bench/c/. */
  file: string;
  /** Row label after "C: ". */
  label: string;
  /** How each policy is called in the row label, if not "busy-wait"/"blocking". */
  policies?: Partial<Record<Waiting, string>>;
  /** Also measured with concurrent pairs / across message sizes. */
  concurrent?: boolean;
  throughput?: boolean;
}

/** Every C mechanism, in the order the report groups rows. */
export const C_MECHANISMS: readonly CMechanism[] = [
  {
    key: "shm",
    file: "shm.c",
    label: "shared memory",
    policies: { busy: "spin on a counter", blocking: "futex" },
    throughput: true,
  },
  {
    key: "sem",
    file: "sem.c",
    label: "shared memory + POSIX semaphores",
    policies: { busy: "sem_trywait spin", blocking: "sem_wait" },
    concurrent: true,
  },
  {
    key: "mq",
    file: "mq.c",
    label: "POSIX message queue",
    concurrent: true,
    throughput: true,
  },
  { key: "fifo", file: "fifo.c", label: "FIFO pair" },
  { key: "pipe", file: "pipe.c", label: "pipe pair", throughput: true },
  {
    key: "unix-stream",
    file: "unix_stream.c",
    label: "Unix stream socket",
    concurrent: true,
    throughput: true,
  },
  { key: "unix-seqpacket", file: "unix_seqpacket.c", label: "Unix seqpacket" },
  { key: "unix-dgram", file: "unix_dgram.c", label: "Unix datagram" },
  { key: "tcp", file: "tcp.c", label: "TCP 127.0.0.1" },
  { key: "udp", file: "udp.c", label: "UDP 127.0.0.1" },
  {
    key: "sysv-msg",
    file: "sysv_msg.c",
    label: "System V message queue",
  },
  {
    key: "sysv-sem",
    file: "sysv_sem.c",
    label: "System V shared memory + semaphores",
    policies: { busy: "semop IPC_NOWAIT spin", blocking: "semop" },
  },
];

const SOURCES = new URL("../c/", import.meta.url);
/** A C run may take this long before it is killed. */
const RUN_TIMEOUT_S = 300;

let _workDir: Promise<string> | undefined;
const _built = new Map<string, Promise<string>>();

/** The C compiler to use: `$CC`, or `cc`. */
function _compiler(): string {
  return Deno.env.get("CC") || "cc";
}

function _workDirectory(): Promise<string> {
  _workDir ??= Deno.makeTempDir({ prefix: "ipckit-bench-c-" });
  return _workDir;
}

/** Compiles one mechanism once per run; resolves to the program's path. */
function _build(mechanism: CMechanism): Promise<string> {
  let built = _built.get(mechanism.key);
  if (!built) {
    built = _compile(mechanism);
    _built.set(mechanism.key, built);
  }
  return built;
}

async function _compile(mechanism: CMechanism): Promise<string> {
  const dir = await _workDirectory();
  const helpers: string[] = [];
  for await (const entry of Deno.readDir(SOURCES)) {
    if (entry.isFile && /^_.*\.c$/.test(entry.name)) helpers.push(entry.name);
  }
  const program = `${dir}/${mechanism.key}`;
  const args = [
    "-O2",
    "-std=gnu11",
    "-Wall",
    "-o",
    program,
    ...helpers.sort(),
    mechanism.file,
    "-lrt",
    "-pthread",
  ];
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(_compiler(), {
      args,
      cwd: SOURCES.pathname,
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(
        `no C compiler: \`${_compiler()}\` is not on PATH (install gcc, or set CC)`,
      );
    }
    throw error;
  }
  if (!output.success) {
    const text = new TextDecoder().decode(output.stderr).trim();
    throw new Error(
      `\`${_compiler()}\` could not compile bench/c/${mechanism.file}: ${
        text.split("\n").slice(0, 3).join(" ")
      }`,
    );
  }
  return program;
}

/**
 * The compiled program of the mechanism `key`, built once per run (for the
 * tests, which run it themselves to kill it mid-run).
 */
export function cProgram(key: string): Promise<string> {
  const mechanism = C_MECHANISMS.find((m) => m.key === key);
  if (!mechanism) {
    return Promise.reject(new TypeError(`No C mechanism "${key}"`));
  }
  return _build(mechanism);
}

/** Whether a C compiler runs here (for the driver's opening note). */
export async function haveCompiler(): Promise<boolean> {
  try {
    const { success } = await new Deno.Command(_compiler(), {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
}

/** The program's arguments for a plan. */
function _arguments(plan: Plan, limit: Limit, scratch: string): string[] {
  const common = [
    `--waiting=${limit.waiting}`,
    ...(limit.cpus ? [`--cpus=${limit.cpus}`] : []),
    `--bytes=${plan.bytes}`,
    `--scratch=${scratch}`,
    `--timeout=${RUN_TIMEOUT_S}`,
  ];
  if (plan.idleSeconds !== undefined) {
    return [
      ...common,
      "--mode=idle",
      `--warm-up=${plan.warmUp}`,
      `--seconds=${plan.idleSeconds}`,
    ];
  }
  if (plan.pairs !== undefined) {
    return [
      ...common,
      "--mode=concurrent",
      `--pairs=${plan.pairs}`,
      `--seconds=${plan.seconds ?? 1}`,
      `--warm-up=${plan.warmUp}`,
    ];
  }
  if (plan.oneWay || plan.bytes >= ONE_WAY_BYTES) {
    return [
      ...common,
      "--mode=one-way",
      `--samples=${plan.samples}`,
      `--count=${plan.count}`,
    ];
  }
  return [
    ...common,
    "--mode=round-trips",
    `--round-trips=${plan.roundTrips}`,
    `--warm-up=${plan.warmUp}`,
  ];
}

async function _measure(
  mechanism: CMechanism,
  limit: Limit,
  plan: Plan,
): Promise<Measurement | string> {
  if (limit.cpus === "two" && plan.idleSeconds !== undefined) {
    return "measured on the one-CPU row: a blocked process uses no CPU wherever it runs";
  }
  const program = await _build(mechanism);
  const scratch = await _workDirectory();
  const { stdout, stderr, success } = await new Deno.Command(program, {
    args: _arguments(plan, limit, scratch),
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout((RUN_TIMEOUT_S + 10) * 1000),
  }).output();
  const text = new TextDecoder().decode(stdout).trim();
  let result: Measurement & { error?: string; unsupported?: string };
  try {
    result = JSON.parse(text.split("\n").at(-1) ?? "");
  } catch {
    const why = new TextDecoder().decode(stderr).trim() || "no output";
    throw new Error(`bench/c/${mechanism.file} failed: ${why}`);
  }
  if (result.unsupported) return result.unsupported;
  if (!success || result.error) {
    throw new Error(result.error ?? `bench/c/${mechanism.file} failed`);
  }
  return result;
}

/** Removes the compiled programs; the driver calls it once at the end. */
export async function removeCPrograms(): Promise<void> {
  if (!_workDir) return;
  const dir = await _workDir;
  _workDir = undefined;
  _built.clear();
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

/** The row label of a mechanism's C row with one waiting policy. */
export function cRowName(
  mechanism: CMechanism,
  waiting: Waiting,
  cpus?: Limit["cpus"],
): string {
  const policy = mechanism.policies?.[waiting] ??
    (waiting === "busy" ? "busy-wait" : "blocking");
  const where = cpus === "one"
    ? " (one CPU)"
    : cpus === "two"
    ? " (two CPUs)"
    : "";
  return `C: ${mechanism.label}, ${policy}${where}`;
}

function _row(
  mechanism: CMechanism,
  waiting: Waiting,
  cpus?: Limit["cpus"],
): Transport {
  const limit: Limit = {
    mechanism: mechanism.key,
    waiting,
    ...(cpus ? { cpus } : {}),
  };
  // The two-CPU row is context for the blocking limit: the main cells only.
  const context = cpus === "two";
  return {
    name: cRowName(mechanism, waiting, cpus),
    kind: "limit",
    limit,
    ...(mechanism.concurrent && !context ? { concurrent: true } : {}),
    ...(mechanism.throughput && !context ? { throughput: true } : {}),
    connect: () =>
      Promise.reject(new Error("a C row is measured by its own program")),
    measureElsewhere: (plan) => _measure(mechanism, limit, plan),
  };
}

/**
 * The C rows of the driver: every mechanism busy-waiting (where the
 * scheduler puts the two processes: it spreads two spinners over two CPUs),
 * blocking with both processes pinned to one CPU (the limit of ipckit's rows
 * that sleep: each wake-up a context switch), and blocking pinned to two CPUs
 * (for context: what a wake-up across CPUs adds on this machine).
 */
export const cTransports: Transport[] = C_MECHANISMS.flatMap((mechanism) => [
  _row(mechanism, "busy"),
  _row(mechanism, "blocking", "one"),
  _row(mechanism, "blocking", "two"),
]);
