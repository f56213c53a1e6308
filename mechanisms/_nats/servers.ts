/**
 * NATS server addresses: parsing what a user gives (`nats://host:port`,
 * `host:port`, `host`) and checking, before anything dials, that Deno lets
 * this process reach every one of them.
 *
 * @module
 */

/** The port a NATS server listens on when none is given. */
export const DEFAULT_NATS_PORT = 4222;

/** One server as the client dials it, and the permission Deno wants for it. */
export interface ServerAddress {
  /** What the client library is given, credentials included. */
  url: string;
  /** `host:port` as Deno's `--allow-net` spells it (`[::1]:4222` for IPv6). */
  hostPort: string;
}

const _SCHEMES = new Set(["nats:", "tls:"]);

/**
 * Parses one or more server addresses. Accepts `nats://` and `tls://` URLs
 * (with optional credentials), `host:port` and a bare `host`.
 *
 * @throws {TypeError} for an empty list, a non-string, an unknown scheme or
 * an address without a host
 * @throws {RangeError} for a port outside 1 to 65535
 */
export function parseServers(
  servers: unknown,
  action: string,
): ServerAddress[] {
  const list = servers === undefined
    ? [`127.0.0.1:${DEFAULT_NATS_PORT}`]
    : typeof servers === "string"
    ? [servers]
    : servers;
  if (!Array.isArray(list) || list.length === 0) {
    throw new TypeError(
      `Cannot ${action}: servers must be a URL or a non-empty array of URLs`,
    );
  }
  return list.map((server) => _parseOne(server, action));
}

function _parseOne(server: unknown, action: string): ServerAddress {
  if (typeof server !== "string" || server.trim() === "") {
    throw new TypeError(
      `Cannot ${action}: each server must be a non-empty string, got ${typeof server}`,
    );
  }
  const text = server.includes("://") ? server : `nats://${server}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new TypeError(
      `Cannot ${action}: "${
        _withoutCredentials(server)
      }" is not a server address`,
    );
  }
  if (!_SCHEMES.has(url.protocol)) {
    throw new TypeError(
      `Cannot ${action}: "${
        _withoutCredentials(server)
      }" uses ${url.protocol}//, expected nats:// or tls://`,
    );
  }
  if (url.hostname === "") {
    throw new TypeError(
      `Cannot ${action}: "${_withoutCredentials(server)}" names no host`,
    );
  }
  const port = url.port === "" ? DEFAULT_NATS_PORT : Number(url.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(
      `Cannot ${action}: the port of "${
        _withoutCredentials(server)
      }" must be from 1 to 65535`,
    );
  }
  return { url: text, hostPort: `${url.hostname}:${port}` };
}

/** A server address fit for an error message: never print a password. */
function _withoutCredentials(server: string): string {
  return server.replace(/\/\/[^/@]*@/, "//");
}

/**
 * Throws `Deno.errors.NotCapable` unless Deno grants network access to
 * every server, naming the exact flag to add. Only queries: never prompts.
 */
export function requireNetPermission(servers: readonly ServerAddress[]): void {
  const missing = servers.filter(({ hostPort }) =>
    Deno.permissions.querySync({ name: "net", host: hostPort }).state !==
      "granted"
  ).map(({ hostPort }) => hostPort);
  if (missing.length === 0) return;
  const quoted = missing.map((hostPort) => `"${hostPort}"`).join(", ");
  throw new Deno.errors.NotCapable(
    `Requires net access to ${quoted}, run again with --allow-net=${
      missing.join(",")
    }`,
  );
}
