/**
 * Anonymous pipes: a parent starts a child and they exchange typed
 * request/response messages over the child's stdin and stdout.
 *
 *   deno task example:pipe
 *
 * @module
 */

import { parentChannel, spawn } from "../mod.ts";

type Job = { id: number; text: string };
type Result = { id: number; words: number };

if (Deno.args[0] === "child") {
  // The child: stdout is the channel, so it logs to stderr.
  await using parent = parentChannel<Result, Job>();
  for await (const { value: job } of parent) {
    await parent.send({ id: job.id, words: job.text.split(/\s+/).length });
  }
  console.error("child: parent closed the pipe, exiting");
} else {
  await using child = spawn<Job, Result>(Deno.execPath(), {
    args: [
      "run",
      new URL(import.meta.url).pathname,
      "child",
    ],
  });
  const texts = ["the quick brown fox", "jumps", "over the lazy dog"];
  for (const [id, text] of texts.entries()) {
    await child.send({ id, text });
    const { value } = await child.receive({ timeout: 10_000 });
    console.log(
      `job ${value.id}: ${value.words} word${value.words === 1 ? "" : "s"}`,
    );
  }
  await child.closeWrite();
  console.log("child exited with", (await child.status).code);
}
