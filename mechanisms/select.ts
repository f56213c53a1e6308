/**
 * Waiting on many channels at once: `select()` resolves with the first of
 * several channels that has a message ready, without taking a message from
 * any of them, so the caller then receives from that one. It is what
 * iceoryx2's WaitSet, ipc-channel's receiver sets and ZeroMQ's `zmq_poll`
 * offer.
 *
 * `Promise.race` over several `receive()` calls is the wrong tool: every
 * channel that answers gives up a message, and all but one are dropped.
 * `select()` waits with each channel's `ready()` instead, which takes
 * nothing, and stops waiting on the others as soon as one is ready.
 *
 * Any mix of channels works: message queues, FIFOs, pipes to a child,
 * sockets, datagram sockets, duplex channels. Descriptor-based channels
 * all wait on the process's one reactor, so selecting over many costs no
 * thread per channel.
 *
 * @example A worker that stops when told to
 * ```ts
 * import { MessageQueue, select } from "@ipckit/ipckit";
 *
 * const open = <T>(name: string) =>
 *   MessageQueue.open<T>(`${name}-${Deno.pid}`, { create: true, unlinkOnClose: true });
 * using jobs = open<string>("/jobs");
 * using control = open<"stop">("/control");
 * jobs.trySend("resize");
 * control.trySend("stop");
 * for (;;) {
 *   const ready = await select([jobs, control], { timeout: 60_000 });
 *   if (ready === control) break;
 *   const { value } = await jobs.receive({ timeout: 0 });
 *   console.log("job", value); // job resize
 * }
 * ```
 *
 * @module
 */

import type { Selectable, WaitOptions } from "./channel.ts";
import { bounded, deadlineOf, WAIT_KEYS } from "./_wait/deadline.ts";
import { checkOptionKeys } from "./_common/checks.ts";

/**
 * Waits until one of `channels` has a message ready and resolves with that
 * channel; when several are ready at once, any one of them may be the one
 * (to be sure none is starved, receive from every channel that is ready,
 * or vary the order between calls). No message is taken from any channel: receive from the one returned (with
 * `{ timeout: 0 }` if you want to be sure it does not wait; another
 * consumer of the same channel may still take the message first). The
 * waits on the other channels are stopped before it resolves; what they
 * read meanwhile stays in their buffers.
 *
 * Why the channel and not its index: the result can be compared with the
 * channels the caller holds (`if (ready === control)`), and has the type
 * of the channels passed, so `await (await select([a, b])).receive()`
 * receives from whichever was ready.
 *
 * A channel whose end was closed by its peer counts as ready: its
 * `receive()` reports that at once. A channel closed locally, or one whose
 * `ready()` fails, makes `select()` reject with that error.
 *
 * @param channels one or more channels of any kind
 * @returns the first channel that is ready
 * @throws {TypeError} when `channels` is empty or holds something without `ready()`
 * @throws {Deno.errors.TimedOut} when `timeout` passes first
 * @throws {Deno.errors.BadResource} when one of the channels is closed
 * @throws the signal's reason when `signal` aborts
 *
 * @example Whichever of two queues has a message first
 * ```ts
 * import { MessageQueue, select } from "@ipckit/ipckit";
 *
 * const open = (name: string) =>
 *   MessageQueue.open<string>(`${name}-${Deno.pid}`, { create: true, unlinkOnClose: true });
 * using urgent = open("/urgent");
 * using normal = open("/normal");
 * setTimeout(() => normal.trySend("whenever"), 10);
 * const ready = await select([urgent, normal], { timeout: 1000 });
 * const { value } = await ready.receive({ timeout: 0 });
 * console.log(value); // whenever
 * ```
 *
 * @category Channels
 */
export function select<const C extends readonly Selectable[]>(
  channels: C,
  options: WaitOptions = {},
): Promise<C[number]> {
  if (!Array.isArray(channels) || channels.length === 0) {
    return Promise.reject(
      new TypeError("Cannot select: give at least one channel"),
    );
  }
  const bad = channels.findIndex((channel) =>
    typeof (channel as Partial<Selectable>)?.ready !== "function"
  );
  if (bad >= 0) {
    return Promise.reject(
      new TypeError(
        `Cannot select: channels[${bad}] has no ready() method, so it is not a channel`,
      ),
    );
  }
  let deadline;
  try {
    checkOptionKeys(options, WAIT_KEYS, "select a ready channel");
    deadline = deadlineOf(options, "select a ready channel");
  } catch (error) {
    return Promise.reject(error);
  }
  return bounded<C[number]>(
    deadline,
    options.signal,
    "select a ready channel",
    (settle) => {
      // Stops the losers' waits once the race is settled, whoever settled it.
      const stop = new AbortController();
      channels.forEach((channel) => {
        let ready: Promise<void>;
        try {
          ready = channel.ready({ signal: stop.signal });
        } catch (error) {
          ready = Promise.reject(error); // a hand-written ready() that throws
        }
        ready.then(
          () => settle.resolve(channel),
          (error) => {
            if (!stop.signal.aborted) settle.reject(error);
          },
        );
      });
      return () => stop.abort();
    },
  );
}
