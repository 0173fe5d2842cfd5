/**
 * The closed set of error codes, the same on every surface. Each transport maps a code
 * once, onto its own output: HTTP to a status and problem+json (apps/gateway http/problem.ts),
 * Slack to an ephemeral message, Teams to a card notice, the CLI to one line.
 */
export const ERROR_CODES = [
  "invalid_request",
  "unauthorized",
  "forbidden",
  "not_found",
  "request_not_pending",
  "already_voted",
  "self_approval_forbidden",
  "not_an_approver",
  "reviewer_unverified",
  "idempotency_conflict",
  "callback_url_forbidden",
  "request_not_approved",
  "receipt_already_redeemed",
  "conflict",
  "rate_limited",
  "service_unavailable",
  "internal_error",
  // Raised only by the HTTP edge, before a body reaches a service.
  "method_not_allowed",
  "payload_too_large",
  "unsupported_media_type",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface FieldError {
  path: string;
  message: string;
}

export class CountersignError extends Error {
  override name = "CountersignError";
  readonly code: ErrorCode;
  readonly errors: FieldError[] | undefined;
  /** Seconds, for rate_limited and service_unavailable. */
  readonly retryAfter: number | undefined;

  constructor(code: ErrorCode, message: string, opts: { errors?: FieldError[]; retryAfter?: number; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.code = code;
    this.errors = opts.errors;
    this.retryAfter = opts.retryAfter;
  }
}

export function isCountersignError(e: unknown): e is CountersignError {
  return e instanceof CountersignError;
}

/** The refusals a reviewer can get from decide(); each is audited. */
export const REFUSAL_CODES = ["self_approval_forbidden", "not_an_approver", "already_voted", "request_not_pending"] as const satisfies readonly ErrorCode[];
export type RefusalCode = (typeof REFUSAL_CODES)[number];
