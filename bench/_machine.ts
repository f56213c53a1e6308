/**
 * Facts about the machine a benchmark ran on, for the report: read from
 * /proc where Linux has them, so the driver needs no --allow-sys. Deno's
 * file API wants --allow-all for anything under /proc, so the files are
 * read through libc (ffi/file.ts) once --allow-read covers them.
 *
 * @module
 */

import { readSmallFile } from "../ffi/file.ts";

/** What the report says about the machine. */
export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  os: string;
  deno: string;
  v8: string;
  /** /proc/sys/fs/mqueue/msgsize_max and msg_max. */
  mqueue: { msgsizeMax: number; msgMax: number } | null;
}

function _read(path: string): string | undefined {
  if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") {
    return undefined;
  }
  return readSmallFile(path, 8192);
}

/** Collects the facts; anything unreadable is reported as "unknown". */
export function machineFacts(): Machine {
  const cpuinfo = _read("/proc/cpuinfo") ?? "";
  const meminfo = _read("/proc/meminfo") ?? "";
  const memKiB = Number(/MemTotal:\s+(\d+)/.exec(meminfo)?.[1] ?? NaN);
  const msgsize = _read("/proc/sys/fs/mqueue/msgsize_max");
  const msgmax = _read("/proc/sys/fs/mqueue/msg_max");
  return {
    cpu: /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1]?.trim() ?? "unknown",
    cores: navigator.hardwareConcurrency,
    memoryGiB: Math.round(memKiB / 1024 / 1024),
    kernel: (_read("/proc/sys/kernel/osrelease"))?.trim() ?? "unknown",
    os: `${Deno.build.os}/${Deno.build.arch}`,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    mqueue: msgsize && msgmax
      ? { msgsizeMax: Number(msgsize), msgMax: Number(msgmax) }
      : null,
  };
}
