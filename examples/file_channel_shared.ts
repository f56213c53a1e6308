/**
 * What both sides of `deno task example:file` share: the header layout at
 * the start of the file, where the text starts, the doorbell, and the wait
 * for a condition that file-system events announce.
 *
 * @module
 */

import { layout } from "../mod.ts";

/** `seq`: the writer's last message; `ack`: the last the reader took; `length`: the text's bytes. */
export const HEADER = layout({ seq: "u32", ack: "u32", length: "u32" });

/** The text follows the header. */
export const TEXT_AT = 16;

/** Tells the other side's watcher that the file changed: touches its times. */
export function ring(path: string): void {
  const now = new Date();
  Deno.utimeSync(path, now, now);
}

/**
 * Resolves once `ready()` holds, checking after each event of `watcher`
 * (and every 250 ms, in case an event is coalesced away); fails after 10 s.
 */
export async function until(
  ready: () => boolean,
  watcher: Deno.FsWatcher,
): Promise<void> {
  const events = watcher[Symbol.asyncIterator]();
  const deadline = Date.now() + 10_000;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error("the other side went quiet");
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      events.next(),
      new Promise((resolve) => timer = setTimeout(resolve, 250)),
    ]);
    clearTimeout(timer);
  }
}
