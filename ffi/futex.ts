/**
 * futex(2) and futex_waitv(2) from C: syscall numbers, flags, the
 * `struct futex_waitv` layout, and wrappers. Linux only.
 *
 * `syscall()` is variadic; it is declared in libc.ts with the fixed
 * parameters of each use, which is sound on x86_64 and aarch64 Linux (see
 * the note there).
 *
 * @module
 */

import { ERRNO, lastErrno } from "./errno.ts";
import { libc } from "./load.ts";

/** Syscall numbers: futex_waitv is 449 on both; futex differs. */
const _SYS = Deno.build.arch === "x86_64"
  ? { FUTEX: 202n, FUTEX_WAITV: 449n }
  : { FUTEX: 98n, FUTEX_WAITV: 449n };

/** futex(2) operations and flag. */
const _FUTEX_WAIT = 0;
const _FUTEX_WAKE = 1;
const _FUTEX_PRIVATE_FLAG = 128;

/** futex_waitv(2) per-entry flags: a 32-bit word; private to this process. */
const _FUTEX2_SIZE_U32 = 0x02;
const _FUTEX2_PRIVATE = 128;

/** The most entries one futex_waitv call takes (FUTEX_WAITV_MAX). */
export const FUTEX_WAITV_MAX = 128;

/**
 * `struct futex_waitv { __u64 val; __u64 uaddr; __u32 flags; __u32 __reserved; }`:
 * 24 bytes on every architecture (fixed-width fields).
 */
export const FUTEX_WAITV = {
  VAL: 0,
  UADDR: 8,
  FLAGS: 16,
  SIZE_OF: 24,
} as const;

let _available: boolean | undefined;

/**
 * Whether the kernel has futex_waitv (Linux >= 5.16). Probed once with an
 * empty list, which the kernel rejects with EINVAL when it knows the call
 * and ENOSYS when it does not (a seccomp filter may answer EPERM: also no).
 */
export function hasFutexWaitv(): boolean {
  if (_available !== undefined) return _available;
  const symbols = libc().symbols;
  if (Deno.build.os !== "linux" || !symbols.syscall_futex_waitv) {
    return _available = false;
  }
  const result = symbols.syscall_futex_waitv(
    _SYS.FUTEX_WAITV,
    null,
    0,
    0,
    null,
    0,
  );
  _available = result === -1n && lastErrno() === ERRNO.EINVAL;
  return _available;
}

/**
 * A list of `struct futex_waitv` entries that C reads when a wait starts.
 * Its owner holds it while a wait may still read it, and rewrites it only
 * once that wait has returned.
 */
export class FutexWaitList {
  /** The bytes the kernel reads. */
  readonly bytes: Uint8Array<ArrayBuffer>;
  #view: DataView;

  /** @param capacity the most entries, at most {@linkcode FUTEX_WAITV_MAX} */
  constructor(capacity: number) {
    if (capacity > FUTEX_WAITV_MAX) {
      throw new RangeError(
        `Cannot wait on ${capacity} futexes at once: the kernel takes at most ${FUTEX_WAITV_MAX}`,
      );
    }
    this.bytes = new Uint8Array(capacity * FUTEX_WAITV.SIZE_OF);
    this.#view = new DataView(this.bytes.buffer);
  }

  /**
   * Writes entry `index`: wait while the 32-bit word at `address` holds
   * `expected`. A `shared` word is keyed by the kernel on the file and
   * offset it maps (any process mapping it wakes it); a private one only by
   * this process's address.
   */
  set(index: number, address: bigint, expected: number, shared: boolean): void {
    const at = index * FUTEX_WAITV.SIZE_OF;
    const view = this.#view;
    view.setBigUint64(at + FUTEX_WAITV.VAL, BigInt(expected >>> 0), true);
    view.setBigUint64(at + FUTEX_WAITV.UADDR, address, true);
    view.setUint32(
      at + FUTEX_WAITV.FLAGS,
      _FUTEX2_SIZE_U32 | (shared ? 0 : _FUTEX2_PRIVATE),
      true,
    );
    view.setUint32(at + FUTEX_WAITV.FLAGS + 4, 0, true);
  }
}

/**
 * `futex_waitv(list, count, 0, NULL, 0)` on Deno's thread pool, with no
 * timeout: resolves to the index of a word that was woken, or -1 when it
 * returned for another reason (a word did not hold its expected value at
 * the start, a signal). Its errno is lost on that thread; callers look at
 * the words themselves afterwards.
 */
export async function futexWaitvAsync(
  list: FutexWaitList,
  count: number,
): Promise<number> {
  const wait = libc().symbols.syscall_futex_waitv_nonblocking!;
  const result = await wait(_SYS.FUTEX_WAITV, list.bytes, count, 0, null, 0);
  return Number(result);
}

/**
 * `futex(address, FUTEX_WAKE, count)`: wakes up to `count` waiters of the
 * word, in any process mapping it when `shared`. Returns how many were
 * woken, or `-errno`.
 */
export function futexWake(
  address: bigint,
  count: number,
  shared: boolean,
): number {
  const wake = libc().symbols.syscall_futex_wake!;
  const op = _FUTEX_WAKE | (shared ? 0 : _FUTEX_PRIVATE_FLAG);
  const result = wake(
    _SYS.FUTEX,
    Deno.UnsafePointer.create(address),
    op,
    count,
    null,
    null,
    0,
  );
  return result < 0n ? -lastErrno() : Number(result);
}

/**
 * `futex(address, FUTEX_WAIT, expected, timeout)`, blocking the calling
 * thread while the word holds `expected`, for at most `timeoutMs` (none:
 * no limit; measured on CLOCK_MONOTONIC by the kernel). Returns 0 when
 * woken, or `-errno`: EAGAIN when the word did not hold `expected`,
 * ETIMEDOUT, EINTR (the caller decides whether to wait again).
 */
export function futexWaitSync(
  address: bigint,
  expected: number,
  timeoutMs: number | undefined,
  shared: boolean,
): number {
  const wait = libc().symbols.syscall_futex_wait!;
  const op = _FUTEX_WAIT | (shared ? 0 : _FUTEX_PRIVATE_FLAG);
  let timeout: Uint8Array<ArrayBuffer> | null = null;
  if (timeoutMs !== undefined) {
    const nanos = BigInt(Math.max(0, Math.round(timeoutMs * 1e6)));
    const fields = new BigInt64Array([
      nanos / 1_000_000_000n,
      nanos % 1_000_000_000n,
    ]);
    timeout = new Uint8Array(fields.buffer);
  }
  const result = wait(
    _SYS.FUTEX,
    Deno.UnsafePointer.create(address),
    op,
    expected >>> 0,
    timeout,
    null,
    0,
  );
  return result < 0n ? -lastErrno() : Number(result);
}

/** Whether futex(2) can be called here (Linux with a `syscall` symbol). */
export function hasFutex(): boolean {
  return Deno.build.os === "linux" &&
    libc().symbols.syscall_futex_wait !== null &&
    libc().symbols.syscall_futex_wait !== undefined;
}

/** The address of element 0 of a typed array, as the kernel sees it. */
export function addressOf(array: Int32Array | Uint32Array): bigint {
  return Deno.UnsafePointer.value(Deno.UnsafePointer.of(array));
}
