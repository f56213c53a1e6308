/**
 * Web streams over a non-blocking descriptor (a FIFO end or a pipe end), so
 * that {@linkcode FramedChannel} can frame messages on it.
 *
 * Deno has no API that wraps a raw descriptor, and its own file reads run a
 * blocking read() on the thread pool that nothing can cancel. Here every
 * read() and write() is non-blocking on the main thread (so errno is exact);
 * when one would block, the stream goes through the one retry loop, which
 * spins briefly and then parks on the reactor until the descriptor is
 * ready. Releasing the descriptor from the reactor rejects a parked read or
 * write at once.
 *
 * Each stream owns its descriptor and closes it exactly once: at end of
 * stream, on cancel/abort, or on error.
 *
 * @module
 */

import { ERRNO, retryTransfer } from "../../ffi/errno.ts";
import { libc } from "../../ffi/load.ts";
import { systemError } from "../_common/system_error.ts";
import { FOREVER } from "../_wait/deadline.ts";
import { pollSync } from "../_wait/poll_sync.ts";
import { reactor } from "../_wait/reactor.ts";
import { retryAsync, type RetryPlan } from "../_wait/retry.ts";
import { DEFAULT_SPIN_MICROS, Spinner } from "../_wait/spin.ts";

/** The largest single read(): the default pipe capacity on Linux. */
const _READ_CHUNK = 64 * 1024;

/**
 * One scratch buffer for every read of every stream in the process: a
 * read() is synchronous, and what it brings is copied out in the same
 * attempt, before anything else can run (never after an `await`: another
 * stream's read would overwrite it), so 10,000 streams cost 64 KiB, not
 * 10,000 times that.
 */
const _scratch = new Uint8Array(_READ_CHUNK);
const _scratchLength = BigInt(_READ_CHUNK);

/** "Ready now?": a poll that does not wait. */
const _NOW = { at: 0, timeout: 0 };

/**
 * A descriptor and whether it is still open. Shared with a
 * `FinalizationRegistry` so a dropped channel's descriptor is closed too.
 */
export interface FdHandle {
  /** The descriptor, or -1 once closed. */
  fd: number;
}

/**
 * Closes a stream's descriptor once: its parked waits reject first (the
 * reactor forgets it), then the descriptor is closed.
 */
function _close(handle: FdHandle): void {
  if (handle.fd < 0) return;
  reactor().release(handle.fd);
  libc().symbols.close(handle.fd);
  handle.fd = -1;
}

/** Options for {@linkcode fdReadable}. */
export interface FdReadableOptions {
  /**
   * FIFO semantics: until a writer has been seen, read() returning 0 means
   * "no writer yet", not end of stream. Linux reports POLLHUP to a FIFO
   * reader only after a writer has come (and gone) since the reader opened,
   * so a poll that reports readiness after a 0-byte read proves a writer was
   * there; until then the stream waits.
   */
  awaitFirstWriter?: boolean;
  /** Microseconds to retry a read that would block before parking (see `Spinner`). */
  spinMicros?: number;
}

/**
 * A readable byte stream over `handle.fd`, which must be non-blocking.
 * It closes the descriptor at end of stream, on cancel and on error.
 *
 * @param what the object for error messages: `FIFO "/tmp/jobs"`
 */
export function fdReadable(
  handle: FdHandle,
  what: string,
  options: FdReadableOptions = {},
): ReadableStream<Uint8Array> {
  const action = `read from ${what}`;
  let sawWriter = !options.awaitFirstWriter;
  const read = () =>
    retryTransfer(() =>
      Number(libc().symbols.read(handle.fd, _scratch, _scratchLength))
    );
  // A read's result: the bytes (copied out of the scratch buffer at once),
  // or 0 at end of stream, or -errno.
  const plan: RetryPlan<Uint8Array | number> = {
    attempt: () => {
      // Closed while spinning or parked: stop at once.
      if (handle.fd < 0) return -ERRNO.EBADF;
      let count = read();
      if (count === 0 && !sawWriter) {
        // No writer has opened the FIFO yet, or one came and went since
        // the read above, which a ready poll shows.
        if (!pollSync(handle.fd, "read", _NOW, action)) return -ERRNO.EAGAIN;
        sawWriter = true;
        count = read();
      }
      // EAGAIN, not 0: a writer has the other end open.
      if (count > 0 || count === -ERRNO.EAGAIN) sawWriter = true;
      return count > 0 ? _scratch.slice(0, count) : count;
    },
    wouldBlock: (count) => count === -ERRNO.EAGAIN,
    spinner: new Spinner(options.spinMicros ?? DEFAULT_SPIN_MICROS),
    deadline: FOREVER,
    action,
  };
  const park = () =>
    reactor().park(handle.fd, "read", what, FOREVER, undefined, action);
  return new ReadableStream<Uint8Array>({
    async pull(controller): Promise<void> {
      if (handle.fd < 0) return;
      const result = await retryAsync(plan, park);
      if (handle.fd < 0) return; // closed meanwhile
      if (typeof result !== "number") {
        controller.enqueue(result);
      } else if (result === 0) {
        controller.close();
        _close(handle);
      } else {
        _close(handle);
        throw systemError("read", action, -result);
      }
    },
    cancel(): void {
      _close(handle);
    },
  }, { highWaterMark: 0 });
}

/**
 * A writable byte stream over `handle.fd`, which must be non-blocking.
 * Each chunk is written whole (partial writes are continued; a full pipe
 * parks until the reader drains it). It closes the descriptor on close,
 * abort and error.
 *
 * Writing after the reader has gone fails with `Deno.errors.BrokenPipe`.
 * It never raises SIGPIPE: the Rust runtime under Deno sets SIGPIPE to
 * "ignore" at startup (see `SigIgn` bit 13 in /proc/self/status), so the
 * kernel answers write() with EPIPE instead of killing the process.
 *
 * @param what the object for error messages: `FIFO "/tmp/jobs"`
 */
export function fdWritable(
  handle: FdHandle,
  what: string,
  options: { spinMicros?: number } = {},
): WritableStream<Uint8Array> {
  const action = `write to ${what}`;
  const spinner = new Spinner(options.spinMicros ?? DEFAULT_SPIN_MICROS);
  let abortSignal: AbortSignal | undefined;
  return new WritableStream<Uint8Array>({
    start(controller): void {
      // Aborted as soon as abort() is called, even while a write is parked,
      // so closing never waits on a reader that does not drain.
      abortSignal = controller.signal;
    },
    async write(chunk): Promise<void> {
      const write = libc().symbols.write;
      let offset = 0;
      const plan: RetryPlan<number> = {
        attempt: () => {
          if (handle.fd < 0) return -ERRNO.EBADF;
          const rest = chunk.subarray(offset) as Uint8Array<ArrayBuffer>;
          return retryTransfer(() =>
            Number(write(handle.fd, rest, BigInt(rest.byteLength)))
          );
        },
        wouldBlock: (count) => count === -ERRNO.EAGAIN,
        // A full pipe the reader is draining right now frees up at once.
        spinner,
        deadline: FOREVER,
        signal: abortSignal,
        action,
      };
      const park = () =>
        reactor().park(handle.fd, "write", what, FOREVER, abortSignal, action);
      while (offset < chunk.byteLength) {
        let count: number;
        try {
          count = await retryAsync(plan, park);
        } catch (error) {
          _close(handle);
          throw error;
        }
        if (count >= 0) {
          offset += count;
          continue;
        }
        _close(handle);
        throw systemError(
          "write",
          action,
          -count,
          -count === ERRNO.EPIPE
            ? "the reading end is closed (broken pipe)"
            : undefined,
        );
      }
    },
    close(): void {
      _close(handle);
    },
    abort(): void {
      _close(handle);
    },
  }, { highWaterMark: 1 });
}
