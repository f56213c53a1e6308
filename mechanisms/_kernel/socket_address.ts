/**
 * Checking socket addresses before any system call, and naming them in
 * messages.
 *
 * Three kinds of address: a Unix socket file (`{ path }`), a name in
 * Linux's abstract namespace (`{ abstract }`: no file at all, gone when the
 * last socket bound to it closes), and a host and port for TCP and UDP
 * (`{ hostname, port }`).
 *
 * @module
 */

/** Linux's `sun_path` holds 108 bytes including the terminating NUL. */
export const UNIX_PATH_MAX_BYTES = 107;

/** A checked address: a Unix socket path, an abstract name, or a host and port. */
export type CheckedAddress =
  | { transport: "unix"; path: string }
  | { transport: "abstract"; name: string }
  | { transport: "inet"; hostname: string; port: number };

const _encoder = new TextEncoder();

/**
 * Validates `{ path }`, `{ abstract }` or `{ hostname, port }`, naming
 * `action` in errors. Without any of them it is an error when
 * `portRequired`, and otherwise port 0 (any free port) on `127.0.0.1`.
 */
export function checkAddress(
  options: unknown,
  action: string,
  portRequired: boolean,
): CheckedAddress {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(
      `Cannot ${action}: give { path } or { abstract } for a Unix socket, or { hostname, port } for TCP/UDP`,
    );
  }
  const { path, abstract, hostname, port } = options as Record<
    string,
    unknown
  >;
  const given = [
    path !== undefined && "path",
    abstract !== undefined && "abstract",
    (hostname !== undefined || port !== undefined) && "hostname/port",
  ].filter(Boolean);
  if (given.length > 1) {
    throw new TypeError(
      `Cannot ${action}: give one of path, abstract or hostname/port, not ${
        given.join(" and ")
      }`,
    );
  }
  if (path !== undefined) {
    return { transport: "unix", path: checkUnixPath(path, action) };
  }
  if (abstract !== undefined) {
    return { transport: "abstract", name: checkAbstractName(abstract, action) };
  }
  if (hostname !== undefined && (typeof hostname !== "string" || !hostname)) {
    throw new TypeError(
      `Cannot ${action}: hostname must be a non-empty string`,
    );
  }
  if (port === undefined && portRequired) {
    throw new TypeError(
      `Cannot ${action}: give { path } or { abstract } for a Unix socket, or { hostname, port } for TCP/UDP`,
    );
  }
  const checkedPort = port ?? 0;
  if (
    !Number.isInteger(checkedPort) || (checkedPort as number) < 0 ||
    (checkedPort as number) > 65535
  ) {
    throw new RangeError(
      `Cannot ${action}: port must be an integer from 0 to 65535, got ${
        String(port)
      }`,
    );
  }
  return {
    transport: "inet",
    hostname: (hostname as string | undefined) ?? "127.0.0.1",
    port: checkedPort as number,
  };
}

/** Validates a Unix socket path: a non-empty string that fits `sun_path`. */
export function checkUnixPath(path: unknown, action: string): string {
  if (typeof path !== "string" || path === "") {
    throw new TypeError(`Cannot ${action}: path must be a non-empty string`);
  }
  if (path.includes("\0")) {
    throw new TypeError(`Cannot ${action}: path contains a NUL byte`);
  }
  _checkWellFormed(path, "path", action);
  const bytes = _encoder.encode(path).byteLength;
  if (bytes > UNIX_PATH_MAX_BYTES) {
    throw new RangeError(
      `Cannot ${action}: the path is ${bytes} bytes, a Unix socket path holds at most ${UNIX_PATH_MAX_BYTES}`,
    );
  }
  return path;
}

/**
 * Validates an abstract socket name: a non-empty string without NUL (the
 * kernel would take one, but no tool prints such a name) that fits
 * `sun_path` after the leading NUL that marks the namespace.
 */
export function checkAbstractName(name: unknown, action: string): string {
  if (typeof name !== "string" || name === "") {
    throw new TypeError(
      `Cannot ${action}: abstract must be a non-empty string`,
    );
  }
  if (name.includes("\0")) {
    throw new TypeError(
      `Cannot ${action}: the abstract name contains a NUL byte`,
    );
  }
  _checkWellFormed(name, "abstract name", action);
  const bytes = _encoder.encode(name).byteLength;
  if (bytes > UNIX_PATH_MAX_BYTES - 1) {
    throw new RangeError(
      `Cannot ${action}: the abstract name is ${bytes} bytes, at most ${
        UNIX_PATH_MAX_BYTES - 1
      } fit`,
    );
  }
  return name;
}

/** Lone surrogates would encode as U+FFFD and alias another name. */
function _checkWellFormed(text: string, what: string, action: string): void {
  if (!text.isWellFormed()) {
    throw new TypeError(
      `Cannot ${action}: the ${what} contains a lone UTF-16 surrogate, which has no UTF-8 form`,
    );
  }
}

/** How an address reads in messages: `Unix socket "/tmp/a.sock"`, `TCP 127.0.0.1:80`. */
export function describeAddress(
  address: CheckedAddress,
  protocol: string,
): string {
  switch (address.transport) {
    case "unix":
      return `${protocol} "${address.path}"`;
    case "abstract":
      return `${protocol} "@${address.name}" (abstract)`;
    default:
      return `${protocol} ${hostPort(address.hostname, address.port)}`;
  }
}

/**
 * `host:port` (IPv6 literals bracketed), `"/path"`, `"@name"` for an
 * abstract Unix name (Deno writes those as a path starting with NUL), or
 * `an unnamed socket`.
 */
export function formatAddr(addr: Deno.Addr): string {
  if ("hostname" in addr) return hostPort(addr.hostname, addr.port);
  if ("path" in addr) {
    if (!addr.path) return "an unnamed socket";
    return addr.path.startsWith("\0")
      ? `"@${addr.path.slice(1)}"`
      : `"${addr.path}"`;
  }
  return JSON.stringify(addr);
}

/** `host:port`, bracketing IPv6 literals: the form Deno's `--allow-net` takes. */
export function hostPort(hostname: string, port: number): string {
  return hostname.includes(":")
    ? `[${hostname}]:${port}`
    : `${hostname}:${port}`;
}
