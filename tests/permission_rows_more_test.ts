/**
 * Two rows of the README's permission table that tests/permissions_test.ts
 * does not drive: "System V shared memory: create" and "Unix socket file,
 * seqpacket: connect". Each operation runs in a child
 * (tests/fixtures/permission_probe_more.ts) with exactly the row's flags
 * and succeeds, then once per flag with that flag removed and fails with
 * the NotCapable message that names it.
 *
 * @module
 */

import { fromFileUrl } from "@std/path";
import { assertEquals, assertMatch } from "@std/assert";
import { listen, SysvSharedMemory } from "../mod.ts";
import { leakChecked, uniqueKey } from "./_helpers.ts";

const PROBE = fromFileUrl(
  new URL("./fixtures/permission_probe_more.ts", import.meta.url),
);

/** A row's operation, set up afresh for each case. */
interface Prepared {
  argument: string;
  /** The flags the README gives the operation. */
  flags: string[];
  /** After a case that passed: checks it did what it says. */
  verify?: () => Promise<void> | void;
  cleanup: () => Promise<void> | void;
}

/** Runs the probe with `flags` (killed after 20 s); its last line of output. */
async function probe(
  operation: string,
  argument: string,
  flags: string[],
): Promise<string> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...flags, PROBE, operation, argument],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(20_000),
  }).output();
  const decoder = new TextDecoder();
  assertEquals(output.code, 0, decoder.decode(output.stderr));
  return decoder.decode(output.stdout).trim().split("\n").at(-1) ?? "";
}

/** What Deno or ipckit says when `flag` is missing. */
function missing(flag: string): RegExp {
  const name = /^--allow-([a-z]+)/.exec(flag)![1];
  return new RegExp(
    `^(NotCapable|PermissionDenied): Requires ${name} access\\b.*run again with (the )?--allow-${name}\\b`,
  );
}

/** Runs a row: exactly its flags pass, and each one removed fails. */
async function row(
  operation: string,
  prepare: (dir: string) => Promise<Prepared> | Prepared,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ipckit-test-perm-more-" });
  try {
    // Case -1 is the row's own flags; case i drops flag i.
    for (let drop = -1;; drop++) {
      const prepared = await prepare(dir);
      try {
        if (drop >= prepared.flags.length) break;
        const flags = prepared.flags.filter((_, index) => index !== drop);
        const said = await probe(operation, prepared.argument, flags);
        if (drop < 0) {
          assertEquals(said, "ok", `with ${flags.join(" ")}`);
          await prepared.verify?.();
        } else {
          assertMatch(
            said,
            missing(prepared.flags[drop]),
            `without ${prepared.flags[drop]}`,
          );
        }
      } finally {
        await prepared.cleanup();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The segment `key` names, removed; whether there was one. */
function removeSegment(key: number): boolean {
  try {
    SysvSharedMemory.open(key, { unlinkOnClose: true }).close();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

Deno.test(
  "the permission table: create System V shared memory works with exactly its flags and fails without each",
  leakChecked(() =>
    row("sysv-shm-create", () => {
      const key = uniqueKey();
      let removed = false;
      return {
        argument: String(key),
        flags: [
          "--allow-ffi",
          "--allow-read=/proc/sysvipc",
          "--allow-write=/proc/sysvipc",
        ],
        verify: () => {
          using segment = SysvSharedMemory.open(key, { unlinkOnClose: true });
          assertEquals(segment.size, 4096);
          removed = true;
        },
        cleanup: () => {
          // A refused create must not have made the segment.
          if (!removed) assertEquals(removeSegment(key), false);
        },
      };
    })
  ),
);

Deno.test(
  "the permission table: connect to a Unix seqpacket socket works with exactly its flags and fails without each",
  leakChecked(() =>
    row("seqpacket-connect", async (dir) => {
      const path = `${dir}/app.sock`;
      const server = await listen<string>({ path, type: "seqpacket" });
      return {
        argument: path,
        flags: [
          "--allow-ffi",
          `--allow-read=${path}`,
          `--allow-write=${path}`,
          `--allow-net=unix:${path}`,
        ],
        verify: async () => {
          // The child's message arrived whole on a seqpacket connection.
          await using connection = await server.accept({ timeout: 5000 });
          const { value } = await connection.receive({ timeout: 5000 });
          assertEquals(value, "hello");
        },
        cleanup: () => server.close(),
      };
    })
  ),
);
