/**
 * Checks the framing options of a stream mechanism (FIFO, pipe) before any
 * system call, so bad input fails with a TypeError or RangeError before a
 * descriptor is opened or a process started. {@linkcode FramedChannel}
 * checks the same again when it is built.
 *
 * @module
 */

import type { FramedChannelOptions } from "../framing.ts";

/**
 * The framing options every stream mechanism takes: those of
 * {@linkcode FramedChannelOptions} that do not name streams.
 */
export type StreamFramingOptions<T> = Pick<
  FramedChannelOptions<T>,
  "codec" | "framing" | "maxMessageSize"
>;

/** Throws a TypeError or RangeError naming `action` for a bad framing option. */
export function checkFramingOptions(
  options: StreamFramingOptions<unknown>,
  action: string,
): void {
  const { framing, maxMessageSize, codec } = options;
  if (framing !== undefined && framing !== "frames" && framing !== "lines") {
    throw new TypeError(
      `Cannot ${action}: framing must be "frames" or "lines", got ${
        JSON.stringify(framing)
      }`,
    );
  }
  if (
    maxMessageSize !== undefined &&
    (!Number.isSafeInteger(maxMessageSize) || maxMessageSize < 1 ||
      maxMessageSize > 0xffff_ffff)
  ) {
    throw new RangeError(
      `Cannot ${action}: maxMessageSize must be an integer from 1 to ${0xffff_ffff}, got ${maxMessageSize}`,
    );
  }
  if (
    codec !== undefined &&
    (typeof codec?.encode !== "function" || typeof codec?.decode !== "function")
  ) {
    throw new TypeError(
      `Cannot ${action}: codec must have encode() and decode() methods`,
    );
  }
}
