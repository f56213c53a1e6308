/**
 * Checking NATS subjects and queue group names before they reach the
 * server, which would otherwise drop the connection over a bad one.
 *
 * @module
 */

// Whitespace and control characters end a token in the NATS protocol.
// deno-lint-ignore no-control-regex
const _FORBIDDEN = /[\s\u0000-\u001f\u007f]/u;

/**
 * Checks a subject: dot-separated non-empty tokens, no whitespace; the
 * wildcards `*` (one token) and `>` (the rest, last token only) only where
 * `wildcards` allows them (subscribing, never publishing).
 *
 * @throws {TypeError} naming what is wrong
 */
export function checkSubject(
  subject: unknown,
  wildcards: boolean,
  action: string,
): string {
  if (typeof subject !== "string" || subject === "") {
    throw new TypeError(
      `Cannot ${action}: the subject must be a non-empty string`,
    );
  }
  if (_FORBIDDEN.test(subject)) {
    throw new TypeError(
      `Cannot ${action}: the subject "${subject}" contains whitespace or a control character`,
    );
  }
  const tokens = subject.split(".");
  tokens.forEach((token, i) => {
    if (token === "") {
      throw new TypeError(
        `Cannot ${action}: the subject "${subject}" has an empty token`,
      );
    }
    const wildcard = token === "*" || token === ">";
    if (wildcard && !wildcards) {
      throw new TypeError(
        `Cannot ${action}: the subject "${subject}" has a wildcard, and messages are published to one subject`,
      );
    }
    if (token === ">" && i !== tokens.length - 1) {
      throw new TypeError(
        `Cannot ${action}: in the subject "${subject}", ">" may only be the last token`,
      );
    }
  });
  return subject;
}

/**
 * Checks a name for a queue group, a stream or a durable consumer: a
 * non-empty string without whitespace, dots or wildcards.
 *
 * @throws {TypeError} naming what is wrong
 */
export function checkName(name: unknown, what: string, action: string): string {
  if (typeof name !== "string" || name === "") {
    throw new TypeError(
      `Cannot ${action}: the ${what} must be a non-empty string`,
    );
  }
  if (_FORBIDDEN.test(name) || /[.*>\/\\]/.test(name)) {
    throw new TypeError(
      `Cannot ${action}: the ${what} "${name}" may not contain whitespace, ".", "*", ">", "/" or "\\"`,
    );
  }
  return name;
}
