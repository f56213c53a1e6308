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
  using _log = onSignal("SIGUSR2", (name) => console.log(`parent: ${name}`));
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
  sendSignal(child.pid, "SIGUSR1");
  await answers.next();
  reader.releaseLock();
  await child.stdout.pipeTo(Deno.stdout.writable, { preventClose: true });
  console.log("child exited with", (await child.status).code);
  try {
    onSignal("SIGKILL" as never, () => {});
  } catch (error) {
    console.log((error as Error).message);
  }
}
