import { CountersignError, ERROR_CODES, type ErrorCode, type Logger } from "@countersign/core";
import { isDatabaseUnavailable } from "@countersign/services";
import type { NextFunction, Request, Response } from "express";

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
  const body: Problem = {
    type: `https://countersign.dev/errors/${err.code}`,
    title: ERROR_CODES[err.code].title,
    status: err.status,
    code: err.code,
    detail: err.message,
    requestId: req.id,
    instance: req.originalUrl.split("?")[0] ?? req.originalUrl,
    ...(err.errors ? { errors: err.errors } : {}),
  };
  if (err.retryAfter !== undefined) res.setHeader("Retry-After", String(Math.ceil(err.retryAfter)));
  res.status(err.status).type("application/problem+json").send(JSON.stringify(body));
}

/** Maps body-parser failures and unknown errors; unknown causes are logged, never sent. */
export function toCountersignError(err: unknown): CountersignError {
  if (err instanceof CountersignError) return err;
  const e = err as { type?: string; status?: number; message?: string };
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
  if (typeof e?.status === "number" && e.status >= 400 && e.status < 500) {
    return new CountersignError("invalid_request", "The request could not be read.");
  }
  // Prisma's transaction manager (P2028): no pool connection within maxWait, or the
  // transaction outlived its timeout and was rolled back. Nothing was committed, so the
  // client can safely retry; under overload that is a 503, not an internal error.
  if ((err as { code?: unknown })?.code === "P2028") {
    return new CountersignError("service_unavailable", "The server is busy; retry shortly.", { retryAfter: 1, cause: err });
  }
  if (isDatabaseUnavailable(err)) {
    return new CountersignError("service_unavailable", "The database is unavailable; retry shortly.", { retryAfter: 5, cause: err });
  }
  return new CountersignError("internal_error", "An internal error occurred. Quote the request id when reporting it.", { cause: err });
}

export function errorHandler(log: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const ce = toCountersignError(err);
    if (ce.code === "internal_error") log.error("unhandled error", { requestId: req.id, err: err as Error });
    else if (ce.code === "service_unavailable") log.warn(ce.message, { requestId: req.id, err: (err as Error)?.message });
    if (res.headersSent) return;
    sendProblem(res, req, ce);
  };
}
