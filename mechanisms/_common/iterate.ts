/**
 * The `for await` loop every message-carrying handle offers: call
 * `receive()` (or `accept()`) until the handle is closed, or until the peer's
 * end of stream where there is one.
 *
 * @module
 */

/**
 * Yields what `next()` resolves to until `isClosed()` says the handle was
 * closed. A `BadResource` thrown once the handle is closed ends the loop
 * quietly (closing is how a consumer stops it); with `endsAtEof`, so does
 * `UnexpectedEof` (the peer closed its end). Every other error, a
 * `DecodeError` included, ends the loop by being thrown to the consumer.
 */
export async function* receiveUntilEnd<M>(
  next: () => Promise<M>,
  isClosed: () => boolean,
  endsAtEof: boolean,
): AsyncGenerator<M, void> {
  while (!isClosed()) {
    try {
      yield await next();
    } catch (error) {
      if (endsAtEof && error instanceof Deno.errors.UnexpectedEof) return;
      if (isClosed() && error instanceof Deno.errors.BadResource) return;
      throw error;
    }
  }
}
