/**
 * `ipckit`: see and clean up the POSIX IPC objects on this machine: message
 * queues, shared memory objects and named semaphores, the things that leak
 * into /dev/shm and /dev/mqueue when a program dies before unlinking them.
 *
 * ```sh
 * deno install -g --name ipckit --allow-ffi \
 *   --allow-read=/dev/shm,/dev/mqueue,/proc \
 *   --allow-write=/dev/shm,/dev/mqueue jsr:@ipckit/ipckit/cli
 * ipckit ls                          # every object, with the pids that hold it
 * ipckit stat /jobs                  # one object in detail
 * ipckit gc --prefix /myapp- --dry-run
 * ipckit rm /jobs
 * ipckit watch /jobs --codec text    # print (and consume) arriving messages
 * ```
 *
 * Deno 2.9 refuses its own file API under /dev and /proc without
 * `--allow-all`, so the listing goes through libc (`--allow-ffi`) after
 * checking the `--allow-read` and `--allow-write` flags above, the same way
 * the rest of ipckit does.
 *
 * @example Run the command line from another program
 * ```ts ignore
 * import { main } from "@ipckit/ipckit/cli";
 *
 * const code = await main(["ls", "--json"]);
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type Codec, codecs } from "./mechanisms/codec.ts";
import { DecodeError } from "./mechanisms/errors.ts";
import { MessageQueue } from "./mechanisms/message_queue.ts";
import { Semaphore } from "./mechanisms/semaphore.ts";
import { planCollection } from "./mechanisms/_inventory/collect.ts";
import {
  fileKey,
  type Holder,
  scanHolders,
} from "./mechanisms/_inventory/holders.ts";
import {
  findObjects,
  IPC_KINDS,
  type IpcKind,
  type IpcObject,
  KIND_NAMES,
  listObjects,
  readQueueStatus,
  unlinkObject,
} from "./mechanisms/_inventory/objects.ts";
import { NAME_MAX, validateIpcName } from "./mechanisms/_kernel/names.ts";

/** The permission flags every command works with. */
const _FLAGS =
  "--allow-ffi --allow-read=/dev/shm,/dev/mqueue,/proc --allow-write=/dev/shm,/dev/mqueue";

const _USAGE =
  `ipckit: see and clean up POSIX IPC objects (message queues, shared memory,
named semaphores) in /dev/mqueue and /dev/shm

Usage: ipckit <command> [options]

Commands:
  ls       list objects with size, mode, owner and the processes holding them
  stat     show one object in detail (a queue's attributes, a memory's size)
  rm       remove objects by name
  gc       remove objects that no live process holds (needs --prefix or --all)
  watch    print the messages arriving on a queue (it consumes them)

Run "ipckit <command> --help" for a command's options.

Exit codes: 0 success, 1 failure, 2 usage error.

Install:
  deno install -g --name ipckit ${_FLAGS} jsr:@ipckit/ipckit/cli
Holders are found in /proc/<pid>/fd and /proc/<pid>/maps of the processes
you may inspect (every process for root).`;

const _HELP: Record<string, string> = {
  ls: `Usage: ipckit ls [--kind mq|shm|sem] [--json]

Lists message queues (/dev/mqueue), shared memory (/dev/shm) and named
semaphores (/dev/shm/sem.*): kind, name as POSIX sees it (/jobs), size,
mode, owner uid, last modification, and the live processes that have it
open or mapped. SIZE is bytes for shared memory and semaphores, and the
bytes of waiting messages for a queue.

Options:
  --kind <kind>  only mq, shm or sem
  --json         print JSON instead of a table
  -h, --help     show this help`,
  stat: `Usage: ipckit stat <name> [--kind mq|shm|sem] [--json]

Shows one object: path, mode, owner, holders, and for a queue its
attributes (max messages, message size, current messages, queued bytes),
for shared memory its size, for a semaphore its value. Opening the queue or
semaphore to read them does not change them.

Options:
  --kind <kind>  only mq, shm or sem (default: every kind with that name)
  --json         print JSON
  -h, --help     show this help`,
  rm: `Usage: ipckit rm <name>... [--kind mq|shm|sem]

Removes each name (mq_unlink, shm_unlink, sem_unlink). Processes that have
the object open keep using it; the kernel frees it when the last closes.
When a name exists as more than one kind, --kind says which to remove.

Options:
  --kind <kind>  mq, shm or sem
  -h, --help     show this help`,
  gc:
    `Usage: ipckit gc (--prefix <prefix> | --all) [--kind mq|shm|sem] [--dry-run]

Removes objects that no live process has open or mapped, and prints each
object it removes, or keeps and why. Run with --dry-run first.

Not being held is not proof that nobody wants an object: a program may open
it by name later (a queue used as a mailbox, a semaphore kept on purpose).
So gc only touches names you claim: those starting with --prefix, or every
name with --all. When some processes cannot be inspected (other users',
unless you are root), it also keeps objects of other users and objects whose
mode lets other users open them. A process that opens an object between the
check and the removal keeps working with it, but its name is gone.

Options:
  --prefix <prefix>  only names starting with this, e.g. /myapp-
  --all              every name (still only unheld objects)
  --kind <kind>      only mq, shm or sem
  --dry-run          print what would be removed, remove nothing
  -h, --help         show this help`,
  watch: `Usage: ipckit watch <queue> [--codec json|text|bytes|v8]

Receives the messages arriving on a message queue and prints one per line
until Ctrl-C. It is a consumer: every message it prints is taken off the
queue, and the program that should have received it will not get it.

Output per codec: json prints the JSON, text the text, bytes hex, v8 the
value as Deno.inspect shows it. A message that cannot be decoded is
reported on stderr and skipped.

Options:
  --codec <codec>  json (default), text, bytes or v8
  -h, --help       show this help`,
};

class _UsageError extends Error {}

type _Parsed = ReturnType<typeof parseArgs>;

/**
 * Runs the `ipckit` command line with `args` (what follows `ipckit`),
 * printing to stdout and stderr, and resolves to the exit code: 0 on
 * success, 1 on failure, 2 on a usage error.
 *
 * @example List the objects as JSON
 * ```ts ignore
 * // deno run --allow-ffi --allow-read=/dev/shm,/dev/mqueue,/proc list.ts
 * import { main } from "@ipckit/ipckit/cli";
 *
 * Deno.exitCode = await main(["ls", "--json"]);
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  if (command === undefined) {
    console.error(_USAGE);
    return 2;
  }
  if (command === "-h" || command === "--help") {
    console.log(_USAGE);
    return 0;
  }
  const run = _COMMANDS[command];
  if (!run) {
    console.error(
      `ipckit: unknown command "${command}"; commands: ${
        Object.keys(_COMMANDS).join(", ")
      }\nRun "ipckit --help" for usage.`,
    );
    return 2;
  }
  try {
    return await run(rest);
  } catch (error) {
    if (_isUsageError(error)) {
      console.error(
        `ipckit ${command}: ${
          (error as Error).message
        }\nRun "ipckit ${command} --help" for usage.`,
      );
      return 2;
    }
    console.error(`ipckit ${command}: ${_describe(error)}`);
    return 1;
  }
}

const _COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  ls: _ls,
  stat: _stat,
  rm: _rm,
  gc: _gc,
  watch: _watch,
};

function _isUsageError(error: unknown): boolean {
  // parseArgs signals bad options with TypeErrors coded ERR_PARSE_ARGS_*.
  return error instanceof _UsageError ||
    (error instanceof TypeError &&
      String((error as { code?: unknown }).code).startsWith(
        "ERR_PARSE_ARGS",
      ));
}

function _describe(error: unknown): string {
  if (error instanceof Deno.errors.NotCapable) {
    // The library's message already names the flag; say how to pass it for good.
    return `${error.message}\n(the flags that cover every command: ${_FLAGS})`;
  }
  return error instanceof Error ? error.message : String(error);
}

function _parse(
  args: string[],
  command: string,
  options: NonNullable<Parameters<typeof parseArgs>[0]>["options"],
  positionals: { min: number; max: number; what: string },
): _Parsed | undefined {
  const parsed = parseArgs({
    args,
    options: { ...options, help: { type: "boolean", short: "h" } },
    allowPositionals: positionals.max > 0,
    strict: true,
  });
  if (parsed.values.help) {
    console.log(_HELP[command]);
    return undefined;
  }
  const count = parsed.positionals.length;
  if (count < positionals.min) {
    throw new _UsageError(`missing ${positionals.what}`);
  }
  if (count > positionals.max) {
    throw new _UsageError(
      `unexpected argument "${parsed.positionals[positionals.max]}"`,
    );
  }
  return parsed;
}

const _KIND_OPTION = { kind: { type: "string" } } as const;

function _kinds(value: unknown): IpcKind[] {
  if (value === undefined) return [...IPC_KINDS];
  if (!IPC_KINDS.includes(value as IpcKind)) {
    throw new _UsageError(
      `--kind must be mq, shm or sem, got ${JSON.stringify(value)}`,
    );
  }
  return [value as IpcKind];
}

/** Accepts `jobs` for `/jobs` and checks the name before anything else. */
function _name(value: string, kinds: IpcKind[]): string {
  const name = value.startsWith("/") ? value : `/${value}`;
  try {
    // Semaphore names lose 4 bytes to the "sem." prefix of their file.
    validateIpcName(
      name,
      "object",
      kinds.includes("sem") ? NAME_MAX - 4 : NAME_MAX,
    );
  } catch (error) {
    throw new _UsageError((error as Error).message);
  }
  return name;
}

// --- ls ------------------------------------------------------------------

function _ls(args: string[]): Promise<number> {
  const parsed = _parse(
    args,
    "ls",
    { ..._KIND_OPTION, json: { type: "boolean" } },
    { min: 0, max: 0, what: "" },
  );
  if (!parsed) return Promise.resolve(0);
  const { objects, unlisted } = listObjects(_kinds(parsed.values.kind));
  const scan = scanHolders(new Set(objects.map(_keyOf)));
  const holdersOf = (object: IpcObject) =>
    scan.holders.get(_keyOf(object)) ?? [];

  if (parsed.values.json) {
    console.log(JSON.stringify(
      {
        objects: objects.map((object) =>
          _jsonOf(object, { holders: holdersOf(object) })
        ),
        inspectedProcesses: scan.inspected,
        uninspectableProcesses: scan.uninspectable.length,
        unlisted,
      },
      null,
      2,
    ));
    return Promise.resolve(0);
  }

  if (objects.length === 0) console.log("no POSIX IPC objects");
  else {
    const rows = objects.map((object) => [
      object.kind,
      object.name,
      object.size === undefined ? "?" : String(object.size),
      _mode(object.mode),
      String(object.uid),
      _time(object.mtimeMs),
      _holders(holdersOf(object)),
    ]);
    console.log(
      _table(
        ["KIND", "NAME", "SIZE", "MODE", "UID", "MODIFIED", "HELD BY"],
        rows,
        [2],
      ),
    );
  }
  for (const { reason } of unlisted) console.log(`note: ${reason}`);
  _noteUninspectable(scan.uninspectable);
  return Promise.resolve(0);
}

// --- stat ----------------------------------------------------------------

function _stat(args: string[]): Promise<number> {
  const parsed = _parse(
    args,
    "stat",
    { ..._KIND_OPTION, json: { type: "boolean" } },
    { min: 1, max: 1, what: 'object name, e.g. "ipckit stat /jobs"' },
  );
  if (!parsed) return Promise.resolve(0);
  const kinds = _kinds(parsed.values.kind);
  const name = _name(parsed.positionals[0], kinds);
  const found = findObjects(name, kinds);
  if (found.length === 0) {
    console.error(`ipckit stat: ${_nothingNamed(name, kinds)}`);
    return Promise.resolve(1);
  }
  const scan = scanHolders(new Set(found.map(_keyOf)));
  const details = found.map((object) =>
    _jsonOf(object, {
      holders: scan.holders.get(_keyOf(object)) ?? [],
      ..._detailsOf(object),
    })
  );
  if (parsed.values.json) {
    console.log(JSON.stringify(details, null, 2));
    return Promise.resolve(0);
  }
  for (const [index, object] of found.entries()) {
    const detail = details[index];
    const lines: [string, unknown][] = [
      ["path", object.path],
      ["mode", _mode(object.mode)],
      ["owner uid", object.uid],
      ["modified", _time(object.mtimeMs)],
      ["held by", _holders(detail.holders as Holder[])],
    ];
    if (object.kind === "shm") lines.push(["size", `${object.size} bytes`]);
    for (const key of _DETAIL_KEYS) {
      if (key in detail) lines.push([_DETAIL_LABELS[key], detail[key]]);
    }
    if (index > 0) console.log("");
    console.log(`${object.name} (${KIND_NAMES[object.kind]})`);
    const width = Math.max(...lines.map(([label]) => label.length)) + 1;
    for (const [label, value] of lines) {
      console.log(`  ${(label + ":").padEnd(width)} ${value}`);
    }
  }
  _noteUninspectable(scan.uninspectable);
  return Promise.resolve(0);
}

const _DETAIL_LABELS: Record<string, string> = {
  maxMessages: "max messages",
  messageSize: "message size",
  currentMessages: "current messages",
  queuedBytes: "queued bytes",
  notifyPid: "notify pid",
  value: "value",
  unavailable: "unavailable",
};
const _DETAIL_KEYS = Object.keys(_DETAIL_LABELS);

/** What only opening the object tells: a queue's attributes, a semaphore's value. */
function _detailsOf(object: IpcObject): Record<string, unknown> {
  try {
    if (object.kind === "mq") {
      const status = readQueueStatus(object.path);
      using queue = MessageQueue.open(object.name, {
        read: true,
        write: false,
      });
      const { maxMessages, messageSize, currentMessages } = queue.attributes();
      return { maxMessages, messageSize, currentMessages, ...status };
    }
    if (object.kind === "sem") {
      using semaphore = Semaphore.open(object.name);
      return { value: semaphore.value };
    }
  } catch (error) {
    return { unavailable: _describe(error) };
  }
  return {};
}

// --- rm ------------------------------------------------------------------

function _rm(args: string[]): Promise<number> {
  const parsed = _parse(args, "rm", _KIND_OPTION, {
    min: 1,
    max: Infinity,
    what: 'object name, e.g. "ipckit rm /jobs"',
  });
  if (!parsed) return Promise.resolve(0);
  const explicit = parsed.values.kind !== undefined;
  const kinds = _kinds(parsed.values.kind);
  const names = parsed.positionals.map((value) => _name(value, kinds));
  let failed = false;
  for (const name of names) {
    try {
      let kind: IpcKind;
      if (explicit) kind = kinds[0];
      else {
        const found = findObjects(name, kinds);
        if (found.length === 0) throw new Error(_nothingNamed(name, kinds));
        if (found.length > 1) {
          throw new _UsageError(
            `"${name}" names ${
              found.map((object) => KIND_NAMES[object.kind]).join(" and ")
            }: add ${
              found.map((object) => `--kind ${object.kind}`).join(" or ")
            }`,
          );
        }
        kind = found[0].kind;
      }
      unlinkObject(kind, name);
      console.log(`removed ${KIND_NAMES[kind]} ${name}`);
    } catch (error) {
      if (
        error instanceof _UsageError || error instanceof Deno.errors.NotCapable
      ) {
        throw error;
      }
      console.error(`ipckit rm: ${_describe(error)}`);
      failed = true;
    }
  }
  return Promise.resolve(failed ? 1 : 0);
}

// --- gc ------------------------------------------------------------------

function _gc(args: string[]): Promise<number> {
  const parsed = _parse(
    args,
    "gc",
    {
      ..._KIND_OPTION,
      prefix: { type: "string" },
      all: { type: "boolean" },
      "dry-run": { type: "boolean" },
    },
    { min: 0, max: 0, what: "" },
  );
  if (!parsed) return Promise.resolve(0);
  const { prefix, all } = parsed.values;
  if (prefix === undefined && !all) {
    throw new _UsageError(
      "say which names to collect: --prefix <prefix> (e.g. --prefix /myapp-) or --all; try --dry-run first",
    );
  }
  if (prefix !== undefined && all) {
    throw new _UsageError("--prefix and --all exclude each other");
  }
  if (prefix === "" || prefix === "/") {
    throw new _UsageError(
      `--prefix ${
        JSON.stringify(prefix)
      } matches every name: use --all to mean that`,
    );
  }
  const dryRun = Boolean(parsed.values["dry-run"]);
  const claimed = typeof prefix === "string"
    ? (prefix.startsWith("/") ? prefix : `/${prefix}`)
    : undefined;
  const plan = planCollection({
    prefix: claimed,
    kinds: _kinds(parsed.values.kind),
  });

  let removed = 0;
  let kept = 0;
  let failed = false;
  const rows: string[][] = [];
  for (const verdict of plan.verdicts) {
    const { kind, name } = verdict.object;
    let action = verdict.remove
      ? (dryRun ? "would remove" : "removed")
      : "kept";
    let reason = verdict.reason;
    if (verdict.remove && !dryRun) {
      try {
        unlinkObject(kind, name);
      } catch (error) {
        if (error instanceof Deno.errors.NotCapable) throw error;
        action = error instanceof Deno.errors.NotFound ? "gone" : "failed";
        reason = _describe(error);
        failed ||= action === "failed";
      }
    }
    if (action === "kept") kept++;
    else if (action !== "gone" && action !== "failed") removed++;
    rows.push([action, kind, name, reason]);
  }
  if (rows.length > 0) console.log(_table(undefined, rows));
  const scope = claimed === undefined ? "" : ` named ${claimed}*`;
  console.log(
    dryRun
      ? `dry run: would remove ${removed}, keep ${kept} object(s)${scope}; nothing was removed`
      : `removed ${removed}, kept ${kept} object(s)${scope}`,
  );
  for (const { reason } of plan.unlisted) console.log(`note: ${reason}`);
  _noteUninspectable(plan.uninspectable);
  return Promise.resolve(failed ? 1 : 0);
}

// --- watch ---------------------------------------------------------------

const _CODECS = ["json", "text", "bytes", "v8"] as const;

async function _watch(args: string[]): Promise<number> {
  const parsed = _parse(
    args,
    "watch",
    { codec: { type: "string" } },
    { min: 1, max: 1, what: 'queue name, e.g. "ipckit watch /jobs"' },
  );
  if (!parsed) return 0;
  const codecName = (parsed.values.codec ?? "json") as string;
  if (!(_CODECS as readonly string[]).includes(codecName)) {
    throw new _UsageError(
      `--codec must be json, text, bytes or v8, got ${
        JSON.stringify(codecName)
      }`,
    );
  }
  const name = _name(parsed.positionals[0], ["mq"]);
  const codec = codecs[codecName as (typeof _CODECS)[number]]() as Codec<
    unknown
  >;
  const format = _FORMATS[codecName as (typeof _CODECS)[number]];

  await using queue = MessageQueue.open(name, {
    read: true,
    write: false,
    codec,
  });
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  console.error(
    `watching message queue ${name} as ${codecName}; it consumes what it prints; Ctrl-C to stop`,
  );
  try {
    while (!stop.signal.aborted) {
      try {
        const { value } = await queue.receive({ signal: stop.signal });
        console.log(format(value));
      } catch (error) {
        if (stop.signal.aborted) break;
        if (!(error instanceof DecodeError)) throw error;
        console.error(
          `ipckit watch: skipped a message of ${error.bytes.length} bytes: ${error.message}`,
        );
      }
    }
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
  return 0;
}

const _FORMATS: Record<(typeof _CODECS)[number], (value: unknown) => string> = {
  json: (value) => JSON.stringify(value),
  text: (value) => String(value),
  bytes: (value) =>
    Array.from(
      value as Uint8Array,
      (byte) => byte.toString(16).padStart(2, "0"),
    )
      .join(""),
  v8: (value) => Deno.inspect(value, { colors: false, breakLength: Infinity }),
};

// --- printing ------------------------------------------------------------

function _keyOf(object: IpcObject): string {
  return fileKey(object.dev, object.ino);
}

function _jsonOf(
  object: IpcObject,
  extra: Record<string, unknown>,
): Record<string, unknown> {
  const { kind, name, path, size, mode, uid, mtimeMs } = object;
  return {
    kind,
    name,
    path,
    size: size ?? null,
    mode: _mode(mode),
    uid,
    mtime: new Date(mtimeMs).toISOString(),
    ...extra,
  };
}

function _mode(mode: number): string {
  return `0${mode.toString(8).padStart(3, "0")}`;
}

function _time(ms: number): string {
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function _holders(holders: Holder[]): string {
  if (holders.length === 0) return "-";
  return holders.map(({ pid, command }) =>
    command ? `${pid} (${command})` : String(pid)
  ).join(", ");
}

function _nothingNamed(name: string, kinds: IpcKind[]): string {
  const what = kinds.map((kind) => KIND_NAMES[kind]);
  const listed = what.length > 1
    ? `${what.slice(0, -1).join(", ")} or ${what.at(-1)}`
    : what[0];
  return `no ${listed} named "${name}"`;
}

function _noteUninspectable(pids: number[]): void {
  if (pids.length === 0) return;
  const shown = pids.slice(0, 10).join(", ") + (pids.length > 10 ? ", …" : "");
  const what = pids.length === 1
    ? "1 process could not be inspected"
    : `${pids.length} processes could not be inspected`;
  console.log(
    `note: ${what} (pid ${shown}), so objects only they hold show no holder; inspecting other users' processes needs root`,
  );
}

/** Left-aligned columns; `right` lists columns to align right (numbers). */
function _table(
  header: string[] | undefined,
  rows: string[][],
  right: number[] = [],
): string {
  const all = header ? [header, ...rows] : rows;
  const widths = all[0].map((_, column) =>
    Math.max(...all.map((row) => row[column].length))
  );
  return all.map((row) =>
    row.map((cell, column) =>
      column === row.length - 1
        ? cell
        : right.includes(column)
        ? cell.padStart(widths[column])
        : cell.padEnd(widths[column])
    ).join("  ")
  ).join("\n");
}

if (import.meta.main) Deno.exit(await main(Deno.args));
