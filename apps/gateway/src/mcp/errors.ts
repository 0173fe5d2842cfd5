import type { CountersignError, ErrorCode } from "@countersign/core";
import { toCountersignError } from "@countersign/services";
import { ErrorCode as RpcCode } from "@modelcontextprotocol/sdk/types.js";

/**
 * An error the SDK sends as a JSON-RPC error with exactly this code, message and data
 * (an McpError would prefix "MCP error -32602:" to the message the agent reads).
 */
export class JsonRpcError extends Error {
  override name = "JsonRpcError";
  constructor(
    readonly code: number,
    message: string,
    readonly data?: Record<string, unknown>,
  ) {
    super(message);
  }
}

const INVALID_PARAMS: ReadonlySet<ErrorCode> = new Set(["invalid_request", "idempotency_conflict", "payload_too_large", "callback_url_forbidden"]);

/** Countersign's one error type, as JSON-RPC: the stable code is in `data.code`. */
export function toJsonRpcError(e: unknown): JsonRpcError {
  if (e instanceof JsonRpcError) return e;
  const ce = toCountersignError(e);
  const code = INVALID_PARAMS.has(ce.code) ? RpcCode.InvalidParams : ce.code === "internal_error" ? RpcCode.InternalError : -32000;
  return new JsonRpcError(code, ce.message, {
    code: ce.code,
    ...(ce.errors ? { errors: ce.errors } : {}),
    ...(ce.retryAfter !== undefined ? { retryAfter: ce.retryAfter } : {}),
  });
}

/** The body of an HTTP answer that refuses a message before the MCP session sees it. */
export function rpcErrorBody(e: CountersignError | JsonRpcError, id: unknown = null) {
  const err = e instanceof JsonRpcError ? e : toJsonRpcError(e);
  return {
    jsonrpc: "2.0" as const,
    id: typeof id === "string" || typeof id === "number" ? id : null,
    error: { code: err.code, message: err.message, data: err.data },
  };
}
