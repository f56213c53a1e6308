/**
 * Validation of POSIX IPC object names (`/jobs`) before they reach libc.
 *
 * @module
 */

import { utf8Length } from "../../ffi/c.ts";

/** Longest file name Linux accepts (NAME_MAX), in bytes. */
export const NAME_MAX = 255;

/**
 * Checks a POSIX IPC name: a string with one leading `/`, no other `/`, no
 * NUL, no lone UTF-16 surrogate (it would be encoded as U+FFFD, so different
 * strings would name one object), not `.` or `..`, and at most `maxBytes`
 * bytes of UTF-8 after the slash.
 *
 * @param kind the object kind for messages, e.g. `"message queue"`
 * @param maxBytes NAME_MAX less any prefix the OS adds (`sem.` for semaphores)
 * @returns the name without its leading slash, as it appears in the filesystem
 */
export function validateIpcName(
  name: unknown,
  kind: string,
  maxBytes: number = NAME_MAX,
): string {
  if (typeof name !== "string") {
    throw new TypeError(
      `Cannot use ${kind} name: expected a string like "/jobs", got ${typeof name}`,
    );
  }
  const bad = (why: string) =>
    new TypeError(`Cannot use ${kind} name ${JSON.stringify(name)}: ${why}`);
  if (name.length === 0) throw bad("it is empty");
  if (!name.startsWith("/")) throw bad('it must start with "/"');
  const base = name.slice(1);
  if (base.length === 0) throw bad('it needs characters after the "/"');
  if (base.includes("/")) throw bad('it must not contain "/" after the first');
  if (base.includes("\0")) throw bad("it must not contain a NUL character");
  if (!base.isWellFormed()) {
    throw bad("it contains a lone UTF-16 surrogate, which has no UTF-8 form");
  }
  if (base === "." || base === "..") throw bad('"." and ".." are reserved');
  const bytes = utf8Length(base);
  if (bytes > maxBytes) {
    throw new RangeError(
      `Cannot use ${kind} name ${
        JSON.stringify(name.slice(0, 20) + "…")
      }: it is ${bytes} bytes long, the limit is ${maxBytes}`,
    );
  }
  return base;
}
