/**
 * From a checked address to the `sockaddr` the kernel takes, and from the
 * kernel's `sockaddr` back to a `Deno.Addr`.
 *
 * Host names other than IP literals are looked up with `getaddrinfo(3)`,
 * as Deno does, on its thread pool (a lookup can wait on DNS).
 *
 * @module
 */

import {
  type DecodedAddress,
  inetAddress,
  lookupHost,
  parseIpLiteral,
  type SocketAddressBytes,
  unixAddress,
} from "../../ffi/socket.ts";
import { IpcError } from "../errors.ts";
import type { CheckedAddress } from "../_kernel/socket_address.ts";

/**
 * The addresses `address` stands for, most preferred first: one for a Unix
 * path, an abstract name or an IP literal, what `getaddrinfo` returns for a
 * host name.
 *
 * @throws {Deno.errors.NotFound} when the host name is not known
 * @throws {IpcError} (code `EAI`) when the lookup fails otherwise
 */
export async function resolveAddress(
  address: CheckedAddress,
  socketType: number,
  action: string,
): Promise<SocketAddressBytes[]> {
  switch (address.transport) {
    case "unix":
      return [unixAddress(address.path, false)];
    case "abstract":
      return [unixAddress(address.name, true)];
  }
  const literal = parseIpLiteral(address.hostname);
  if (literal) {
    return [inetAddress(literal.family, literal.address, address.port)];
  }
  const found = await lookupHost(address.hostname, address.port, socketType);
  if (Array.isArray(found)) return found;
  const message =
    `Cannot ${action}: looking up "${address.hostname}" failed: ${found.error}`;
  if (/not known|has no address/.test(found.error)) {
    throw new Deno.errors.NotFound(message);
  }
  throw new IpcError(message, {
    code: "EAI",
    errno: 0,
    syscall: "getaddrinfo",
  });
}

/**
 * A kernel address as Deno writes it: `{ transport: "unix", path }` for a
 * Unix socket (an abstract name as a path starting with NUL, as
 * `Deno.listen` reports it; an unnamed socket as an empty path), and
 * `{ transport, hostname, port }` for TCP and UDP.
 */
export function toDenoAddr(
  decoded: DecodedAddress | number,
  transport: "tcp" | "udp" | "unix" | "unixpacket",
): Deno.Addr {
  if (typeof decoded === "number" || decoded.family === "unnamed") {
    return transport === "tcp" || transport === "udp"
      ? { transport, hostname: "", port: 0 }
      : { transport, path: "" };
  }
  if (decoded.family === "inet") {
    return {
      transport: transport === "udp" ? "udp" : "tcp",
      hostname: decoded.hostname,
      port: decoded.port,
    };
  }
  const path = decoded.family === "abstract"
    ? `\0${decoded.name}`
    : decoded.path;
  return {
    transport: transport === "unixpacket" ? "unixpacket" : "unix",
    path,
  };
}

/**
 * The checked address a `Deno.Addr` names, for sending to it: a path
 * starting with NUL is an abstract name, as Deno writes those.
 */
export function fromDenoAddr(addr: Deno.Addr): CheckedAddress | undefined {
  if ("hostname" in addr) {
    return { transport: "inet", hostname: addr.hostname, port: addr.port };
  }
  if ("path" in addr && addr.path) {
    return addr.path.startsWith("\0")
      ? { transport: "abstract", name: addr.path.slice(1) }
      : { transport: "unix", path: addr.path };
  }
  return undefined;
}
