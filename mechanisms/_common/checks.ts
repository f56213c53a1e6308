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
 * Checks the flags every named object opens with: `create`, `exclusive`
 * and `unlinkOnClose` are booleans, and `exclusive` comes with `create`.
 */
export function checkCreateFlags(
  options: { create?: unknown; exclusive?: unknown; unlinkOnClose?: unknown },
  action: string,
): void {
  checkFlag(options.create, "create", action);
  checkFlag(options.exclusive, "exclusive", action);
  checkFlag(options.unlinkOnClose, "unlinkOnClose", action);
  if (options.exclusive && !options.create) {
    throw new TypeError(`Cannot ${action}: exclusive needs create`);
  }
}

/**
 * Checks the `read` and `write` flags of something that may be opened for
 * one direction only: each a boolean, each `true` by default, not both
 * `false`.
 */
export function checkDirections(
  options: { read?: unknown; write?: unknown },
  action: string,
): { read: boolean; write: boolean } {
  checkFlag(options.read, "read", action);
  checkFlag(options.write, "write", action);
  const read = (options.read as boolean | undefined) ?? true;
  const write = (options.write as boolean | undefined) ?? true;
  if (!read && !write) {
    throw new TypeError(`Cannot ${action}: read and write are both false`);
  }
  return { read, write };
}

/**
 * The keys of an options type, listed once as `{ key: true, … }`: the
 * compiler rejects a list that misses a key of `T` or names one `T` does
 * not have, so the run-time check cannot drift from the type.
 */
export type OptionKeys<T> = { readonly [K in keyof Required<T>]: true };

/**
 * The known keys of an options type, for {@linkcode checkOptionKeys}.
 *
 * @example
 * ```ts ignore
 * const _OPEN_KEYS = optionKeys<OpenOptions>({ create: true, mode: true });
 * checkOptionKeys(options, _OPEN_KEYS, `open message queue "/jobs"`);
 * ```
 */
export function optionKeys<T>(keys: OptionKeys<T>): readonly string[] {
  return Object.freeze(Object.keys(keys));
}

/**
 * The one check of an options object, for every public function that takes
 * one: `deno run` does not type-check, so a misspelt key (`unlinkOnclose`)
 * would otherwise be ignored in silence, and with it the clean-up it asked
 * for. `options` must be undefined or an object whose own keys are all in
 * `known`; an unknown key is a `TypeError` that names the known ones, and
 * the closest one when the key looks like a misspelling of it:
 * `Cannot open message queue "/jobs": unknown option "unlinkOnclose", did you mean "unlinkOnClose"? (known options: create, …)`.
 * Keys whose value is `undefined` are checked too: they are still typos.
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
  for (const key in options) {
    if (!Object.hasOwn(options, key) || known.includes(key)) continue;
    const near = closestKey(key, known);
    throw new TypeError(
      `Cannot ${action}: unknown option "${key}"${
        near === undefined ? "" : `, did you mean "${near}"?`
      } (known options: ${known.length > 0 ? known.join(", ") : "none"})`,
    );
  }
}

/**
 * The key of `known` that `key` is most likely a misspelling of: the same
 * letters in another case, or at most two edits away (one for short keys).
 * Undefined when none is that close.
 */
export function closestKey(
  key: string,
  known: readonly string[],
): string | undefined {
  const lower = key.toLowerCase();
  const sameLetters = known.find((name) => name.toLowerCase() === lower);
  if (sameLetters !== undefined) return sameLetters;
  const allowed = key.length <= 4 ? 1 : 2;
  let best: string | undefined;
  let bestDistance = allowed + 1;
  for (const name of known) {
    const distance = _editDistance(lower, name.toLowerCase(), allowed);
    if (distance < bestDistance) {
      best = name;
      bestDistance = distance;
    }
  }
  return best;
}

/**
 * Levenshtein distance (insertions, deletions, substitutions, and swaps of
 * two neighbours), or `limit + 1` as soon as it must exceed `limit`.
 */
function _editDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  let before: number[] = [];
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let value = Math.min(
        previous[j] + 1,
        current[j - 1] + 1,
        previous[j - 1] + cost,
      );
      if (
        i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]
      ) {
        value = Math.min(value, before[j - 2] + 1);
      }
      current[j] = value;
      rowMin = Math.min(rowMin, value);
    }
    if (rowMin > limit) return limit + 1;
    before = previous;
    previous = current;
  }
  return previous[b.length];
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
