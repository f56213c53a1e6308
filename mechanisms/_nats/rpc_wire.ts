/**
 * How request/response over NATS looks on the wire: NATS's own request and
 * reply (a reply subject per request; the payload is the codec's bytes, with
 * no envelope), and errors the way NATS services report them, so that any
 * NATS client (`nats req`, a NATS micro service) can talk to `serve()`:
 *
 * - a response is the handler's result, encoded, with no headers;
 * - an error response has the headers `Nats-Service-Error` (the message) and
 *   `Nats-Service-Error-Code` (500, or 503 when the server is too busy or
 *   stopping), and a JSON body with the error's `name`, `message`, `code`
 *   and, when the server exposes stacks, `stack`;
 * - a status message 503 with no body is the server saying that nobody
 *   subscribes to the subject ("no responders").
 *
 * @module
 */

import { headers, type Msg, type MsgHdrs } from "@nats-io/transport-node";
import type { RpcErrorInfo } from "../rpc.ts";
import { plainBytes } from "./bytes.ts";

/** The header that marks an error response, as NATS micro services use it. */
export const ERROR_HEADER = "Nats-Service-Error";
/** Its numeric companion: 500 for a handler's error, 503 when busy or stopping. */
export const ERROR_CODE_HEADER = "Nats-Service-Error-Code";

/** What came back for a request. */
export type Answer =
  | { kind: "value"; data: Uint8Array }
  | { kind: "error"; info: RpcErrorInfo }
  | { kind: "no-responders" };

const _encoder = new TextEncoder();
const _decoder = new TextDecoder();

/** The parts of an error that cross to the caller. */
export function errorInfoOf(
  error: unknown,
  exposeStack: boolean,
): RpcErrorInfo {
  if (!(error instanceof Error)) {
    return { name: "Error", message: String(error) };
  }
  const info: RpcErrorInfo = { name: error.name, message: error.message };
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string") info.code = code;
  if (exposeStack && error.stack) info.stack = error.stack;
  return info;
}

/** The headers and body of an error response. */
export function errorResponse(
  info: RpcErrorInfo,
  status: 500 | 503,
): { headers: MsgHdrs; data: Uint8Array } {
  const h = headers();
  // A header value ends at the line: keep the first line only.
  h.set(ERROR_HEADER, info.message.split(/\r?\n/, 1)[0] || info.name);
  h.set(ERROR_CODE_HEADER, String(status));
  return { headers: h, data: _encoder.encode(JSON.stringify(info)) };
}

/**
 * Reads a response. Nothing in it is trusted: an error body that is not
 * the expected JSON still yields an error, from the header alone.
 */
export function readAnswer(message: Msg): Answer {
  const h = message.headers;
  if (
    message.data.byteLength === 0 && h?.code === 503 && !h.has(ERROR_HEADER)
  ) {
    return { kind: "no-responders" };
  }
  if (!h?.has(ERROR_HEADER)) {
    return { kind: "value", data: plainBytes(message.data) };
  }
  const fallback: RpcErrorInfo = {
    name: "Error",
    message: h.get(ERROR_HEADER),
  };
  let body: unknown;
  try {
    body = JSON.parse(_decoder.decode(message.data));
  } catch {
    return { kind: "error", info: fallback };
  }
  const { name, message: text, code, stack } = (body ?? {}) as Record<
    string,
    unknown
  >;
  if (typeof name !== "string" || typeof text !== "string") {
    return { kind: "error", info: fallback };
  }
  const info: RpcErrorInfo = { name, message: text };
  if (typeof code === "string") info.code = code;
  if (typeof stack === "string") info.stack = stack;
  return { kind: "error", info };
}
