/**
 * The reader of `deno task example:file`: waits for the file to change,
 * takes its turn with the lock, reads the writer's text in place, writes
 * its acknowledgement into the header, and rings back; stops after "bye".
 *
 * @module
 */

import { FileLock, MappedFile } from "../mod.ts";
import { HEADER, ring, TEXT_AT, until } from "./file_channel_shared.ts";

const path = Deno.args[0];
using file = MappedFile.open(path);
using lock = FileLock.open(path);
const head = file.struct(HEADER);
using watcher = Deno.watchFs(path);

for (let last = 0;;) {
  await until(() => head.$atomic.seq.load() > last, watcher);
  let text: string;
  {
    using _turn = await lock.lock({ timeout: 5000 });
    last = head.$atomic.seq.load();
    const bytes = file.bytes().subarray(TEXT_AT, TEXT_AT + head.length);
    text = new TextDecoder().decode(bytes);
    head.$atomic.ack.store(last);
  }
  ring(path);
  console.log(`reader: read #${last} "${text}"`);
  if (text === "bye") break;
}
