/**
 * `struct mq_attr` as ipckit reads and writes it: the attributes of a POSIX
 * message queue (mq_getattr(3)) and the sizes of one being created
 * (mq_open(3)).
 *
 * @module
 */

import { MQ_ATTR, requireSymbol } from "./c.ts";
import { retryEintr } from "./errno.ts";

/** The fields of `struct mq_attr` that ipckit uses. */
export interface MqAttributes {
  /** `mq_maxmsg`: capacity in messages. */
  maxMessages: number;
  /** `mq_msgsize`: the largest message in bytes. */
  messageSize: number;
  /** `mq_curmsgs`: messages waiting right now. */
  currentMessages: number;
}

/** The attributes of the queue open on `fd`, or `-errno` when mq_getattr fails. */
export function mqAttributes(fd: number): MqAttributes | number {
  const attr = new BigInt64Array(MQ_ATTR.SIZE_OF / 8);
  const mqGetattr = requireSymbol("mq_getattr");
  const result = retryEintr(() => mqGetattr(fd, attr));
  if (result < 0) return result;
  return {
    maxMessages: Number(attr[MQ_ATTR.MAXMSG / 8]),
    messageSize: Number(attr[MQ_ATTR.MSGSIZE / 8]),
    currentMessages: Number(attr[MQ_ATTR.CURMSGS / 8]),
  };
}

/**
 * The `struct mq_attr` that mq_open(3) takes to create a queue of
 * `maxMessages` messages of at most `messageSize` bytes.
 */
export function mqCreateAttributes(
  maxMessages: number,
  messageSize: number,
): BigInt64Array<ArrayBuffer> {
  const attr = new BigInt64Array(MQ_ATTR.SIZE_OF / 8);
  attr[MQ_ATTR.MAXMSG / 8] = BigInt(maxMessages);
  attr[MQ_ATTR.MSGSIZE / 8] = BigInt(messageSize);
  return attr;
}
