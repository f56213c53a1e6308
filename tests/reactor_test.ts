import { assert, assertEquals } from "@std/assert";
import { leakChecked, spawnFixture } from "./_helpers.ts";

/** Runs a fixture, killing it after `boundMs`; returns its code and output. */
async function runBounded(
  fixture: string,
  flags: string[],
  args: string[],
  boundMs: number,
): Promise<{ code: number; killed: boolean; stdout: string; stderr: string }> {
  const child = spawnFixture(fixture, flags, args);
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    child.kill("SIGKILL");
  }, boundMs);
  const output = await child.output();
  clearTimeout(timer);
  const decoder = new TextDecoder();
  return {
    code: output.code,
    killed,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

Deno.test(
  "A message to the 33rd and the 40th waiting FIFO reader arrives, and Deno.readTextFile still completes",
  leakChecked(async () => {
    for (const readers of [33, 40]) {
      const dir = await Deno.makeTempDir({ prefix: "ipckit-starve-" });
      try {
        await Deno.writeTextFile(`${dir}/note.txt`, "still here");
        const result = await runBounded(
          "reactor_starvation.ts",
          ["--allow-ffi", `--allow-read=${dir}`, `--allow-write=${dir}`],
          [dir, String(readers)],
          30_000,
        );
        assertEquals(
          result.killed,
          false,
          "the process did not exit by itself",
        );
        assertEquals(result.code, 0, result.stderr);
        const report = JSON.parse(result.stdout);
        assertEquals(report.readers, readers);
        assert(
          report.lastMs !== null && report.lastMs < 2000,
          `the last of ${readers} readers got nothing within 5 s`,
        );
        assert(
          report.readFileMs !== null && report.readFileMs < 2000,
          `Deno.readTextFile stalled behind ${readers} waiting readers`,
        );
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    }
  }),
);
