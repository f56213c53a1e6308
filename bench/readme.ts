/**
 * Writes the README's generated sections (the benchmark section and the
 * NATS table) from bench/results.json, or checks that they match
 * (`--check`, run by `deno task check`): the README carries no figure that
 * the last full run did not measure, except in regions that name the other
 * command that did (the rule is in bench/_readme.ts).
 *
 *   deno task bench:readme            rewrite the sections between the markers
 *   deno run … bench/readme.ts --check   exit 1 when README and results disagree
 *   … --readme=PATH --results=PATH    other files (the tests use this)
 *
 * The section is formatted with `deno fmt` (as the rest of README.md is) before
 * it is written or compared, so the check does not depend on line wrapping.
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import { figureSources, handCopiedFigures, writeSections } from "./_readme.ts";
import type { Results } from "./_results.ts";

const values = parseArgs(Deno.args, {
  boolean: ["check"],
  string: ["readme", "results"],
  unknown: (arg: string) => {
    console.error(`bench:readme: unknown option "${arg}"`);
    Deno.exit(2);
  },
});
const README = values.readme ?? new URL("../README.md", import.meta.url);
const RESULTS = values.results ?? new URL("./results.json", import.meta.url);

/** `text` as `deno fmt` formats Markdown with this project's settings. */
async function formatted(text: string): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--ext=md", "-"],
    cwd: new URL("..", import.meta.url).pathname,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const { success, stdout, stderr } = await child.output();
  if (!success) {
    throw new Error(
      `deno fmt could not format README.md: ${
        new TextDecoder().decode(stderr)
      }`,
    );
  }
  return new TextDecoder().decode(stdout);
}

const check = values.check;
const readme = await Deno.readTextFile(README);
const results: Results = JSON.parse(await Deno.readTextFile(RESULTS));
const wanted = await formatted(writeSections(readme, results));

if (!check) {
  await Deno.writeTextFile(README, wanted);
  console.error(`README.md: benchmark sections written from ${results.date}`);
  Deno.exit(0);
}

const problems: string[] = [];
if (wanted !== readme) {
  const have = readme.split("\n"), want = wanted.split("\n");
  const line = have.findIndex((text, i) => text !== want[i]);
  problems.push(
    `README.md's benchmark sections do not match bench/results.json ` +
      `(first difference at line ${line + 1}: "${
        have[line]?.slice(0, 80) ?? ""
      }" should be "${want[line]?.slice(0, 80) ?? ""}"); ` +
      "run `deno task bench:readme`",
  );
}
const copied = handCopiedFigures(readme);
if (copied.length) {
  problems.push(
    `README.md has measured figures outside the generated sections: ${
      copied.join(", ")
    }; move them into bench/_readme.ts so they come from bench/results.json, ` +
      "or into a region that names the command that measured them " +
      "(see bench/_readme.ts)",
  );
}
const config = JSON.parse(
  await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
);
for (const { task, closed } of figureSources(readme)) {
  if (!(task in (config.tasks ?? {}))) {
    problems.push(
      `README.md says figures come from \`deno task ${task}\`, which deno.json does not define`,
    );
  }
  if (!closed) {
    problems.push(
      `README.md's figures from \`deno task ${task}\` have no end marker <!-- bench:figures-end -->`,
    );
  }
}
if (problems.length) {
  for (const problem of problems) console.error(problem);
  Deno.exit(1);
}
console.error("README.md matches bench/results.json");
