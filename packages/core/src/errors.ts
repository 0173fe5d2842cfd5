/**
 * The closed set of error codes. Each transport maps these once: HTTP to problem+json,
 * Slack to an ephemeral message, Teams to a card.
 */
export const ERROR_CODES = {
  invalid_request: { status: 400, title: "Invalid request" },
  unauthorized: { status: 401, title: "Unauthorized" },
  forbidden: { status: 403, title: "Forbidden" },
  not_found: { status: 404, title: "Not found" },
  method_not_allowed: { status: 405, title: "Method not allowed" },
  request_not_pending: { status: 409, title: "Request is no longer pending" },
  already_voted: { status: 409, title: "Already voted" },
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
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

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

  get status(): number {
    return ERROR_CODES[this.code].status;
  }
}

export function isCountersignError(e: unknown): e is CountersignError {
  return e instanceof CountersignError;
}

/** The refusals a reviewer can get from decide(); each is audited. */
export const REFUSAL_CODES = ["self_approval_forbidden", "not_an_approver", "already_voted", "request_not_pending"] as const satisfies readonly ErrorCode[];
export type RefusalCode = (typeof REFUSAL_CODES)[number];
