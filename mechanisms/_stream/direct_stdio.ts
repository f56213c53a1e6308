/**
 * A child's stdin and stdout as non-blocking descriptors read and written
 * through libc, for `parentChannel({ direct: true })`.
 *
 * Deno's own stdio runs every read and write on its blocking thread pool, so
 * each message costs a thread hand-off on top of the kernel's wake-up. With
 * `O_NONBLOCK` set, ipckit's descriptor streams try the call on the main
 * thread, spin briefly, and only then park on the reactor (one `epoll_wait`
 * for every descriptor of the process).
 *
 * @module
 */

import { FCNTL, O } from "../../ffi/c.ts";
import { retryEintr } from "../../ffi/errno.ts";
import { libc } from "../../ffi/load.ts";
import { systemError } from "../_common/system_error.ts";
import { fdReadable, fdWritable } from "./fd_streams.ts";
import {
  describeFileType,
  fstatType,
  isFifoType,
} from "../_kernel/file_type.ts";

const _STDIN = 0;
const _STDOUT = 1;

/** Checks that `fd` is a pipe and makes it non-blocking. */
function _nonBlockingPipe(fd: number, name: string, action: string): void {
  const type = fstatType(fd);
  if (type < 0) throw systemError("fstat", `${action}: ${name}`, -type);
  if (!isFifoType(type)) {
    throw new TypeError(
      `Cannot ${action}: ${name} is ${
        describeFileType(type)
      }, not a pipe; direct mode only works on the pipes spawn() makes`,
    );
  }
  const { fcntl } = libc().symbols;
  const flags = retryEintr(() => fcntl(fd, FCNTL.F_GETFL, 0));
  if (flags < 0) throw systemError("fcntl", `${action}: ${name}`, -flags);
  const set = retryEintr(() => fcntl(fd, FCNTL.F_SETFL, flags | O.NONBLOCK));
  if (set < 0) throw systemError("fcntl", `${action}: ${name}`, -set);
}

/**
 * Web streams over this process's stdin and stdout, made non-blocking.
 * Needs `--allow-ffi`; throws `TypeError` when either is not a pipe.
 */
export function directStdio(
  what: string,
  action: string,
): {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
} {
  _nonBlockingPipe(_STDIN, "stdin", action);
  _nonBlockingPipe(_STDOUT, "stdout", action);
  return {
    readable: fdReadable({ fd: _STDIN }, what),
    writable: fdWritable({ fd: _STDOUT }, what),
  };
}
