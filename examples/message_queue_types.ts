/**
 * The messages of the message queue example, shared by both processes.
 *
 * @module
 */

/** A job from the producer: count the words of a text, or stop. */
export type Job =
  | { kind: "count"; id: number; text: string }
  | { kind: "stop" };

/** The consumer's answer to one job. */
export interface Result {
  id: number;
  words: number;
  letters: number;
  worker: number;
}
