/**
 * The Linux limits that govern POSIX message queues, read from
 * `/proc/sys/fs/mqueue` where Deno lets us read it.
 *
 * @module
 */

import { readSmallFile } from "../../ffi/file.ts";

/** Where Linux publishes the message queue limits. */
export const MQ_PROC_DIR = "/proc/sys/fs/mqueue";

/** Linux's compiled-in defaults, used when `/proc` may not be read. */
const _DEFAULTS = {
  msg_default: 10,
  msgsize_default: 8192,
};

/** The sysctl files ipckit reads. */
export type MqLimitName =
  | "msg_max"
  | "msgsize_max"
  | "msg_default"
  | "msgsize_default";

/**
 * Reads one limit, or returns undefined where `--allow-read` does not cover
 * `/proc/sys/fs/mqueue` or the file does not exist (not Linux). Never prompts.
 *
 * Deno's own file API demands `--allow-all` for anything under `/proc/sys`
 * (it guards writes to kernel settings that way), so the value is read through
 * libc once `--allow-read` grants the path: reading a limit is harmless, and
 * the user's read permission is still what decides.
 */
export function readMqLimit(name: MqLimitName): number | undefined {
  const path = `${MQ_PROC_DIR}/${name}`;
  if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") {
    return undefined;
  }
  const text = readSmallFile(path, 32);
  if (text === undefined) return undefined;
  const value = Number.parseInt(text.trim(), 10);
  return Number.isFinite(value) ? value : undefined;
}

/** The default for a queue attribute the caller did not give. */
export function defaultMqLimit(
  name: "msg_default" | "msgsize_default",
): number {
  return readMqLimit(name) ?? _DEFAULTS[name];
}
