/**
 * A Session over any ipckit channel of bytes whose peer follows the
 * stream_peer rule: echo short messages, acknowledge long ones.
 *
 * @module
 */

import type { Session } from "./_transport.ts";

/** The part of an ipckit `Channel<Uint8Array>` a session uses. */
export interface BytesChannel {
  send(value: Uint8Array): Promise<void>;
  receive(): Promise<{ value: Uint8Array }>;
}

/**
 * Round trips are send-then-receive; one-way sends keep sending while the
 * acknowledgements come back on their own.
 */
export function channelSession(
  channel: BytesChannel,
  close: () => Promise<void>,
  peers?: readonly number[],
): Session {
  return {
    ...(peers ? { peers } : {}),
    roundTrip: async (message) => {
      await channel.send(message);
      await channel.receive();
    },
    sendOneWay: async (message, count) => {
      const acks = (async () => {
        for (let i = 0; i < count; i++) await channel.receive();
      })();
      // Handled at once: if the peer goes away mid-burst, the acks fail
      // while sends are still awaited, and an unhandled rejection would end
      // the whole run instead of this cell. The burst rejects below.
      acks.catch(() => {});
      for (let i = 0; i < count; i++) await channel.send(message);
      await acks;
    },
    close,
  };
}
