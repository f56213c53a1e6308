/**
 * Finds and opens the C library once, on first use.
 *
 * Opening is lazy so that importing ipckit, type-checking it or running
 * `deno doc` never needs `--allow-ffi`.
 *
 * @module
 */

import { LIBC_SYMBOLS } from "./libc.ts";

/** The opened C library with ipckit's symbol table. */
export type Libc = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>;

/** Environment variable that names the C library to open instead of the default candidates. */
export const LIBC_PATH_ENV = "IPCKIT_LIBC";

let _libc: Libc | undefined;

/** The C library file names tried on each OS, most likely first. */
function _candidates(): string[] {
  const override = _envOverride();
  if (override) return [override];
  switch (Deno.build.os) {
    case "linux":
      // glibc, then musl (Alpine names it after the architecture), then the
      // linker-script-free generic name some distributions ship.
      return [
        "libc.so.6",
        `libc.musl-${Deno.build.arch}.so.1`,
        `/lib/ld-musl-${Deno.build.arch}.so.1`,
        "libc.so",
      ];
    case "darwin":
      return ["/usr/lib/libSystem.B.dylib", "libSystem.B.dylib"];
    default:
      return [];
  }
}

/** Reads the override only where `--allow-env` already grants it: never prompts. */
function _envOverride(): string | undefined {
  const status = Deno.permissions.querySync({
    name: "env",
    variable: LIBC_PATH_ENV,
  });
  return status.state === "granted" ? Deno.env.get(LIBC_PATH_ENV) : undefined;
}

/**
 * Returns the process-wide C library handle, opening it on the first call.
 *
 * @throws {Deno.errors.NotSupported} when no candidate library can be opened;
 * the message lists every path tried and why each failed.
 */
export function libc(): Libc {
  if (_libc) return _libc;
  const candidates = _candidates();
  const failures: string[] = [];
  for (const path of candidates) {
    try {
      _libc = Deno.dlopen(path, LIBC_SYMBOLS);
      return _libc;
    } catch (error) {
      // A missing --allow-ffi is not a reason to try the next file.
      if (error instanceof Deno.errors.NotCapable) throw error;
      failures.push(`${path} (${(error as Error).message})`);
    }
  }
  const tried = failures.length > 0 ? failures.join("; ") : "nothing";
  throw new Deno.errors.NotSupported(
    `Cannot open the C library on ${Deno.build.os}/${Deno.build.arch}: tried ${tried}; set ${LIBC_PATH_ENV} to its path`,
  );
}
