import { fromFileUrl } from "@std/path";
import { assert, assertEquals, assertMatch } from "@std/assert";
import { leakChecked } from "./_helpers.ts";
import { runArgv } from "./_machine.ts";

const DRIVER = fromFileUrl(new URL("../bench/driver.ts", import.meta.url));

Deno.test(
  "bench:driver --out= a missing directory fails before it measures anything",
  leakChecked(async () => {
    const missing = `/tmp/ipckit-test-bench-missing-${Deno.pid}`;
    const result = await runArgv([
      Deno.execPath(),
      "run",
      "--quiet",
      "--allow-read",
      "--allow-write=/tmp",
      "--allow-env",
      "--allow-run",
      "--allow-ffi",
      DRIVER,
      `--out=${missing}`,
      // A filter that selects no row: the run itself would take no time, so
      // only the order of the check and the measuring is tested.
      "--only=no-such-row",
      "--no-install",
    ]);
    assertEquals(result.code, 2, result.stderr);
    assertMatch(
      result.stderr,
      new RegExp(
        `^bench:driver: Cannot write the results to "${missing}": it does not exist \\(create it with mkdir -p ${missing}\\)$`,
        "m",
      ),
    );
    assert(
      !result.stderr.includes("ipckit benchmark"),
      `it started measuring:\n${result.stderr}`,
    );
  }),
);
