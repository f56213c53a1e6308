/**
 * Every `deno task example:*` of deno.json, run as a user would run it
 * (with the task's own flags), must exit with 0 and print what a user
 * should see: a few lines the example promises, no `[Object: null
 * prototype]`, no error or stack trace, and (issue 10) no last line that
 * reads like a failure. Each run is bounded, and must leave no process and
 * no object of its own behind.
 *
 * @module
 */

import { fromFileUrl } from "@std/path";
import { assert, assertEquals, assertMatch, assertNotMatch } from "@std/assert";
import { listDirectory } from "../ffi/dir.ts";
import { readLink, readWholeFile } from "../ffi/file.ts";
import {
  IPC_KINDS,
  objectExists,
  queueDirectoryMounted,
} from "../mechanisms/inventory.ts";
import { MessageQueue, Semaphore, SharedMemory } from "../mod.ts";
import { commandSucceeds, leakChecked, skip } from "./_helpers.ts";

const ROOT = fromFileUrl(new URL("..", import.meta.url)).replace(/\/$/, "");
const CONFIG = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`)) as {
  tasks: Record<string, string>;
};
/** How long one example may take (the slowest, example:semaphore, takes about 5 s). */
const TIMEOUT_MS = 120_000;
/** The key of the notes' segment that example:sysv uses: `(key_t)1234`. */
const SYSV_EXAMPLE_KEY = 1234;

/** Lines each example promises, and why it cannot run here (if it cannot). */
interface Expected {
  lines: RegExp[];
  missing?: () => Promise<string | undefined> | string | undefined;
}

const EXPECTED: Record<string, Expected> = {
  "example:mq": {
    lines: [
      /^← result for job 3 from process \d+: 4 words, 20 letters$/,
      /^consumer exited with code 0; queues removed$/,
    ],
  },
  "example:shm": {
    lines: [
      /^frame 30 from \d+\s+320x240 mean brightness 120\.0$/,
      /^30 frames of 76800 bytes shared in \d+ ms \(producer pid \d+, exit code 0\)$/,
    ],
  },
  "example:socket": {
    lines: [
      /^unix socket: a client, pid \d+$/,
      /^tcp reply after half-close: and goodbye$/,
      // The sender, as an address a user reads (it was an object once).
      /^udp: ping from 127\.0\.0\.1:\d+$/,
      /^udp reply: pong$/,
      /^seqpacket: a buffer for you - its first byte is 42$/,
    ],
  },
  "example:rpc": {
    lines: [
      /^three requests in flight: \[ 11, 12, 13 \]$/,
      /^the child threw RangeError: division by zero$/,
      /^child exited with 0$/,
    ],
  },
  "example:signal": {
    lines: [
      /^parent: got SIGUSR2 from the child$/,
      /^child exited with 0$/,
      /no process can catch SIGKILL$/,
    ],
  },
  "example:fifo": {
    lines: [/^client got \{ sum: 42 \}$/, /^read line: hello from echo$/],
  },
  "example:pipe": {
    lines: [/^job 0: 4 words$/, /^child exited with 0$/],
  },
  "example:sysv": {
    lines: [
      /^reader \d+: segment says "hello from writer \d+" \(attachments: 2\)$/,
      /^reader: type 9 control message: done$/,
      /^writer: type 10 receipt for order 3: 1 jam packed$/,
      /^writer: reader exited with 0; attachments now 1$/,
    ],
    missing: () =>
      typeof readWholeFile("/proc/sysvipc/shm", 1 << 20) === "number"
        ? "this kernel has no System V IPC (/proc/sysvipc)"
        : _sysvExampleObjects().length > 0
        ? `a System V object with key ${SYSV_EXAMPLE_KEY} exists already (${
          _sysvExampleObjects().join(", ")
        })`
        : undefined,
  },
  "example:file": {
    lines: [/^reader: read #3 "bye"$/, /^writer: reader exited with 0$/],
  },
  "example:semaphore": {
    lines: [
      /^24 jobs done in \d+ ms; at most [123] workers held a licence at once \(limit 3\); 3 licences free; 0 workers failed$/,
    ],
  },
  "example:pubsub": {
    lines: [
      /^published 10000 ticks to 3 subscribers in \d+ ms \(\d+ per second to each\)$/,
      /^subscriber [123]: 10000 ticks, 0 missed, average price [\d.]+$/,
      // The one that joined with a history of 5 also gets those that were
      // published before it joined: up to 5, depending on when it joined.
      /^subscriber 3: 1000[0-5] ticks, 0 missed, average price [\d.]+$/,
    ],
  },
  "example:shm-channel": {
    lines: [
      /^100000 frames of 4112 bytes in [\d.]+ s: [\d,]+ frames\/s, \d+ MB\/s, mean age on arrival \d+ µs \(producer exit code 0\)$/,
    ],
  },
  "example:nats": {
    lines: [
      /^workers a and b are listening on NATS nats:\/\/127\.0\.0\.1:\d+, queue group "workers"$/,
      // A queue group may give every job to one worker (about 1 run in 30
      // with 6 jobs): then only that worker is named.
      /^crossed: 6 jobs and 6 results over NATS; worker [ab] took \d(, worker [ab] took \d)?$/,
    ],
    missing: async () =>
      await commandSucceeds("nats-server", ["--version"])
        ? undefined
        : "nats-server is not installed (apt-get install nats-server)",
  },
};

/** Lines that say something failed: Deno's report of an uncaught error, an error printed as such, a stack frame. */
const FAILURE_LINES = [
  /error:/,
  /^\s*(Uncaught\b|[A-Z]\w*Error\b|Error\b)/m,
  /^\s+at \S.*:\d+:\d+\)?$/m,
  /\[Object: null prototype\]/,
];

/** System V objects with the example's key, as `kind id`. */
function _sysvExampleObjects(): string[] {
  const found: string[] = [];
  for (const kind of ["msg", "shm", "sem"] as const) {
    const text = readWholeFile(`/proc/sysvipc/${kind}`, 1 << 20);
    if (typeof text === "number") continue;
    for (const line of text.split("\n").slice(1)) {
      const [key, id] = line.trim().split(/\s+/).map(Number);
      if (key === SYSV_EXAMPLE_KEY) found.push(`System V ${kind} id ${id}`);
    }
  }
  return found;
}

/**
 * Removes what an example left (named as {@linkcode _exampleObjects} and
 * {@linkcode _printedObjectsLeft} name it), so that its failing test does
 * not leave it too.
 */
async function _remove(left: string[]): Promise<void> {
  for (const entry of left) {
    const sysv = /^System V (msg|shm|sem) id (\d+)$/.exec(entry);
    const printed = /^(mq|shm|sem) (\/.*)$/.exec(entry);
    if (sysv) {
      const option = { msg: "-q", shm: "-m", sem: "-s" }[sysv[1]]!;
      await commandSucceeds("ipcrm", [option, sysv[2]]);
    } else if (printed) {
      const remove = {
        mq: MessageQueue.unlink,
        shm: SharedMemory.unlink,
        sem: Semaphore.unlink,
      }[printed[1]]!;
      try {
        remove(printed[2]);
      } catch { /* gone meanwhile */ }
    } else {
      await commandSucceeds("rm", ["-rf", "--", entry]);
    }
  }
}

/** Entries of `dir` whose names mark them as an example's. */
function _exampleEntries(dir: string): string[] {
  const listed = listDirectory(dir);
  if (typeof listed === "number") return [];
  return listed.filter((entry) => entry.name.includes("ipckit-example"))
    .map((entry) => `${dir}/${entry.name}`);
}

/** Every object an example might leave: files, IPC objects, System V objects. */
function _exampleObjects(): Set<string> {
  const dirs = ["/dev/shm", "/tmp"];
  if (queueDirectoryMounted()) dirs.push("/dev/mqueue");
  return new Set([...dirs.flatMap(_exampleEntries), ..._sysvExampleObjects()]);
}

/**
 * The processes running in this checkout (its directory is their working
 * directory or on their command line), but this one: what an example or
 * the children it started would be.
 */
function _processesHere(): Map<number, string> {
  const found = new Map<number, string>();
  const listed = listDirectory("/proc");
  if (typeof listed === "number") throw new Error("cannot list /proc");
  const decoder = new TextDecoder();
  for (const { name } of listed) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === Deno.pid) continue;
    const cwd = readLink(`/proc/${pid}/cwd`);
    const command = readWholeFile(`/proc/${pid}/cmdline`, 1 << 16);
    if (typeof command === "number") continue; // exited meanwhile
    const shown = command.replaceAll("\0", " ").trim();
    const inHere = (typeof cwd !== "number" &&
      (decoder.decode(cwd) === ROOT ||
        decoder.decode(cwd).startsWith(`${ROOT}/`))) ||
      shown.includes(`${ROOT}/`);
    if (inHere && shown !== "") found.set(pid, shown);
  }
  return found;
}

/** Processes in `now` that were not in `before`, waiting up to 2 s for them to end. */
async function _newProcesses(
  before: Map<number, string>,
): Promise<[number, string][]> {
  const deadline = performance.now() + 2000;
  for (;;) {
    const left = [..._processesHere()].filter(([pid]) => !before.has(pid));
    if (left.length === 0 || performance.now() > deadline) return left;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Names an example printed (`/ipckit-example-jobs-4138`) that still exist
 * as a queue, shared memory or a semaphore: where /dev/mqueue is not
 * mounted, a queue left behind shows only this way.
 */
function _printedObjectsLeft(output: string): string[] {
  const left: string[] = [];
  for (const name of new Set(output.match(/\/ipckit-example-[\w-]+/g) ?? [])) {
    for (const kind of IPC_KINDS) {
      if (objectExists(kind, name)) left.push(`${kind} ${name}`);
    }
  }
  return left;
}

/** This process's environment without NATS_URL: example:nats then starts its own server. */
function _environment(): Record<string, string> {
  const env = Deno.env.toObject();
  delete env.NATS_URL;
  return env;
}

const TASKS = Object.keys(CONFIG.tasks).filter((task) =>
  task.startsWith("example:")
).sort();

Deno.test("every example task of deno.json has its promised lines here", () => {
  assert(TASKS.length > 0, "deno.json has no example:* task");
  assertEquals(
    TASKS.filter((task) => !(task in EXPECTED)),
    [],
    "add the lines these examples promise to EXPECTED",
  );
  assertEquals(
    Object.keys(EXPECTED).filter((task) => !TASKS.includes(task)),
    [],
  );
});

for (const task of TASKS.filter((task) => task in EXPECTED)) {
  const expected = EXPECTED[task];
  Deno.test({
    name:
      `deno task ${task} exits with 0, prints what it promises and no error, and leaves nothing behind`,
    ignore: skip(`deno task ${task}`, await expected.missing?.()),
    fn: leakChecked(async () => {
      const objectsBefore = _exampleObjects();
      const processesBefore = _processesHere();
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["task", "--quiet", task],
        cwd: ROOT,
        clearEnv: true,
        env: _environment(),
        stdout: "piped",
        stderr: "piped",
        // deno task passes the SIGTERM on to the example it runs.
        signal: AbortSignal.timeout(TIMEOUT_MS),
      }).output();
      const decoder = new TextDecoder();
      const stdout = decoder.decode(output.stdout);
      const stderr = decoder.decode(output.stderr);
      const shown = `stdout:\n${stdout}\nstderr:\n${stderr}`;

      const leftProcesses = await _newProcesses(processesBefore);
      // Named in the failure below, but not left running.
      for (const [pid] of leftProcesses) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch { /* exited meanwhile */ }
      }
      const leftObjects = [
        ..._exampleObjects(),
      ].filter((entry) => !objectsBefore.has(entry));
      leftObjects.push(..._printedObjectsLeft(stdout + stderr));
      await _remove(leftObjects);

      assertEquals(
        output.signal === null ? output.code : output.signal,
        0,
        `deno task ${task} did not exit with 0 within ${TIMEOUT_MS} ms\n${shown}`,
      );
      assertEquals(
        leftProcesses.map(([pid, command]) => `pid ${pid}: ${command}`),
        [],
        `processes left behind\n${shown}`,
      );
      assertEquals(leftObjects, [], `objects left behind\n${shown}`);
      for (const failure of FAILURE_LINES) {
        assertNotMatch(stdout + stderr, failure, shown);
      }
      const lines = stdout.split("\n").map((line) => line.trimEnd());
      for (const promised of expected.lines) {
        assert(
          lines.some((line) => promised.test(line)),
          `no line matches ${promised}\n${shown}`,
        );
      }
      // Issue 10: the last thing a user reads is not a refusal or a failure.
      const last = lines.filter((line) => line !== "").at(-1) ?? "";
      assertNotMatch(last, /^(Cannot|cannot|Failed|failed)\b/, shown);
      assertMatch(last, /\S/, `deno task ${task} printed nothing`);
    }),
  });
}
