import { assertEquals, assertThrows } from "@std/assert";
import {
  checkSpinMicros,
  DEFAULT_SPIN_MICROS,
  Spinner,
} from "../mechanisms/_wait/spin.ts";

Deno.test("Spinner grows after a sleep that ended soon and resets after a long one", () => {
  const spinner = new Spinner(50);
  assertEquals(spinner.budgetMicros, 50);
  spinner.slept(0.2); // 200 us: the next spin should have caught it
  assertEquals(spinner.budgetMicros, 250);
  spinner.slept(0.01); // shorter than the base: never below it
  assertEquals(spinner.budgetMicros, 50);
  spinner.slept(0.45); // 450 us * 1.25 is past 10 x 50 us: back to the base
  assertEquals(spinner.budgetMicros, 50);
  const off = new Spinner(0);
  off.slept(0.1);
  assertEquals(off.budgetMicros, 0);
});

Deno.test("Spinner with a zero budget never retries", async () => {
  let attempts = 0;
  const attempt = () => ++attempts;
  const spinner = new Spinner(0);
  assertEquals(spinner.spin(0, attempt, () => false), 0);
  assertEquals(await spinner.spinAsync(0, attempt, () => false), 0);
  assertEquals(attempts, 0);
});

Deno.test("Spinner.spinAsync() lets a promise continuation deliver what it waits for", async () => {
  let ready = false;
  Promise.resolve().then(() => (ready = true));
  const spinner = new Spinner(1000);
  assertEquals(
    await spinner.spinAsync(false, () => ready, (done) => done),
    true,
  );
});

Deno.test("checkSpinMicros() accepts 0 to 1000 and defaults to 50", () => {
  assertEquals(checkSpinMicros(undefined, "x"), DEFAULT_SPIN_MICROS);
  assertEquals(checkSpinMicros(0, "x"), 0);
  assertEquals(checkSpinMicros(1000, "x"), 1000);
  for (const bad of [-1, 1001, Number.NaN, "5"]) {
    assertThrows(() => checkSpinMicros(bad, "open it"), RangeError);
  }
});
