import { assert, assertEquals, assertMatch, assertThrows } from "@std/assert";
import { onSignal, sendSignal, signals } from "../mod.ts";
import {
  commandSucceeds,
  leakChecked,
  runFixture,
  spawnFixture,
  testNeeding,
} from "./_helpers.ts";

async function firstLine(child: Deno.ChildProcess): Promise<{
  line: string;
  reader: ReadableStreamDefaultReader<Uint8Array>;
}> {
  const reader = child.stdout.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!text.includes("\n")) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  return { line: text.split("\n")[0], reader };
}

function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

Deno.test(
  "sendSignal() reaches a child, and the child's signal reaches us",
  leakChecked(async () => {
    using answers = signals("SIGUSR2");
    const child = spawnFixture("signal_peer.ts", ["--allow-run"], [
      "wait",
      String(Deno.pid),
    ]);
    const { line, reader } = await firstLine(child);
    assertEquals(line, "ready");
    sendSignal(child.pid, "SIGUSR1");
    const answer = await withTimeout(
      answers.next(),
      10_000,
      "SIGUSR2 from the child",
    );
    assertEquals(answer, { done: false, value: "SIGUSR2" });
    reader.releaseLock();
    const output = await child.output();
    assertEquals(output.code, 0, new TextDecoder().decode(output.stderr));
    assertEquals(new TextDecoder().decode(output.stdout), "answered\n");
  }),
);

Deno.test(
  "onSignal() calls its handler until the subscription is disposed",
  async () => {
    const seen: string[] = [];
    // A second listener stays for the whole test: without any listener the
    // default action of SIGUSR1 would end this process.
    using all = signals("SIGUSR1");
    {
      using subscription = onSignal("SIGUSR1", (name) => seen.push(name));
      assertEquals(subscription.active, true);
      sendSignal(Deno.pid, "SIGUSR1");
      await withTimeout(all.next(), 5000, "first SIGUSR1");
      assertEquals(seen, ["SIGUSR1"]);
    }
    sendSignal(Deno.pid, "SIGUSR1");
    await withTimeout(all.next(), 5000, "second SIGUSR1");
    assertEquals(seen, ["SIGUSR1"]);
  },
);

Deno.test(
  "signals() keeps deliveries that arrive before the loop asks, and ends on abort",
  async () => {
    const stop = new AbortController();
    const stream = signals("SIGUSR2", { signal: stop.signal });
    sendSignal(Deno.pid, "SIGUSR2");
    let count = 0;
    for await (const name of stream) {
      assertEquals(name, "SIGUSR2");
      count++;
      stop.abort();
    }
    assertEquals(count, 1);
  },
);

Deno.test("Signals that cannot be caught or do not exist are TypeErrors that say why", () => {
  for (const name of ["SIGKILL", "SIGSTOP"]) {
    const error = assertThrows(
      () => onSignal(name as never, () => {}),
      TypeError,
    );
    assertEquals(
      error.message,
      `Cannot listen for ${name}: it cannot be caught, the kernel acts on it without asking the process`,
    );
  }
  assertThrows(
    () => signals("SIGSEGV" as never),
    Error,
    "reports a fault in the process",
  );
  if (Deno.build.os === "linux") {
    assertThrows(
      () => onSignal("SIGINFO", () => {}),
      Error,
      "Cannot listen for SIGINFO: linux has no such signal",
    );
  }
  assertThrows(
    () => onSignal("SIGNOPE" as never, () => {}),
    Error,
    "SIGNOPE: no such signal",
  );
  assertThrows(
    () => sendSignal(1.5, "SIGTERM"),
    TypeError,
    "pid must be an integer",
  );
  assertThrows(() => sendSignal(0, "SIGTERM"), RangeError);
});

Deno.test("sendSignal() to a process that does not exist is NotFound", () => {
  // Linux process ids stay below pid_max, which is at most 2^22 on 64-bit
  // systems (PID_MAX_LIMIT), so 2^22 is never a process.
  const pidMax = 2 ** 22;
  const error = assertThrows(
    () => sendSignal(pidMax, "SIGUSR1"),
    Deno.errors.NotFound,
  );
  assertEquals(
    error.message,
    `Cannot send SIGUSR1 to process ${pidMax}: no such process`,
  );
});

Deno.test("sendSignal() needs --allow-run", async () => {
  const result = await runFixture("signal_peer.ts", [], [
    "send-only",
    String(Deno.pid),
  ]);
  assertMatch(result.stdout, /^NotCapable: Requires run access/);
});

/** The unshare arguments that give a child its own PID namespace here, if any. */
async function _pidNamespace(): Promise<string[] | undefined> {
  for (
    const args of [
      ["--pid", "--fork", "--kill-child"],
      ["--user", "--map-root-user", "--pid", "--fork", "--kill-child"],
    ]
  ) {
    if (await commandSucceeds("unshare", [...args, "true"])) return args;
  }
  return undefined;
}

const pidNamespace = await _pidNamespace();
const pidNamespaceMissing = pidNamespace
  ? undefined
  : "unshare cannot make a PID namespace here, and without one a regression would signal every process of this user";

testNeeding(pidNamespaceMissing, {
  name:
    "sendSignal() refuses every id that kill(2) would widen or wrap, and nothing is signalled",
  fn: async () => {
    // In its own PID namespace, a regression that sends kill(-1) reaches
    // only the fixture's canary, not this machine.
    const script = new URL("./fixtures/signal_bad_ids.ts", import.meta.url)
      .pathname;
    const output = await new Deno.Command("unshare", {
      args: [
        ...pidNamespace!,
        Deno.execPath(),
        "run",
        "--quiet",
        "--allow-run",
        script,
      ],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(30_000),
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assertEquals(output.code, 0, stderr);
    const { canaryAlive, results } = JSON.parse(
      new TextDecoder().decode(output.stdout),
    );
    for (const result of results) {
      assert(
        result.outcome === "TypeError" || result.outcome === "RangeError",
        `sendSignal(${result.pid}, { processGroup: ${result.processGroup} }) was not refused: ${
          JSON.stringify(result)
        }`,
      );
    }
    assertEquals(canaryAlive, true, "the canary was signalled");
    const wrapped = results.find((result: { pid: string }) =>
      result.pid === String(2 ** 32 - 1)
    );
    assertMatch(wrapped.message, /it does not fit pid_t/);
    const everyone = results.find((result: { pid: string }) =>
      result.pid === "-1"
    );
    assertMatch(everyone.message, /kill\(-1\) would signal every process/);
  },
});

Deno.test(
  "sendSignal() with processGroup signals every process of the group",
  leakChecked(async () => {
    // setsid makes the child lead a new group whose id is its pid; "ready"
    // comes after that, so the group exists when it is read.
    const child = new Deno.Command("setsid", {
      args: ["sh", "-c", "echo ready; exec sleep 30"],
      stdout: "piped",
    }).spawn();
    const { line, reader } = await firstLine(child);
    reader.releaseLock();
    try {
      assertEquals(line, "ready");
      assertThrows(
        () => sendSignal(child.pid, "SIGTERM", { processGroup: 1 as never }),
        TypeError,
        "processGroup must be a boolean",
      );
      sendSignal(child.pid, "SIGTERM", { processGroup: true });
      const status = await withTimeout(child.status, 10_000, "the group");
      assertEquals(status.signal, "SIGTERM");
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
      await child.stdout.cancel();
      await child.status;
    }
  }),
);
