/**
 * Reading small kernel files through libc.
 *
 * @module
 */

import { cString, O } from "./c.ts";
import { retryEintr } from "./errno.ts";
import { libc } from "./load.ts";

/**
 * Reads up to `maxBytes` of a file with open/read/close, or returns undefined
 * when it cannot be opened or read. Callers check Deno's read permission for
 * `path` first: this function does not.
 */
export function readSmallFile(
  path: string,
  maxBytes: number,
): string | undefined {
  const { open, read, close } = libc().symbols;
  const cPath = cString(path);
  const fd = retryEintr(() => open(cPath, O.RDONLY | O.CLOEXEC, 0));
  if (fd < 0) return undefined;
  try {
    const buffer = new Uint8Array(maxBytes);
    const length = retryEintr(() => Number(read(fd, buffer, BigInt(maxBytes))));
    return length < 0
      ? undefined
      : new TextDecoder().decode(buffer.subarray(0, length));
  } finally {
    close(fd);
  }
}
