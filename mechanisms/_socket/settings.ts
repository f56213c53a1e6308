/**
 * The options every socket channel of one kind is configured with, and the
 * checks of `listen`, `connect` and `socketpair` options before any system
 * call.
 *
 * @module
 */

import { SOCK } from "../../ffi/socket.ts";
import type { Codec } from "../codec.ts";
import { checkMode } from "../_common/checks.ts";
import type { CheckedAddress } from "../_kernel/socket_address.ts";
import { checkFramingOptions } from "../_stream/options.ts";
import { checkSpinMicros } from "../_wait/spin.ts";

/** `"stream"` or `"seqpacket"` (the public `SocketType`). */
export type SocketKind = "stream" | "seqpacket";

/**
 * The default largest message on a seqpacket socket: 64 KiB.
 *
 * @category Sockets
 */
export const SEQPACKET_DEFAULT_MAX = 64 * 1024;
/**
 * The largest `maxMessageSize` a seqpacket socket takes: 16 MiB. The
 * kernel's own limit is the socket's send buffer (`net.core.wmem_default`,
 * 212,992 bytes by default); a larger packet fails with `EMSGSIZE`.
 *
 * @category Sockets
 */
export const SEQPACKET_MAX = 16 * 1024 * 1024;
/** The default largest message on a stream socket: 64 MiB. */
const _STREAM_DEFAULT_MAX = 64 * 1024 * 1024;

/**
 * The send buffer ipckit asks for on a Unix socket: 1 MiB, so a large
 * message goes to the kernel in a few calls instead of a wake-up per
 * 200 KB (the kernel's default). The kernel caps it at net.core.wmem_max,
 * silently.
 */
export const DEFAULT_UNIX_SEND_BUFFER = 1024 * 1024;

/** What every channel of one socket kind is configured with. */
export interface SocketSettings<T> {
  type: SocketKind;
  codec: Codec<T>;
  framing: "frames" | "lines" | undefined;
  maxMessageSize: number;
  spin: number;
  /** SO_SNDBUF to set, or undefined to keep the kernel's (TCP's autotuning). */
  sendBufferSize: number | undefined;
}

/** The channel options as the checks see them (the public `SocketChannelOptions`). */
export interface ChannelOptionValues<T> {
  codec?: Codec<T>;
  framing?: "frames" | "lines";
  maxMessageSize?: number;
  spin?: number;
  sendBufferSize?: number;
  type?: unknown;
}

/** The listener options as the checks see them (the public `ListenOptions`). */
export interface ListenOptionValues {
  mode?: number;
  backlog?: number;
  allow?: unknown;
  onAcceptError?: unknown;
}

const _CHANNEL_KEYS = [
  "codec",
  "framing",
  "maxMessageSize",
  "spin",
  "sendBufferSize",
] as const;
const _ADDRESS_KEYS = ["path", "abstract", "hostname", "port", "type"] as const;
/** Every key `listen()` takes. */
export const LISTEN_KEYS: readonly string[] = [
  ..._ADDRESS_KEYS,
  ..._CHANNEL_KEYS,
  "mode",
  "backlog",
  "allow",
  "onAcceptError",
];
/** Every key `connect()` takes. */
export const CONNECT_KEYS: readonly string[] = [
  ..._ADDRESS_KEYS,
  ..._CHANNEL_KEYS,
  "timeout",
  "signal",
];
/** Every key `socketpair()` takes. */
export const PAIR_KEYS: readonly string[] = [..._CHANNEL_KEYS, "type"];

/** `Unix socket`, `Unix seqpacket socket` or `TCP`, for messages. */
export function protocolName(
  address: CheckedAddress | undefined,
  type: SocketKind,
): string {
  if (address?.transport === "inet") return "TCP";
  return type === "seqpacket" ? "Unix seqpacket socket" : "Unix socket";
}

/** `SOCK_STREAM` or `SOCK_SEQPACKET`. */
export function socketTypeOf(type: SocketKind): number {
  return type === "seqpacket" ? SOCK.SEQPACKET : SOCK.STREAM;
}

/**
 * Checks the channel options and the socket type before any system call;
 * `address` undefined means a pair (Unix, no address). `defaultCodec`
 * makes the codec when none is given (the public module's JSON codec).
 */
export function checkSocketSettings<T>(
  options: ChannelOptionValues<T>,
  address: CheckedAddress | undefined,
  action: string,
  defaultCodec: () => Codec<T>,
): SocketSettings<T> {
  const type = options.type ?? "stream";
  if (type !== "stream" && type !== "seqpacket") {
    throw new TypeError(
      `Cannot ${action}: type must be "stream" or "seqpacket", got ${
        JSON.stringify(type)
      }`,
    );
  }
  if (type === "seqpacket" && address?.transport === "inet") {
    throw new TypeError(
      `Cannot ${action}: seqpacket sockets are Unix sockets; give { path } or { abstract }`,
    );
  }
  const spin = checkSpinMicros(options.spin, action);
  const sendBufferSize = _checkSendBuffer(
    options.sendBufferSize,
    address?.transport === "inet",
    action,
  );
  if (type === "stream") {
    checkFramingOptions(options, action);
    return {
      type,
      codec: options.codec ?? defaultCodec(),
      framing: options.framing,
      maxMessageSize: options.maxMessageSize ?? _STREAM_DEFAULT_MAX,
      spin,
      sendBufferSize,
    };
  }
  if (options.framing !== undefined) {
    throw new TypeError(
      `Cannot ${action}: a seqpacket socket keeps message boundaries itself and takes no framing`,
    );
  }
  checkFramingOptions({ codec: options.codec }, action);
  const max = options.maxMessageSize ?? SEQPACKET_DEFAULT_MAX;
  if (!Number.isSafeInteger(max) || max < 1 || max > SEQPACKET_MAX) {
    throw new RangeError(
      `Cannot ${action}: maxMessageSize must be an integer from 1 to ${SEQPACKET_MAX} on a seqpacket socket, got ${
        String(options.maxMessageSize)
      }`,
    );
  }
  return {
    type,
    codec: options.codec ?? defaultCodec(),
    framing: undefined,
    maxMessageSize: max,
    spin,
    sendBufferSize,
  };
}

/**
 * `sendBufferSize`: 4 KiB to 64 MiB. Default 1 MiB on Unix sockets; none
 * on TCP, whose buffers the kernel sizes itself (setting one would stop
 * that).
 */
function _checkSendBuffer(
  value: unknown,
  tcp: boolean,
  action: string,
): number | undefined {
  if (value === undefined) return tcp ? undefined : DEFAULT_UNIX_SEND_BUFFER;
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < 4096 ||
    value > 64 * 1024 * 1024
  ) {
    throw new RangeError(
      `Cannot ${action}: sendBufferSize must be an integer from 4096 to ${
        64 * 1024 * 1024
      } bytes, got ${String(value)}`,
    );
  }
  return value;
}

/** Checks `mode`, `backlog`, `allow` and `onAcceptError`; returns the mode. */
export function checkListenSettings(
  options: ListenOptionValues,
  address: CheckedAddress,
  action: string,
): { mode: number; backlog: number } {
  if (options.mode !== undefined && address.transport !== "unix") {
    throw new TypeError(
      `Cannot ${action}: mode applies to a socket file ({ path }) only`,
    );
  }
  const mode = checkMode(options.mode ?? 0o600, action);
  const backlog = options.backlog;
  if (
    backlog !== undefined &&
    (!Number.isInteger(backlog) || backlog < 1 || backlog > 65535)
  ) {
    throw new RangeError(
      `Cannot ${action}: backlog must be an integer from 1 to 65535, got ${
        String(backlog)
      }`,
    );
  }
  if (options.allow !== undefined) {
    if (typeof options.allow !== "function") {
      throw new TypeError(`Cannot ${action}: allow must be a function`);
    }
    if (address.transport === "inet") {
      throw new TypeError(
        `Cannot ${action}: allow needs a Unix socket; TCP peers carry no credentials`,
      );
    }
  }
  if (
    options.onAcceptError !== undefined &&
    typeof options.onAcceptError !== "function"
  ) {
    throw new TypeError(`Cannot ${action}: onAcceptError must be a function`);
  }
  return { mode, backlog: backlog ?? 511 };
}
