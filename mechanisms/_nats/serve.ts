/**
 * The answering side of request/response over NATS: a queue-group
 * subscription whose requests run a handler, at most `maxInFlight` at a
 * time, with at most `maxQueued` more waiting; past that a request is
 * answered at once with a 503 error instead of growing the process.
 *
 * @module
 */

import type { Msg, Subscription } from "@nats-io/transport-node";
import type { Codec } from "../codec.ts";
import type { RequestContext, RpcServer } from "../rpc.ts";
import type { NatsMessage } from "./channel.ts";
import type { Link } from "./link.ts";
import { errorInfoOf, errorResponse } from "./rpc_wire.ts";
import { plainBytes } from "./bytes.ts";

/** What `serve()` is given, checked by `Nats.serve()`. */
export interface ResolvedServeOptions<Req, Res> {
  queue: string | undefined;
  requestCodec: Codec<Req>;
  responseCodec: Codec<Res>;
  maxInFlight: number;
  maxQueued: number;
  exposeStack: boolean;
  onError: (error: unknown) => void;
  signal: AbortSignal | undefined;
}

/** A handler over NATS: the request, and the message it came in. */
export type NatsHandler<Req, Res> = (
  request: Req,
  context: RequestContext<NatsMessage<Req>>,
) => Res | Promise<Res>;

/** Subscribes and answers; the caller waits for the subscription to reach the server. */
export function serveOnLink<Req, Res>(
  link: Link,
  subject: string,
  handler: NatsHandler<Req, Res>,
  options: ResolvedServeOptions<Req, Res>,
): RpcServer {
  const stop = new AbortController();
  const waiting: Msg[] = [];
  let running = 0;
  let nextId = 1;
  const finished = Promise.withResolvers<void>();
  const what = `NATS subject "${subject}"`;

  const respond = (
    message: Msg,
    data: Uint8Array,
    headers?: ReturnType<typeof errorResponse>["headers"],
  ) =>
    link.publish(
      message.reply!,
      data,
      headers ? { headers } : {},
      { at: Infinity, timeout: Infinity },
      undefined,
      `answer a request on ${what}`,
    );

  const refuse = (message: Msg, reason: string) => {
    const { headers, data } = errorResponse(
      {
        name: "Busy",
        message: `Cannot handle a request on ${what}: ${reason}`,
      },
      503,
    );
    respond(message, data, headers).catch(options.onError);
  };

  const handle = async (message: Msg): Promise<void> => {
    const id = nextId;
    nextId = nextId >= 0x7fff_ffff ? 1 : nextId + 1;
    let request: Req;
    try {
      request = options.requestCodec.decode(plainBytes(message.data));
    } catch (error) {
      options.onError(error);
      const { headers, data } = errorResponse(errorInfoOf(error, false), 500);
      await respond(message, data, headers).catch(options.onError);
      return;
    }
    const context: RequestContext<NatsMessage<Req>> = {
      id,
      message: {
        value: request,
        subject: message.subject,
        reply: message.reply,
      },
      signal: stop.signal,
    };
    let data: Uint8Array;
    let headers: ReturnType<typeof errorResponse>["headers"] | undefined;
    try {
      const result = await handler(request, context);
      data = options.responseCodec.encode(result);
      if (data.byteLength > link.maxPayload) {
        throw new RangeError(
          `Cannot answer a request on ${what}: the response is ${data.byteLength} bytes, the server takes at most ${link.maxPayload} (max_payload)`,
        );
      }
    } catch (error) {
      ({ headers, data } = errorResponse(
        errorInfoOf(error, options.exposeStack),
        500,
      ));
    }
    await respond(message, data, headers).catch(options.onError);
  };

  const start = (message: Msg) => {
    running++;
    handle(message).catch(options.onError).finally(() => {
      running--;
      const next = waiting.shift();
      if (next) start(next);
      else if (stop.signal.aborted && running === 0) finished.resolve();
    });
  };

  const close = () => {
    if (stop.signal.aborted) return;
    stop.abort();
    options.signal?.removeEventListener("abort", close);
    if (!link.nc.isClosed()) subscription.unsubscribe();
    // Requests not started yet get a prompt answer instead of a timeout.
    for (const message of waiting.splice(0)) {
      if (!link.nc.isClosed()) refuse(message, "the server is stopping");
    }
    if (running === 0) finished.resolve();
  };

  // close() above runs only after this assignment: from the callback, a
  // signal or a drain, all later.
  const subscription: Subscription = link.nc.subscribe(subject, {
    queue: options.queue,
    callback: (error, message) => {
      if (error) {
        options.onError(error);
        close();
        return;
      }
      if (!message.reply) {
        options.onError(
          new TypeError(
            `Cannot serve a message on ${what}: it names no reply subject`,
          ),
        );
        return;
      }
      if (stop.signal.aborted) refuse(message, "the server is stopping");
      else if (running < options.maxInFlight) start(message);
      else if (waiting.length < options.maxQueued) waiting.push(message);
      else {
        refuse(
          message,
          `${running} requests are running and ${waiting.length} are waiting`,
        );
      }
    },
  });
  // Closing the connection stops taking requests and lets the ones taken
  // finish and be answered before the socket closes.
  const unhook = link.onDrain(() => (close(), finished.promise));
  finished.promise.then(unhook);
  const forgetEnd = link.onEnd(close);
  finished.promise.then(forgetEnd);
  options.signal?.addEventListener("abort", close, { once: true });
  if (options.signal?.aborted) close();
  return {
    done: finished.promise,
    close,
    [Symbol.dispose]: close,
    [Symbol.asyncDispose]: () => {
      close();
      return finished.promise;
    },
  };
}
