/**
 * The one handle lifecycle every ipckit handle follows, written once:
 *
 * - `close()` is idempotent: the first call releases, later calls do
 *   nothing; `[Symbol.dispose]` and `[Symbol.asyncDispose]` close too.
 * - Owners close their children first: an object placed inside another (a
 *   semaphore in a shared memory region, a mutex's guards) registers with
 *   its owner through {@linkcode Lifecycle.own}, and closing the owner
 *   closes those children, newest first like destructors, while what they
 *   live in is still there; only then does the owner release itself.
 * - A handle dropped without `close()` is released by one
 *   `FinalizationRegistry` ({@linkcode watchDropped}). That is a safety
 *   net, never the contract: when it runs is up to the garbage collector.
 * - Using a closed handle is one error, built in one place:
 *   `Cannot <verb> <object>: it is closed` (`closedError`).
 * - Removing a name on close (`unlinkOnClose`) counts "it does not exist"
 *   as done ({@linkcode unlinkQuietly}): somebody removed it first, and the
 *   goal is reached.
 *
 * How a handle uses it:
 *
 * ```ts ignore
 * class Thing implements Disposable, AsyncDisposable {
 *   #life = new Lifecycle(`thing "${name}"`);
 *   constructor() {
 *     const raw = { fd };
 *     this.#life.guard(this, () => close(raw.fd)); // never capture `this`
 *   }
 *   get closed(): boolean { return this.#life.closed; }
 *   send(): void { this.#life.check("send to"); … }
 *   close(): void { this.#life.close(() => close(fd)); }
 *   [Symbol.dispose](): void { this.close(); }
 *   [Symbol.asyncDispose](): Promise<void> { return this.#life.closeAsync(() => this.close()); }
 * }
 * ```
 *
 * @module
 */

import { closedError } from "./system_error.ts";

/** Anything an owner can close: a child handle, a guard. */
export interface Closable {
  /** Releases the child; idempotent. */
  close(): void;
}

// One registry for every kind of handle. The held value is the clean-up
// itself, which must reach only the raw resource (a descriptor number, a
// pointer), never the handle: a closure over the handle would keep it alive
// and the net would never fire.
const _dropped = new FinalizationRegistry<() => void>((cleanup) => {
  try {
    cleanup();
  } catch {
    // Nobody is left to tell: the handle was dropped without close().
  }
});

/**
 * Releases `cleanup`'s resource if `target` is garbage-collected before the
 * returned function is called (which `close()` does). `cleanup` must not
 * reference `target`, or `target` is never collected.
 *
 * @returns the function that disarms the net; idempotent
 */
export function watchDropped(target: object, cleanup: () => void): () => void {
  const token = {};
  _dropped.register(target, cleanup, token);
  return () => _dropped.unregister(token);
}

/**
 * Runs `unlink` and counts `NotFound` as success: the name is gone, which is
 * what was asked. Any other error (no permission, …) is thrown.
 */
export function unlinkQuietly(unlink: () => void): void {
  try {
    unlink();
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/**
 * What a wait on a handle listens to: the caller's `signal` and the
 * handle's `closing` signal (aborted by `close()`), whichever aborts first;
 * just `closing` when the caller gave none.
 */
export function untilClosed(
  signal: AbortSignal | undefined,
  closing: AbortSignal,
): AbortSignal {
  return signal ? AbortSignal.any([signal, closing]) : closing;
}

/** A hold a handle hands out (a lock it took): held until released, once. */
export interface Hold extends Disposable, AsyncDisposable {
  readonly held: boolean;
  release(): void;
  close(): void;
  [Symbol.dispose](): void;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * The hold on something a handle with lifecycle `life` took: `release()`
 * (or `close()`, or leaving a `using` block) runs `give` the first time
 * only, and not at all once the handle is closed, since closing the handle
 * released it already or left it to the kernel. `fields` are copied onto
 * the hold (a file lock's range).
 */
export function holdOf<T extends object>(
  life: Lifecycle,
  give: () => void,
  fields: T,
): T & Hold {
  let held = true;
  const release = () => {
    if (!held) return;
    held = false;
    if (!life.closed) give();
  };
  return {
    ...fields,
    get held() {
      return held;
    },
    release,
    close: release,
    [Symbol.dispose]: release,
    [Symbol.asyncDispose]: () => life.closeAsync(release),
  };
}

/**
 * The state of one handle: open, closing (its children are being closed,
 * and may still use it), or closed (released).
 */
export type LifecycleState = "open" | "closing" | "closed";

/**
 * The lifecycle of one handle; see the module documentation. A handle keeps
 * one in a private field and routes `closed`, its "is it closed" checks and
 * `close()` through it.
 */
export class Lifecycle {
  #what: string;
  #state: LifecycleState = "open";
  #children = new Set<Closable>();
  #disarm: (() => void) | undefined;

  /**
   * @param what the object, as error messages name it: `message queue "/jobs"`
   */
  constructor(what: string) {
    this.#what = what;
  }

  /** The object, as error messages name it. */
  get what(): string {
    return this.#what;
  }

  /** Whether `close()` has been called (also while it is closing children). */
  get closed(): boolean {
    return this.#state !== "open";
  }

  /** Open, closing or closed. */
  get state(): LifecycleState {
    return this.#state;
  }

  /**
   * The error for using the handle once it is closed:
   * `Cannot <verb> <what>: it is closed`.
   */
  closedError(verb: string = "use"): Deno.errors.BadResource {
    return closedError(this.#what, verb);
  }

  /**
   * Throws {@linkcode Lifecycle.closedError} once the handle is released.
   * While it closes its children they may still use it: this passes then.
   */
  check(verb: string = "use"): void {
    if (this.#state === "closed") throw closedError(this.#what, verb);
  }

  /**
   * Arms the safety net for `target` (the public handle): `cleanup`
   * releases the raw resource if the handle is dropped without `close()`.
   * Closing disarms it. `cleanup` must not reference `target`.
   */
  guard(target: object, cleanup: () => void): void {
    this.#disarm?.();
    this.#disarm = watchDropped(target, cleanup);
  }

  /**
   * Makes `child` close before this handle releases itself. The child calls
   * the returned function when it closes on its own, so that a closed child
   * is not held (idempotent).
   *
   * @throws {Deno.errors.BadResource} when this handle is closed already
   */
  own(child: Closable): () => void {
    this.check();
    this.#children.add(child);
    return () => this.#children.delete(child);
  }

  /**
   * Closes the handle once: disarms the safety net, closes every child
   * (newest first), then runs `release`. Later calls, and calls made while
   * it runs, do nothing.
   *
   * If a child's `close()` throws, the other children and `release` still
   * run, and the first error is thrown at the end.
   *
   * @returns whether this call closed it
   */
  close(release?: () => void): boolean {
    if (this.#state !== "open") return false;
    this.#state = "closing";
    this.#disarm?.();
    this.#disarm = undefined;
    let failure: { error: unknown } | undefined;
    const children = [...this.#children].reverse();
    this.#children.clear();
    for (const child of children) {
      try {
        child.close();
      } catch (error) {
        failure ??= { error };
      }
    }
    this.#state = "closed";
    try {
      release?.();
    } catch (error) {
      failure ??= { error };
    }
    if (failure) throw failure.error;
    return true;
  }

  /**
   * `[Symbol.asyncDispose]` for a handle whose closing does not wait:
   * runs `close` and resolves, or rejects with what it threw.
   */
  closeAsync(close: () => void): Promise<void> {
    try {
      close();
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }
}
