/**
 * Seeing system calls from a test: which C functions a piece of code calls,
 * and what it leaves open or creates. "Rejects bad input before any system
 * call" is then something a test can check, not just a name.
 *
 * @module
 */

import { assertEquals } from "@std/assert";
import { listDirectory } from "../ffi/dir.ts";
import { libc } from "../ffi/load.ts";

/**
 * Release calls that a `FinalizationRegistry` safety net may make at any
 * moment (when the garbage collector runs), unrelated to the code watched.
 */
const _BACKGROUND = new Set([
  "close",
  "mq_close",
  "sem_close",
  "munmap",
  "shmdt",
]);

/**
 * Runs `body` with every function of ipckit's libc table wrapped so that
 * each call is recorded, then restores them. Returns what `body` returned
 * (or threw, as `{ threw }`) and the C functions called meanwhile, in order;
 * an async `body` is awaited, its calls included.
 */
export async function libcCallsDuring<T>(
  body: () => T | Promise<T>,
): Promise<{ result?: T; threw?: unknown; calls: string[] }> {
  const symbols = libc().symbols as unknown as Record<string, unknown>;
  const originals = new Map<string, PropertyDescriptor>();
  const calls: string[] = [];
  for (const name of Object.keys(symbols)) {
    const descriptor = Object.getOwnPropertyDescriptor(symbols, name)!;
    const value = descriptor.value;
    // Deno makes the nonblocking twins read-only but configurable.
    if (typeof value !== "function" || !descriptor.configurable) continue;
    originals.set(name, descriptor);
    Object.defineProperty(symbols, name, {
      ...descriptor,
      value: (...args: unknown[]) => {
        if (!_BACKGROUND.has(name)) calls.push(name);
        return (value as (...args: unknown[]) => unknown)(...args);
      },
    });
  }
  try {
    return { result: await body(), calls };
  } catch (threw) {
    return { threw, calls };
  } finally {
    for (const [name, descriptor] of originals) {
      Object.defineProperty(symbols, name, descriptor);
    }
  }
}

/** This process's open descriptors and the entries of `dirs`, for comparing. */
export function systemTrace(dirs: readonly string[]): string[] {
  const trace: string[] = [];
  for (const dir of ["/proc/self/fd", ...dirs]) {
    const listed = listDirectory(dir);
    if (typeof listed === "number") continue; // not there on this machine
    for (const entry of listed) trace.push(`${dir}/${entry.name}`);
  }
  return trace.sort();
}

/**
 * Checks that `attempt` fails with `ErrorClass` (a TypeError or RangeError)
 * without calling any C function, opening any descriptor or creating
 * anything in `dirs`.
 */
export async function rejectsBeforeAnySystemCall(
  attempt: () => unknown,
  ErrorClass: typeof TypeError | typeof RangeError,
  dirs: readonly string[],
  what: string,
): Promise<void> {
  const before = systemTrace(dirs);
  const { threw, calls } = await libcCallsDuring(attempt);
  assertEquals(
    threw instanceof ErrorClass,
    true,
    `${what}: expected a ${ErrorClass.name}, got ${threw}`,
  );
  assertEquals(calls, [], `${what}: C functions were called before the error`);
  assertEquals(systemTrace(dirs), before, `${what}: it left something behind`);
}
