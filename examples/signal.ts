/**
 * Signals both ways: the parent pokes a child with SIGUSR1, the child
 * answers with SIGUSR2.
 *
 *     deno task example:signal
 *
 * @module
 */
import { onSignal, sendSignal, signals } from "../mod.ts";

if (Deno.args[0] === "child") {
  using pokes = signals("SIGUSR1");
  console.log("child: waiting for SIGUSR1");
  await pokes.next();
  console.log("child: got SIGUSR1, answering with SIGUSR2");
  sendSignal(Number(Deno.args[1]), "SIGUSR2");
} else {
  using answers = signals("SIGUSR2");
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-run",
      new URL(import.meta.url).pathname,
      "child",
      String(Deno.pid),
    ],
    stdout: "piped",
  }).spawn();
  // Wait until the child listens: a SIGUSR1 before that would end it.
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  await Deno.stdout.write(value!);
  console.log("parent: sending SIGUSR1 to the child");
  sendSignal(child.pid, "SIGUSR1");
  await answers.next();
  // The child printed its line before it signalled: show it first.
  const said = await reader.read();
  if (said.value) await Deno.stdout.write(said.value);
  console.log("parent: got SIGUSR2 from the child");
  reader.releaseLock();
  await child.stdout.pipeTo(Deno.stdout.writable, { preventClose: true });
  console.log("child exited with", (await child.status).code);
  // Some signals cannot be caught at all; ipckit says so up front.
  try {
    onSignal("SIGKILL" as never, () => {});
  } catch (error) {
    console.log(
      `parent: onSignal("SIGKILL") is refused with ${
        (error as Error).name
      }, as it should be: no process can catch SIGKILL`,
    );
  }
}
