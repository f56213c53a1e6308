/**
 * `deno task example:file`: a plain file as a whole IPC channel between two
 * Deno processes. `MappedFile` carries the data (a small header and the
 * text, read and written in place), `FileLock` gives the turns (whoever
 * holds the lock may touch the file), and `Deno.watchFs` says "it
 * changed", so neither side polls. Memory writes through a mapping raise
 * no file-system event, so each side touches the file's time
 * (`Deno.utime`) after its turn: that is the doorbell the other side's
 * watcher hears. The file is removed at the end.
 *
 * @module
 */

import { FileLock, MappedFile } from "../mod.ts";
import { HEADER, ring, TEXT_AT, until } from "./file_channel_shared.ts";

const path = `/tmp/ipckit-example-file-${Deno.pid}.bin`;
using file = MappedFile.open(path, {
  create: true,
  exclusive: true,
  size: 4096,
});
using lock = FileLock.open(path);
const head = file.struct(HEADER);
using watcher = Deno.watchFs(path);

const reader = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "--allow-ffi",
    `--allow-read=${path}`,
    `--allow-write=${path}`,
    new URL("./file_channel_reader.ts", import.meta.url).pathname,
    path,
  ],
  stdout: "inherit",
  stderr: "inherit",
}).spawn();

try {
  const messages = ["first line", "a second, longer line", "bye"];
  for (const [index, text] of messages.entries()) {
    {
      using _turn = await lock.lock({ timeout: 5000 });
      const bytes = new TextEncoder().encode(text);
      file.bytes().set(bytes, TEXT_AT);
      head.length = bytes.length;
      head.$atomic.seq.store(index + 1);
    }
    ring(path);
    console.log(`writer: wrote #${index + 1} "${text}" and rang`);
    await until(() => head.$atomic.ack.load() === index + 1, watcher);
    console.log(`writer: #${index + 1} acknowledged`);
  }
  console.log(`writer: reader exited with ${(await reader.status).code}`);
} finally {
  try {
    reader.kill("SIGTERM");
  } catch { /* it has exited */ }
  await Deno.remove(path);
}
