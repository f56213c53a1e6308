/**
 * The wire format of `"frames"` framing, which FramedChannel writes and
 * reads, and which a FIFO shared by several writers must fit in PIPE_BUF.
 *
 * @module
 */

/** Bytes in a `"frames"` length header: a 32-bit big-endian length. */
export const FRAME_HEADER_BYTES = 4;

/** The default `maxMessageSize` of a framed channel: 64 MiB. */
export const DEFAULT_MAX_MESSAGE_SIZE: number = 64 * 1024 * 1024;
