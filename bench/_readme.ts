/**
 * The README's generated sections, written from a results.json: the
 * benchmark section (ipckit's rows against their C limits and the answers
 * to the questions the README asks of the numbers) and the NATS rows in
 * "Beyond one machine". bench/readme.ts puts each between its markers and
 * checks them.
 *
 * Where a measured figure may stand in README.md, the rule `--check`
 * enforces:
 *
 * 1. In a generated section, between {@linkcode BEGIN} and {@linkcode END}
 *    or {@linkcode NATS_BEGIN} and {@linkcode NATS_END}: written from
 *    bench/results.json, so it is always the last full driver run's.
 * 2. In a region that names the command that printed it, between
 *    `<!-- bench:figures from \`deno task NAME\` … -->` and
 *    {@linkcode FIGURES_END}: figures results.json does not hold, because
 *    another command measures them: `bench:nats-requests` (two request
 *    styles taking turns in one session), `bench:idle` (System V and
 *    file-lock waits) and `bench:poll-latency` in "How waiting works".
 *    They are copied by hand and go stale until someone reruns that task;
 *    the check only makes sure NAME is a task of deno.json, so every such
 *    figure says how to measure it again. Keep these regions few and short: a figure the
 *    driver could measure belongs in a generated section.
 * 3. Nowhere else.
 *
 * What counts as a figure ({@linkcode handCopiedFigures}): a time with a
 * decimal point (`7.1 µs`, `0.5 s`), a percentage with one (`0.7%`, the
 * CPU of an idle wait) or any rate in MiB/s. Whole numbers of
 * µs or ms are not caught, because the README states settings that way
 * (the 50 µs spin, a 300 ms restart in a test), so write a measured time
 * outside the sections with its decimal, or better, generate it. Counts
 * observed in tests (messages the NATS fault test lost) are outcomes of a
 * test, not of a benchmark, and are not checked. The System V figures in
 * "How waiting works" are idle CPU and wake-up latency of the backing-off
 * timer, which bench:idle and bench:poll-latency measure and the driver
 * does not. The System V round trips, beside their C limits, are the
 * driver's and stand in the benchmark section.
 *
 * @module
 */

import { idlePercent, limitRatios } from "./_report.ts";
import {
  byName,
  type Cell,
  limitRowOf,
  ordered,
  type Results,
  type Row,
  type ScalingRow,
} from "./_results.ts";

/** The line before the generated section. */
export const BEGIN =
  "<!-- bench:begin (generated from bench/results.json by `deno task bench:readme`: edit bench/_readme.ts, not this section) -->";
/** The line after it. */
export const END = "<!-- bench:end -->";
/** The line before the generated NATS table, in "Beyond one machine". */
export const NATS_BEGIN =
  "<!-- bench:nats:begin (generated from bench/results.json by `deno task bench:readme`: edit bench/_readme.ts, not this section) -->";
/** The line after it. */
export const NATS_END = "<!-- bench:nats:end -->";
/** Ends a region of figures that another command printed (rule 2 above). */
export const FIGURES_END = "<!-- bench:figures-end -->";
/** Starts one; the task's name is captured. */
const _FIGURES_BEGIN =
  "<!-- bench:figures from `deno task ([\\w:.-]+)`[^>]*-->";

/** The lines around a generated section. */
export interface Markers {
  begin: string;
  end: string;
}
/** The benchmark section's markers. */
export const MAIN_MARKERS: Markers = { begin: BEGIN, end: END };
/** The NATS section's markers. */
export const NATS_MARKERS: Markers = { begin: NATS_BEGIN, end: NATS_END };

/** The rows the prose talks about, by their driver names. */
const ROWS = {
  shmSpin: "shared memory, spin on atomics (sync)",
  shmSemSync: "shared memory + semaphores, sync",
  shmSemAsync: "shared memory + semaphores, async",
  mqSync: "message queue, sync",
  mqAsync: "message queue, async",
  mqParked: "message queue, async, spin: 0 (always park)",
  fifo: "FIFO pair, async",
  pipe: "pipe to a child (spawn), async",
  pipeDirect: "pipe to a child (spawn), child with direct: true",
  command: "Deno.Command stdin/stdout (raw bytes)",
  fork: "node:child_process fork() IPC",
  unix: "Unix socket, async",
  seqpacket: "Unix seqpacket socket, async",
  denoUnix: "Deno.connect Unix socket + hand-written frames",
  tcp: "TCP 127.0.0.1, async",
  spawnSocket: "spawn(), child with --allow-ffi (takes the socket)",
  rpcUnix: "RPC request over a Unix socket, async",
  rpcMq: "RPC request over message queues, async",
  cMqBusy: "C: POSIX message queue, busy-wait",
  cMqBlocking: "C: POSIX message queue, blocking (one CPU)",
  cUnixBusy: "C: Unix stream socket, busy-wait",
  cUnixBlocking: "C: Unix stream socket, blocking (one CPU)",
  cUnixTwoCpus: "C: Unix stream socket, blocking (two CPUs)",
  cSeqpacketBusy: "C: Unix seqpacket, busy-wait",
  cTcpBusy: "C: TCP 127.0.0.1, busy-wait",
  cPipeBlocking: "C: pipe pair, blocking (one CPU)",
  sysvMsgSync: "System V message queue, sync",
  sysvMsgAsync: "System V message queue, async",
  sysvSemSync: "System V shared memory + semaphores, sync",
  sysvSemAsync: "System V shared memory + semaphores, async",
  cSysvMsgBusy: "C: System V message queue, busy-wait",
  cSysvMsgBlocking: "C: System V message queue, blocking (one CPU)",
  cSysvMsgTwoCpus: "C: System V message queue, blocking (two CPUs)",
  cSysvSemBusy: "C: System V shared memory + semaphores, semop IPC_NOWAIT spin",
  cSysvSemBlocking: "C: System V shared memory + semaphores, semop (one CPU)",
} as const;

/**
 * The NATS section's table: driver row names and how the README calls
 * them; the local rows first, for comparison.
 */
const NATS_TABLE: readonly [string, string][] = [
  [ROWS.mqAsync, "message queue, async"],
  [ROWS.rpcMq, "request/response over two message queues"],
  [ROWS.unix, "Unix socket, async"],
  [ROWS.tcp, "TCP 127.0.0.1, async"],
  [
    "NATS request/reply, `Nats.client()`",
    "NATS request/reply, `Nats.client()`",
  ],
  [
    "nats.js `request()`/`publish()` alone",
    "nats.js `request()`/`publish()` alone (no ipckit)",
  ],
  [
    "RPC envelope (`serve`/`client`) over NATS subjects",
    "ipckit's RPC envelope (`serve`/`client`) over NATS subjects",
  ],
  [
    "NATS JetStream publish with ack, `WorkQueue.send()`",
    "JetStream publish with ack, `WorkQueue.send()`",
  ],
  [
    "NATS JetStream job through a durable consumer and back",
    "JetStream job through a durable consumer and back",
  ],
];
/** The NATS rows: in the NATS section, not in the benchmark section's table. */
const NATS_ROWS = new Set(NATS_TABLE.slice(4).map(([name]) => name));

const NOT_MEASURED = "(not measured)";

/** A duration in µs as the README prints it. */
function _us(value: number | undefined): string {
  if (value === undefined) return NOT_MEASURED;
  return `${value < 10 ? value.toFixed(1) : value.toFixed(0)} µs`;
}

function _rate(value: number | undefined): string {
  if (value === undefined) return NOT_MEASURED;
  return `${Math.round(value).toLocaleString("en-US")} MiB/s`;
}

/** "35%": a share from 0 to 1, as a whole percentage. */
function _share(value: number | undefined): string {
  return value === undefined ? NOT_MEASURED : `${(value * 100).toFixed(0)}%`;
}

function _times(value: number | undefined): string {
  return value === undefined ? NOT_MEASURED : `${value.toFixed(1)}×`;
}

function _percent(value: number | undefined): string {
  if (value === undefined) return NOT_MEASURED;
  if (value < 0.01) return "less than 0.01% of a core";
  return `${value < 1 ? value.toFixed(2) : value.toFixed(0)}% of a core`;
}

/** "busy-waiting C" or "blocking C": the C row a row is compared with. */
function _cKind(row: Row | undefined): string {
  return row?.limit?.waiting === "busy" ? "busy-waiting C" : "blocking C";
}

/** "faster than" / "slower than" / "about as fast as", for two times. */
function _than(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined) return "against";
  if (a < b * 0.9) return "faster than";
  if (a > b * 1.1) return "slower than";
  return "about as fast as";
}

/** Mentions of a row's alternatives: "`Deno.Command` 26 µs". */
function _alternatives(rows: readonly Row[], row: Row): string {
  const short: Record<string, string> = {
    [ROWS.command]: "`Deno.Command`",
    [ROWS.fork]: "`node:child_process` `fork()`",
    [ROWS.denoUnix]: "`Deno.connect` + hand-written frames",
    "npm:zeromq REQ/REP over ipc://": "`npm:zeromq`",
  };
  return rows.filter((r) => r.versus === row.transport)
    .map((r) =>
      r.rt64.median === undefined
        ? `${short[r.transport] ?? r.transport}: not measured`
        : `${short[r.transport] ?? r.transport} ${_us(r.rt64.median)}`
    ).join("; ");
}

function _table(results: Results): string[] {
  const rows = ordered(results.rows);
  const out = [
    "| mechanism (ipckit) | 64 B round trip | its C limit | ÷ limit | CPU per round trip | 4 KiB round trip | 1 MiB one way | idle receiver | alternative without ipckit, 64 B (same run) |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
  ];
  for (const row of rows) {
    if (row.kind !== "ipckit" || NATS_ROWS.has(row.transport)) continue;
    const c = limitRowOf(results.rows, row);
    const limit = c
      ? `${_us(c.rt64.median)} (${
        c.limit?.waiting === "busy" ? "busy" : "blocking"
      })`
      : "";
    out.push(
      `| ${row.transport} | ${_us(row.rt64.median)} | ${limit} | ${
        c ? _times(limitRatios(results.rows, row).rt64) : ""
      } | ${_us(row.rt64.cpuMicros)} | ${_us(row.rt4KiB.median)} | ${
        row.oneWay1MiB.median === undefined ? "" : _rate(row.oneWay1MiB.median)
      } | ${
        idlePercent(row) === undefined ? "" : _percent(idlePercent(row))
      } | ${_alternatives(rows, row)} |`,
    );
  }
  return out;
}

function _scaling(
  rows: readonly ScalingRow[],
  name: string,
  pairs: number,
): number | undefined {
  return byName(rows, name)?.cells.find((c) => c.pairs === pairs)?.rate;
}

/** The section between the markers, before `deno fmt` wraps it. */
export function readmeSection(results: Results): string {
  const rows = results.rows;
  const get = (key: keyof typeof ROWS): Row | undefined =>
    byName(rows, ROWS[key]);
  const rt = (key: keyof typeof ROWS) => get(key)?.rt64.median;
  const rt4 = (key: keyof typeof ROWS) => get(key)?.rt4KiB.median;
  const mib = (key: keyof typeof ROWS) => get(key)?.oneWay1MiB.median;
  const cpu = (key: keyof typeof ROWS) => get(key)?.rt64.cpuMicros;
  const m = results.machine;
  const idleSeconds = results.plan.idleSeconds ?? 10;
  const scaling = results.concurrency ?? [];
  const most = Math.max(
    0,
    ...scaling.flatMap((r) => r.cells.map((c) => c.pairs)),
  );
  const mqAsync = get("mqAsync");
  const cMqBusy = get("cMqBusy");
  const limitOf = (key: keyof typeof ROWS) => {
    const row = get(key);
    return row ? limitRowOf(rows, row)?.rt64.median : undefined;
  };
  const ratioOf = (key: keyof typeof ROWS) => {
    const row = get(key);
    return row ? limitRatios(rows, row).rt64 : undefined;
  };
  const out: string[] = [
    BEGIN,
    "",
    `What they cost, measured by \`deno task bench\` (the driver in ` +
    `\`bench/driver.ts\`) on ${
      results.date.slice(0, 10)
    }, on the ${m.cores}-core ` +
    `virtual machine ipckit is developed on (${m.cpu}, Linux ${m.kernel}, ` +
    `Deno ${m.deno}): round trips to another process, medians over ` +
    `${results.plan.roundTrips.toLocaleString("en-US")} round trips, beside ` +
    "the same mechanism in C on the same machine in the same run " +
    "([bench/c/](bench/c/), both ends C): the limit. A row that spins " +
    "before it sleeps is compared with C that busy-waits, a row that sleeps " +
    "at once with C that blocks, its two processes pinned to one CPU. The " +
    "full tables, with p99, the method, the " +
    "CPU price, concurrency and throughput against message size, are in " +
    "[bench/results.md](bench/results.md).",
    "",
    "![64-byte round trip per mechanism beside its C limit, log scale](bench/results.svg)",
    "",
    ..._table(results),
    "",
    "These are one run on a shared virtual machine: take ratios within the " +
    "run, not absolute numbers, and run `deno task bench` on your machine. " +
    "The rows where ipckit can retry a non-blocking call before it sleeps " +
    "(shared memory, message queues, FIFOs, ipckit's own sockets, a child " +
    "that takes `spawn()`'s socket or opens its pipes with " +
    "`parentChannel({ direct: true })`: the `spin` option, 50 µs by " +
    "default) pay no wake-up when the answer comes quickly: " +
    `${_us(rt("mqAsync"))} for a message queue against ` +
    `${_us(rt("mqParked"))} with \`spin: 0\`. Where Deno's runtime owns ` +
    "the descriptor (pipes to a child that uses Deno's stdio, " +
    "`Deno.connect`) every answer waits in its event loop: " +
    `${_us(rt("pipe"))} for \`spawn()\` pipes, against ` +
    `${_us(rt("cPipeBlocking"))} for C blocking on a pipe pair with its two ` +
    "processes on one CPU. For C blocking on a Unix socket: " +
    `${_us(rt("cUnixBlocking"))} on one CPU and ` +
    `${_us(rt("cUnixTwoCpus"))} on two: on a virtual machine, a wake-up on ` +
    "another CPU may first have to bring that CPU out of idle.",
    "",
    "**How far is ipckit from the limit?** The message queue takes " +
    `${_times(ratioOf("mqAsync"))} the time of C busy-waiting on the same ` +
    `queue (${_us(rt("mqAsync"))} against ${_us(rt("cMqBusy"))}), shared ` +
    `memory with spinning ${_times(ratioOf("shmSpin"))}, a FIFO pair ` +
    `${_times(ratioOf("fifo"))}, a Unix socket ${_times(ratioOf("unix"))} ` +
    `${_cKind(get("unix"))}. What is left is the price of the runtime: ` +
    "every libc call " +
    "crosses from V8 through `Deno.dlopen`, every wake-up of the event loop " +
    "passes through Deno's own threads, and every message is a JavaScript " +
    "object. [bench/results.md](bench/results.md) has every row's ratio.",
    "",
    "**How close are ipckit's own sockets?** ipckit makes its sockets " +
    "itself, through libc, and waits on them as on a queue: a spin, then the " +
    "reactor. A 64-byte round trip over a Unix stream socket takes " +
    `${_us(rt("unix"))} (${_times(ratioOf("unix"))} ` +
    `${_cKind(get("unix"))}'s ${_us(limitOf("unix"))}; ` +
    `\`Deno.connect\` with hand-written frames ${_us(rt("denoUnix"))}), ` +
    `over a seqpacket socket ${_us(rt("seqpacket"))} (C busy-waiting ` +
    `${_us(rt("cSeqpacketBusy"))}), over TCP on loopback ` +
    `${_us(rt("tcp"))} (C busy-waiting ${_us(rt("cTcpBusy"))}). A child ` +
    "with `--allow-ffi` takes the socket `spawn()` offers it: " +
    `${_us(rt("spawnSocket"))}, against ${_us(rt("fifo"))} for a FIFO pair ` +
    `and ${_us(rt("fork"))} for \`node:child_process\` \`fork()\`. ` +
    "Request/response over a Unix socket takes " +
    `${_us(rt("rpcUnix"))}, over two message queues ${_us(rt("rpcMq"))}; ` +
    `1 MiB moves one way at ${_rate(mib("unix"))} over a Unix socket and ` +
    `${_rate(mib("fifo"))} through a FIFO pair. \`deno task bench:sockets\` ` +
    "checks these against the targets of issue 13 in a run of its own.",
    "",
    "**What does spinning cost?** CPU. A 64-byte message queue round trip " +
    `costs on average ${_us(cpu("mqAsync"))} of CPU (both processes, user ` +
    `and system) with the default spin and ${_us(cpu("mqParked"))} with ` +
    `\`spin: 0\`; C costs ${_us(cpu("cMqBusy"))} busy-waiting and ` +
    `${_us(cpu("cMqBlocking"))} blocking (on a shared machine the average ` +
    "includes the round trips that waited for a descheduled peer, which a " +
    "busy-waiting one spins through). A spin is bounded, so an idle " +
    `receiver sleeps: waiting ${idleSeconds} s for a message that does not ` +
    `come, an ipckit message queue receiver used ${_idle(mqAsync)}, a C ` +
    `receiver that busy-waits ${_idle(cMqBusy)}. ` +
    (most > 1
      ? `And spinning stops paying once processes outnumber cores: with ${most} ` +
        `pairs at once on ${m.cores} cores, the message queue made ` +
        `${_roundTrips(_scaling(scaling, ROWS.mqAsync, most))} with the ` +
        `default spin and ${
          _roundTrips(_scaling(scaling, ROWS.mqParked, most))
        } with \`spin: 0\`; C made ${
          _roundTrips(_scaling(scaling, ROWS.cMqBusy, most))
        } busy-waiting and ${
          _roundTrips(_scaling(scaling, ROWS.cMqBlocking, most))
        } blocking. `
      : "") +
    "Set `spin: 0` where CPU matters more than latency.",
    "",
    "**Shared memory or a message queue?** Shared memory moves data without " +
    `a system call: a 64-byte round trip through it is ${_us(rt("shmSpin"))} ` +
    `(${_us(rt("shmSemSync"))} with semaphores to take turns) against ` +
    `${_us(rt("mqSync"))} for a message queue, and 1 MiB moves at ` +
    `${_rate(mib("shmSpin"))} against ${_rate(mib("mqSync"))} (a queue ` +
    "carries at most `msgsize_max`" +
    (m.mqueue ? `, ${m.mqueue.msgsizeMax / 1024} KiB here,` : "") +
    " per message, so 1 MiB is many messages and as many copies each way). " +
    "The price is everything a queue does for you: message boundaries, " +
    "priorities, blocking when empty or full, and a consistent message even " +
    "when a process dies mid-write. Choose a message queue for discrete " +
    "jobs and events, and shared memory when the data is large or hot " +
    "(frames, sensor arrays, a shared table) and you can afford to " +
    "synchronise it yourself, with semaphores, a `Mutex` or atomics.",
    "",
    "**What does a Unix socket cost over a pipe?** It depends on who does " +
    "the I/O. A Deno process does its own stdin and stdout I/O on its " +
    "blocking thread pool (`strace -f` shows the child's `write(1, …)` on " +
    "pool threads), so each message through a pipe to a Deno child that uses " +
    `Deno's stdio pays thread hand-offs: ${_us(rt("pipe"))} for ` +
    "`spawn()` pipes, and `node:child_process` `fork()` (a socket under " +
    `the hood, ${_us(rt("fork"))}) is ${_than(rt("fork"), rt("pipe"))} ` +
    "plain pipes. That is why `spawn()` offers a child with `--allow-ffi` a " +
    "Unix socket, which ipckit then reads and writes on both main threads, " +
    `spinning before it sleeps: ${_us(rt("spawnSocket"))}; ` +
    "`parentChannel({ direct: true })` reads and writes the pipes " +
    `themselves in the child: ${_us(rt("pipeDirect"))}, the parent's end ` +
    "still a Deno stream. Pick plain pipes for what only they give: a " +
    "child that needs no permission beyond `--allow-run`, and " +
    "interoperability with any program that reads stdin.",
    "",
    "**What does crossing the event loop cost, compared with `*Sync`?** " +
    `${_us(rt("mqAsync"))} for \`await receive()\` against ` +
    `${_us(rt("mqSync"))} for \`receiveSync()\`` +
    (rt("mqAsync") && rt("mqSync")
      ? ` (${(rt("mqAsync")! / rt("mqSync")!).toFixed(2)}×)`
      : "") +
    ", because both first retry the non-blocking call for up to 50 µs, and " +
    "the async form yields to other promise continuations while it does. " +
    "When a wait outlasts the spin, the async form parks on the reactor's " +
    "`epoll_wait` on Deno's thread pool and is woken from there, two thread " +
    `hand-offs: \`spin: 0\` shows that price, ` +
    `${_us(rt("mqParked"))} per round trip.`,
    "",
    ..._sysvParagraph(results),
    "**How does IPC extend to a distributed system?** Everything above stays " +
    "on one machine except TCP and UDP. A TCP round trip on loopback costs " +
    `${_us(rt("tcp"))} against ${_us(rt("unix"))} for a Unix socket, and ` +
    "ipckit's `listen`/`connect` use the same framing for both, so a service " +
    "can move from a Unix socket to TCP by changing its address. " +
    "Request/response (`serve`/`client`) runs unchanged on any channel " +
    `(${_us(rt("rpcMq"))} per request over two message queues). Past one ` +
    "machine, and past a handful of peers, put a broker between processes " +
    "instead of connecting every pair: " +
    "[Beyond one machine](#beyond-one-machine-nats) runs the same channels " +
    "over NATS.",
    "",
    "**How do I remove an IPC bottleneck?** Measure first (`deno task " +
    "bench`, then `deno run --cpu-prof` and `strace -c -f` on your own " +
    "code), then:",
    "",
    `- copy less: shared memory lets both processes use the same pages ` +
    `(${_rate(mib("shmSpin"))} against ${_rate(mib("mqSync"))} through a ` +
    "message queue);",
    "- batch: a round trip through a message queue costs " +
    `${_us(rt4("mqAsync"))} for 4 KiB and ${_us(rt("mqAsync"))} for 64 bytes` +
    (rt4("mqAsync") && rt("mqAsync")
      ? `, so a byte sent in a 4 KiB message costs ${
        ((rt("mqAsync")! / 64) / (rt4("mqAsync")! / 4096)).toFixed(0)
      } times less`
      : "") +
    ": send fewer, larger messages;",
    "- spin before sleeping where latency matters and a core is free " +
    `(${_us(rt("mqAsync"))} against ${_us(rt("mqParked"))} on a message ` +
    "queue with `spin: 0`), and not where processes outnumber cores;",
    "- make fewer system calls and thread hand-offs: a child with " +
    "`--allow-ffi` that takes `spawn()`'s socket rather than one that uses " +
    "Deno's stdio, ipckit's sockets rather than `Deno.connect`, and a " +
    "message queue or shared memory when both ends are on this machine.",
    "",
    END,
  ];
  return out.join("\n");
}

/**
 * What the System V rows cost and where their time goes, with a blank line
 * after it; nothing in a run that did not measure them (a run before they
 * existed, or a machine without System V: their cells say why).
 */
function _sysvParagraph(results: Results): string[] {
  const rows = results.rows;
  const get = (key: keyof typeof ROWS): Row | undefined =>
    byName(rows, ROWS[key]);
  const rt = (key: keyof typeof ROWS) => get(key)?.rt64.median;
  const cpu = (key: keyof typeof ROWS) => get(key)?.rt64.cpuMicros;
  const slow = (key: keyof typeof ROWS) => get(key)?.rt64.overOneMs;
  const ratioOf = (key: keyof typeof ROWS) => {
    const row = get(key);
    return row ? limitRatios(rows, row).rt64 : undefined;
  };
  if (rt("sysvMsgAsync") === undefined && rt("sysvSemAsync") === undefined) {
    return [];
  }
  return [
    "**What do System V waits cost?** System V queues and semaphore sets " +
    "give nothing to poll ([How waiting works](#how-waiting-works)): an " +
    "async receive or wait spins for 50 µs, then sleeps on a timer that " +
    "ticks 1 ms after activity and doubles to 32 ms while nothing changes; " +
    "the sync forms spin, then block in `msgrcv` or `semop` as C does. A " +
    "64-byte round trip over two System V queues took " +
    `${_us(rt("sysvMsgSync"))} with \`receiveSync()\` and ` +
    `${_us(rt("sysvMsgAsync"))} with \`await receive()\` ` +
    `(${_times(ratioOf("sysvMsgSync"))} and ` +
    `${_times(ratioOf("sysvMsgAsync"))} C busy-waiting on the same queues, ` +
    `${_us(rt("cSysvMsgBusy"))}; C blocking on one CPU ` +
    `${_us(rt("cSysvMsgBlocking"))}); through a System V segment with a ` +
    `semaphore set to take turns, ${_us(rt("sysvSemSync"))} sync and ` +
    `${_us(rt("sysvSemAsync"))} async (C ${_us(rt("cSysvSemBusy"))} ` +
    `busy-waiting, ${_us(rt("cSysvSemBlocking"))} blocking). Where the ` +
    "time goes: an answer that comes within the spin is taken at once, one " +
    "that comes later waits for the timer. An answer comes late when the " +
    "peer, which also spins 50 µs before it blocks, has fallen asleep and " +
    "must be woken: on this virtual machine that can take longer than the " +
    "spin (C blocking with its two processes on two CPUs: " +
    `${_us(rt("cSysvMsgTwoCpus"))}). The timer's first tick falls on the ` +
    "next whole millisecond of a clock every wait shares, which may come " +
    "before the answer could; the delay then doubles, and the next tick " +
    "falls on the next even millisecond. So " +
    `${_share(slow("sysvMsgAsync"))} of the async queue's round trips and ` +
    `${_share(slow("sysvSemAsync"))} of the async semaphores' took longer ` +
    `than 1 ms (sync: ${_share(slow("sysvMsgSync"))} and ` +
    `${_share(slow("sysvSemSync"))}). A profile of both processes ` +
    "(`deno run --cpu-prof`, then `bench/cpu_profile.ts`) shows the same: " +
    "in an async row this process is idle, waiting for the timer, while " +
    "the peer is blocked in `msgrcv`; in a sync row the round trips' time " +
    "is spent inside `msgsnd` and `msgrcv` on both sides, the calls that " +
    "wake the other process and wait for it. The spins are paid in CPU: " +
    `${_us(cpu("sysvMsgAsync"))} per async queue round trip, both ` +
    `processes, against ${_us(cpu("cSysvMsgBusy"))} for C busy-waiting. ` +
    "(The idle column is the peer's, blocked in `msgrcv` or `semop`; what an " +
    "idle async wait costs is in [How waiting works](#how-waiting-works).) " +
    "Use System V objects to join programs that use them, the sync forms " +
    "(in a worker) where their latency matters, and POSIX queues and " +
    "semaphores in new code.",
    "",
  ];
}

/** "1.4 ms of CPU in 10 s (0.01% of a core)". */
function _idle(row: Row | undefined): string {
  const idle = row?.idle;
  if (idle?.cpuMillis === undefined || !idle.seconds) return NOT_MEASURED;
  return `${idle.cpuMillis.toFixed(idle.cpuMillis < 10 ? 1 : 0)} ms of CPU ` +
    `(${_percent(idlePercent(row!))})`;
}

function _roundTrips(rate: number | undefined): string {
  return rate === undefined
    ? NOT_MEASURED
    : `${Math.round(rate).toLocaleString("en-US")} round trips per second`;
}

/** "80 µs to 260 µs", the spread of a cell's pass medians. */
function _spread(cell: Cell | undefined): string {
  const medians = cell?.passMedians;
  if (!medians?.length) return NOT_MEASURED;
  return `${_us(Math.min(...medians))} to ${_us(Math.max(...medians))}`;
}

/** The NATS section's table and what it shows, before `deno fmt` wraps it. */
export function natsSection(results: Results): string {
  const rows = results.rows;
  const table = [
    "| same-machine or NATS | 64 B round trip | CPU per round trip | 1 MiB one way |",
    "| --- | ---: | ---: | ---: |",
  ];
  for (const [name, label] of NATS_TABLE) {
    const row = byName(rows, name);
    // A row that says why it has no 1 MiB cell (latency only) leaves it
    // blank; a row the run did not measure says so.
    const oneWay = row?.oneWay1MiB.median === undefined && row?.oneWay1MiB.note
      ? ""
      : _rate(row?.oneWay1MiB.median);
    table.push(
      `| ${label} | ${_us(row?.rt64.median)} | ${
        _us(row?.rt64.cpuMicros)
      } | ${oneWay} |`,
    );
  }
  const request = byName(rows, NATS_TABLE[4][0]);
  const job = byName(rows, NATS_TABLE[8][0])?.oneWay1MiB.median;
  const passes = results.plan.rounds;
  const out = [
    NATS_BEGIN,
    "",
    `In the run of \`${results.command}\` on ${
      results.date.slice(0, 10)
    } that measured the local rows above (server, client and peer all on ` +
    "127.0.0.1; the 1 MiB column of the NATS rows is one-way sends on " +
    "`Nats.channel()`, or nats.js `publish()`, each acknowledged by the " +
    "peer; the CPU is every process's, the server's included):",
    "",
    ...table,
    "",
    passes > 1
      ? "Each pass of a NATS cell starts its own server and peer, and the " +
        "cells move between sessions with how three processes land on " +
        `${results.machine.cores} cores: over the ${passes} passes of this ` +
        "run, the median `Nats.client()` request/reply of a pass ranged " +
        `from ${_spread(request?.rt64)} (a message queue's, from ` +
        `${_spread(byName(rows, ROWS.mqAsync)?.rt64)}).`
      : "Each pass of a NATS cell starts its own server and peer; this run " +
        "made one pass per cell, so it shows nothing of how much a session " +
        "differs from the next (a full run makes several).",
    "The last row's 1 MiB figure is the durable consumer's rate with 1 MiB " +
    `jobs: ${
      job === undefined ? NOT_MEASURED : `${Math.round(job)} jobs a second`
    } stored, delivered, worked, acknowledged and answered.`,
    "",
    NATS_END,
  ];
  return out.join("\n");
}

/**
 * `readme` with the text between `markers` (markers included) replaced by
 * `section`.
 */
export function replaceSection(
  readme: string,
  section: string,
  markers: Markers = MAIN_MARKERS,
): string {
  const begin = readme.indexOf(markers.begin);
  const end = readme.indexOf(markers.end);
  if (begin < 0 || end < begin) {
    throw new Error(
      `Cannot update README.md: it lacks the markers ${markers.begin} and ${markers.end}`,
    );
  }
  return readme.slice(0, begin) + section +
    readme.slice(end + markers.end.length);
}

/** `readme` with both generated sections written from `results`. */
export function writeSections(readme: string, results: Results): string {
  const main = replaceSection(readme, readmeSection(results), MAIN_MARKERS);
  return replaceSection(main, natsSection(results), NATS_MARKERS);
}

/** `readme` without its generated sections and other commands' regions. */
function _unchecked(readme: string): string {
  let rest = readme;
  for (const { begin, end } of [MAIN_MARKERS, NATS_MARKERS]) {
    const from = rest.indexOf(begin);
    const to = rest.indexOf(end);
    if (from >= 0 && to > from) {
      rest = rest.slice(0, from) + rest.slice(to + end.length);
    }
  }
  return rest.replace(
    new RegExp(`${_FIGURES_BEGIN}[\\s\\S]*?${FIGURES_END}`, "g"),
    "",
  );
}

/**
 * Measured-looking figures ("7.1 µs", "1,149 MiB/s") outside the generated
 * sections and outside the regions that name the command that printed
 * them: figures copied by hand, which go stale with the next run.
 */
export function handCopiedFigures(readme: string): string[] {
  const pattern =
    /\b\d[\d,]*\.\d+\s?(?:µs|ms|ns|s)\b|\b\d[\d,]*\.\d+%|\b\d[\d,]*\s?MiB\/s/g;
  return [..._unchecked(readme).matchAll(pattern)].map((match) => match[0]);
}

/**
 * The tasks that regions of figures from other commands name
 * (`<!-- bench:figures from \`deno task NAME\` … -->`), and whether each
 * region is closed by {@linkcode FIGURES_END}.
 */
export function figureSources(
  readme: string,
): { task: string; closed: boolean }[] {
  const begin = new RegExp(_FIGURES_BEGIN, "g");
  return [...readme.matchAll(begin)].map((match) => {
    const after = readme.slice(match.index! + match[0].length);
    const close = after.indexOf(FIGURES_END);
    const next = after.search(new RegExp(_FIGURES_BEGIN));
    return {
      task: match[1],
      closed: close >= 0 && (next < 0 || close < next),
    };
  });
}
