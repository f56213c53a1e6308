/**
 * `create: true` on a System V key that already names an object adopts it
 * only under the same rule as the POSIX objects: owned (and created) by the
 * caller, with a mode within the one asked for; `adopt: "any-owner"` takes
 * whatever is there. Here for queues, segments and semaphore sets, with
 * objects planted by another user (nobody, through setpriv, which needs
 * root) and objects of one's own with a wider mode.
 *
 * @module
 */

import { assertEquals, assertMatch, assertThrows } from "@std/assert";
import {
  SysvMessageQueue,
  SysvSemaphoreSet,
  SysvSharedMemory,
} from "../mod.ts";
import { commandSucceeds, leakChecked, skip, uniqueKey } from "./_helpers.ts";

const NOBODY = 65534;

/** Why objects cannot be planted as nobody here, or undefined. */
const CANNOT_PLANT = Deno.uid() !== 0
  ? "planting an object as another user needs root"
  : !await commandSucceeds("setpriv", [`--reuid=${NOBODY}`, "true"])
  ? "setpriv cannot run a program as nobody (65534)"
  : undefined;

type Kind = "msg" | "shm" | "sem";

/**
 * Creates a System V object with `key` as nobody through libc only
 * (tests/fixtures/plant_sysv.ts), optionally handing it over to `giveTo`
 * afterwards, and returns its id.
 */
async function plantAsNobody(
  kind: Kind,
  key: number,
  mode: number,
  giveTo?: number,
): Promise<number> {
  const script = new URL("./fixtures/plant_sysv.ts", import.meta.url).pathname;
  // nobody cannot write root's Deno cache: give it its own, removed after.
  const denoDir = await Deno.makeTempDir({ prefix: "ipckit-test-nobody-" });
  try {
    await Deno.chmod(denoDir, 0o777);
    const output = await new Deno.Command("setpriv", {
      args: [
        `--reuid=${NOBODY}`,
        `--regid=${NOBODY}`,
        "--clear-groups",
        Deno.execPath(),
        "run",
        "--quiet",
        "--no-config",
        "--allow-ffi",
        script,
        kind,
        String(key),
        mode.toString(8),
        ...(giveTo === undefined ? [] : [String(giveTo)]),
      ],
      env: { DENO_DIR: denoDir },
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(30_000),
    }).output();
    const decoder = new TextDecoder();
    const said = decoder.decode(output.stdout).trim();
    assertMatch(said, /^planted \d+$/, decoder.decode(output.stderr));
    return Number(said.split(" ")[1]);
  } finally {
    await Deno.remove(denoDir, { recursive: true });
  }
}

/** Removes whatever `key` names now, if anything (as root, any owner's). */
function removeQuietly(kind: Kind, key: number): void {
  try {
    if (kind === "msg") SysvMessageQueue.open(key).remove();
    else if (kind === "sem") SysvSemaphoreSet.open(key).remove();
    else SysvSharedMemory.open(key, { unlinkOnClose: true }).close();
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/** What the refusal of nobody's 0o666 object says. */
const NOBODYS =
  /^Cannot open .*: it already exists, owned by uid 65534 \(nobody\) with mode 0o666, and create only uses an existing object that you \(uid 0, root\) own, with a mode within 0o600 and no other name; pass adopt: "any-owner"/;

/** The three kinds' `open(key, { create: true, ... })`, returning the id. */
const OPEN: Record<
  Kind,
  (key: number, options: { adopt?: "owned" | "any-owner" }) => number
> = {
  msg: (key, options) => {
    using queue = SysvMessageQueue.open(key, { create: true, ...options });
    return queue.id;
  },
  shm: (key, options) => {
    using segment = SysvSharedMemory.open(key, {
      create: true,
      size: 4096,
      ...options,
    });
    return segment.id;
  },
  sem: (key, options) => {
    using set = SysvSemaphoreSet.open(key, {
      create: true,
      count: 1,
      ...options,
    });
    return set.id;
  },
};

const NAMES: Record<Kind, string> = {
  msg: "SysvMessageQueue",
  shm: "SysvSharedMemory",
  sem: "SysvSemaphoreSet",
};

for (const kind of ["msg", "shm", "sem"] as const) {
  Deno.test({
    name: `${
      NAMES[kind]
    }.open({ create: true }) refuses an object another user made with mode 0o666, and adopt: "any-owner" takes it`,
    ignore: skip(`${NAMES[kind]} planted by nobody`, CANNOT_PLANT),
    fn: leakChecked(async () => {
      const key = uniqueKey();
      try {
        const planted = await plantAsNobody(kind, key, 0o666);
        for (const adopt of [undefined, "owned"] as const) {
          const error = assertThrows(
            () => OPEN[kind](key, adopt ? { adopt } : {}),
            Deno.errors.PermissionDenied,
          );
          assertMatch(error.message, NOBODYS, `adopt: ${adopt}`);
          assertEquals((error as Error & { code: string }).code, "EACCES");
        }
        // The refusal removed nothing: the same object is there, and
        // sharing it on purpose is one option away.
        assertEquals(OPEN[kind](key, { adopt: "any-owner" }), planted);
      } finally {
        removeQuietly(kind, key);
      }
    }),
  });

  Deno.test({
    name: `${
      NAMES[kind]
    }.open({ create: true }) refuses an object another user made and then gave to us: its creator keeps the owner's rights`,
    ignore: skip(`${NAMES[kind]} given by nobody`, CANNOT_PLANT),
    fn: leakChecked(async () => {
      const key = uniqueKey();
      try {
        // Mode 0o600 and owner root after the hand-over: only the creator
        // (nobody, who may still change or remove it) tells it apart.
        const planted = await plantAsNobody(kind, key, 0o600, 0);
        const error = assertThrows(
          () => OPEN[kind](key, {}),
          Deno.errors.PermissionDenied,
        );
        assertMatch(
          error.message,
          /it already exists, owned by uid 65534 \(nobody\) with mode 0o600/,
        );
        assertEquals(OPEN[kind](key, { adopt: "any-owner" }), planted);
      } finally {
        removeQuietly(kind, key);
      }
    }),
  });
}

Deno.test(
  'SysvSemaphoreSet.open({ create: true }) adopts our own set within the mode, refuses a wider one unless adopt: "any-owner"',
  leakChecked(() => {
    using wide = SysvSemaphoreSet.open(uniqueKey(), {
      create: true,
      exclusive: true,
      count: 2,
      initial: [1, 0],
      mode: 0o644,
      unlinkOnClose: true,
    });
    for (const adopt of [undefined, "owned"] as const) {
      const error = assertThrows(
        () =>
          SysvSemaphoreSet.open(wide.key, {
            create: true,
            count: 2,
            ...(adopt ? { adopt } : {}),
          }),
        Deno.errors.PermissionDenied,
      );
      assertMatch(
        error.message,
        /it already exists, owned by uid \d+ .*with mode 0o644, .*within 0o600/,
      );
    }
    // Within the mode asked for, it is ours to use; adopting keeps its values.
    using same = SysvSemaphoreSet.open(wide.key, {
      create: true,
      count: 2,
      mode: 0o644,
      adopt: "owned",
    });
    assertEquals(same.id, wide.id);
    assertEquals(same.values(), [1, 0]);
    using shared = SysvSemaphoreSet.open(wide.key, {
      create: true,
      count: 1,
      adopt: "any-owner",
    });
    assertEquals(shared.id, wide.id);
    assertEquals(shared.count, 2);
    assertThrows(
      () =>
        SysvSemaphoreSet.open(wide.key, {
          create: true,
          count: 2,
          exclusive: true,
        }),
      Deno.errors.AlreadyExists,
    );
  }),
);

Deno.test(
  "SysvSemaphoreSet.open() checks adopt before any system call",
  leakChecked(() => {
    const key = uniqueKey();
    assertThrows(
      () => SysvSemaphoreSet.open(key, { count: 1, adopt: "owned" }),
      TypeError,
      "adopt needs create",
    );
    assertThrows(
      () =>
        SysvSemaphoreSet.open(key, {
          create: true,
          exclusive: true,
          count: 1,
          adopt: "any-owner",
        }),
      TypeError,
      "adopt cannot be combined with exclusive",
    );
    assertThrows(
      () =>
        SysvSemaphoreSet.open(key, {
          create: true,
          count: 1,
          adopt: "anyone" as never,
        }),
      TypeError,
      'adopt must be "owned" or "any-owner", got "anyone"',
    );
    assertThrows(
      () =>
        SysvSemaphoreSet.open("private", {
          create: true,
          count: 1,
          adopt: "owned",
        }),
      TypeError,
      "a private key always makes a new set",
    );
  }),
);
