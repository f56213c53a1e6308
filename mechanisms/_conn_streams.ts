/**
 * Web streams over a `Deno.Conn` that keep the two directions apart.
 *
 * `Deno.Conn`'s own `readable` and `writable` close the whole connection when
 * either one ends: the peer's end-of-stream would also stop us from sending,
 * and closing our writing side would stop us from receiving. Sockets can do
 * better (`shutdown(SHUT_WR)`, which `conn.closeWrite()` is), so these
 * streams end one direction at a time and close the connection only when
 * asked to, or when both directions are done.
 *
 * @module
 */

/** Bytes read per slab; each read gets the unused tail of the current slab. */
const _SLAB_BYTES = 64 * 1024;
/** A tail shorter than this is not worth a read: start a new slab. */
const _MIN_READ_BYTES = 4 * 1024;

/** Both directions of a connection, and a way to close it once. */
export interface ConnStreams {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
  /** Closes the connection; idempotent, never throws. */
  close(): void;
}

/** Wraps `conn` so that each direction can end on its own (half-close). */
export function connStreams(conn: Deno.Conn): ConnStreams {
  let closed = false;
  let readDone = false;
  let writeDone = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      conn.close();
    } catch {
      // Already closed by the runtime: nothing is left to release.
    }
  };
  const closeIfBothDone = () => {
    if (readDone && writeDone) close();
  };

  // Reads go into slices of a shared slab rather than a fresh 64 KiB buffer
  // each: the framing layer may keep a chunk, so slices never overlap.
  let slab = new Uint8Array(_SLAB_BYTES);
  let slabUsed = 0;
  const readable = new ReadableStream<Uint8Array>({
    async pull(controller): Promise<void> {
      if (slab.byteLength - slabUsed < _MIN_READ_BYTES) {
        slab = new Uint8Array(_SLAB_BYTES);
        slabUsed = 0;
      }
      const target = slab.subarray(slabUsed);
      let count: number | null;
      try {
        count = await conn.read(target);
      } catch (error) {
        if (!closed) throw error;
        count = null; // closed locally while reading: the stream just ends
      }
      if (count === null) {
        readDone = true;
        try {
          controller.close();
        } catch {
          // Cancelled meanwhile: the stream is finished already.
        }
        closeIfBothDone();
        return;
      }
      slabUsed += count;
      controller.enqueue(target.subarray(0, count));
    },
    cancel(): void {
      readDone = true;
      close();
    },
    // highWaterMark 0: read from the socket only when someone asks, so a slow
    // consumer leaves data in the kernel and the sender's writes wait.
  }, { highWaterMark: 0 });

  const writable = new WritableStream<Uint8Array>({
    async write(chunk): Promise<void> {
      let offset = 0;
      while (offset < chunk.byteLength) {
        offset += await conn.write(chunk.subarray(offset));
      }
    },
    async close(): Promise<void> {
      writeDone = true;
      if (!closed) {
        try {
          await conn.closeWrite();
        } catch (error) {
          // The peer may have gone already; then there is nothing to flush.
          if (!(error instanceof Deno.errors.NotConnected)) throw error;
        }
      }
      closeIfBothDone();
    },
    abort(): void {
      writeDone = true;
      close();
    },
  });

  return { readable, writable, close };
}
