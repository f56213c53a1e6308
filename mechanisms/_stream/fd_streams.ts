/**
 * Web streams over a non-blocking descriptor (a FIFO end or a pipe end), so
 * that {@linkcode FramedChannel} can frame messages on it.
 *
 * Deno has no API that wraps a raw descriptor, and its own file reads run a
 * blocking read() on the thread pool that nothing can cancel. Here every
 * read() and write() is non-blocking on the main thread (so errno is exact);
 * when one would block, the stream parks on the descriptor with
 * {@linkcode FdParker}, which a close wakes at once.
 *
 * Each stream owns its descriptor and closes it exactly once: at end of
 * stream, on cancel/abort, or on error, and only after no parked poll still
 * uses it.
 *
 * @module
 */

import { POLL } from "../../ffi/c.ts";
import { ERRNO, retryEintr } from "../../ffi/errno.ts";
import { libc } from "../../ffi/load.ts";
import { systemError } from "../_common/system_error.ts";
import { type Deadline, FdParker, pollSync } from "../_wait/fd.ts";
import { DEFAULT_SPIN_MICROS, Spinner } from "../_wait/spin.ts";

/** The largest single read(): the default pipe capacity on Linux. */
const _READ_CHUNK = 64 * 1024;

const _FOREVER: Deadline = { at: Infinity, timeout: Infinity };

/**
 * A descriptor and whether it is still open. Shared with a
 * `FinalizationRegistry` so a dropped channel's descriptor is closed too.
 */
export interface FdHandle {
  /** The descriptor, or -1 once closed. */
  fd: number;
}

/** Closes a descriptor once a parker is idle, and marks the handle closed. */
function _closeWhenIdle(handle: FdHandle, parker: FdParker): void {
  parker.close(() => {
    if (handle.fd < 0) return;
    libc().symbols.close(handle.fd);
    handle.fd = -1;
  });
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
  const parker = new FdParker(handle.fd, POLL.IN, what);
  const scratch = new Uint8Array(_READ_CHUNK);
  const length = BigInt(_READ_CHUNK);
  const action = `read from ${what}`;
  let sawWriter = !options.awaitFirstWriter;
  const release = () => _closeWhenIdle(handle, parker);
  const spinner = new Spinner(options.spinMicros ?? DEFAULT_SPIN_MICROS);
  const readOnce = () =>
    handle.fd < 0
      ? -ERRNO.EBADF // closed while spinning: stop at once
      : retryEintr(() =>
        Number(libc().symbols.read(handle.fd, scratch, length))
      );
  const gotData = (count: number) => count !== -ERRNO.EAGAIN;
  return new ReadableStream<Uint8Array>({
    async pull(controller): Promise<void> {
      let started = -1;
      for (let spun = false;; spun = true) {
        const fd = handle.fd;
        if (fd < 0) return;
        let count = readOnce();
        // Before the first park of this pull only: a writer answering within
        // microseconds is caught without two cross-thread wake-ups.
        if (!spun && -count === ERRNO.EAGAIN) {
          started = performance.now();
          count = await spinner.spinAsync(count, readOnce, gotData);
          if (handle.fd < 0) return; // closed while spinning
        }
        if (count > 0) {
          // Slept after a fruitless spin: let the next spin catch this one.
          if (spun && started >= 0) spinner.slept(performance.now() - started);
          sawWriter = true;
          // One copy of what arrived: the scratch buffer serves every read.
          controller.enqueue(scratch.slice(0, count));
          return;
        }
        if (count === 0) {
          if (sawWriter) {
            controller.close();
            release();
            return;
          }
          // No writer has opened the FIFO yet (or one came and went since
          // the read above, which a ready poll shows).
          if (pollSync(fd, POLL.IN, { at: 0, timeout: 0 }, action)) {
            sawWriter = true;
            continue;
          }
        } else if (-count === ERRNO.EAGAIN) {
          // EAGAIN, not 0: a writer has the other end open.
          sawWriter = true;
        } else {
          release();
          throw systemError("read", action, -count);
        }
        await parker.park(_FOREVER, undefined, action);
      }
    },
    cancel(): void {
      release();
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
  const parker = new FdParker(handle.fd, POLL.OUT, what);
  const action = `write to ${what}`;
  let abortSignal: AbortSignal | undefined;
  const release = () => _closeWhenIdle(handle, parker);
  const spinner = new Spinner(options.spinMicros ?? DEFAULT_SPIN_MICROS);
  return new WritableStream<Uint8Array>({
    start(controller): void {
      // Aborted as soon as abort() is called, even while a write is parked,
      // so closing never waits on a reader that does not drain.
      abortSignal = controller.signal;
    },
    async write(chunk): Promise<void> {
      const write = libc().symbols.write;
      let offset = 0;
      const writeRest = () => {
        const fd = handle.fd;
        const rest = chunk.subarray(offset) as Uint8Array<ArrayBuffer>;
        return retryEintr(() =>
          Number(write(fd, rest, BigInt(rest.byteLength)))
        );
      };
      while (offset < chunk.byteLength) {
        let count = writeRest();
        if (-count === ERRNO.EAGAIN) {
          // A full pipe the reader is draining right now frees up at once.
          count = await spinner.spinAsync(
            count,
            () => handle.fd < 0 ? -ERRNO.EBADF : writeRest(),
            (result) => result !== -ERRNO.EAGAIN,
          );
        }
        if (count >= 0) {
          offset += count;
          continue;
        }
        if (-count !== ERRNO.EAGAIN) {
          release();
          throw systemError(
            "write",
            action,
            -count,
            -count === ERRNO.EPIPE
              ? "the reading end is closed (broken pipe)"
              : undefined,
          );
        }
        try {
          await parker.park(_FOREVER, abortSignal, action);
        } catch (error) {
          release();
          throw error;
        }
      }
    },
    close(): void {
      release();
    },
    abort(): void {
      release();
    },
  }, { highWaterMark: 1 });
}
