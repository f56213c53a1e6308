import { assert, assertEquals } from "@std/assert";
import { FOREVER } from "../mechanisms/_wait/deadline.ts";
import { pollGroup, pollGroupCount } from "../mechanisms/_wait/poll_group.ts";
import { retryAsync } from "../mechanisms/_wait/retry.ts";
import { Spinner } from "../mechanisms/_wait/spin.ts";
import { bounded } from "./_bounded.ts";
import { leakChecked } from "./_helpers.ts";

/** `count` waits of one class on group `key`, each taking one of `available()`. */
function startWaits(
  key: string,
  count: number,
  classOf: (index: number) => string,
  take: () => boolean,
): { done: Promise<void[]>; attempts: () => number } {
  let attempts = 0;
  const waits = Array.from({ length: count }, async (_, index) => {
    const plan = {
      attempt: () => {
        attempts++;
        return take();
      },
      wouldBlock: (taken: boolean) => !taken,
      // As in the mechanisms: the spin awaits, so every wait has looked up
      // its group before the first one parks.
      spinner: new Spinner(50),
      deadline: FOREVER,
      action: "wait in the test",
    };
    // As the mechanisms do: the group is looked up per wait.
    const waiter = pollGroup(key).waiter(classOf(index), plan);
    try {
      await retryAsync(plan, waiter.park);
    } finally {
      waiter.end();
    }
  });
  return { done: Promise.all(waits), attempts: () => attempts };
}

Deno.test(
  "PollGroup: waits that start together share one group, and a tick tries one wait per class",
  leakChecked(async () => {
    const before = pollGroupCount();
    let available = 0;
    const take = () => available > 0 ? (available--, true) : false;
    const { done, attempts } = startWaits(
      "test:one-class",
      200,
      () => "any",
      take,
    );
    assertEquals(pollGroupCount(), before + 1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const parked = attempts();
    await new Promise((resolve) => setTimeout(resolve, 150));
    // One attempt per tick (about 8 ticks in 150 ms) once all are parked:
    // every wait trying at every tick would be 200 per tick.
    const idle = attempts() - parked;
    assert(idle < 60, `${idle} attempts while idle`);
    available = 200;
    await bounded(done, 10_000, "the waits to be served");
    assertEquals(available, 0);
    assertEquals(pollGroupCount(), before);
  }),
);
