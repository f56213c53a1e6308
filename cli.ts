/**
 * `ipckit`: see and clean up the POSIX IPC objects on this machine: message
 * queues, shared memory objects and named semaphores, the things that leak
 * into /dev/shm and /dev/mqueue when a program dies before unlinking them.
 *
 * ```sh
 * deno install -g --name ipckit --allow-ffi \
 *   --allow-read=/dev/shm,/dev/mqueue,/proc \
 *   --allow-write=/dev/shm,/dev/mqueue,/proc/sysvipc jsr:@ipckit/ipckit/cli
 * ipckit ls                          # every object, with the pids that hold it
 * ipckit stat /jobs                  # one object in detail
 * ipckit gc --prefix /myapp- --dry-run
 * ipckit rm /jobs
 * ipckit rm --kind sysv-shm 32769    # System V objects by id (or 0x key)
 * ipckit watch /jobs --codec text    # print (and consume) arriving messages
 * ```
 *
 * The commands are a thin layer over `@ipckit/ipckit/inventory`, which
 * documents what is listed, how holders are found, what `gc` keeps and
 * why, and how names that are not UTF-8 are shown (`/caf\xe9`; the
 * commands accept that form). Deno 2.9 refuses its own file API under /dev
 * and /proc without `--allow-all`, so the listing goes through libc
 * (`--allow-ffi`) after checking the `--allow-read` and `--allow-write`
 * flags above, the same way the rest of ipckit does.
 *
 * @example Run the command line from another program
 * ```ts
 * import { main } from "@ipckit/ipckit/cli";
 *
 * const code = await main(["ls", "--json"]);
 * console.log(code); // 0
 * ```
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import { Spinner } from "@std/cli/unstable-spinner";
import { type Codec, codecs } from "./mechanisms/codec.ts";
import { DecodeError } from "./mechanisms/errors.ts";
import {
  checkObjectName,
  type CollectionPlan,
  findObjects,
  formatObjectName,
  type Holder,
  IPC_KINDS,
  type IpcKind,
  type IpcObject,
  KIND_NAMES,
  listObjects,
  listSysvObjects,
  objectDetails,
  parseObjectName,
  planCollection,
  planSysvCollection,
  removeObject,
  removeSysvObject,
  SYSV_KIND_NAMES,
  SYSV_KINDS,
  type SysvKind,
  type SysvObject,
  type UninspectedProcess,
} from "./mechanisms/inventory.ts";
import { MessageQueue } from "./mechanisms/message_queue.ts";

/** The permission flags every command works with. */
const _FLAGS =
  "--allow-ffi --allow-read=/dev/shm,/dev/mqueue,/proc --allow-write=/dev/shm,/dev/mqueue,/proc/sysvipc";

const _NAMES_HELP =
  `Names are shown as POSIX sees them (/jobs). A byte that is not UTF-8, or a
control character, is shown as \\xHH and a backslash as \\\\ (so /caf\\xe9);
commands accept names in that form.`;

const _SYSV_HELP =
  `System V objects (--kind sysv-msg, sysv-shm or sysv-sem) have keys and ids
instead of names: they are listed from /proc/sysvipc as ipcs shows them, and
stat and rm take their id (32769) or key (0x000004d2) with --kind.`;

const _USAGE =
  `ipckit: see and clean up POSIX IPC objects (message queues, shared memory,
named semaphores) in /dev/mqueue and /dev/shm, and System V ones

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
you may inspect; the others are named, with the reason.
Where /dev/mqueue is not mounted, queues are found through the processes
that hold them, and by name.

${_NAMES_HELP}

${_SYSV_HELP}`;

const _HELP: Record<string, string> = {
  ls: `Usage: ipckit ls [--kind mq|shm|sem|sysv-msg|sysv-shm|sysv-sem] [--json]

Lists message queues (/dev/mqueue), shared memory (/dev/shm) and named
semaphores (/dev/shm/sem.*): kind, name as POSIX sees it (/jobs), size,
mode, owner uid, last modification, and the live processes that have it
open or mapped. SIZE is bytes for shared memory and semaphores, and the
bytes of waiting messages for a queue.

Where /dev/mqueue is not mounted, the queues listed are those some process
holds open (found through /proc/<pid>/fd); a note says how to mount it.

${_NAMES_HELP}

System V objects follow in a table of their own: kind, key, id, size (bytes
waiting, segment bytes, or semaphores), mode, owner, attachments (segments)
and the pids the kernel records, as ipcs -a shows them.

Options:
  --kind <kind>  only mq, shm, sem, sysv-msg, sysv-shm or sysv-sem
  --json         print JSON instead of a table
  -h, --help     show this help`,
  stat: `Usage: ipckit stat <name> [--kind mq|shm|sem] [--json]
       ipckit stat <id|0xkey> --kind sysv-msg|sysv-shm|sysv-sem [--json]

Shows one object: path, mode, owner, holders, and for a queue its
attributes (max messages, message size, current messages, queued bytes),
for shared memory its size, for a semaphore its value. Opening the queue or
semaphore to read them does not change them. Works without /dev/mqueue.

Options:
  --kind <kind>  only mq, shm or sem (default: every kind with that name)
  --json         print JSON
  -h, --help     show this help`,
  rm: `Usage: ipckit rm <name>... [--kind mq|shm|sem]
       ipckit rm <id|0xkey>... --kind sysv-msg|sysv-shm|sysv-sem

Removes each name (mq_unlink, shm_unlink, sem_unlink). Processes that have
the object open keep using it; the kernel frees it when the last closes.
When a name exists as more than one kind, --kind says which to remove.
Works without /dev/mqueue. With a System V kind, removes by id or key
(IPC_RMID, as ipcrm does); needs --allow-write=/proc/sysvipc.

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
name with --all. A process that opens an object between the check and the
removal keeps working with it, but its name is gone.

Some processes cannot be inspected: another user's (unless you are root),
one that is not dumpable (ssh-agent, gpg-agent, daemons that changed user),
one that holds capabilities you do not, and, when gc runs in a user
namespace of its own (a container), every process outside it. gc keeps every object such a
process could hold: one it runs as the owner of, one whose mode lets group
or other users open it (so also root's objects, when a root process cannot
be inspected), and prints which process kept it and why.

The one gap: a root process that you, an ordinary user, cannot inspect is
not assumed to hold your private (0600) objects, although root could open
them. Assuming it would keep all your objects on any machine that runs a
root daemon. Run gc as root to inspect root's processes too.

Where /dev/mqueue is not mounted, queues that no process holds cannot be
found, so gc cannot remove them; mount it to collect them.

System V objects have no names, so only --all collects them: a segment
nobody has attached whose creator and last user are gone, a queue whose last
sender and receiver are gone, a set whose semaphores' last users are gone.
One that no process has used yet is kept, and so is another user's.

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

/**
 * Runs the `ipckit` command line with `args` (what follows `ipckit`),
 * printing to stdout and stderr, and resolves to the exit code: 0 on
 * success, 1 on failure, 2 on a usage error.
 *
 * @param args the command and its options, e.g. `["ls", "--json"]`
 * @returns the exit code
 *
 * @example List the objects as JSON
 * ```ts
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
    if (error instanceof _UsageError) {
      console.error(
        `ipckit ${command}: ${error.message}\nRun "ipckit ${command} --help" for usage.`,
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

function _describe(error: unknown): string {
  if (error instanceof Deno.errors.NotCapable) {
    // The library's message already names the flag; say how to pass it for good.
    return `${error.message}\n(the flags that cover every command: ${_FLAGS})`;
  }
  return error instanceof Error ? error.message : String(error);
}

interface _Parsed {
  /** Option values by name: strings, or booleans for flags. */
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

interface _Options {
  boolean?: string[];
  string?: string[];
}

/**
 * Parses with @std/cli: `boolean` and `string` name the options; anything
 * else starting with "-" is a usage error. Positionals stay strings ("007"
 * is a name, not the number 7).
 */
function _parse(
  args: string[],
  command: string,
  options: _Options,
  positionals: { min: number; max: number; what: string },
): _Parsed | undefined {
  const booleans = [...(options.boolean ?? []), "help"];
  const strings = options.string ?? [];
  const parsed = parseArgs(args, {
    boolean: booleans,
    string: [...strings, "_"],
    alias: { h: "help" },
    unknown: (arg: string, key?: string) => {
      if (key === undefined) return true; // a positional
      throw new _UsageError(`unknown option "${arg.split("=")[0]}"`);
    },
  });
  if (parsed.help) {
    console.log(_HELP[command]);
    return undefined;
  }
  const values: _Parsed["values"] = {};
  for (const name of booleans) values[name] = Boolean(parsed[name]);
  for (const name of strings) {
    const value = parsed[name];
    if (value !== undefined) values[name] = String(value);
  }
  const list = parsed._.map(String);
  if (list.length < positionals.min) {
    throw new _UsageError(`missing ${positionals.what}`);
  }
  if (list.length > positionals.max) {
    throw new _UsageError(`unexpected argument "${list[positionals.max]}"`);
  }
  return { values, positionals: list };
}

const _KIND_OPTION = "kind";

function _kinds(value: string | boolean | undefined): IpcKind[] {
  if (value === undefined) return [...IPC_KINDS];
  if (SYSV_KINDS.includes(value as SysvKind)) return [];
  if (!IPC_KINDS.includes(value as IpcKind)) {
    throw new _UsageError(
      `--kind must be mq, shm, sem, sysv-msg, sysv-shm or sysv-sem, got ${
        JSON.stringify(value)
      }`,
    );
  }
  return [value as IpcKind];
}

/** The System V kinds `--kind` selects: all of them when it is not given. */
function _sysvKinds(value: string | boolean | undefined): SysvKind[] {
  if (value === undefined) return [...SYSV_KINDS];
  return SYSV_KINDS.includes(value as SysvKind) ? [value as SysvKind] : [];
}

/** An id (`32769`) or a key (`0x000004d2`), as ipcs shows them. */
function _sysvTarget(value: string): { id?: number; key?: number } {
  if (/^0x[0-9a-f]{1,8}$/i.test(value)) return { key: Number(value) | 0 };
  if (/^[0-9]+$/.test(value)) return { id: Number(value) };
  throw new _UsageError(
    `a System V object is named by its id (32769) or its key in hex (0x000004d2), got ${
      JSON.stringify(value)
    }`,
  );
}

/**
 * Reads a name as the listings show it (escapes and all), accepts `jobs`
 * for `/jobs`, and checks it before anything else.
 */
function _name(value: string, kinds: IpcKind[]): Uint8Array {
  try {
    const bytes = parseObjectName(value.startsWith("/") ? value : `/${value}`);
    return checkObjectName(bytes, kinds);
  } catch (error) {
    throw new _UsageError((error as Error).message);
  }
}

/**
 * Runs a listing, with a spinner on stderr while /proc is scanned if that
 * takes more than a moment and stderr is a terminal (never in a pipe or a
 * log, where it would only add noise).
 */
async function _withProgress<T>(
  work: (onProgress?: (done: number, total: number) => void) => Promise<T>,
): Promise<T> {
  if (!Deno.stderr.isTerminal()) return await work();
  const started = performance.now();
  let spinner: Spinner | undefined;
  try {
    return await work((done, total) => {
      if (!spinner && performance.now() - started < 500) return;
      spinner ??= new Spinner({ output: Deno.stderr });
      spinner.message = `inspecting processes: ${done} of ${total}`;
      spinner.start();
    });
  } finally {
    spinner?.stop();
  }
}

// --- ls ------------------------------------------------------------------

async function _ls(args: string[]): Promise<number> {
  const parsed = _parse(
    args,
    "ls",
    { boolean: ["json"], string: [_KIND_OPTION] },
    { min: 0, max: 0, what: "" },
  );
  if (!parsed) return 0;
  const kinds = _kinds(parsed.values.kind);
  const sysvKinds = _sysvKinds(parsed.values.kind);
  const inventory = kinds.length === 0
    ? { objects: [], unlisted: [], uninspected: [], inspected: 0 }
    : await _withProgress((onProgress) => listObjects({ kinds, onProgress }));
  const { objects, unlisted, uninspected } = inventory;
  const sysv = sysvKinds.length === 0
    ? []
    : listSysvObjects({ kinds: sysvKinds });

  if (parsed.values.json) {
    console.log(JSON.stringify(
      {
        objects: objects.map((object) =>
          _jsonOf(object, { holders: object.holders })
        ),
        sysv: sysv.map(_sysvJson),
        inspectedProcesses: inventory.inspected,
        uninspectedProcesses: uninspected,
        unlisted,
      },
      null,
      2,
    ));
    return 0;
  }

  if (kinds.length === 0) {
    if (sysv.length === 0) console.log("no System V IPC objects");
  } else if (objects.length === 0) console.log("no POSIX IPC objects");
  else {
    const rows = objects.map((object) => [
      object.kind,
      object.name,
      object.size === undefined ? "?" : String(object.size),
      _mode(object.mode),
      String(object.uid),
      _time(object.mtimeMs),
      _holders(object.holders),
    ]);
    console.log(
      _table(
        ["KIND", "NAME", "SIZE", "MODE", "UID", "MODIFIED", "HELD BY"],
        rows,
        [2],
      ),
    );
  }
  if (sysv.length > 0) {
    if (kinds.length > 0) console.log("");
    console.log(_sysvTable(sysv));
  }
  for (const { reason } of unlisted) console.log(`note: ${reason}`);
  _noteUninspected(uninspected);
  return 0;
}

/** The System V objects as ipcs -a would show them. */
function _sysvTable(objects: SysvObject[]): string {
  const rows = objects.map((object) => [
    object.kind,
    object.keyText,
    String(object.id),
    String(object.size),
    _mode(object.mode),
    String(object.uid),
    object.attachments === undefined ? "-" : String(object.attachments),
    object.pids.filter(({ pid }) => pid > 0).map(({ role, pid }) =>
      `${role} ${pid}`
    ).join(", ") || "-",
  ]);
  return _table(
    ["KIND", "KEY", "ID", "SIZE", "MODE", "UID", "ATTACHED", "PIDS"],
    rows,
    [2, 3, 6],
  );
}

function _sysvJson(object: SysvObject): Record<string, unknown> {
  return {
    ...object,
    mode: _mode(object.mode),
    changed: new Date(object.changedMs).toISOString(),
    changedMs: undefined,
  };
}

/** The System V objects `value` (an id or a 0x key) names among `kinds`. */
function _sysvFind(value: string, kinds: SysvKind[]): SysvObject[] {
  return listSysvObjects({ kinds, ..._sysvTarget(value) });
}

// --- stat ----------------------------------------------------------------

async function _stat(args: string[]): Promise<number> {
  const parsed = _parse(
    args,
    "stat",
    { boolean: ["json"], string: [_KIND_OPTION] },
    { min: 1, max: 1, what: 'object name, e.g. "ipckit stat /jobs"' },
  );
  if (!parsed) return 0;
  const kinds = _kinds(parsed.values.kind);
  if (kinds.length === 0) {
    const found = _sysvFind(
      parsed.positionals[0],
      _sysvKinds(parsed.values.kind),
    );
    if (found.length === 0) {
      console.error(
        `ipckit stat: no ${
          SYSV_KIND_NAMES[parsed.values.kind as SysvKind]
        } with id or key ${parsed.positionals[0]}`,
      );
      return 1;
    }
    if (parsed.values.json) {
      console.log(JSON.stringify(found.map(_sysvJson), null, 2));
    } else console.log(_sysvTable(found));
    return 0;
  }
  const name = _name(parsed.positionals[0], kinds);
  const found = await _withProgress((onProgress) =>
    findObjects(name, { kinds, onProgress })
  );
  if (found.objects.length === 0) {
    for (const { reason } of found.unlisted) {
      console.error(`ipckit stat: ${reason}`);
    }
    if (found.unlisted.length === 0) {
      console.error(`ipckit stat: ${_nothingNamed(name, kinds)}`);
    }
    return 1;
  }
  const details = found.objects.map((object) =>
    _jsonOf(object, { holders: object.holders, ..._detailsOf(object) })
  );
  if (parsed.values.json) {
    console.log(JSON.stringify(details, null, 2));
    return 0;
  }
  for (const [index, object] of found.objects.entries()) {
    const detail = details[index];
    const lines: [string, unknown][] = [
      ["path", object.path],
      ["mode", _mode(object.mode)],
      ["owner uid", object.uid],
      ["modified", _time(object.mtimeMs)],
      ["held by", _holders(object.holders)],
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
  for (const { reason } of found.unlisted) console.log(`note: ${reason}`);
  _noteUninspected(found.uninspected);
  return 0;
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
    return { ...objectDetails(object) };
  } catch (error) {
    return { unavailable: _describe(error) };
  }
}

// --- rm ------------------------------------------------------------------

async function _rm(args: string[]): Promise<number> {
  const parsed = _parse(args, "rm", { string: [_KIND_OPTION] }, {
    min: 1,
    max: Infinity,
    what: 'object name, e.g. "ipckit rm /jobs"',
  });
  if (!parsed) return 0;
  const explicit = parsed.values.kind !== undefined;
  const kinds = _kinds(parsed.values.kind);
  if (kinds.length === 0) {
    return _rmSysv(parsed.values.kind as SysvKind, parsed.positionals);
  }
  const names = parsed.positionals.map((value) => _name(value, kinds));
  let failed = false;
  for (const name of names) {
    const shown = formatObjectName(name);
    try {
      let kind: IpcKind;
      if (explicit) kind = kinds[0];
      else {
        const found = await findObjects(name, { kinds, holders: false });
        // A queue you may not open still exists: unlisted says so.
        const foundKinds = [
          ...found.objects.map((object) => object.kind),
          ...found.unlisted.map((entry) => entry.kind),
        ];
        if (foundKinds.length === 0) {
          throw new Error(_nothingNamed(name, kinds));
        }
        if (foundKinds.length > 1) {
          throw new _UsageError(
            `"${shown}" names ${
              foundKinds.map((kind) => KIND_NAMES[kind]).join(" and ")
            }: add ${foundKinds.map((kind) => `--kind ${kind}`).join(" or ")}`,
          );
        }
        kind = foundKinds[0];
      }
      removeObject(kind, name);
      console.log(`removed ${KIND_NAMES[kind]} ${shown}`);
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
  return failed ? 1 : 0;
}

/** `rm --kind sysv-…`: each argument is an id or a 0x key. */
function _rmSysv(kind: SysvKind, values: string[]): number {
  const targets = values.map(_sysvTarget);
  let failed = false;
  for (const [index, target] of targets.entries()) {
    try {
      const ids = target.id !== undefined
        ? [target.id]
        : listSysvObjects({ kinds: [kind], key: target.key }).map((o) => o.id);
      if (ids.length === 0) {
        throw new Error(
          `no ${SYSV_KIND_NAMES[kind]} with key ${values[index]}`,
        );
      }
      for (const id of ids) {
        removeSysvObject(kind, id);
        console.log(`removed ${SYSV_KIND_NAMES[kind]} ${id}`);
      }
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) throw error;
      console.error(`ipckit rm: ${_describe(error)}`);
      failed = true;
    }
  }
  return failed ? 1 : 0;
}

// --- gc ------------------------------------------------------------------

async function _gc(args: string[]): Promise<number> {
  const parsed = _parse(
    args,
    "gc",
    { boolean: ["all", "dry-run"], string: [_KIND_OPTION, "prefix"] },
    { min: 0, max: 0, what: "" },
  );
  if (!parsed) return 0;
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
  let claimed: Uint8Array | undefined;
  if (typeof prefix === "string") {
    try {
      claimed = parseObjectName(prefix.startsWith("/") ? prefix : `/${prefix}`);
    } catch (error) {
      throw new _UsageError((error as Error).message);
    }
  }
  const kinds = _kinds(parsed.values.kind);
  const sysvKinds = claimed === undefined ? _sysvKinds(parsed.values.kind) : [];
  if (claimed !== undefined && kinds.length === 0) {
    throw new _UsageError(
      "System V objects have no names for --prefix to match: use --all with --kind sysv-msg, sysv-shm or sysv-sem",
    );
  }
  const plan: CollectionPlan = kinds.length === 0
    ? { verdicts: [], inspected: 0, uninspected: [], unlisted: [] }
    : await _withProgress((onProgress) =>
      claimed === undefined
        ? planCollection({ all: true, kinds, onProgress })
        : planCollection({ prefix: claimed, kinds, onProgress })
    );

  let removed = 0;
  let kept = 0;
  let failed = false;
  const rows: string[][] = [];
  // One verdict's row: removed (or would be, in a dry run), kept, gone
  // meanwhile, or failed; only a missing permission stops the run.
  const settle = (
    verdict: { remove: boolean; reason: string },
    kind: string,
    shown: string,
    remove: () => void,
  ) => {
    let action = verdict.remove
      ? (dryRun ? "would remove" : "removed")
      : "kept";
    let reason = verdict.reason;
    if (verdict.remove && !dryRun) {
      try {
        remove();
      } catch (error) {
        if (error instanceof Deno.errors.NotCapable) throw error;
        action = error instanceof Deno.errors.NotFound ? "gone" : "failed";
        reason = _describe(error);
        failed ||= action === "failed";
      }
    }
    if (action === "kept") kept++;
    else if (action !== "gone" && action !== "failed") removed++;
    rows.push([action, kind, shown, reason]);
  };
  for (const verdict of plan.verdicts) {
    const { kind, name, nameBytes } = verdict.object;
    settle(verdict, kind, name, () => removeObject(kind, nameBytes));
  }
  for (const verdict of planSysvCollection({ kinds: sysvKinds })) {
    const { kind, id, keyText } = verdict.object;
    settle(
      verdict,
      kind,
      `id ${id} key ${keyText}`,
      () => removeSysvObject(kind, id),
    );
  }
  if (rows.length > 0) console.log(_table(undefined, rows));
  const scope = claimed === undefined
    ? ""
    : ` named ${formatObjectName(claimed)}*`;
  console.log(
    dryRun
      ? `dry run: would remove ${removed}, keep ${kept} object(s)${scope}; nothing was removed`
      : `removed ${removed}, kept ${kept} object(s)${scope}`,
  );
  for (const { reason } of plan.unlisted) console.log(`note: ${reason}`);
  _noteUninspected(plan.uninspected);
  return failed ? 1 : 0;
}

// --- watch ---------------------------------------------------------------

const _CODECS = ["json", "text", "bytes", "v8"] as const;

async function _watch(args: string[]): Promise<number> {
  const parsed = _parse(
    args,
    "watch",
    { string: ["codec"] },
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
  const bytes = _name(parsed.positionals[0], ["mq"]);
  let name: string;
  try {
    name = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new _UsageError(
      `watch needs a queue name that is UTF-8, got "${
        formatObjectName(bytes)
      }"`,
    );
  }
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

function _nothingNamed(name: Uint8Array, kinds: IpcKind[]): string {
  const what = kinds.map((kind) => KIND_NAMES[kind]);
  const listed = what.length > 1
    ? `${what.slice(0, -1).join(", ")} or ${what.at(-1)}`
    : what[0];
  return `no ${listed} named "${formatObjectName(name)}"`;
}

/**
 * Says which processes could not be inspected and why, grouped by reason,
 * so that a listing is never taken for the whole picture.
 */
function _noteUninspected(processes: UninspectedProcess[]): void {
  if (processes.length === 0) return;
  const what = processes.length === 1
    ? "1 process could not be inspected, so objects only it holds show"
    : `${processes.length} processes could not be inspected, so objects only they hold show`;
  console.log(`note: ${what} no holder:`);
  const groups = new Map<string, UninspectedProcess[]>();
  for (const process of processes) {
    const group = groups.get(process.explanation) ?? [];
    group.push(process);
    groups.set(process.explanation, group);
  }
  for (const [explanation, group] of groups) {
    const shown = group.slice(0, 5).map(({ pid, command }) =>
      command ? `${pid} (${command})` : String(pid)
    ).join(", ") + (group.length > 5 ? `, … (${group.length} in all)` : "");
    console.log(`  pid ${shown}: ${explanation}`);
  }
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
