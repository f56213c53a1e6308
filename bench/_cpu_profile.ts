/**
 * Reading V8 CPU profiles (`deno run --cpu-prof`): self time per function,
 * and the same time grouped into a few buckets that say what kind of work
 * it was (waiting, libc calls through FFI, the reactor, encoding, ...).
 * bench/cpu_profile.ts prints them.
 *
 * @module
 */

/** One function as the profiler names it. */
export interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  scriptId?: string;
}

/** The parts of a .cpuprofile this module reads. */
export interface Profile {
  nodes: { id: number; callFrame: CallFrame; children?: number[] }[];
  samples: number[];
  timeDeltas: number[];
}

/** Microseconds of self time per key, and their sum. */
export interface Tally {
  total: number;
  self: Map<string, number>;
}

/**
 * What kind of work a function's self time is, first match wins. The
 * profiler cannot see inside a libc call made through `Deno.dlopen`: its
 * time (the system call and the FFI call around it) lands on the
 * JavaScript function that makes it, so those functions form their own
 * buckets by file, and `perf` splits them further (kernel, libc, Deno).
 */
export const BUCKETS: readonly {
  bucket: string;
  matches: (frame: CallFrame, stack: readonly CallFrame[]) => boolean;
}[] = [
  {
    bucket: "idle (nothing to run)",
    matches: (f) => f.functionName === "(idle)",
  },
  {
    bucket: "garbage collection",
    matches: (f) => f.functionName === "(garbage collector)",
  },
  {
    bucket: "V8/Deno native outside JS (program)",
    matches: (f) =>
      f.functionName === "(program)" || f.functionName === "(root)",
  },
  {
    // The thread blocks in the kernel here, waiting for the peer: all of
    // it, down to the libc call, is waiting rather than work.
    bucket: "blocked in poll()/sem_wait() on this thread",
    matches: (_, stack) => stack.some(_isBlockingWait),
  },
  {
    // epoll_wait/poll/futex_waitv handed to Deno's thread pool: the time
    // is the hand-off and its promise, the wait itself is on another thread.
    bucket: "reactor: parking a wait on Deno's thread pool",
    matches: (f) => f.functionName === "op_ffi_call_nonblocking",
  },
  {
    bucket: "reactor and wait bookkeeping (ipckit JS)",
    matches: (f) =>
      /\/mechanisms\/_wait\/(reactor|poll_group|race|deadline)/.test(f.url) ||
      /\/ffi\/(epoll|poll)\.ts$/.test(f.url),
  },
  {
    bucket: "spin and retry loops (ipckit JS)",
    matches: (f) => /\/mechanisms\/_wait\/(spin|retry)\.ts$/.test(f.url),
  },
  {
    bucket: "encode/decode",
    matches: (f) =>
      /\/mechanisms\/(codec|layout)\.ts$|\/mechanisms\/_record\//.test(f.url),
  },
  {
    bucket: "framing",
    matches: (f) =>
      /\/mechanisms\/(framing\.ts$|_stream\/frames\.ts$)/.test(f.url),
  },
  {
    bucket: "ipckit JS + the libc calls it makes through FFI",
    matches: (f) => /\/(mechanisms|ffi)\//.test(f.url),
  },
  {
    // Ops, and native functions such as node:net's writeBuffer (a write
    // system call made by Deno's Rust): no script, no "(...)" name.
    bucket: "Deno ops and native functions (Rust) called from JS",
    matches: (f) => f.url === "" && !f.functionName.startsWith("("),
  },
  {
    bucket: "Deno runtime JS (promises, streams, timers)",
    matches: (f) => /^(ext|node):/.test(f.url),
  },
  {
    bucket: "the benchmark's own code",
    matches: (f) => /\/bench\//.test(f.url),
  },
  {
    bucket: "libraries (@std, npm)",
    matches: (f) => /^https?:|\/npm\//.test(f.url),
  },
];

/** The calls that block the thread until the peer acts (or time runs out). */
function _isBlockingWait(frame: CallFrame): boolean {
  return (frame.functionName === "pollBlocking" &&
    frame.url.endsWith("/ffi/poll.ts")) ||
    (frame.functionName === "semWaitSync" &&
      frame.url.endsWith("/mechanisms/_wait/semaphore_calls.ts"));
}

/** The bucket for frames no rule claims. */
export const OTHER = "other";

/**
 * The bucket of one sample: its function, and the functions that called
 * it (`stack`, innermost first, `frame` included).
 */
export function bucketOf(
  frame: CallFrame,
  stack: readonly CallFrame[] = [frame],
): string {
  return BUCKETS.find((rule) => rule.matches(frame, stack))?.bucket ?? OTHER;
}

/** A function's name with the file and line it starts on. */
export function frameName(frame: CallFrame): string {
  const file = frame.url.split("/").at(-1);
  return `${frame.functionName || "(anonymous)"}${
    file ? ` ${file}:${frame.lineNumber + 1}` : ""
  }`;
}

/**
 * Self time summed per `key` of each sample's function (given the stack
 * it was called from, innermost first).
 */
export function tally(
  profile: Profile,
  key: (frame: CallFrame, stack: readonly CallFrame[]) => string,
): Tally {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parents = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parents.set(child, node.id);
  }
  const stacks = new Map<number, CallFrame[]>();
  const stackOf = (id: number): CallFrame[] => {
    let stack = stacks.get(id);
    if (stack === undefined) {
      stack = [];
      for (let at: number | undefined = id; at !== undefined;) {
        stack.push(nodes.get(at)!.callFrame);
        at = parents.get(at);
      }
      stacks.set(id, stack);
    }
    return stack;
  };
  const self = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const node = nodes.get(id);
    if (node === undefined) {
      throw new TypeError(
        `Cannot read the profile: sample ${i} names node ${id}, which it does not have`,
      );
    }
    const name = key(node.callFrame, stackOf(id));
    const delta = profile.timeDeltas[i] ?? 0;
    self.set(name, (self.get(name) ?? 0) + delta);
    total += delta;
  });
  return { total, self };
}

/**
 * The script a profile's process ran: of the local modules it loaded, the
 * one V8 compiled first (the lowest script id).
 */
export function mainModule(profile: Profile): string | undefined {
  let best: { id: number; url: string } | undefined;
  for (const { callFrame } of profile.nodes) {
    if (!callFrame.url.startsWith("file://")) continue;
    const id = Number(callFrame.scriptId);
    if (Number.isFinite(id) && (best === undefined || id < best.id)) {
      best = { id, url: callFrame.url };
    }
  }
  return best?.url;
}

/**
 * A table of the largest entries: share of all sampled time, and share of
 * the time the process was not idle (what it spent on the CPU or blocked
 * in a call).
 */
export function table(tallied: Tally, top: number): string[] {
  const idle = tallied.self.get("(idle)") ??
    tallied.self.get(BUCKETS[0].bucket) ?? 0;
  const busy = tallied.total - idle;
  const percent = (part: number, whole: number) =>
    whole > 0 ? `${(100 * part / whole).toFixed(1)}%`.padStart(6) : "     —";
  return [...tallied.self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, micros]) =>
      `  ${percent(micros, tallied.total)} ${
        name === "(idle)" || name === BUCKETS[0].bucket
          ? "     —"
          : percent(micros, busy)
      }  ${name}`
    );
}
