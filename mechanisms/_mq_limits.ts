/**
 * The Linux limits that govern POSIX message queues, read from
 * `/proc/sys/fs/mqueue` where Deno lets us read it.
 *
 * @module
 */

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
 */
export function readMqLimit(name: MqLimitName): number | undefined {
  const path = `${MQ_PROC_DIR}/${name}`;
  if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") {
    return undefined;
  }
  try {
    const value = Number.parseInt(Deno.readTextFileSync(path).trim(), 10);
    return Number.isFinite(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** The default for a queue attribute the caller did not give. */
export function defaultMqLimit(
  name: "msg_default" | "msgsize_default",
): number {
  return readMqLimit(name) ?? _DEFAULTS[name];
}
