/**
 * ipckit's errors: one domain error, `IpcError`, Deno's own classes where one
 * fits, and `DecodeError` for messages that arrive but cannot be read.
 *
 * @example Telling errors apart
 * ```ts
 * import { MessageQueue } from "@ipckit/ipckit";
 *
 * try {
 *   MessageQueue.open("/missing-queue");
 * } catch (error) {
 *   if (error instanceof Deno.errors.NotFound) {
 *     console.log("no such queue:", (error as Deno.errors.NotFound & { code: string }).code);
 *   }
 * }
 * ```
 *
 * @module
 */

/**
 * What every error that comes from a failing system call carries.
 *
 * @category Errors
 */
export interface SystemErrorDetails {
  /** The errno name, e.g. `"EEXIST"`. */
  code: string;
  /** The errno number on this OS. */
  errno: number;
  /** The C function that failed, e.g. `"mq_open"`. */
  syscall: string;
}

/**
 * A failing system call that no Deno error class describes better.
 *
 * @example The error for a call Deno has no class for
 * ```ts
 * import { IpcError } from "@ipckit/ipckit";
 *
 * const error = new IpcError("Cannot send: the message is too long", {
 *   code: "EMSGSIZE",
 *   errno: 90,
 *   syscall: "mq_send",
 * });
 * console.log(error.code, error.syscall);
 * ```
 *
 * @category Errors
 */
export class IpcError extends Error implements SystemErrorDetails {
  /** The errno name, e.g. `"EMSGSIZE"`. */
  code: string;
  /** The errno number on this OS. */
  errno: number;
  /** The C function that failed. */
  syscall: string;

  /** Creates an error for a failed call; `cause` chains an underlying error. */
  constructor(
    message: string,
    details: SystemErrorDetails,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "IpcError";
    this.code = details.code;
    this.errno = details.errno;
    this.syscall = details.syscall;
  }
}

/**
 * A message arrived but could not be decoded or failed validation. Nothing is
 * lost: the raw bytes are kept in {@linkcode DecodeError.bytes}.
 *
 * @example The bytes of a message that did not decode
 * ```ts
 * import { codecs, DecodeError } from "@ipckit/ipckit";
 *
 * try {
 *   codecs.json().decode(new TextEncoder().encode("{not json"));
 * } catch (error) {
 *   if (error instanceof DecodeError) console.log(error.bytes.length);
 * }
 * ```
 *
 * @category Errors
 */
export class DecodeError extends Error {
  /**
   * A copy of the bytes that could not be decoded; empty when what failed
   * was a decoded value (see {@linkcode DecodeError.value}).
   */
  readonly bytes: Uint8Array;
  /** Validation issues, when a schema rejected the decoded value. */
  readonly issues: readonly { message: string; path?: readonly unknown[] }[];
  /**
   * The decoded value that failed a check after decoding (an RPC envelope
   * with a missing id, say), when there was one; `undefined` otherwise.
   */
  readonly value: unknown;

  /** Creates a decode error owning a copy of `bytes`. */
  constructor(
    message: string,
    bytes: Uint8Array,
    options?: ErrorOptions & {
      issues?: readonly { message: string; path?: readonly unknown[] }[];
      value?: unknown;
    },
  ) {
    super(message, options);
    this.name = "DecodeError";
    // Receive buffers are reused; the error must own what it reports.
    this.bytes = bytes.slice();
    this.issues = options?.issues ?? [];
    this.value = options?.value;
  }
}
