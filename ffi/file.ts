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

/**
 * Reads a whole file of unknown length (such as `/proc/<pid>/maps`, which
 * the kernel hands out a page or so per read) up to `maxBytes`, or returns
 * `-errno` when it cannot be opened or read. Callers check Deno's read
 * permission for `path` first: this function does not.
 */
export function readWholeFile(
  path: string | Uint8Array,
  maxBytes: number = 64 * 1024 * 1024,
): string | number {
  const { open, read, close } = libc().symbols;
  const cPath = cString(path);
  const fd = retryEintr(() => open(cPath, O.RDONLY | O.CLOEXEC, 0));
  if (fd < 0) return fd;
  try {
    const chunks: Uint8Array[] = [];
    let total = 0;
    let chunk = new Uint8Array(64 * 1024);
    while (total < maxBytes) {
      const length = retryEintr(() =>
        Number(read(fd, chunk, BigInt(chunk.length)))
      );
      if (length < 0) return length;
      if (length === 0) break;
      chunks.push(chunk.subarray(0, length));
      total += length;
      chunk = new Uint8Array(64 * 1024);
    }
    const decoder = new TextDecoder();
    let text = "";
    for (const part of chunks) text += decoder.decode(part, { stream: true });
    return text + decoder.decode();
  } finally {
    close(fd);
  }
}

/**
 * The target of a symbolic link as bytes (readlink(2) adds no NUL and may
 * return a name that is not UTF-8, such as a queue's `/caf\xe9` behind
 * `/proc/<pid>/fd/3`), or `-errno`. Callers check Deno's read permission
 * for `path` first: this function does not.
 */
export function readLink(
  path: string | Uint8Array,
  maxBytes: number = 4096,
): Uint8Array | number {
  const cPath = cString(path);
  const buffer = new Uint8Array(maxBytes);
  const length = retryEintr(() =>
    Number(libc().symbols.readlink(cPath, buffer, BigInt(maxBytes)))
  );
  return length < 0 ? length : buffer.slice(0, length);
}

/**
 * One read(2) of up to `maxBytes` from an open descriptor, decoded as text,
 * or `-errno`. A message queue's descriptor reads as the kernel's status
 * line (`QSIZE:… NOTIFY:…`), which is how its size is told without
 * /dev/mqueue.
 */
export function readDescriptorText(
  fd: number,
  maxBytes: number,
): string | number {
  const buffer = new Uint8Array(maxBytes);
  const length = retryEintr(() =>
    Number(libc().symbols.read(fd, buffer, BigInt(maxBytes)))
  );
  return length < 0
    ? length
    : new TextDecoder().decode(buffer.subarray(0, length));
}
