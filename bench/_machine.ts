/**
 * Facts about the machine a benchmark ran on, for the report: read from
 * /proc where Linux has them, so the driver needs no --allow-sys.
 *
 * @module
 */

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

async function _read(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return undefined;
  }
}

/** Collects the facts; anything unreadable is reported as "unknown". */
export async function machineFacts(): Promise<Machine> {
  const cpuinfo = await _read("/proc/cpuinfo") ?? "";
  const meminfo = await _read("/proc/meminfo") ?? "";
  const memKiB = Number(/MemTotal:\s+(\d+)/.exec(meminfo)?.[1] ?? NaN);
  const msgsize = await _read("/proc/sys/fs/mqueue/msgsize_max");
  const msgmax = await _read("/proc/sys/fs/mqueue/msg_max");
  return {
    cpu: /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1]?.trim() ?? "unknown",
    cores: navigator.hardwareConcurrency,
    memoryGiB: Math.round(memKiB / 1024 / 1024),
    kernel: (await _read("/proc/sys/kernel/osrelease"))?.trim() ?? "unknown",
    os: `${Deno.build.os}/${Deno.build.arch}`,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    mqueue: msgsize && msgmax
      ? { msgsizeMax: Number(msgsize), msgMax: Number(msgmax) }
      : null,
  };
}
