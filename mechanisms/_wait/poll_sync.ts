/**
 * The blocking form of waiting for a descriptor: `poll()` on the calling
 * thread, for the `*Sync` calls (Workers and scripts that choose to block).
 *
 * @module
 */

import { ERRNO } from "../../ffi/errno.ts";
import { POLL, pollBlocking, PollList } from "../../ffi/poll.ts";
import { systemError } from "../_common/system_error.ts";
import { type Deadline, remainingMs } from "./deadline.ts";

/** Which way a descriptor should be ready: for reading or for writing. */
export type Direction = "read" | "write";

const _list = new PollList(1);

/**
 * Blocks the calling thread until `fd` is ready in `direction` (or has an
 * error or hang-up to report) or the deadline passes. Retries EINTR with
 * the time that is left.
 *
 * @returns whether the descriptor became ready (false: timed out)
 */
export function pollSync(
  fd: number,
  direction: Direction,
  deadline: Deadline,
  action: string,
): boolean {
  for (;;) {
    _list.set(0, fd, direction === "read" ? POLL.IN : POLL.OUT);
    const result = pollBlocking(_list, 1, remainingMs(deadline));
    if (result >= 0) return result > 0;
    if (-result !== ERRNO.EINTR) throw systemError("poll", action, -result);
  }
}
