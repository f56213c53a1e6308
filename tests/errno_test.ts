/**
 * Reading errno back after a C call (ffi/errno.ts): what is retried, what
 * is reported, and how often a call is made.
 */
import { assertEquals } from "@std/assert";
import { ERRNO, retryEintr, retryTransfer } from "../ffi/errno.ts";
import { libc } from "../ffi/load.ts";

/** The calling thread's errno, to write as a failing C call would. */
function errnoCell(): Int32Array {
  const pointer = libc().symbols.__errno_location!();
  return new Int32Array(Deno.UnsafePointerView.getArrayBuffer(pointer!, 4));
}

/** A fake C call that fails with each errno of `failures` in turn, then returns `success`. */
function failingWith(
  failures: number[],
  success: number,
): { call: () => number; calls: () => number } {
  const cell = errnoCell();
  let calls = 0;
  const call = (): number => {
    const errno = failures[calls++];
    if (errno === undefined) return success;
    cell[0] = errno;
    return -1;
  };
  return { call, calls: () => calls };
}

Deno.test("retryEintr() retries EINTR and reports any other errno at once", () => {
  const interrupted = failingWith([ERRNO.EINTR, ERRNO.EINTR], 5);
  assertEquals(retryEintr(interrupted.call), 5);
  assertEquals(interrupted.calls(), 3);
  const refused = failingWith([ERRNO.ENOENT], 5);
  assertEquals(retryEintr(refused.call), -ERRNO.ENOENT);
  assertEquals(refused.calls(), 1);
});

Deno.test("retryTransfer() tries a read that failed with an impossible ENOENT again", () => {
  const spurious = failingWith([ERRNO.ENOENT], 7);
  assertEquals(retryTransfer(spurious.call), 7);
  assertEquals(spurious.calls(), 2);
});

Deno.test("retryTransfer() reports ENOENT after three tries, and other errnos at once", () => {
  const stuck = failingWith([ERRNO.ENOENT, ERRNO.ENOENT, ERRNO.ENOENT], 7);
  assertEquals(retryTransfer(stuck.call), -ERRNO.ENOENT);
  assertEquals(stuck.calls(), 3);
  const busy = failingWith([ERRNO.EAGAIN], 7);
  assertEquals(retryTransfer(busy.call), -ERRNO.EAGAIN);
  assertEquals(busy.calls(), 1);
});
