/**
 * What the two processes of `deno task example:sysv` agree on: the key,
 * and the messages' shapes. Type 1 carries orders, type 9 the control
 * message that says no more orders follow, type 10 receipts.
 *
 * @module
 */

/** The notes' key: `(key_t)1234`. */
export const KEY = 1234;

/** One order. */
export interface Order {
  id: number;
  item: string;
  quantity: number;
}

/** What travels on the queue. */
export type Wire =
  | { kind: "order"; order: Order }
  | { kind: "receipt"; id: number; text: string }
  | { kind: "done" };
