/**
 * Bounds for waits in tests that the API under test cannot bound itself
 * (a child's exit, a stream read, a promise built by the test), so that a
 * regression fails with a clear message instead of hanging the suite.
 *
 * @module
 */

/**
 * Settles like `promise`, or rejects after `ms` milliseconds with an error
 * that says what was awaited. The timer is cleared as soon as it settles.
 */
export function bounded<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)),
      ms,
    );
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/** Reads lines from a child's stdout, each read bounded. */
export class LineReader {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #decoder = new TextDecoder();
  #text = "";

  /** Takes over `stream` (a child's stdout). */
  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  /** The next line, without its newline; rejects after `ms` or at the end. */
  async next(ms = 20_000): Promise<string> {
    for (;;) {
      const newline = this.#text.indexOf("\n");
      if (newline >= 0) {
        const line = this.#text.slice(0, newline);
        this.#text = this.#text.slice(newline + 1);
        return line;
      }
      const { done, value } = await bounded(
        this.#reader.read(),
        ms,
        "a line from the child",
      );
      if (done) throw new Error(`the child's output ended: ${this.#text}`);
      this.#text += this.#decoder.decode(value, { stream: true });
    }
  }

  /** Lets the stream go (and drains nothing more). */
  async cancel(): Promise<void> {
    await this.#reader.cancel();
  }
}

/**
 * Collects what `iterable` yields until it ends, each step bounded by `ms`:
 * a `for await` whose end a regression would never bring fails instead.
 */
export async function collectWithin<T>(
  iterable: AsyncIterable<T>,
  ms: number,
  what: string,
): Promise<T[]> {
  const iterator = iterable[Symbol.asyncIterator]();
  const items: T[] = [];
  try {
    for (;;) {
      const step = await bounded(iterator.next(), ms, what);
      if (step.done) return items;
      items.push(step.value);
    }
  } catch (error) {
    // Let the iterator go; whatever it was waiting for is abandoned.
    void iterator.return?.()?.catch?.(() => {});
    throw error;
  }
}
