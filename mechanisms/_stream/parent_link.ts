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
 * the socket.
 *
 * @module
 */

import { ERRNO } from "../../ffi/errno.ts";
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
  const fd = openSocket(AF.UNIX, SOCK.STREAM);
  if (fd < 0) return undefined;
  const connected = connectSocket(fd, unixAddress(match[2], true));
  const peer = connected === 0 ? peerCredentials(fd) : -ERRNO.ENOTCONN;
  if (typeof peer === "number" || peer.pid !== ppid) {
    libc().symbols.close(fd);
    return undefined;
  }
  const socket = new SocketFd(fd, what);
  let stdinDone = false;
  let open = 2;
  const release = () => {
    if (--open === 0) socket.close();
  };
  return {
    incoming: {
      async read(buffer): Promise<number | null> {
        while (!stdinDone) {
          const count = await Deno.stdin.read(buffer);
          if (count !== null && count > 0) return count;
          if (count === null) stdinDone = true;
        }
        return await socket.read(buffer);
      },
      write: () => Promise.reject(new TypeError("incoming only")),
      closeWrite: () => Promise.resolve(),
      close: release,
    },
    outgoing: {
      read: () => Promise.reject(new TypeError("outgoing only")),
      write: (bytes) => socket.write(bytes),
      closeWrite: () => socket.closeWrite(),
      close: () => {
        socket.closeWrite().catch(() => {});
        release();
      },
    },
  };
}
