/**
 * The child's side of `spawn()`'s fast channel (see `child_link.ts`): the
 * socket the parent named in `IPCKIT_PARENT_CHANNEL`, connected when this
 * process has `--allow-ffi`.
 *
 * The variable is read with `getenv(3)` through libc, without
 * `--allow-env`: it is how the parent hands its child the channel, as an
 * inherited descriptor would be, and it is honoured only when the pid it
 * names is this process's parent (a grandchild inherits the variable, but
 * not the parent) and the process holding the socket is that parent
 * (`SO_PEERCRED`). Connecting needs no net permission: like stdio, it
 * reaches only the process that started this one.
 *
 * Messages the parent sent before it saw the connection came over stdin,
 * which it then closes; so the incoming side reads stdin to its end, then
 * the socket. Both are read through libc, non-blocking, on this thread
 * (spawn() makes stdin a pipe; anything else is not taken).
 *
 * @module
 */

import { FCNTL, O } from "../../ffi/c.ts";
import { ERRNO, retryEintr } from "../../ffi/errno.ts";
import { libc } from "../../ffi/load.ts";
import {
  AF,
  connectSocket,
  environmentValue,
  openSocket,
  parentPid,
  peerCredentials,
  SOCK,
  unixAddress,
} from "../../ffi/socket.ts";
import { fstatType, isFifoType } from "../_kernel/file_type.ts";
import { SocketFd } from "../_socket/descriptor.ts";
import { type LinkIo, PARENT_CHANNEL_ENV } from "./child_link.ts";

/**
 * Both directions of the channel to the parent over its socket, or
 * undefined when there is none to take (not started by `spawn()`, no
 * `--allow-ffi`, or the parent is gone): the caller uses stdio then.
 */
export function connectToParent(
  what: string,
): { incoming: LinkIo; outgoing: LinkIo } | undefined {
  let offer: string | undefined;
  try {
    offer = environmentValue(PARENT_CHANNEL_ENV);
  } catch {
    return undefined; // no --allow-ffi
  }
  const match = offer ? /^(\d+):(ipckit-spawn-[0-9a-f-]+)$/.exec(offer) : null;
  if (!match) return undefined;
  const ppid = parentPid();
  if (Number(match[1]) !== ppid) return undefined;
  // spawn() makes stdin a pipe; with anything else, stdio it is.
  if (!isFifoType(fstatType(0))) return undefined;
  const fd = openSocket(AF.UNIX, SOCK.STREAM);
  if (fd < 0) return undefined;
  const connected = connectSocket(fd, unixAddress(match[2], true));
  const peer = connected === 0 ? peerCredentials(fd) : -ERRNO.ENOTCONN;
  if (typeof peer === "number" || peer.pid !== ppid) {
    libc().symbols.close(fd);
    return undefined;
  }
  // Stdin is read through libc too, non-blocking, until its end: spawn()
  // makes it a pipe, and a read that gives up must take nothing.
  const stdin = _nonBlockingStdin(what);
  if (!stdin) {
    libc().symbols.close(fd);
    return undefined;
  }
  const socket = new SocketFd(fd, what);
  // The stdin phase: until the parent closes it, after what it sent before
  // it took the socket.
  let from: SocketFd = stdin;
  const atEnd = () => {
    if (from === socket) return false;
    stdin.close();
    from = socket;
    return true;
  };
  let open = 2;
  const release = () => {
    if (--open > 0) return;
    stdin.close();
    socket.close();
  };
  return {
    incoming: {
      async read(buffer): Promise<number | null> {
        for (;;) {
          const count = await from.read(buffer);
          if (count !== null || !atEnd()) return count;
        }
      },
      tryRead(buffer): number | null | undefined {
        for (;;) {
          const count = from.tryRead(buffer);
          if (count !== null || !atEnd()) return count;
        }
      },
      async readWithin(buffer, wait): Promise<number | null> {
        for (;;) {
          const count = await from.readWithin(buffer, wait);
          if (count !== null || !atEnd()) return count;
        }
      },
      write: () => Promise.reject(new TypeError("incoming only")),
      closeWrite: () => Promise.resolve(),
      close: release,
    },
    outgoing: {
      read: () => Promise.reject(new TypeError("outgoing only")),
      write: (bytes) => socket.write(bytes),
      tryWrite: (bytes) => socket.tryWrite(bytes),
      closeWrite: () => socket.closeWrite(),
      close: () => {
        socket.closeWrite().catch(() => {});
        release();
      },
    },
  };
}

/** Stdin (a pipe) as a non-blocking descriptor, or undefined if it cannot be made one. */
function _nonBlockingStdin(what: string): SocketFd | undefined {
  const { fcntl } = libc().symbols;
  const flags = retryEintr(() => fcntl(0, FCNTL.F_GETFL, 0));
  if (flags < 0) return undefined;
  if (retryEintr(() => fcntl(0, FCNTL.F_SETFL, flags | O.NONBLOCK)) < 0) {
    return undefined;
  }
  return new SocketFd(0, `${what} (stdin)`, undefined, "pipe");
}
