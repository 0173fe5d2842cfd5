import { CountersignError, type ErrorCode, type Logger } from "@countersign/core";
import { toCountersignError } from "@countersign/services";
import type { NextFunction, Request, Response } from "express";

/** How each code reads over HTTP. Transport details live here, not in the domain. */
export const HTTP_ERRORS: Record<ErrorCode, { status: number; title: string }> = {
  invalid_request: { status: 400, title: "Invalid request" },
  unauthorized: { status: 401, title: "Unauthorized" },
  forbidden: { status: 403, title: "Forbidden" },
  not_found: { status: 404, title: "Not found" },
  method_not_allowed: { status: 405, title: "Method not allowed" },
  request_not_pending: { status: 409, title: "Request is no longer pending" },
  already_voted: { status: 409, title: "Already voted" },
  conflict: { status: 409, title: "Conflict" },
  request_not_approved: { status: 409, title: "Request is not approved" },
  receipt_already_redeemed: { status: 409, title: "Receipt already redeemed" },
  self_approval_forbidden: { status: 403, title: "Self-approval is forbidden" },
  not_an_approver: { status: 403, title: "Not an approver" },
  reviewer_unverified: { status: 403, title: "Reviewer identity could not be verified" },
  idempotency_conflict: { status: 422, title: "Idempotency key reused with a different body" },
  callback_url_forbidden: { status: 422, title: "Callback URL is not allowed" },
  payload_too_large: { status: 413, title: "Payload too large" },
  unsupported_media_type: { status: 415, title: "Unsupported media type" },
  rate_limited: { status: 429, title: "Too many requests" },
  service_unavailable: { status: 503, title: "Service unavailable" },
  internal_error: { status: 500, title: "Internal error" },
};

export const httpStatus = (code: ErrorCode): number => HTTP_ERRORS[code].status;

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  detail: string;
  requestId: string;
  instance: string;
  errors?: { path: string; message: string }[];
}

export function sendProblem(res: Response, req: Request, err: CountersignError): void {
  const { status, title } = HTTP_ERRORS[err.code];
  const body: Problem = {
    type: `https://countersign.dev/errors/${err.code}`,
    title,
    status,
    code: err.code,
    detail: err.message,
    requestId: req.id,
    instance: req.originalUrl.split("?")[0] ?? req.originalUrl,
    ...(err.errors ? { errors: err.errors } : {}),
  };
  if (err.retryAfter !== undefined) res.setHeader("Retry-After", String(Math.ceil(err.retryAfter)));
  res.status(status).type("application/problem+json").send(JSON.stringify(body));
}

/** body-parser's failures, which only the HTTP edge can raise; everything else goes to the one normaliser. */
export function toHttpError(err: unknown): CountersignError {
  const e = err as { type?: string; status?: number };
  switch (e?.type) {
    case "entity.too.large":
      return new CountersignError("payload_too_large", "The request body is larger than 64 KB.");
    case "entity.parse.failed":
      return new CountersignError("invalid_request", "The request body is not valid JSON.", { errors: [{ path: "", message: "malformed JSON" }] });
    case "encoding.unsupported":
    case "charset.unsupported":
      return new CountersignError("unsupported_media_type", "The request body must be UTF-8 JSON.");
    case "request.aborted":
    case "request.size.invalid":
    case "stream.encoding.set":
      return new CountersignError("invalid_request", "The request body could not be read.");
  }
  if (!(err instanceof CountersignError) && typeof e?.status === "number" && e.status >= 400 && e.status < 500) {
    return new CountersignError("invalid_request", "The request could not be read.");
  }
  return toCountersignError(err);
}

export function errorHandler(log: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const ce = toHttpError(err);
    if (ce.code === "internal_error") log.error("unhandled error", { requestId: req.id, err: err as Error });
    else if (ce.code === "service_unavailable") log.warn(ce.message, { requestId: req.id, err: (err as Error)?.message });
    if (res.headersSent) return;
    sendProblem(res, req, ce);
  };
}
