/**
 * Building ipckit's errors from errno values, with messages in std's style.
 *
 * @module
 */

import { ERRNO, errnoName, lastErrno } from "../../ffi/errno.ts";
import { IpcError, type SystemErrorDetails } from "../errors.ts";

/** What each errno means, phrased to follow "Cannot <action>: ". */
const _REASONS: Partial<Record<string, string>> = {
  ENOENT: "it does not exist",
  EEXIST: "it already exists",
  EACCES: "the kernel denied access",
  EPERM: "the operation is not permitted",
  EINVAL: "the kernel rejected an argument as invalid",
  EMFILE: "the process has too many open descriptors",
  ENFILE: "the system has too many open files",
  ENOMEM: "out of memory or a per-user limit was reached",
  ENOSPC: "no space is left for it",
  ENAMETOOLONG: "the name is too long",
  EMSGSIZE: "the message does not fit",
  EBADF: "the descriptor is not open for that",
  EAGAIN: "it would block",
  ETIMEDOUT: "it timed out",
  EPIPE: "the reading end is closed",
  ENXIO: "no process has it open for reading",
  ELOOP: "it is a symbolic link",
  EISDIR: "it is a directory",
  ENOTDIR: "a component of the path is not a directory",
  EOVERFLOW: "the value would exceed its maximum",
  ENOSYS: "the kernel does not implement it",
  EOPNOTSUPP: "the operation is not supported",
  ESRCH: "no such process",
  ECONNREFUSED: "nothing is listening there",
  ECONNRESET: "the peer reset the connection",
  ECONNABORTED: "the connection was aborted before it was accepted",
  EADDRINUSE: "the address is in use",
  EADDRNOTAVAIL: "the address is not available on this machine",
  ENOTCONN: "the socket is not connected",
  ENOBUFS: "the kernel has no buffer space left",
  EPROTOTYPE: "the socket there is of another type",
  ENOTSOCK: "it is not a socket",
  ENETUNREACH: "the network is unreachable",
  EHOSTUNREACH: "the host is unreachable",
  ETOOMANYREFS: "too many descriptors are in flight",
  EIDRM: "it was removed",
  ENOMSG: "no message of the type asked for is waiting",
  E2BIG: "the message is larger than the buffer",
};

type _ErrorClass = new (message: string, options?: ErrorOptions) => Error;

function _classFor(code: string): _ErrorClass | undefined {
  switch (code) {
    case "ENOENT":
    case "EIDRM":
      return Deno.errors.NotFound;
    case "EEXIST":
      return Deno.errors.AlreadyExists;
    case "EACCES":
    case "EPERM":
      return Deno.errors.PermissionDenied;
    case "ETIMEDOUT":
      return Deno.errors.TimedOut;
    case "EAGAIN":
      return Deno.errors.WouldBlock;
    case "EINTR":
      return Deno.errors.Interrupted;
    case "EBADF":
      return Deno.errors.BadResource;
    case "EPIPE":
      return Deno.errors.BrokenPipe;
    case "ECONNREFUSED":
      return Deno.errors.ConnectionRefused;
    case "ECONNRESET":
      return Deno.errors.ConnectionReset;
    case "ECONNABORTED":
      return Deno.errors.ConnectionAborted;
    case "EADDRINUSE":
      return Deno.errors.AddrInUse;
    case "EADDRNOTAVAIL":
      return Deno.errors.AddrNotAvailable;
    case "ENOTCONN":
      return Deno.errors.NotConnected;
    default:
      return undefined;
  }
}

/** Attaches `code`, `errno` and `syscall` to any error object. */
export function withDetails<E extends Error>(
  error: E,
  details: SystemErrorDetails,
): E & SystemErrorDetails {
  return Object.assign(error, details);
}

/**
 * Builds the error for a failed system call: Deno's class where one matches
 * the errno, `IpcError` otherwise, with a message in std's style:
 * `Cannot open message queue "/jobs": it does not exist`.
 *
 * @param errno the errno value; defaults to the calling thread's errno
 * @param syscall the C function that failed
 * @param action what was being done, phrased to follow "Cannot "
 * @param reason overrides the generic explanation of the errno
 */
export function systemError(
  syscall: string,
  action: string,
  errno: number = lastErrno(),
  reason?: string,
): Error & SystemErrorDetails {
  const code = errnoName(errno);
  const explanation = reason ?? _REASONS[code] ??
    `${syscall}() failed with ${code}`;
  const message = `Cannot ${action}: ${explanation}`;
  const details = { code, errno, syscall };
  const ErrorClass = _classFor(code);
  return ErrorClass
    ? withDetails(new ErrorClass(message), details)
    : new IpcError(message, details);
}

/**
 * The error for using a handle after `close()`, the one wording every
 * handle uses: `Cannot <verb> <what>: it is closed`, e.g.
 * `Cannot receive from message queue "/jobs": it is closed`.
 *
 * @param what the object: `message queue "/jobs"`
 * @param verb what was being done to it, phrased to go before `what`
 */
export function closedError(
  what: string,
  verb: string = "use",
): Deno.errors.BadResource {
  return new Deno.errors.BadResource(`Cannot ${verb} ${what}: it is closed`);
}

/** The error for an ipckit timeout (not a kernel ETIMEDOUT). */
export function timeoutError(
  action: string,
  timeoutMs: number,
): Deno.errors.TimedOut & SystemErrorDetails {
  return withDetails(
    new Deno.errors.TimedOut(
      `Cannot ${action}: timed out after ${timeoutMs} ms`,
    ),
    { code: "ETIMEDOUT", errno: ERRNO.ETIMEDOUT, syscall: "poll" },
  );
}
