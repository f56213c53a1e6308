/**
 * Checks of option values that several mechanisms take in the same form,
 * thrown as TypeError or RangeError before any system call.
 *
 * @module
 */

/** Checks permission bits for a created object (`mode`): 0 to 0o777. */
export function checkMode(mode: unknown, action: string): number {
  if (
    typeof mode !== "number" || !Number.isInteger(mode) || mode < 0 ||
    mode > 0o777
  ) {
    throw new RangeError(
      `Cannot ${action}: mode must be an integer from 0 to 0o777, got ${
        String(mode)
      }`,
    );
  }
  return mode;
}

/** Checks that an optional flag is a boolean. */
export function checkFlag(value: unknown, name: string, action: string): void {
  if (value !== undefined && typeof value !== "boolean") {
    throw new TypeError(
      `Cannot ${action}: ${name} must be a boolean, got ${typeof value}`,
    );
  }
}
