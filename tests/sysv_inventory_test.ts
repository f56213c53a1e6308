import { assert, assertEquals, assertMatch } from "@std/assert";
import { fromFileUrl } from "@std/path";
import {
  listSysvObjects,
  planSysvCollection,
  removeSysvObject,
} from "../mechanisms/inventory.ts";
import {
  SysvMessageQueue,
  SysvSemaphoreSet,
  SysvSharedMemory,
} from "../mod.ts";
import { commandSucceeds, leakChecked, skip, uniqueKey } from "./_helpers.ts";
import { runArgv, runFixture } from "./_helpers.ts";
import { PEER_FLAGS } from "./_sysv.ts";

const CLI = fromFileUrl(new URL("../cli.ts", import.meta.url));
const CLI_FLAGS = [
  "--allow-ffi",
  "--allow-read=/dev/shm,/dev/mqueue,/proc",
  "--allow-write=/dev/shm,/dev/mqueue,/proc/sysvipc",
];
const hasIpcs = await commandSucceeds("ipcs", ["-V"]);

async function ipckit(args: string[]): Promise<{ code: number; out: string }> {
  const { code, stdout, stderr } = await runArgv([
    Deno.execPath(),
    "run",
    "--quiet",
    ...CLI_FLAGS,
    CLI,
    ...args,
  ]);
  return { code, out: stdout + stderr };
}

/**
 * A C-style leak: another process makes a 64-byte segment with a fresh key
 * and exits. Returns the key; the caller removes the segment.
 */
async function leakSegment(): Promise<number> {
  const leaked = uniqueKey();
  const child = await runFixture("sysv_peer.ts", PEER_FLAGS, [
    "shm-make",
    String(leaked),
    "64",
  ]);
  assertEquals(child.code, 0, child.stderr);
  return leaked;
}

/** `ipcs -<flag>` rows as { key, id, owner, perms, sixth column }. */
async function ipcs(flag: "q" | "m" | "s"): Promise<string[][]> {
  const { stdout } = await new Deno.Command("ipcs", { args: [`-${flag}`] })
    .output();
  return new TextDecoder().decode(stdout).split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => /^0x[0-9a-f]+$/.test(fields[0]));
}

Deno.test({
  name:
    "listSysvObjects() agrees with ipcs on key, id, mode, size, messages and attachments",
  ignore: skip(
    "listSysvObjects() and ipcs",
    hasIpcs ? undefined : "ipcs (util-linux) is not installed",
  ),
  fn: leakChecked(async () => {
    await using queue = SysvMessageQueue.open<string>(uniqueKey(), {
      create: true,
      exclusive: true,
      mode: 0o640,
      unlinkOnClose: true,
    });
    await queue.send("twelve bytes");
    using segment = SysvSharedMemory.open(uniqueKey(), {
      create: true,
      exclusive: true,
      size: 3000,
      unlinkOnClose: true,
    });
    using set = SysvSemaphoreSet.open(uniqueKey(), {
      create: true,
      exclusive: true,
      count: 3,
      unlinkOnClose: true,
    });
    const listed = listSysvObjects();
    const find = (id: number, kind: string) =>
      listed.find((object) => object.id === id && object.kind === kind)!;
    const q = find(queue.id, "sysv-msg");
    const m = find(segment.id, "sysv-shm");
    const s = find(set.id, "sysv-sem");
    assertEquals([q.mode, q.messages, q.size], [0o640, 1, 14]);
    assertEquals([m.size, m.attachments, m.mode], [3000, 1, 0o600]);
    assertEquals(m.pids[0], { role: "creator", pid: Deno.pid });
    assertEquals(s.size, 3);
    const rows = {
      "sysv-msg": await ipcs("q"),
      "sysv-shm": await ipcs("m"),
      "sysv-sem": await ipcs("s"),
    };
    for (const object of [q, m, s]) {
      const row = rows[object.kind].find((fields) =>
        Number(fields[1]) === object.id
      );
      assert(row, `ipcs lists ${object.kind} ${object.id}`);
      assertEquals(row[0], object.keyText);
      assertEquals(Number.parseInt(row[3], 8), object.mode);
      // used-bytes, bytes, nsems
      assertEquals(Number(row[4]), object.size);
      if (object.kind !== "sysv-sem") {
        assertEquals(Number(row[5]), object.messages ?? object.attachments);
      }
    }
  }),
});

Deno.test(
  "ipckit ls, stat and rm cover System V objects, by id and by key",
  leakChecked(async () => {
    const segment = SysvSharedMemory.open(uniqueKey(), {
      create: true,
      exclusive: true,
      size: 512,
    });
    const { key, id } = segment;
    segment.close();
    const keyText = `0x${key.toString(16).padStart(8, "0")}`;
    const ls = await ipckit(["ls", "--kind", "sysv-shm"]);
    assertEquals(ls.code, 0, ls.out);
    assertMatch(
      ls.out,
      new RegExp(`sysv-shm\\s+${keyText}\\s+${id}\\s+512\\s+0600`),
    );
    const stat = await ipckit([
      "stat",
      "--kind",
      "sysv-shm",
      "--json",
      keyText,
    ]);
    assertEquals(JSON.parse(stat.out)[0].id, id);
    const rm = await ipckit(["rm", "--kind", "sysv-shm", String(id)]);
    assertEquals(rm.out.trim(), `removed System V shared memory ${id}`);
    const again = await ipckit(["rm", "--kind", "sysv-shm", String(id)]);
    assertEquals(again.code, 1);
    assertMatch(again.out, /no object of that kind has this id/);
  }),
);

Deno.test(
  "planSysvCollection() collects a segment whose creator is gone and keeps what is in use",
  leakChecked(async () => {
    const leaked = await leakSegment();
    const [verdict] = planSysvCollection({ key: leaked });
    assertEquals(verdict.remove, true, verdict.reason);
    assertMatch(
      verdict.reason,
      /nobody has it attached and its creator and last user are gone/,
    );
    removeSysvObject("sysv-shm", verdict.object.id);
    assertEquals(listSysvObjects({ key: leaked }), []);

    using attached = SysvSharedMemory.open(uniqueKey(), {
      create: true,
      exclusive: true,
      size: 64,
      unlinkOnClose: true,
    });
    assertMatch(
      planSysvCollection({ key: attached.key })[0].reason,
      /attached 1 time/,
    );
    await using unused = SysvMessageQueue.open(uniqueKey(), {
      create: true,
      exclusive: true,
      unlinkOnClose: true,
    });
    assertMatch(
      planSysvCollection({ id: unused.id, kinds: ["sysv-msg"] })[0].reason,
      /no process has used it yet/,
    );
  }),
);

Deno.test(
  "ipckit gc --all --dry-run --kind sysv-shm names a leaked segment by id and key, and keeps it",
  leakChecked(async () => {
    const leaked = await leakSegment();
    const [object] = listSysvObjects({ key: leaked });
    try {
      const gc = await ipckit([
        "gc",
        "--all",
        "--dry-run",
        "--kind",
        "sysv-shm",
      ]);
      assertEquals(gc.code, 0, gc.out);
      assertMatch(
        gc.out,
        new RegExp(
          `would remove +sysv-shm +id ${object.id} key ${object.keyText} +nobody has it attached`,
        ),
      );
      assertMatch(gc.out, /nothing was removed/);
      assertEquals(listSysvObjects({ key: leaked }).length, 1);
    } finally {
      removeSysvObject("sysv-shm", object.id);
    }
  }),
);
