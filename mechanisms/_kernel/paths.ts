/**
 * Checking the file paths and `file:` URLs that mechanisms accept (FIFOs,
 * mapped files), once and the same way for all of them, before any system
 * call.
 *
 * The path is returned as the caller spelled it, not normalised: `..` after
 * a symbolic link means something else to the kernel (the link's target's
 * parent) than to a text normaliser (the link's own directory), and opening
 * what the kernel means is the job of `anchored_path.ts`, which checks
 * permissions on the real location.
 *
 * @module
 */

import { basename, dirname, fromFileUrl } from "@std/path/posix";
import { utf8Length } from "../../ffi/c.ts";
import { NAME_MAX } from "./names.ts";

/** Longest path Linux accepts (PATH_MAX, 4096, less the terminating NUL), in bytes. */
export const PATH_MAX_BYTES = 4095;

/**
 * Checks a path or a `file:` URL and returns the path: a non-empty string
 * of well-formed UTF-16 (a lone surrogate would be encoded as U+FFFD, so two
 * different strings would name one file), with no NUL (also none decoded
 * from `%00` in a URL), at most PATH_MAX bytes, whose last component names a
 * file (not `.`, `..` or a trailing `/`) of at most NAME_MAX bytes.
 *
 * @param action what is being done, for messages: `"open FIFO"`
 * @throws {TypeError} for anything that is not such a path
 * @throws {RangeError} for a path or file name that is too long
 */
export function checkFilePath(path: unknown, action: string): string {
  let file: string;
  if (path instanceof URL) {
    if (path.protocol !== "file:") {
      throw new TypeError(
        `Cannot ${action}: a URL path must use file:, got ${path.protocol}`,
      );
    }
    // fromFileUrl would drop a host; a file on another machine is not ours.
    if (path.hostname !== "" && path.hostname !== "localhost") {
      throw new TypeError(
        `Cannot ${action}: a file: URL must not name a host, got "${path.hostname}"`,
      );
    }
    file = fromFileUrl(path);
  } else if (typeof path === "string") {
    file = path;
  } else {
    throw new TypeError(
      `Cannot ${action}: path must be a string or a file: URL, got ${
        path === null ? "null" : typeof path
      }`,
    );
  }
  const bad = (why: string) =>
    new TypeError(`Cannot ${action} ${JSON.stringify(file)}: ${why}`);
  if (file.length === 0) throw new TypeError(`Cannot ${action}: path is empty`);
  if (file.includes("\0")) throw bad("the path contains a NUL character");
  if (!file.isWellFormed()) {
    throw bad(
      "the path contains a lone UTF-16 surrogate, which has no UTF-8 form",
    );
  }
  if (file.endsWith("/")) {
    throw bad('the path must name a file, so it cannot end with "/"');
  }
  const name = basename(file);
  if (name === "." || name === "..") {
    throw bad(`the path must name a file, not "${name}"`);
  }
  const bytes = utf8Length(file);
  if (bytes > PATH_MAX_BYTES) {
    throw new RangeError(
      `Cannot ${action} ${
        JSON.stringify(file.slice(0, 40) + "…")
      }: the path is ${bytes} bytes long, the limit is ${PATH_MAX_BYTES}`,
    );
  }
  const nameBytes = utf8Length(name);
  if (nameBytes > NAME_MAX) {
    throw new RangeError(
      `Cannot ${action} ${
        JSON.stringify(file.slice(0, 40) + "…")
      }: its file name is ${nameBytes} bytes long, the limit is ${NAME_MAX}`,
    );
  }
  return file;
}

/**
 * Splits a checked path into the directory the kernel should resolve (as
 * written, `..` and links included) and the final name.
 */
export function splitFilePath(file: string): { parent: string; name: string } {
  return { parent: dirname(file), name: basename(file) };
}
