/**
 * The README's benchmark numbers come from bench/results.json: bench/readme.ts
 * writes the sections between the markers, and `--check` (run by `deno task
 * check`) fails when they disagree or when a figure was copied by hand
 * outside them and outside a region that names the command that measured it.
 */

import {
  assert,
  assertEquals,
  assertMatch,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import {
  BEGIN,
  END,
  FIGURES_END,
  figureSources,
  handCopiedFigures,
  NATS_BEGIN,
  NATS_END,
  NATS_MARKERS,
  natsSection,
  readmeSection,
  replaceSection,
} from "../bench/_readme.ts";
import type { Results, Row } from "../bench/_results.ts";
import { leakChecked } from "./_helpers.ts";

const SCRIPT = new URL("../bench/readme.ts", import.meta.url).pathname;

function cell(median: number, cpuMicros: number): Row["rt64"] {
  return {
    median,
    p99: median * 3,
    count: 100,
    cpuMicros,
    cores: 1,
    passMedians: [median * 0.5, median, median * 2],
  };
}

function row(
  transport: string,
  kind: Row["kind"],
  mechanism: string,
  waiting: "busy" | "blocking",
  median: number,
): Row {
  return {
    transport,
    kind,
    limit: { mechanism, waiting },
    rt64: cell(median, median * 1.5),
    rt4KiB: cell(median * 2, median * 3),
    oneWay1MiB: { median: 1000 / median, count: 10 },
    idle: { seconds: 10, cpuMillis: kind === "limit" ? 9990 : 3 },
  };
}

/** A small results.json: the message queue rows and their C limits. */
const RESULTS: Results = {
  date: "2026-12-01T12:00:00.000Z",
  command: "deno task bench:driver",
  machine: {
    cpu: "Test CPU",
    cores: 2,
    memoryGiB: 4,
    kernel: "6.1.0",
    os: "linux/x86_64",
    deno: "2.9.6",
    v8: "15.0",
    mqueue: { msgsizeMax: 8192, msgMax: 10 },
  },
  plan: {
    rounds: 5,
    roundTrips: 10_000,
    warmUp: 500,
    samples: 15,
    count: 32,
    idleSeconds: 10,
  },
  rows: [
    row("message queue, sync", "ipckit", "mq", "busy", 4.25),
    row("message queue, async", "ipckit", "mq", "busy", 4.75),
    row(
      "message queue, async, spin: 0 (always park)",
      "ipckit",
      "mq",
      "blocking",
      61.5,
    ),
    row("C: POSIX message queue, busy-wait", "limit", "mq", "busy", 1.85),
    row(
      "C: POSIX message queue, blocking (one CPU)",
      "limit",
      "mq",
      "blocking",
      21.5,
    ),
    natsRow("NATS request/reply, `Nats.client()`", 180),
    natsRow("NATS JetStream job through a durable consumer and back", 410),
  ],
};

/** A NATS row: no C limit; its 1 MiB cell is 1000 / median MiB/s. */
function natsRow(transport: string, median: number): Row {
  const { limit: _, ...rest } = row(transport, "ipckit", "-", "busy", median);
  return rest;
}

const README = [
  "# Project",
  "",
  "Intro: the spin is 50 µs by default.",
  "",
  BEGIN,
  END,
  "",
  "## Beyond one machine",
  "",
  NATS_BEGIN,
  NATS_END,
  "",
  "## Later",
  "",
].join("\n");

/** A region of figures that `deno task <task>` printed. */
function figuresFrom(task: string, text: string): string {
  return `<!-- bench:figures from \`deno task ${task}\` (rerun it) -->\n\n${text}\n\n${FIGURES_END}\n`;
}

async function run(
  ...args: string[]
): Promise<{ code: number; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--allow-read",
      "--allow-write",
      "--allow-run",
      SCRIPT,
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  return {
    code: output.code,
    stderr: new TextDecoder().decode(output.stderr),
  };
}

async function withFiles(
  body: (readme: string, results: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ipckit-test-readme-" });
  try {
    await Deno.writeTextFile(`${dir}/README.md`, README);
    await Deno.writeTextFile(`${dir}/results.json`, JSON.stringify(RESULTS));
    await body(`${dir}/README.md`, `${dir}/results.json`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("readmeSection() takes every figure from the results", () => {
  const section = readmeSection(RESULTS);
  assert(section.startsWith(BEGIN) && section.endsWith(END));
  // The async row: 4.75 µs, against 1.85 µs for busy-waiting C: 2.6×.
  assertMatch(
    section,
    /\| message queue, async \| 4\.8 µs \| 1\.9 µs \(busy\) \| 2\.6× \| 7\.1 µs \|/,
  );
  assertStringIncludes(section, "4.8 µs for a message queue against 62 µs");
  // Rows the results lack are said to be missing, never invented.
  assertStringIncludes(section, "(not measured) for a Unix socket");
  // The NATS rows have their own section, not a line in this table.
  assert(!section.includes("NATS request/reply"), section);
});

Deno.test("readmeSection() says what System V waits cost only when the run measured them", () => {
  assert(!readmeSection(RESULTS).includes("System V"));
  const withTick = (r: Row, overOneMs: number): Row => ({
    ...r,
    rt64: { ...r.rt64, overOneMs },
  });
  const sysv: Results = {
    ...RESULTS,
    rows: [
      ...RESULTS.rows,
      withTick(
        row(
          "System V message queue, async",
          "ipckit",
          "sysv-msg",
          "busy",
          2100,
        ),
        0.8,
      ),
      withTick(
        row("System V message queue, sync", "ipckit", "sysv-msg", "busy", 30),
        0.05,
      ),
      row(
        "C: System V message queue, busy-wait",
        "limit",
        "sysv-msg",
        "busy",
        4,
      ),
    ],
  };
  const section = readmeSection(sysv);
  // 2100 µs against 4 µs for busy-waiting C: 525×; 80% over 1 ms.
  assertStringIncludes(section, "took 30 µs with `receiveSync()` and 2100 µs");
  assertStringIncludes(section, "(7.5× and 525.0× C busy-waiting");
  assertStringIncludes(section, "So 80% of the async queue's round trips");
  assertStringIncludes(section, "(sync: 5% and (not measured))");
  // The table has the rows too, beside their C limit.
  assertMatch(
    section,
    /\| System V message queue, async \| 2100 µs \| 4\.0 µs \(busy\) \| 525\.0× \|/,
  );
});

Deno.test("natsSection() takes the NATS rows and their spread from the results", () => {
  const section = natsSection(RESULTS);
  assert(section.startsWith(NATS_BEGIN) && section.endsWith(NATS_END));
  assertMatch(
    section,
    /\| NATS request\/reply, `Nats.client\(\)` \| 180 µs \| 270 µs \| 6 MiB\/s \|/,
  );
  // The local rows beside them come from the same run.
  assertMatch(section, /\| message queue, async \| 4\.8 µs \| 7\.1 µs \|/);
  // Pass medians 90, 180 and 360 µs; the job rate is 1000 / 410 MiB/s.
  assertStringIncludes(section, "ranged from 90 µs to 360 µs");
  assertStringIncludes(section, "(a message queue's, from 2.4 µs to 9.5 µs)");
  assertStringIncludes(section, ": 2 jobs a second stored");
  // Rows the results lack are said to be missing.
  assertMatch(
    section,
    /\| JetStream publish with ack, `WorkQueue.send\(\)` \| \(not measured\) \|/,
  );
});

Deno.test("replaceSection() refuses a README without the markers", () => {
  assertThrows(
    () => replaceSection("# No markers\n", "x"),
    Error,
    "lacks the markers",
  );
});

Deno.test("handCopiedFigures() finds measured figures outside the sections only", () => {
  const inside = replaceSection(
    replaceSection(README, `${BEGIN}\n7.1 µs and 1,149 MiB/s\n${END}`),
    `${NATS_BEGIN}\n262.6 µs\n${NATS_END}`,
    NATS_MARKERS,
  );
  assertEquals(handCopiedFigures(inside), []);
  assertEquals(
    handCopiedFigures(
      inside +
        "\nA round trip takes 7.3 µs, 959 MiB/s; idle, 0.7% of a core.\n",
    ),
    ["7.3 µs", "959 MiB/s", "0.7%"],
  );
  // Settings are whole numbers: a 50 µs spin, a 300 ms restart, 100%.
  assertEquals(
    handCopiedFigures(inside + "\nThe spin is 50 µs; 300 ms later; 100%.\n"),
    [],
  );
});

Deno.test("handCopiedFigures() lets a region that names its command carry figures, up to its end marker", () => {
  const readme = README + figuresFrom("bench:nats-requests", "101.9 µs") +
    "\nThen 156.5 µs.\n";
  assertEquals(handCopiedFigures(readme), ["156.5 µs"]);
  assertEquals(figureSources(readme), [
    { task: "bench:nats-requests", closed: true },
  ]);
  // Without its end marker, a region exempts nothing.
  const open = README +
    "<!-- bench:figures from `deno task bench:nats-requests` -->\n101.9 µs\n";
  assertEquals(handCopiedFigures(open), ["101.9 µs"]);
  assertEquals(figureSources(open), [
    { task: "bench:nats-requests", closed: false },
  ]);
});

Deno.test("bench/readme.ts --check passes once the section is written", async () => {
  await withFiles(async (readme, results) => {
    const before = await run(
      "--check",
      `--readme=${readme}`,
      `--results=${results}`,
    );
    assertEquals(before.code, 1);
    assertStringIncludes(before.stderr, "do not match bench/results.json");

    const written = await run(`--readme=${readme}`, `--results=${results}`);
    assertEquals(written.code, 0, written.stderr);
    const text = await Deno.readTextFile(readme);
    assertStringIncludes(text, "Intro: the spin is 50 µs by default.");
    assertStringIncludes(text, "## Later");

    const after = await run(
      "--check",
      `--readme=${readme}`,
      `--results=${results}`,
    );
    assertEquals(after.code, 0, after.stderr);
  });
});

Deno.test("bench/readme.ts --check fails when README and results.json disagree", async () => {
  await withFiles(async (readme, results) => {
    assertEquals(
      (await run(`--readme=${readme}`, `--results=${results}`)).code,
      0,
    );
    const text = await Deno.readTextFile(readme);
    // A figure edited by hand inside the section.
    await Deno.writeTextFile(readme, text.replace("4.8 µs", "3.9 µs"));
    const edited = await run(
      "--check",
      `--readme=${readme}`,
      `--results=${results}`,
    );
    assertEquals(edited.code, 1);
    assertStringIncludes(edited.stderr, "run `deno task bench:readme`");

    // A new run whose numbers the README does not show yet.
    await Deno.writeTextFile(readme, text);
    const newer = structuredClone(RESULTS);
    newer.rows[1].rt64.median = 9.5;
    await Deno.writeTextFile(results, JSON.stringify(newer));
    const stale = await run(
      "--check",
      `--readme=${readme}`,
      `--results=${results}`,
    );
    assertEquals(stale.code, 1);
    assertStringIncludes(stale.stderr, "do not match bench/results.json");
  });
});

Deno.test("bench/readme.ts --check fails on a figure copied outside the section", async () => {
  await withFiles(async (readme, results) => {
    assertEquals(
      (await run(`--readme=${readme}`, `--results=${results}`)).code,
      0,
    );
    const text = await Deno.readTextFile(readme);
    await Deno.writeTextFile(
      readme,
      text.replace("## Later\n", "## Later\n\nA queue answers in 4.8 µs.\n"),
    );
    const copied = await run(
      "--check",
      `--readme=${readme}`,
      `--results=${results}`,
    );
    assertEquals(copied.code, 1);
    assertStringIncludes(
      copied.stderr,
      "outside the generated sections: 4.8 µs",
    );
  });
});

Deno.test(
  "bench/readme.ts --check fails on figures credited to a task deno.json does not define",
  leakChecked(async () => {
    await withFiles(async (readme, results) => {
      assertEquals(
        (await run(`--readme=${readme}`, `--results=${results}`)).code,
        0,
      );
      const text = await Deno.readTextFile(readme);
      const region = (task: string) =>
        text.replace(
          "## Later\n",
          `## Later\n\n${figuresFrom(task, "3.3 µs")}`,
        );
      await Deno.writeTextFile(readme, region("bench:nats-requests"));
      const known = await run(
        "--check",
        `--readme=${readme}`,
        `--results=${results}`,
      );
      assertEquals(known.code, 0, known.stderr);

      await Deno.writeTextFile(readme, region("bench:no-such-task"));
      const unknown = await run(
        "--check",
        `--readme=${readme}`,
        `--results=${results}`,
      );
      assertEquals(unknown.code, 1);
      assertStringIncludes(
        unknown.stderr,
        "figures come from `deno task bench:no-such-task`, which deno.json does not define",
      );
    });
  }),
);
