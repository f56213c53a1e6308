/**
 * Sockets from C: constants, the layouts of `sockaddr_un`, `sockaddr_in`,
 * `sockaddr_in6`, `msghdr`, `iovec`, `cmsghdr`, `ucred` and `addrinfo`, and
 * thin wrappers that return `-errno` instead of throwing, like the rest of
 * `ffi/`. Callers check Deno's permissions first: nothing here does.
 *
 * Linux only (x86_64 and aarch64 share every value and layout below):
 * `SOCK_NONBLOCK`/`SOCK_CLOEXEC` in `socket(2)`, `accept4(2)`, abstract
 * Unix names, `SO_PEERCRED`. {@linkcode requireLinuxSockets} answers other
 * systems with `NotSupported`.
 *
 * The structs are written in the kernel's own layout (`struct user_msghdr`,
 * the kernel's `cmsghdr` with a `size_t` length). musl declares
 * `msg_iovlen`, `msg_controllen` and `cmsg_len` as 32-bit fields followed by
 * 32 bits of padding; on these little-endian targets a 64-bit value below
 * 2^32 has exactly those bytes, so one layout serves glibc and musl.
 *
 * @module
 */

import { cString, FCNTL } from "./c.ts";
import { ERRNO, lastErrno, retryEintr, retryTransfer } from "./errno.ts";
import { libc } from "./load.ts";

/** Address families. */
export const AF = { UNIX: 1, INET: 2, INET6: 10 } as const;

/** Socket types, and the flags `socket(2)`, `socketpair(2)` and `accept4(2)` take with them. */
export const SOCK = {
  STREAM: 1,
  DGRAM: 2,
  SEQPACKET: 5,
  NONBLOCK: 0o4000,
  CLOEXEC: 0o2000000,
} as const;

/** `getsockopt`/`setsockopt` levels and option names. */
export const SOCKOPT = {
  SOL_SOCKET: 1,
  SO_REUSEADDR: 2,
  SO_TYPE: 3,
  SO_ERROR: 4,
  SO_SNDBUF: 7,
  SO_RCVBUF: 8,
  SO_PEERCRED: 17,
  SO_ACCEPTCONN: 30,
  SO_PROTOCOL: 38,
  SO_DOMAIN: 39,
  IPPROTO_TCP: 6,
  TCP_NODELAY: 1,
  IPPROTO_IPV6: 41,
  IPV6_V6ONLY: 26,
} as const;

/** `shutdown(2)` directions. */
export const SHUT = { RD: 0, WR: 1, RDWR: 2 } as const;

/** `send`/`recv` flags, and the `msg_flags` the kernel reports. */
export const MSG = {
  PEEK: 0x2,
  CTRUNC: 0x8,
  TRUNC: 0x20,
  DONTWAIT: 0x40,
  NOSIGNAL: 0x4000,
  CMSG_CLOEXEC: 0x40000000,
} as const;

/** `cmsg_type` of descriptors passed over a Unix socket. */
export const SCM_RIGHTS = 1;

/** The most descriptors Linux carries in one message (`SCM_MAX_FD`). */
export const SCM_MAX_FD = 253;

/** `memfd_create(2)` flags. */
export const MFD = { CLOEXEC: 0x1, ALLOW_SEALING: 0x2 } as const;

/** `sizeof(struct sockaddr_storage)`: room for any address. */
export const SOCKADDR_STORAGE_SIZE = 128;

/**
 * `struct sockaddr_un { sa_family_t sun_family; char sun_path[108]; }`: a
 * path of at most 107 bytes plus its NUL; an abstract name is a NUL and up
 * to 107 bytes, with no terminator (its length is the address length).
 */
export const SOCKADDR_UN = { FAMILY: 0, PATH: 2, PATH_BYTES: 108 } as const;

/** `struct sockaddr_in`: family, port (big-endian), address, 8 bytes of zero. */
const _SOCKADDR_IN = { PORT: 2, ADDR: 4, SIZE_OF: 16 } as const;

/** `struct sockaddr_in6`: family, port, flow info, address, scope id. */
const _SOCKADDR_IN6 = { PORT: 2, ADDR: 8, SCOPE: 24, SIZE_OF: 28 } as const;

/** `struct ucred { pid_t pid; uid_t uid; gid_t gid; }`. */
const _UCRED = { PID: 0, UID: 4, GID: 8, SIZE_OF: 12 } as const;

/**
 * `struct msghdr` (the kernel's `user_msghdr`): `msg_name`, `msg_namelen`,
 * `msg_iov`, `msg_iovlen`, `msg_control`, `msg_controllen`, `msg_flags`.
 */
const _MSGHDR = {
  NAME: 0,
  NAMELEN: 8,
  IOV: 16,
  IOVLEN: 24,
  CONTROL: 32,
  CONTROLLEN: 40,
  FLAGS: 48,
  SIZE_OF: 56,
} as const;

/** `struct iovec { void *iov_base; size_t iov_len; }`. */
const _IOVEC = { BASE: 0, LEN: 8, SIZE_OF: 16 } as const;

/** The kernel's `struct cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; }`, then data. */
const _CMSGHDR = { LEN: 0, LEVEL: 8, TYPE: 12, DATA: 16 } as const;

/**
 * glibc's and musl's `struct addrinfo` on LP64: flags, family, socktype,
 * protocol, addrlen, then the address, canonical name and next pointers.
 */
const _ADDRINFO = {
  FLAGS: 0,
  FAMILY: 4,
  SOCKTYPE: 8,
  ADDRLEN: 16,
  ADDR: 24,
  NEXT: 40,
  SIZE_OF: 48,
} as const;

/** `CMSG_SPACE(bytes)`: a control message's header and data, aligned to 8. */
export function cmsgSpace(bytes: number): number {
  return _CMSGHDR.DATA + ((bytes + 7) & ~7);
}

/**
 * Throws `NotSupported` where ipckit's sockets cannot run: they use
 * Linux's `SOCK_NONBLOCK`, `accept4`, abstract names and `SO_PEERCRED`.
 */
export function requireLinuxSockets(action: string): void {
  if (Deno.build.os === "linux") return;
  throw new Deno.errors.NotSupported(
    `Cannot ${action}: ipckit's sockets need Linux (accept4, SOCK_NONBLOCK, SO_PEERCRED), not ${Deno.build.os}/${Deno.build.arch}`,
  );
}

/** Memory C may keep a pointer to: always off the V8 heap, so its address is stable. */
function _bytes(length: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(new ArrayBuffer(Math.max(length, 1)), 0, length);
}

function _address(bytes: Uint8Array): bigint {
  return bytes.byteLength === 0
    ? 0n
    : Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes as BufferSource));
}

// ---------------------------------------------------------------------------
// Addresses

/** An encoded `struct sockaddr_*` and the length to pass with it. */
export interface SocketAddressBytes {
  /** The bytes. */
  readonly bytes: Uint8Array<ArrayBuffer>;
  /** `socklen_t`: how many of them are the address. */
  readonly length: number;
  /** Its address family. */
  readonly family: number;
}

/**
 * An address as the kernel reported it: a Unix path, an abstract name, an
 * unnamed Unix socket, or an IP address and port.
 */
export type DecodedAddress =
  | { family: "unix"; path: string }
  | { family: "abstract"; name: string }
  | { family: "unnamed" }
  | { family: "inet"; hostname: string; port: number };

const _encoder = new TextEncoder();
const _decoder = new TextDecoder();

/**
 * `sockaddr_un` for a file path (NUL-terminated) or, with `abstract`, a
 * name in Linux's abstract namespace (a leading NUL, no terminator; the
 * length says where it ends).
 *
 * @throws {RangeError} when it does not fit `sun_path` (callers check first)
 */
export function unixAddress(
  name: string,
  abstract: boolean,
): SocketAddressBytes {
  const encoded = _encoder.encode(name);
  const used = encoded.byteLength + 1;
  if (used > SOCKADDR_UN.PATH_BYTES) {
    throw new RangeError(
      `A Unix socket name holds at most ${
        SOCKADDR_UN.PATH_BYTES - 1
      } bytes, got ${encoded.byteLength}`,
    );
  }
  const bytes = _bytes(SOCKADDR_UN.PATH + SOCKADDR_UN.PATH_BYTES);
  new DataView(bytes.buffer).setUint16(SOCKADDR_UN.FAMILY, AF.UNIX, true);
  bytes.set(encoded, SOCKADDR_UN.PATH + (abstract ? 1 : 0));
  return { bytes, length: SOCKADDR_UN.PATH + used, family: AF.UNIX };
}

/**
 * `sockaddr_un` with only the family: what `bind(2)` takes to give a Unix
 * socket a fresh abstract name of the kernel's choosing (autobind).
 */
export function unnamedUnixAddress(): SocketAddressBytes {
  const bytes = _bytes(SOCKADDR_UN.PATH);
  new DataView(bytes.buffer).setUint16(SOCKADDR_UN.FAMILY, AF.UNIX, true);
  return { bytes, length: SOCKADDR_UN.PATH, family: AF.UNIX };
}

/**
 * The binary form of an IPv4 or IPv6 literal (`inet_pton(3)`), or
 * undefined when `text` is neither.
 */
export function parseIpLiteral(
  text: string,
): { family: number; address: Uint8Array<ArrayBuffer> } | undefined {
  const cText = cString(text);
  const { inet_pton } = libc().symbols;
  const four = _bytes(4);
  if (inet_pton(AF.INET, cText, four) === 1) {
    return { family: AF.INET, address: four };
  }
  const six = _bytes(16);
  if (inet_pton(AF.INET6, cText, six) === 1) {
    return { family: AF.INET6, address: six };
  }
  return undefined;
}

/** `sockaddr_in` or `sockaddr_in6` for a binary address and a port. */
export function inetAddress(
  family: number,
  address: Uint8Array,
  port: number,
): SocketAddressBytes {
  if (family === AF.INET) {
    const bytes = _bytes(_SOCKADDR_IN.SIZE_OF);
    const view = new DataView(bytes.buffer);
    view.setUint16(0, AF.INET, true);
    view.setUint16(_SOCKADDR_IN.PORT, port, false);
    bytes.set(address.subarray(0, 4), _SOCKADDR_IN.ADDR);
    return { bytes, length: _SOCKADDR_IN.SIZE_OF, family };
  }
  const bytes = _bytes(_SOCKADDR_IN6.SIZE_OF);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, AF.INET6, true);
  view.setUint16(_SOCKADDR_IN6.PORT, port, false);
  bytes.set(address.subarray(0, 16), _SOCKADDR_IN6.ADDR);
  return { bytes, length: _SOCKADDR_IN6.SIZE_OF, family };
}

/** The port of an encoded IPv4 or IPv6 address, replaced. */
export function withPort(
  address: SocketAddressBytes,
  port: number,
): SocketAddressBytes {
  const bytes = _bytes(address.bytes.byteLength);
  bytes.set(address.bytes);
  new DataView(bytes.buffer).setUint16(_SOCKADDR_IN.PORT, port, false);
  return { bytes, length: address.length, family: address.family };
}

/** Reads a `struct sockaddr_*` of `length` bytes the kernel wrote. */
export function decodeAddress(
  bytes: Uint8Array,
  length: number,
): DecodedAddress {
  if (length < 2) return { family: "unnamed" };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const family = view.getUint16(0, true);
  if (family === AF.UNIX) {
    if (length <= SOCKADDR_UN.PATH) return { family: "unnamed" };
    if (bytes[SOCKADDR_UN.PATH] === 0) {
      return {
        family: "abstract",
        name: _decoder.decode(bytes.subarray(SOCKADDR_UN.PATH + 1, length)),
      };
    }
    let end = SOCKADDR_UN.PATH;
    while (end < length && bytes[end] !== 0) end++;
    return {
      family: "unix",
      path: _decoder.decode(bytes.subarray(SOCKADDR_UN.PATH, end)),
    };
  }
  if (family === AF.INET) {
    const port = view.getUint16(_SOCKADDR_IN.PORT, false);
    const a = bytes.subarray(_SOCKADDR_IN.ADDR, _SOCKADDR_IN.ADDR + 4);
    return { family: "inet", hostname: a.join("."), port };
  }
  if (family === AF.INET6) {
    const port = view.getUint16(_SOCKADDR_IN6.PORT, false);
    const address = bytes.slice(_SOCKADDR_IN6.ADDR, _SOCKADDR_IN6.ADDR + 16);
    return { family: "inet", hostname: _formatIpv6(address), port };
  }
  return { family: "unnamed" };
}

/** `inet_ntop(AF_INET6, …)`: the shortest text form of an IPv6 address. */
function _formatIpv6(address: Uint8Array<ArrayBuffer>): string {
  const text = _bytes(64);
  const result = libc().symbols.inet_ntop(AF.INET6, address, text, 64);
  if (result === null) return "::";
  const end = text.indexOf(0);
  return _decoder.decode(text.subarray(0, end < 0 ? text.length : end));
}

/** What `getaddrinfo(3)` found: the encoded addresses, in its order. */
export type LookupResult = SocketAddressBytes[] | { error: string };

/** getaddrinfo's error codes, as messages that follow "Cannot <action>: ". */
const _EAI: Record<number, string> = {
  [-2]: "the host name is not known",
  [-3]: "the name server did not answer in time; try again",
  [-4]: "the name server failed",
  [-5]: "the host name has no address",
  [-6]: "the host has no address of that family",
  [-9]: "the host has no address of that family",
  [-10]: "out of memory while looking the name up",
  [-11]: "looking the name up failed in the C library",
};

/**
 * Looks `host` up with `getaddrinfo(3)` on Deno's thread pool (a lookup
 * can wait on DNS) for a socket of `socketType`, and returns its addresses
 * with `port` set. getaddrinfo returns its error rather than setting
 * errno, so the result is exact although the call ran on another thread.
 */
export async function lookupHost(
  host: string,
  port: number,
  socketType: number,
): Promise<LookupResult> {
  const node = cString(host);
  const hints = _bytes(_ADDRINFO.SIZE_OF);
  const view = new DataView(hints.buffer);
  view.setInt32(_ADDRINFO.FAMILY, 0, true); // AF_UNSPEC
  view.setInt32(_ADDRINFO.SOCKTYPE, socketType, true);
  const out = _bytes(8);
  const code = await libc().symbols.getaddrinfo_nonblocking(
    node,
    null,
    hints,
    out,
  );
  if (code !== 0) {
    return { error: _EAI[code] ?? `getaddrinfo() failed with code ${code}` };
  }
  const first = Deno.UnsafePointer.create(
    new DataView(out.buffer).getBigUint64(0, true),
  );
  const found: SocketAddressBytes[] = [];
  try {
    for (let entry = first; entry !== null;) {
      const info = new Deno.UnsafePointerView(entry);
      const family = info.getInt32(_ADDRINFO.FAMILY);
      const length = info.getUint32(_ADDRINFO.ADDRLEN);
      const pointer = info.getPointer(_ADDRINFO.ADDR);
      if ((family === AF.INET || family === AF.INET6) && pointer !== null) {
        const bytes = _bytes(length);
        Deno.UnsafePointerView.copyInto(pointer, bytes);
        found.push(withPort({ bytes, length, family }, port));
      }
      entry = info.getPointer(_ADDRINFO.NEXT);
    }
  } finally {
    if (first !== null) libc().symbols.freeaddrinfo(first);
  }
  return found.length > 0 ? found : { error: _EAI[-5] };
}

// ---------------------------------------------------------------------------
// Calls

/** `socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)`: the descriptor, or `-errno`. */
export function openSocket(domain: number, type: number): number {
  const flags = SOCK.NONBLOCK | SOCK.CLOEXEC;
  return retryEintr(() => libc().symbols.socket(domain, type | flags, 0));
}

/**
 * `socketpair(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC)`: two connected
 * descriptors, or `-errno`.
 */
export function openSocketPair(type: number): [number, number] | number {
  const pair = _bytes(8);
  const flags = SOCK.NONBLOCK | SOCK.CLOEXEC;
  const result = retryEintr(() =>
    libc().symbols.socketpair(AF.UNIX, type | flags, 0, pair)
  );
  if (result < 0) return result;
  const view = new DataView(pair.buffer);
  return [view.getInt32(0, true), view.getInt32(4, true)];
}

/** `bind(2)`: 0 or `-errno`. */
export function bindSocket(fd: number, address: SocketAddressBytes): number {
  return retryEintr(() =>
    libc().symbols.bind(fd, address.bytes, address.length)
  );
}

/** `listen(2)`: 0 or `-errno`. */
export function listenSocket(fd: number, backlog: number): number {
  return retryEintr(() => libc().symbols.listen(fd, backlog));
}

/**
 * `accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)`: the new
 * descriptor, or `-errno` (`-EAGAIN` when nobody is waiting).
 */
export function acceptSocket(fd: number): number {
  const accept4 = libc().symbols.accept4;
  if (!accept4) return -ERRNO.ENOSYS;
  const flags = SOCK.NONBLOCK | SOCK.CLOEXEC;
  return retryEintr(() => accept4(fd, null, null, flags));
}

/**
 * `connect(2)` on a non-blocking socket: 0, or `-errno`. `-EINPROGRESS`
 * (TCP) means the connection completes later: wait until the socket is
 * writable and read {@linkcode socketError}. An interrupted connect goes on
 * in the background, so EINTR is reported as EINPROGRESS, not retried.
 */
export function connectSocket(
  fd: number,
  address: SocketAddressBytes,
): number {
  const result = libc().symbols.connect(fd, address.bytes, address.length);
  if (result === 0) return 0;
  const errno = lastErrno();
  return errno === ERRNO.EINTR ? -ERRNO.EINPROGRESS : -errno;
}

/** `shutdown(2)`: 0 or `-errno`. */
export function shutdownSocket(fd: number, how: number): number {
  return retryEintr(() => libc().symbols.shutdown(fd, how));
}

const _optionValue = _bytes(4);
const _optionLength = _bytes(4);

/** An `int` socket option, or `-errno`. */
export function getIntOption(fd: number, level: number, name: number): number {
  new DataView(_optionLength.buffer).setUint32(0, 4, true);
  const result = retryEintr(() =>
    libc().symbols.getsockopt(fd, level, name, _optionValue, _optionLength)
  );
  if (result < 0) return result;
  return new DataView(_optionValue.buffer).getInt32(0, true);
}

/** Sets an `int` socket option: 0 or `-errno`. */
export function setIntOption(
  fd: number,
  level: number,
  name: number,
  value: number,
): number {
  new DataView(_optionValue.buffer).setInt32(0, value, true);
  return retryEintr(() =>
    libc().symbols.setsockopt(fd, level, name, _optionValue, 4)
  );
}

/** The pending error of a socket (`SO_ERROR`): 0, an errno, or `-errno` if it cannot be read. */
export function socketError(fd: number): number {
  return getIntOption(fd, SOCKOPT.SOL_SOCKET, SOCKOPT.SO_ERROR);
}

/** Who is at the other end of a connected Unix socket, as the kernel saw them connect. */
export interface Ucred {
  /** The peer's process id when it connected (or created the pair). */
  pid: number;
  /** Its effective user id then. */
  uid: number;
  /** Its effective group id then. */
  gid: number;
}

/** `getsockopt(SO_PEERCRED)`: the peer's credentials, or `-errno`. */
export function peerCredentials(fd: number): Ucred | number {
  const value = _bytes(_UCRED.SIZE_OF);
  const length = _bytes(4);
  new DataView(length.buffer).setUint32(0, _UCRED.SIZE_OF, true);
  const result = retryEintr(() =>
    libc().symbols.getsockopt(
      fd,
      SOCKOPT.SOL_SOCKET,
      SOCKOPT.SO_PEERCRED,
      value,
      length,
    )
  );
  if (result < 0) return result;
  const view = new DataView(value.buffer);
  return {
    pid: view.getInt32(_UCRED.PID, true),
    uid: view.getUint32(_UCRED.UID, true),
    gid: view.getUint32(_UCRED.GID, true),
  };
}

/** This end's address (`getsockname`), or `-errno`. */
export function localAddressOf(fd: number): DecodedAddress | number {
  return _nameOf(fd, "getsockname");
}

/** The peer's address (`getpeername`), or `-errno`. */
export function peerAddressOf(fd: number): DecodedAddress | number {
  return _nameOf(fd, "getpeername");
}

function _nameOf(
  fd: number,
  call: "getsockname" | "getpeername",
): DecodedAddress | number {
  const bytes = _bytes(SOCKADDR_STORAGE_SIZE);
  const length = _bytes(4);
  const lengthView = new DataView(length.buffer);
  lengthView.setUint32(0, SOCKADDR_STORAGE_SIZE, true);
  const result = retryEintr(() => libc().symbols[call](fd, bytes, length));
  if (result < 0) return result;
  return decodeAddress(bytes, lengthView.getUint32(0, true));
}

/**
 * `send(fd, bytes, length, MSG_NOSIGNAL)`: the count written, or `-errno`
 * (`-EAGAIN` when the socket buffer is full). MSG_NOSIGNAL: a closed peer
 * is EPIPE, never SIGPIPE.
 */
export function sendBytes(fd: number, bytes: Uint8Array<ArrayBuffer>): number {
  const send = libc().symbols.send;
  return retryTransfer(() =>
    Number(send(fd, bytes, BigInt(bytes.byteLength), MSG.NOSIGNAL))
  );
}

/** `recv(fd, into, length, flags)`: the count read (0 at the end), or `-errno`. */
export function receiveBytes(
  fd: number,
  into: Uint8Array<ArrayBuffer>,
  flags: number = 0,
): number {
  const recv = libc().symbols.recv;
  return retryTransfer(() =>
    Number(recv(fd, into, BigInt(into.byteLength), flags))
  );
}

/** `sendto(2)` with MSG_NOSIGNAL: the count sent, or `-errno`. */
export function sendBytesTo(
  fd: number,
  bytes: Uint8Array<ArrayBuffer>,
  to: SocketAddressBytes,
): number {
  const sendto = libc().symbols.sendto;
  return retryEintr(() =>
    Number(
      sendto(
        fd,
        bytes,
        BigInt(bytes.byteLength),
        MSG.NOSIGNAL,
        to.bytes,
        to.length,
      ),
    )
  );
}

/**
 * Reusable `msghdr`, `iovec`, address and control buffers for one socket's
 * `sendmsg`/`recvmsg` calls. The buffers are held here for as long as the
 * object lives, so the pointers written into the `msghdr` stay valid.
 */
export class MessageHeader {
  readonly #header = _bytes(_MSGHDR.SIZE_OF);
  readonly #headerView = new DataView(this.#header.buffer);
  readonly #iov = _bytes(_IOVEC.SIZE_OF);
  readonly #iovView = new DataView(this.#iov.buffer);
  /** Where `recvmsg` writes the sender's address. */
  readonly name: Uint8Array<ArrayBuffer> = _bytes(SOCKADDR_STORAGE_SIZE);
  #control: Uint8Array<ArrayBuffer> = _bytes(0);
  #lastData: Uint8Array | undefined;
  #lastDataAddress = 0n;

  constructor() {
    this.#headerView.setBigUint64(_MSGHDR.IOV, _address(this.#iov), true);
    this.#headerView.setBigUint64(_MSGHDR.IOVLEN, 1n, true);
  }

  /**
   * Fills the header for a `recvmsg` into `data`, with room for the
   * sender's address and for `fds` descriptors (none: no control buffer,
   * so descriptors that arrive are closed by the kernel and `MSG_CTRUNC`
   * says they came).
   */
  forReceive(data: Uint8Array<ArrayBuffer>, fds: number): Uint8Array {
    this.#setData(data);
    const view = this.#headerView;
    view.setBigUint64(_MSGHDR.NAME, _address(this.name), true);
    view.setUint32(_MSGHDR.NAMELEN, SOCKADDR_STORAGE_SIZE, true);
    // Exactly `fds` descriptors fit (CMSG_LEN, not CMSG_SPACE, whose
    // padding would take one more when `fds` is odd): the kernel installs
    // what fits, closes the rest and sets MSG_CTRUNC.
    this.#setControl(fds === 0 ? 0 : _CMSGHDR.DATA + fds * 4);
    view.setInt32(_MSGHDR.FLAGS, 0, true);
    return this.#header;
  }

  /**
   * Fills the header for a `sendmsg` of `data` carrying `fds` (as
   * `SCM_RIGHTS`), to `to` or to the connected peer.
   */
  forSend(
    data: Uint8Array<ArrayBuffer>,
    fds: readonly number[],
    to?: SocketAddressBytes,
  ): Uint8Array {
    this.#setData(data);
    const view = this.#headerView;
    view.setBigUint64(_MSGHDR.NAME, to ? _address(to.bytes) : 0n, true);
    view.setUint32(_MSGHDR.NAMELEN, to ? to.length : 0, true);
    if (fds.length === 0) {
      this.#setControl(0);
    } else {
      this.#setControl(cmsgSpace(fds.length * 4));
      const control = new DataView(this.#control.buffer);
      control.setBigUint64(
        _CMSGHDR.LEN,
        BigInt(_CMSGHDR.DATA + fds.length * 4),
        true,
      );
      control.setInt32(_CMSGHDR.LEVEL, SOCKOPT.SOL_SOCKET, true);
      control.setInt32(_CMSGHDR.TYPE, SCM_RIGHTS, true);
      fds.forEach((fd, i) => control.setInt32(_CMSGHDR.DATA + i * 4, fd, true));
    }
    view.setInt32(_MSGHDR.FLAGS, 0, true);
    return this.#header;
  }

  /** `msg_flags` after a `recvmsg`: `MSG_TRUNC`, `MSG_CTRUNC`. */
  get flags(): number {
    return this.#headerView.getInt32(_MSGHDR.FLAGS, true);
  }

  /** How many bytes of {@linkcode MessageHeader.name} the sender's address took. */
  get nameLength(): number {
    return this.#headerView.getUint32(_MSGHDR.NAMELEN, true);
  }

  /** The descriptors a `recvmsg` installed in this process (`SCM_RIGHTS`), in order. */
  receivedFds(): number[] {
    const length = Number(
      this.#headerView.getBigUint64(_MSGHDR.CONTROLLEN, true),
    );
    const control = new DataView(this.#control.buffer);
    const fds: number[] = [];
    for (let at = 0; at + _CMSGHDR.DATA <= length;) {
      const size = Number(control.getBigUint64(at + _CMSGHDR.LEN, true));
      if (size < _CMSGHDR.DATA) break;
      const level = control.getInt32(at + _CMSGHDR.LEVEL, true);
      const type = control.getInt32(at + _CMSGHDR.TYPE, true);
      if (level === SOCKOPT.SOL_SOCKET && type === SCM_RIGHTS) {
        const count = Math.floor((size - _CMSGHDR.DATA) / 4);
        for (let i = 0; i < count; i++) {
          fds.push(control.getInt32(at + _CMSGHDR.DATA + i * 4, true));
        }
      }
      at += (size + 7) & ~7;
    }
    return fds;
  }

  #setData(data: Uint8Array<ArrayBuffer>): void {
    if (data !== this.#lastData) {
      this.#lastData = data;
      this.#lastDataAddress = _address(data);
    }
    this.#iovView.setBigUint64(_IOVEC.BASE, this.#lastDataAddress, true);
    this.#iovView.setBigUint64(_IOVEC.LEN, BigInt(data.byteLength), true);
  }

  #setControl(bytes: number): void {
    if (this.#control.byteLength < bytes) {
      this.#control = _bytes((bytes + 7) & ~7);
    }
    const view = this.#headerView;
    view.setBigUint64(
      _MSGHDR.CONTROL,
      bytes === 0 ? 0n : _address(this.#control),
      true,
    );
    view.setBigUint64(_MSGHDR.CONTROLLEN, BigInt(bytes), true);
  }
}

/**
 * `sendmsg(fd, header, MSG_NOSIGNAL)` with a header filled by
 * {@linkcode MessageHeader.forSend}: the count sent, or `-errno`.
 */
export function sendMessage(fd: number, header: Uint8Array): number {
  const sendmsg = libc().symbols.sendmsg;
  return retryEintr(() =>
    Number(sendmsg(fd, header as BufferSource, MSG.NOSIGNAL))
  );
}

/**
 * `recvmsg(fd, header, MSG_CMSG_CLOEXEC | flags)` with a header filled by
 * {@linkcode MessageHeader.forReceive}: the count read, or `-errno`.
 * Descriptors arrive close-on-exec, so no child inherits them by accident.
 */
export function receiveMessage(
  fd: number,
  header: Uint8Array,
  flags: number = 0,
): number {
  const recvmsg = libc().symbols.recvmsg;
  return retryEintr(() =>
    Number(recvmsg(fd, header as BufferSource, MSG.CMSG_CLOEXEC | flags))
  );
}

/**
 * `memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)`: an anonymous file
 * in memory, with no name any other process can open. The descriptor, or
 * `-errno` (`-ENOSYS` where the C library lacks it).
 */
export function memfdCreate(name: string): number {
  const create = libc().symbols.memfd_create;
  if (!create) return -ERRNO.ENOSYS;
  const cName = cString(name);
  return retryEintr(() => create(cName, MFD.CLOEXEC | MFD.ALLOW_SEALING));
}

/** `fchmod(2)`: 0 or `-errno`. */
export function changeMode(fd: number, mode: number): number {
  return retryEintr(() => libc().symbols.fchmod(fd, mode));
}

/** `getppid(2)`. */
export function parentPid(): number {
  return libc().symbols.getppid();
}

/**
 * `getenv(3)`: the value of `name` in this process's environment, or
 * undefined. Read-only; it bypasses `--allow-env`, so callers use it only
 * for a variable ipckit itself set for this process (see
 * `mechanisms/pipe.ts`).
 */
export function environmentValue(name: string): string | undefined {
  const pointer = libc().symbols.getenv(cString(name));
  return pointer === null
    ? undefined
    : new Deno.UnsafePointerView(pointer).getCString();
}

/**
 * `fcntl(fd, F_DUPFD_CLOEXEC, 0)`: a second descriptor for the same open
 * file, close-on-exec, or `-errno`. Sending a duplicate keeps what is sent
 * fixed even if the handle it came from is closed while the send waits.
 */
export function duplicateDescriptor(fd: number): number {
  return retryEintr(() => libc().symbols.fcntl(fd, FCNTL.F_DUPFD_CLOEXEC, 0));
}

/** `O_ACCMODE`: the access bits of a descriptor's status flags. */
const _O_ACCMODE = 0o3;

/**
 * How a descriptor was opened (`fcntl(F_GETFL) & O_ACCMODE`): `O_RDONLY`,
 * `O_WRONLY` or `O_RDWR`, or `-errno`. For a descriptor that arrived from
 * another process, this says what it may be used for.
 */
export function accessModeOf(fd: number): number {
  const flags = retryEintr(() => libc().symbols.fcntl(fd, FCNTL.F_GETFL, 0));
  return flags < 0 ? flags : flags & _O_ACCMODE;
}
