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

/**
 * Checks that `options` is an object (or undefined) whose keys are all in
 * `known`, so a misspelt option is an error instead of silently ignored.
 */
export function checkOptionKeys(
  options: unknown,
  known: readonly string[],
  action: string,
): void {
  if (options === undefined) return;
  if (typeof options !== "object" || options === null) {
    throw new TypeError(
      `Cannot ${action}: options must be an object, got ${
        options === null ? "null" : typeof options
      }`,
    );
  }
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new TypeError(
        `Cannot ${action}: unknown option "${key}" (expected one of ${
          known.join(", ")
        })`,
      );
    }
  }
}

/** Checks an optional whole number within `[min, max]`; returns it or `fallback`. */
export function checkInteger(
  value: unknown,
  name: string,
  action: string,
  fallback: number,
  min: number,
  max: number = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw new TypeError(
      `Cannot ${action}: ${name} must be an integer, got ${
        typeof value === "number" ? value : typeof value
      }`,
    );
  }
  if (value < min || value > max) {
    throw new RangeError(
      `Cannot ${action}: ${name} must be from ${min} to ${max}, got ${value}`,
    );
  }
  return value;
}
