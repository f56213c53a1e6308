/**
 * Typed messages on a socket that keeps message boundaries (Unix
 * `SOCK_SEQPACKET`): one codec message per packet, no framing, and
 * descriptors passed with a message (`SCM_RIGHTS`, see `passing.ts`).
 *
 * A packet is received whole with one `recvmsg` into a scratch buffer that
 * the whole process shares, decoded and adopted in that same synchronous
 * attempt (before anything else can run), so concurrent receives each get
 * their own packet and 10,000 channels cost no buffer each.
 *
 * Descriptors that arrive are never leaked: a receive takes at most
 * `maxHandles` (0 unless asked); the kernel closes any beyond the control
 * buffer and says so (`MSG_CTRUNC`), ipckit closes those it installed, and
 * the message is refused with a `DecodeError` that keeps its bytes.
 *
 * An empty packet cannot be told from the end of the connection (both make
 * `recv` return 0), so sending an empty message is refused.
 *
 * @module
 */

import { ERRNO } from "../../ffi/errno.ts";
import { libc } from "../../ffi/load.ts";
import {
  duplicateDescriptor,
  MessageHeader,
  MSG,
  receiveMessage,
  SCM_MAX_FD,
  sendBytes,
  sendMessage,
} from "../../ffi/socket.ts";
import type { Codec } from "../codec.ts";
import { DecodeError } from "../errors.ts";
import { closedError, systemError } from "../_common/system_error.ts";
import type { Deadline } from "../_wait/deadline.ts";
import type { SocketFd } from "./descriptor.ts";
import {
  adoptDescriptor,
  describePassable,
  MAX_HANDLE_HEADER_BYTES,
  type PassableDescription,
  readHandleHeader,
  withHandleHeader,
} from "./passing.ts";

let _scratch = new Uint8Array(new ArrayBuffer(64 * 1024 + 1));
// Made on first use: importing this module must not need --allow-ffi.
let _receiveHeader: MessageHeader | undefined;
let _sendHeader: MessageHeader | undefined;

/** A scratch buffer of at least `bytes`, shared by every receive of the process. */
function _scratchOf(bytes: number): Uint8Array<ArrayBuffer> {
  if (_scratch.byteLength < bytes) {
    _scratch = new Uint8Array(new ArrayBuffer(bytes));
  }
  return _scratch;
}

/** A received message: its value and the handles that came with it. */
export interface ReceivedPacket<T> {
  /** The decoded value. */
  value: T;
  /** Handles built from the descriptors that came with it, in order. */
  handles: object[];
}

/** Checks `handles` before anything is sent: each must be an ipckit handle that can travel. */
export function describeHandles(
  handles: readonly unknown[] | undefined,
  action: string,
): PassableDescription[] {
  if (handles === undefined) return [];
  if (!Array.isArray(handles)) {
    throw new TypeError(`Cannot ${action}: handles must be an array`);
  }
  if (handles.length > SCM_MAX_FD) {
    throw new RangeError(
      `Cannot ${action}: ${handles.length} handles are more than the ${SCM_MAX_FD} descriptors Linux carries in one message`,
    );
  }
  return handles.map((handle, index) => {
    const description = describePassable(handle);
    if (!description) {
      throw new TypeError(
        `Cannot ${action}: handles[${index}] is not an ipckit handle that can be passed (SharedMemory, MappedFile, MessageQueue, a FIFO reader or writer, a socket)`,
      );
    }
    if (description.fd < 0) {
      throw new Deno.errors.BadResource(
        `Cannot ${action}: handles[${index}] (a ${description.kind}) is closed`,
      );
    }
    return description;
  });
}

/** Checks `maxHandles`: how many descriptors one receive takes. */
export function checkMaxHandles(value: unknown, action: string): number {
  if (value === undefined) return 0;
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < 0 ||
    value > SCM_MAX_FD
  ) {
    throw new RangeError(
      `Cannot ${action}: maxHandles must be an integer from 0 to ${SCM_MAX_FD}, got ${
        String(value)
      }`,
    );
  }
  return value;
}

/** Sending and receiving typed packets on one seqpacket socket. */
export class PacketIo<T> {
  readonly #socket: SocketFd;
  readonly #codec: Codec<T>;
  readonly #max: number;

  /** @param max the largest codec message, in bytes */
  constructor(socket: SocketFd, codec: Codec<T>, max: number) {
    this.#socket = socket;
    this.#codec = codec;
    this.#max = max;
  }

  /**
   * Sends `value` as one packet, with `handles`' descriptors. Waits while
   * the socket's buffer is full.
   *
   * @throws {RangeError} when the message is empty or above the limit (nothing is sent)
   * @throws {TypeError} when a handle cannot be passed
   */
  async send(
    value: T,
    handles: readonly unknown[] | undefined,
    deadline: Deadline,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const what = this.#socket.what;
    const action = `send to ${what}`;
    const descriptions = describeHandles(handles, action);
    const body = this.#codec.encode(value);
    if (body.byteLength > this.#max) {
      throw new RangeError(
        `Cannot ${action}: the message is ${body.byteLength} bytes, maxMessageSize is ${this.#max}`,
      );
    }
    if (body.byteLength === 0 && descriptions.length === 0) {
      throw new RangeError(
        `Cannot ${action}: the message is empty, and an empty packet reads as the end of the connection`,
      );
    }
    this.#socket.requireOpen();
    const packet =
      (descriptions.length > 0
        ? withHandleHeader(descriptions, body)
        : body) as Uint8Array<ArrayBuffer>;
    // Duplicates, so a handle closed while this send waits changes nothing
    // about what is sent (its number could be reused meanwhile).
    const fds: number[] = [];
    try {
      for (const { fd } of descriptions) {
        const copy = duplicateDescriptor(fd);
        if (copy < 0) throw systemError("fcntl", action, -copy);
        fds.push(copy);
      }
      const attempt = () => {
        const fd = this.#socket.fd;
        if (fd < 0) return -ERRNO.EBADF;
        return fds.length > 0
          ? sendMessage(
            fd,
            (_sendHeader ??= new MessageHeader()).forSend(packet, fds),
          )
          : sendBytes(fd, packet);
      };
      let result = attempt();
      if (result === -ERRNO.EAGAIN) {
        result = await this.#socket.retry(
          "write",
          attempt,
          deadline,
          signal,
          action,
        );
      }
      if (result < 0) throw this.#sendError(action, -result, packet);
    } finally {
      for (const fd of fds) libc().symbols.close(fd);
    }
  }

  /**
   * Receives one packet and decodes it, building handles for the
   * descriptors that came with it (at most `maxHandles`).
   *
   * @throws {Deno.errors.UnexpectedEof} when the peer closed its end
   * @throws {DecodeError} for a message that cannot be decoded, is above
   * the limit, or carries more descriptors than allowed (they are closed)
   */
  async receive(
    maxHandles: number,
    deadline: Deadline,
    signal: AbortSignal | undefined,
  ): Promise<ReceivedPacket<T>> {
    const action = `receive from ${this.#socket.what}`;
    const attempt = () => this.#attemptReceive(maxHandles, action);
    let result = attempt();
    if (result === -ERRNO.EAGAIN) {
      result = await this.#socket.retry(
        "read",
        attempt,
        deadline,
        signal,
        action,
      );
    }
    if (typeof result === "number") {
      if (result === 0) {
        throw new Deno.errors.UnexpectedEof(
          `Cannot ${action}: the other end closed it`,
        );
      }
      throw this.#receiveError(action, -result);
    }
    return result;
  }

  /** Waits until a packet (or the end of the connection) is there, taking nothing. */
  async ready(
    deadline: Deadline,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const action = `wait for a message on ${this.#socket.what}`;
    const result = await this.#socket.peek(deadline, signal, action);
    if (result < 0 && result !== -ERRNO.ECONNRESET) {
      throw this.#receiveError(action, -result);
    }
  }

  /**
   * One non-blocking receive: the message, `0` at the end, or `-errno`.
   * Decodes and adopts before returning, while the scratch buffer still
   * holds this packet.
   */
  #attemptReceive(
    maxHandles: number,
    action: string,
  ): ReceivedPacket<T> | number {
    const fd = this.#socket.fd;
    if (fd < 0) return -ERRNO.EBADF;
    const room = this.#max + (maxHandles > 0 ? MAX_HANDLE_HEADER_BYTES : 0);
    const buffer = _scratchOf(room + 1);
    const received = _receiveHeader ??= new MessageHeader();
    const count = receiveMessage(
      fd,
      received.forReceive(buffer, maxHandles),
      MSG.TRUNC,
    );
    if (count < 0) return count;
    const flags = received.flags;
    const fds = received.receivedFds();
    try {
      const truncated = count > room || (flags & MSG.TRUNC) !== 0;
      const packet = buffer.subarray(0, Math.min(count, room));
      if ((flags & MSG.CTRUNC) || fds.length > maxHandles) {
        throw new DecodeError(
          `Cannot ${action}: a message arrived with more descriptors than this receive takes (maxHandles: ${maxHandles}); they were closed`,
          // The whole packet (ipckit's handle header, then the value), so
          // nothing but the descriptors is lost.
          packet.slice(),
        );
      }
      if (fds.length === 0) {
        if (count === 0) return 0;
        if (truncated) throw this.#tooLarge(action, count, packet);
        // Decoded in place: codecs copy what they keep (the bytes codec
        // does), so the shared buffer may be reused after this returns.
        return { value: this.#codec.decode(packet), handles: [] };
      }
      if (truncated) throw this.#tooLarge(action, count, packet);
      const { handles, bodyStart } = readHandleHeader(
        packet,
        fds.length,
        action,
      );
      const body = packet.subarray(bodyStart);
      if (body.byteLength > this.#max) {
        throw this.#tooLarge(action, body.byteLength, body);
      }
      const value = this.#codec.decode(body);
      const adopted: object[] = [];
      try {
        for (let i = 0; i < fds.length; i++) {
          adopted.push(
            adoptDescriptor(handles[i].kind, fds[i], handles[i].meta, action),
          );
          fds[i] = -1; // owned by the handle now
        }
      } catch (error) {
        for (const handle of adopted) {
          (handle as { close(): void }).close();
        }
        throw error;
      }
      return { value, handles: adopted };
    } finally {
      for (const fd of fds) if (fd >= 0) libc().symbols.close(fd);
    }
  }

  #tooLarge(action: string, count: number, packet: Uint8Array): DecodeError {
    return new DecodeError(
      `Cannot ${action}: a ${count}-byte message is larger than maxMessageSize ${this.#max}; it was dropped`,
      packet.slice(0, 64),
    );
  }

  #sendError(action: string, errno: number, packet: Uint8Array): Error {
    if (errno === ERRNO.EBADF && this.#socket.closed) {
      return closedError(this.#socket.what);
    }
    if (errno === ERRNO.EMSGSIZE) {
      return systemError(
        "send",
        action,
        errno,
        `the ${packet.byteLength}-byte packet is more than the socket's send buffer holds (raise SO_SNDBUF, net.core.wmem_max, or send less)`,
      );
    }
    if (errno === ERRNO.EPIPE) {
      return systemError("send", action, errno, "the peer closed its end");
    }
    return systemError("send", action, errno);
  }

  #receiveError(action: string, errno: number): Error {
    if (errno === ERRNO.EBADF && this.#socket.closed) {
      return closedError(this.#socket.what);
    }
    return systemError("recvmsg", action, errno);
  }
}
