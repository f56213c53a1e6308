import {
  assert,
  assertEquals,
  assertRejects,
  assertStrictEquals,
  assertThrows,
} from "@std/assert";
import {
  bounded,
  deadlineOf,
  FOREVER,
  raceDeadline,
  sleep,
} from "../mechanisms/_wait/deadline.ts";
import {
  backoffPark,
  retryAsync,
  retrySync,
} from "../mechanisms/_wait/retry.ts";
import { Spinner } from "../mechanisms/_wait/spin.ts";

Deno.test("retryAsync() and retrySync() park until the attempt stops blocking", async () => {
  for (const mode of ["async", "sync"] as const) {
    let value = 0;
    let parks = 0;
    const plan = {
      attempt: () => value,
      wouldBlock: (result: number) => result === 0,
      spinner: new Spinner(0),
      deadline: FOREVER,
      action: "test",
    };
    const park = () => {
      parks++;
      if (parks === 3) value = 7;
    };
    const result = mode === "async"
      ? await retryAsync(plan, () => Promise.resolve(park()))
      : retrySync(plan, () => {
        park();
        return undefined;
      });
    assertEquals(result, 7, mode);
    assertEquals(parks, 3, mode);
  }
});

Deno.test("retryAsync() never parks when the deadline has passed or the signal aborted", async () => {
  let parks = 0;
  const park = () => {
    parks++;
    return Promise.resolve();
  };
  const base = {
    attempt: () => 0,
    wouldBlock: () => true,
    action: "wait here",
  };
  const timedOut = await assertRejects(
    () => retryAsync({ ...base, deadline: deadlineOf({ timeout: 0 }) }, park),
    Deno.errors.TimedOut,
  );
  assertEquals(timedOut.message, "Cannot wait here: timed out after 0 ms");
  const reason = new Error("no");
  assertStrictEquals(
    await assertRejects(() =>
      retryAsync(
        { ...base, deadline: FOREVER, signal: AbortSignal.abort(reason) },
        park,
      )
    ),
    reason,
  );
  assertEquals(parks, 0);
});

Deno.test("backoffPark() sleeps longer each time up to its limit, within the deadline", async () => {
  const park = backoffPark(1, 4, {
    deadline: deadlineOf({ timeout: 1000 }),
    action: "back off",
  });
  const lengths: number[] = [];
  for (let i = 0; i < 5; i++) {
    const start = performance.now();
    await park();
    lengths.push(performance.now() - start);
  }
  // 1, 2, 4, 4, 4 ms: timers never fire early.
  assert(
    lengths[0] >= 0.9 && lengths[2] >= 3.9 && lengths[4] >= 3.9,
    `${lengths}`,
  );
  await assertRejects(
    () =>
      backoffPark(50, 50, {
        deadline: deadlineOf({ timeout: 0 }),
        action: "x",
      })(),
    Deno.errors.TimedOut,
  );
});

Deno.test("bounded() runs its clean-up once however the wait ends, and removes its timer and listener", async () => {
  let cleanups = 0;
  const resolved = await bounded<number>(
    deadlineOf({ timeout: 1000 }),
    new AbortController().signal,
    "x",
    (settle) => {
      setTimeout(() => settle.resolve(1), 5);
      return () => cleanups++;
    },
  );
  assertEquals(resolved, 1);
  await assertRejects(
    () =>
      bounded(
        deadlineOf({ timeout: 5 }),
        undefined,
        "x",
        () => () => cleanups++,
      ),
    Deno.errors.TimedOut,
  );
  const controller = new AbortController();
  const aborted = bounded(
    FOREVER,
    controller.signal,
    "x",
    () => () => cleanups++,
  );
  controller.abort("stop");
  assertEquals(await aborted.catch((error) => error), "stop");
  // Settled synchronously by begin itself: the clean-up still runs once.
  await bounded<void>(FOREVER, undefined, "x", (settle) => {
    settle.resolve();
    return () => cleanups++;
  });
  await assertRejects(
    () =>
      bounded(FOREVER, undefined, "x", () => {
        throw new RangeError("bad");
      }),
    RangeError,
  );
  assertEquals(cleanups, 4);
  // The test sanitizers fail this test if a timer or listener was left.
});

Deno.test("raceDeadline() prefers an operation already settled at a deadline of 0, and hands a late value to onLate", async () => {
  assertEquals(
    await raceDeadline(
      Promise.resolve(5),
      deadlineOf({ timeout: 0 }),
      undefined,
      "x",
    ),
    5,
  );
  const { promise, resolve } = Promise.withResolvers<string>();
  const late: string[] = [];
  await assertRejects(
    () =>
      raceDeadline(
        promise,
        deadlineOf({ timeout: 5 }),
        undefined,
        "x",
        (v) => late.push(v),
      ),
    Deno.errors.TimedOut,
  );
  resolve("after");
  await promise;
  await Promise.resolve();
  assertEquals(late, ["after"]);
});

Deno.test("sleep() ends at the deadline, then rejects with TimedOut", async () => {
  const deadline = deadlineOf({ timeout: 20 });
  const start = performance.now();
  await sleep(1000, deadline, undefined, "nap");
  assert(performance.now() - start < 500);
  await assertRejects(
    () => sleep(1, deadline, undefined, "nap"),
    Deno.errors.TimedOut,
  );
});

Deno.test("deadlineOf() checks timeout and signal before any system call", () => {
  assertThrows(() => deadlineOf({ timeout: -1 }), RangeError);
  assertThrows(() => deadlineOf({ timeout: "5" as never }), TypeError);
  assertThrows(() => deadlineOf({ signal: {} as AbortSignal }), TypeError);
  assertEquals(deadlineOf({}), FOREVER);
});
