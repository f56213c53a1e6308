/**
 * How bench/cpu_profile.ts reads a V8 CPU profile: self time per function
 * and per kind of work, the script the process ran, and the shares it
 * prints.
 */

import { assertEquals, assertThrows } from "@std/assert";
import {
  bucketOf,
  type CallFrame,
  frameName,
  mainModule,
  OTHER,
  type Profile,
  table,
  tally,
} from "../bench/_cpu_profile.ts";

const ROOT = "file:///work/ipckit";

function frame(
  functionName: string,
  url = "",
  lineNumber = -1,
  scriptId = "0",
): CallFrame {
  return { functionName, url, lineNumber, scriptId };
}

/** A profile whose samples spend `micros[i]` in `frames[i]`. */
function profileOf(entries: [CallFrame, number][]): Profile {
  return {
    nodes: entries.map(([callFrame], i) => ({ id: i + 1, callFrame })),
    samples: entries.map((_, i) => i + 1),
    timeDeltas: entries.map(([, micros]) => micros),
  };
}

Deno.test("bucketOf() tells waiting, libc calls, the reactor and encoding apart", () => {
  const cases: [CallFrame, string][] = [
    [frame("(idle)"), "idle (nothing to run)"],
    [frame("(garbage collector)"), "garbage collection"],
    [frame("(program)"), "V8/Deno native outside JS (program)"],
    [
      frame("pollBlocking", `${ROOT}/ffi/poll.ts`, 55),
      "blocked in poll()/sem_wait() on this thread",
    ],
    [
      frame("op_ffi_call_nonblocking"),
      "reactor: parking a wait on Deno's thread pool",
    ],
    [
      frame("#dispatch", `${ROOT}/mechanisms/_wait/reactor.ts`, 222),
      "reactor and wait bookkeeping (ipckit JS)",
    ],
    [
      frame("", `${ROOT}/ffi/epoll.ts`, 64),
      "reactor and wait bookkeeping (ipckit JS)",
    ],
    [
      frame("retrySync", `${ROOT}/mechanisms/_wait/retry.ts`, 90),
      "spin and retry loops (ipckit JS)",
    ],
    [frame("decode", `${ROOT}/mechanisms/codec.ts`, 281), "encode/decode"],
    [
      frame("next", `${ROOT}/mechanisms/_stream/frames.ts`, 10),
      "framing",
    ],
    [
      frame("", `${ROOT}/mechanisms/message_queue.ts`, 850),
      "ipckit JS + the libc calls it makes through FFI",
    ],
    [frame("op_now"), "Deno ops and native functions (Rust) called from JS"],
    [
      frame("writeBuffer"),
      "Deno ops and native functions (Rust) called from JS",
    ],
    [
      frame("then", "ext:core/01_core.js", 1),
      "Deno runtime JS (promises, streams, timers)",
    ],
    [
      frame("timeRoundTrips", `${ROOT}/bench/_measure.ts`, 51),
      "the benchmark's own code",
    ],
    [
      frame("parse", "http://127.0.0.1:4873/@std/cli/1.0.0/parse_args.ts", 1),
      "libraries (@std, npm)",
    ],
    [frame("mystery", "blob:123", 1), OTHER],
  ];
  for (const [callFrame, bucket] of cases) {
    assertEquals(bucketOf(callFrame), bucket, frameName(callFrame));
  }
});

Deno.test("tally() sums self time per function and per bucket", () => {
  const receive = frame("", `${ROOT}/mechanisms/message_queue.ts`, 850);
  const send = frame("", `${ROOT}/mechanisms/message_queue.ts`, 798);
  const profile = profileOf([
    [frame("(idle)"), 500],
    [receive, 200],
    [send, 100],
    [receive, 50],
    [frame("decode", `${ROOT}/mechanisms/codec.ts`, 281), 150],
  ]);
  const functions = tally(profile, frameName);
  assertEquals(functions.total, 1000);
  assertEquals(functions.self.get("(anonymous) message_queue.ts:851"), 250);
  assertEquals(functions.self.get("(anonymous) message_queue.ts:799"), 100);
  const buckets = tally(profile, bucketOf);
  assertEquals(
    Object.fromEntries(buckets.self),
    {
      "idle (nothing to run)": 500,
      "ipckit JS + the libc calls it makes through FFI": 350,
      "encode/decode": 150,
    },
  );
});

Deno.test("tally() counts everything under a blocking wait as waiting", () => {
  const wait = frame(
    "semWaitSync",
    `${ROOT}/mechanisms/_wait/semaphore_calls.ts`,
    88,
  );
  const semWait = frame("", `${ROOT}/mechanisms/_wait/semaphore_calls.ts`, 95);
  const post = frame(
    "semPost",
    `${ROOT}/mechanisms/_wait/semaphore_calls.ts`,
    67,
  );
  const profile: Profile = {
    nodes: [
      { id: 1, callFrame: frame("(root)"), children: [2, 4] },
      { id: 2, callFrame: wait, children: [3] },
      { id: 3, callFrame: semWait },
      { id: 4, callFrame: post },
    ],
    samples: [3, 2, 4],
    timeDeltas: [70, 10, 20],
  };
  assertEquals(Object.fromEntries(tally(profile, bucketOf).self), {
    "blocked in poll()/sem_wait() on this thread": 80,
    "ipckit JS + the libc calls it makes through FFI": 20,
  });
  // Outside a wait, the same function is work.
  assertEquals(
    bucketOf(semWait),
    "ipckit JS + the libc calls it makes through FFI",
  );
});

Deno.test("tally() rejects a sample that names no node", () => {
  const profile: Profile = { nodes: [], samples: [7], timeDeltas: [1] };
  assertThrows(() => tally(profile, frameName), TypeError, "node 7");
});

Deno.test("table() gives shares of all time and of the time not idle, largest first", () => {
  const profile = profileOf([
    [frame("(idle)"), 600],
    [frame("op_now"), 100],
    [frame("", `${ROOT}/mechanisms/fifo.ts`, 9), 300],
  ]);
  assertEquals(table(tally(profile, frameName), 10), [
    "   60.0%      —  (idle)",
    "   30.0%  75.0%  (anonymous) fifo.ts:10",
    "   10.0%  25.0%  op_now",
  ]);
  assertEquals(table(tally(profile, bucketOf), 2), [
    "   60.0%      —  idle (nothing to run)",
    "   30.0%  75.0%  ipckit JS + the libc calls it makes through FFI",
  ]);
});

Deno.test("mainModule() names the local script V8 compiled first", () => {
  const profile = profileOf([
    [frame("", `${ROOT}/ffi/errno.ts`, 0, "84"), 1],
    [frame("", "ext:core/01_core.js", 0, "3"), 1],
    [frame("", `${ROOT}/bench/fixtures/mq_echo.ts`, 0, "50"), 1],
    [frame("", `${ROOT}/mechanisms/message_queue.ts`, 776, "58"), 1],
  ]);
  assertEquals(mainModule(profile), `${ROOT}/bench/fixtures/mq_echo.ts`);
  assertEquals(mainModule(profileOf([[frame("(idle)"), 1]])), undefined);
});
