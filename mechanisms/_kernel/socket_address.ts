/**
 * Checking socket addresses before any system call.
 *
 * @module
 */

/** Linux's `sun_path` holds 108 bytes including the terminating NUL. */
export const UNIX_PATH_MAX_BYTES = 107;

/** Either a Unix socket path or a TCP/UDP host and port. */
export type CheckedAddress =
  | { transport: "unix"; path: string }
  | { transport: "inet"; hostname: string; port: number };

/** Validates `{ path }` or `{ hostname, port }`, naming `action` in errors. */
export function checkAddress(
  options: unknown,
  action: string,
  portRequired: boolean,
): CheckedAddress {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(
      `Cannot ${action}: give { path } for a Unix socket or { hostname, port } for TCP/UDP`,
    );
  }
  const { path, hostname, port } = options as Record<string, unknown>;
  if (path !== undefined) {
    if (hostname !== undefined || port !== undefined) {
      throw new TypeError(
        `Cannot ${action}: give either path or hostname/port, not both`,
      );
    }
    return { transport: "unix", path: checkUnixPath(path, action) };
  }
  if (hostname !== undefined && (typeof hostname !== "string" || !hostname)) {
    throw new TypeError(
      `Cannot ${action}: hostname must be a non-empty string`,
    );
  }
  if (port === undefined && portRequired) {
    throw new TypeError(
      `Cannot ${action}: give { path } for a Unix socket or { hostname, port } for TCP/UDP`,
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
  const bytes = new TextEncoder().encode(path).byteLength;
  if (bytes > UNIX_PATH_MAX_BYTES) {
    throw new RangeError(
      `Cannot ${action}: the path is ${bytes} bytes, a Unix socket path holds at most ${UNIX_PATH_MAX_BYTES}`,
    );
  }
  return path;
}

/** How an address reads in messages: `Unix socket "/tmp/a.sock"`, `TCP 127.0.0.1:80`. */
export function describeAddress(
  address: CheckedAddress,
  protocol: "TCP" | "UDP" | "Unix socket" | "Unix datagram socket",
): string {
  return address.transport === "unix"
    ? `${protocol} "${address.path}"`
    : `${protocol} ${_hostPort(address.hostname, address.port)}`;
}

/** `host:port`, bracketing IPv6 literals. */
export function formatAddr(addr: Deno.Addr): string {
  if ("hostname" in addr) return _hostPort(addr.hostname, addr.port);
  if ("path" in addr) return `"${addr.path}"`;
  return JSON.stringify(addr);
}

function _hostPort(hostname: string, port: number): string {
  return hostname.includes(":")
    ? `[${hostname}]:${port}`
    : `${hostname}:${port}`;
}
