/**
 * The one handle lifecycle (mechanisms/_common/lifecycle.ts) on its own:
 * close once, children first, the safety net, the quiet unlink and the one
 * wording of "it is closed".
 */
import {
  assert,
  assertEquals,
  assertFalse,
  assertRejects,
  assertStrictEquals,
  assertThrows,
} from "@std/assert";
import { Lifecycle, unlinkQuietly } from "../mechanisms/_common/lifecycle.ts";
import { closedError } from "../mechanisms/_common/system_error.ts";
import { leakChecked, runFixture } from "./_helpers.ts";

Deno.test(
  "Lifecycle.close() releases once, however often it is called",
  leakChecked(() => {
    const life = new Lifecycle('thing "/a"');
    let releases = 0;
    assertFalse(life.closed);
    assert(life.close(() => releases++));
    assertFalse(life.close(() => releases++));
    assertEquals(releases, 1);
    assert(life.closed);
    assertEquals(life.state, "closed");
  }),
);

Deno.test(
  "Lifecycle.close() closes children newest first, before the owner's release, while the owner is still usable",
  leakChecked(() => {
    const life = new Lifecycle("owner");
    const order: string[] = [];
    for (const name of ["first", "second", "third"]) {
      life.own({
        close: () => {
          life.check(); // the owner is closing, not closed: it may be used
          order.push(name);
        },
      });
    }
    const forget = life.own({ close: () => order.push("forgotten") });
    forget();
    life.close(() => {
      assertThrows(() => life.check(), Deno.errors.BadResource);
      order.push("release");
    });
    assertEquals(order, ["third", "second", "first", "release"]);
  }),
);

Deno.test(
  "Lifecycle.close() still releases when a child throws, then throws the child's error",
  leakChecked(() => {
    const life = new Lifecycle("owner");
    let released = false;
    let closedOther = false;
    life.own({ close: () => (closedOther = true) });
    life.own({
      close: () => {
        throw new Error("child failed");
      },
    });
    assertThrows(
      () => life.close(() => (released = true)),
      Error,
      "child failed",
    );
    assert(released && closedOther);
    assert(life.closed);
  }),
);

Deno.test(
  "Lifecycle.own() refuses a child once the owner is closed",
  leakChecked(() => {
    const life = new Lifecycle('shared memory "/x"');
    life.close();
    assertThrows(
      () => life.own({ close: () => {} }),
      Deno.errors.BadResource,
      'Cannot use shared memory "/x": it is closed',
    );
  }),
);

Deno.test(
  "Lifecycle.check() and closedError() word every closed handle the same way",
  leakChecked(() => {
    const life = new Lifecycle('message queue "/jobs"');
    life.check("receive from");
    life.close();
    const error = assertThrows(
      () => life.check("receive from"),
      Deno.errors.BadResource,
    );
    assertEquals(
      error.message,
      'Cannot receive from message queue "/jobs": it is closed',
    );
    assertEquals(
      life.closedError().message,
      closedError('message queue "/jobs"').message,
    );
    assertEquals(
      closedError("RPC client", "call").message,
      "Cannot call RPC client: it is closed",
    );
  }),
);

Deno.test(
  "Lifecycle.closeAsync() resolves after closing, and rejects with what close threw",
  leakChecked(async () => {
    const life = new Lifecycle("thing");
    await life.closeAsync(() => life.close());
    assert(life.closed);
    const failure = new Error("no");
    const error = await assertRejects(() =>
      life.closeAsync(() => {
        throw failure;
      })
    );
    assertStrictEquals(error, failure);
  }),
);

Deno.test(
  "unlinkQuietly() counts NotFound as done and throws anything else",
  leakChecked(() => {
    unlinkQuietly(() => {
      throw new Deno.errors.NotFound("gone");
    });
    assertThrows(
      () =>
        unlinkQuietly(() => {
          throw new Deno.errors.PermissionDenied("no");
        }),
      Deno.errors.PermissionDenied,
    );
    let ran = false;
    unlinkQuietly(() => (ran = true));
    assert(ran);
  }),
);

Deno.test(
  "watchDropped() runs the clean-up of a handle dropped without close(), and never one that was closed",
  leakChecked(async () => {
    const { code, stdout, stderr } = await runFixture(
      "lifecycle_dropped.ts",
      ["--v8-flags=--expose-gc"],
    );
    assertEquals(code, 0, stderr);
    assertEquals(JSON.parse(stdout), { dropped: true, closed: false });
  }),
);
