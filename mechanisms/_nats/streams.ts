/**
 * Creating (or finding) the JetStream pieces a work queue stands on: a
 * file-backed stream with work-queue retention (a message is removed once
 * acknowledged), one for its dead letters, and the durable pull consumer
 * that every worker of the queue shares.
 *
 * @module
 */

import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiError,
  JetStreamError,
  type JetStreamManager,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { nanos, type NatsConnection } from "@nats-io/transport-node";

/** What a work queue needs from JetStream, checked by `Nats.workQueue()`. */
export interface QueueLayout {
  /** The stream's name, which is the queue's name. */
  stream: string;
  subject: string;
  /** The dead-letter stream and subject, unless dead letters are dropped. */
  deadLetter?: { stream: string; subject: string };
  consumer: string;
  ackWaitMs: number;
  duplicateWindowMs: number;
  replicas: number;
}

/** Makes sure the streams and the consumer exist with this layout. */
export async function ensureQueue(
  nc: NatsConnection,
  layout: QueueLayout,
  describe: string,
): Promise<JetStreamManager> {
  let jsm: JetStreamManager;
  try {
    jsm = await jetstreamManager(nc);
  } catch (error) {
    throw _jetStreamError(error, describe);
  }
  const streams = [{ stream: layout.stream, subject: layout.subject }];
  if (layout.deadLetter) streams.push(layout.deadLetter);
  try {
    for (const { stream, subject } of streams) {
      // Adding a stream that exists with the same configuration is a no-op,
      // so every process of an application can open the queue the same way.
      await jsm.streams.add({
        name: stream,
        subjects: [subject],
        retention: RetentionPolicy.Workqueue,
        storage: StorageType.File,
        duplicate_window: nanos(layout.duplicateWindowMs),
        num_replicas: layout.replicas,
      });
    }
    await jsm.consumers.add(layout.stream, {
      durable_name: layout.consumer,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(layout.ackWaitMs),
      // The delivery bound is kept by ipckit, not by the server: a message
      // whose last allowed delivery crashed its worker is delivered once
      // more and then goes to the dead letters, instead of being stuck.
      max_deliver: -1,
      filter_subject: layout.subject,
    });
  } catch (error) {
    throw _jetStreamError(error, describe);
  }
  return jsm;
}

/** A JetStream failure as an error that names the queue and says what to do. */
function _jetStreamError(error: unknown, describe: string): Error {
  const detail = error instanceof Error ? error.message : String(error);
  if (
    /jetstream (is )?not enabled/i.test(detail) ||
    (error as Error)?.name === "JetStreamNotEnabled"
  ) {
    return new Deno.errors.NotSupported(
      `Cannot open ${describe}: the server has no JetStream (start nats-server with -js)`,
      { cause: error },
    );
  }
  if (error instanceof JetStreamApiError && error.code === 10058) {
    return new Deno.errors.AlreadyExists(
      `Cannot open ${describe}: a stream of that name exists with another configuration: ${detail}`,
      { cause: error },
    );
  }
  if (error instanceof JetStreamApiError || error instanceof JetStreamError) {
    return new Error(`Cannot open ${describe}: ${detail}`, { cause: error });
  }
  return error as Error;
}
