import type { ApprovalRequest, Decision } from "./types.js";

/**
 * The gateway's closed set of error codes (`code` in its problem+json responses). A test
 * (packages/sdk/test/drift.test.ts) fails when this list and the server's drift apart.
 */
export const API_ERROR_CODES = [
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
  "method_not_allowed",
  "payload_too_large",
  "unsupported_media_type",
] as const;

export type ApiErrorCode = (typeof API_ERROR_CODES)[number];

export interface FieldError {
  path: string;
  message: string;
}

/** The problem+json body the gateway sends with every error. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ApiErrorCode;
  detail: string;
  requestId: string;
  instance: string;
  errors?: FieldError[];
}

/** Base class of every error this SDK throws. */
export class CountersignError extends Error {
  override name = "CountersignError";
}

/**
 * The gateway refused a call. Mirrors its problem+json: `status`, `code`, `requestId`
 * (quote it when reporting a problem) and, for invalid input, per-field `errors`.
 * A response that is not problem+json (a proxy's error page) gets code `unexpected_response`.
 */
export class CountersignApiError extends CountersignError {
  override name = "CountersignApiError";
  readonly status: number;
  readonly code: ApiErrorCode | "unexpected_response";
  readonly requestId: string | undefined;
  readonly errors: FieldError[];
  readonly title: string;
  readonly detail: string;
  /** Seconds, from Retry-After (rate_limited, service_unavailable). */
  readonly retryAfter: number | undefined;

  constructor(p: {
    status: number;
    code: ApiErrorCode | "unexpected_response";
    title: string;
    detail: string;
    requestId?: string | undefined;
    errors?: FieldError[] | undefined;
    retryAfter?: number | undefined;
  }) {
    const fields = p.errors?.length ? ` (${p.errors.map((e) => (e.path ? `${e.path}: ${e.message}` : e.message)).join("; ")})` : "";
    super(`${p.status} ${p.code}: ${p.detail}${fields}${p.requestId ? ` [request id ${p.requestId}]` : ""}`);
    this.status = p.status;
    this.code = p.code;
    this.title = p.title;
    this.detail = p.detail;
    this.requestId = p.requestId;
    this.errors = p.errors ?? [];
    this.retryAfter = p.retryAfter;
  }
}

/** The gateway could not be reached (after retrying with the same idempotency key). */
export class CountersignNetworkError extends CountersignError {
  override name = "CountersignNetworkError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Base class for the ways an approval can fail to happen. Carries the request as last seen. */
export class ApprovalError extends CountersignError {
  override name = "ApprovalError";
  readonly requestId: string;
  readonly request: ApprovalRequest | undefined;
  constructor(message: string, requestId: string, request?: ApprovalRequest) {
    super(message);
    this.requestId = requestId;
    this.request = request;
  }
}

/** A reviewer (or the policy, or expiry under `onExpire: deny`) denied the request. */
export class ApprovalDeniedError extends ApprovalError {
  override name = "ApprovalDeniedError";
  /** The deny decisions, with each reviewer's reason. Empty when the policy denied. */
  readonly reasons: Pick<Decision, "reviewer" | "reason" | "surface" | "decidedAt">[];
  /** `reviewers`, `policy` (a deny rule or the policy default) or `timeout` (expired under onExpire: deny). */
  readonly deniedBy: "reviewers" | "policy" | "timeout";
  constructor(request: ApprovalRequest) {
    const reasons = request.decisions
      .filter((d) => d.decision === "deny")
      .map((d) => ({ reviewer: d.reviewer, reason: d.reason, surface: d.surface, decidedAt: d.decidedAt }));
    const deniedBy = request.resolution === "policy" ? "policy" : request.resolution === "timeout" ? "timeout" : "reviewers";
    const why =
      deniedBy === "policy"
        ? `by policy${request.policy.ruleId ? ` (rule ${request.policy.ruleId})` : " (no rule matched; policy default)"}`
        : deniedBy === "timeout"
          ? "because nobody decided before it expired"
          : `by ${reasons.map((r) => `${r.reviewer}${r.reason ? `: "${r.reason}"` : ""}`).join(", ")}`;
    super(`${request.action} (${request.id}) was denied ${why}`, request.id, request);
    this.reasons = reasons;
    this.deniedBy = deniedBy;
  }
}

/** Nobody decided before the request expired (`onExpire: expire`). */
export class ApprovalExpiredError extends ApprovalError {
  override name = "ApprovalExpiredError";
  constructor(request: ApprovalRequest) {
    super(`${request.action} (${request.id}) expired at ${request.expiresAt} without a decision`, request.id, request);
  }
}

/** The request was withdrawn by its agent or an admin. */
export class ApprovalCancelledError extends ApprovalError {
  override name = "ApprovalCancelledError";
  constructor(request: ApprovalRequest) {
    super(`${request.action} (${request.id}) was cancelled`, request.id, request);
  }
}

/**
 * The SDK stopped waiting; the request may still be pending on the gateway. Resume with
 * `waitForDecision(err.requestId)`, or withdraw it with `cancel(err.requestId)`.
 */
export class ApprovalTimeoutError extends ApprovalError {
  override name = "ApprovalTimeoutError";
  readonly timeoutMs: number;
  constructor(requestId: string, timeoutMs: number, request?: ApprovalRequest) {
    super(`no decision on ${requestId} within ${timeoutMs} ms; it is still ${request?.status ?? "pending"}`, requestId, request);
    this.timeoutMs = timeoutMs;
  }
}

export type ReceiptProblem =
  | "missing"
  | "malformed"
  | "signature"
  | "expired"
  | "claims"
  | "action_mismatch"
  | "params_mismatch"
  | "request_mismatch"
  /** The receipt is for another `environment` than the one given to verifyReceipt. */
  | "environment_mismatch"
  /** The receipt is for another `resource` than the one given to verifyReceipt. */
  | "resource_mismatch"
  /** `redeem` was asked for and the gateway says this single-use receipt was redeemed before. */
  | "already_redeemed";

/** A receipt failed verification: do not run the action. */
export class ReceiptVerificationError extends CountersignError {
  override name = "ReceiptVerificationError";
  readonly problem: ReceiptProblem;
  constructor(problem: ReceiptProblem, message: string, options?: { cause?: unknown }) {
    super(`receipt rejected (${problem}): ${message}`, options);
    this.problem = problem;
  }
}

export type EvidenceProblem =
  /** The document is not an evidence document of the expected shape. */
  | "malformed"
  /** It, or one of its events, is about another request. */
  | "wrong_request"
  /** An event's content does not match its hash. */
  | "event_edited"
  /** The request's chain has a missing, extra, reordered or relinked event. */
  | "chain_broken"
  /** A checkpoint's hash, signature, type, key id or signed content does not verify. */
  | "bad_signature"
  /** An inclusion proof does not lead to its checkpoint's signed root. */
  | "bad_proof"
  /** An event has no proof yet (and `allowUnsealed` was not given). */
  | "unsealed";

/** Audit evidence failed verification: it does not prove the request's history. */
export class EvidenceVerificationError extends CountersignError {
  override name = "EvidenceVerificationError";
  readonly problem: EvidenceProblem;
  constructor(problem: EvidenceProblem, message: string, options?: { cause?: unknown }) {
    super(`evidence rejected (${problem}): ${message}`, options);
    this.problem = problem;
  }
}

/** A callback's signature, timestamp or body did not verify: ignore it. */
export class WebhookVerificationError extends CountersignError {
  override name = "WebhookVerificationError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Why an agent-framework adapter could not get a decision; each names a different fix. */
export type UnavailableReason = "unreachable" | "unauthorized" | "forbidden" | "rate_limited" | "rejected" | "unavailable";

/**
 * An agent-framework adapter could not get a decision from Countersign, so the tool did
 * not run (it fails closed). Not an ApprovalError: nobody decided anything, and the agent
 * should stop rather than tell the model "denied". The message says what to fix; the
 * original error is `cause`.
 */
export class ApprovalUnavailableError extends CountersignError {
  override name = "ApprovalUnavailableError";
  readonly reason: UnavailableReason;
  /** The tool whose call was refused. */
  readonly tool: string;
  constructor(tool: string, cause: CountersignApiError | CountersignNetworkError, baseUrl: string) {
    const [reason, fix] = unavailable(cause, baseUrl);
    super(`${tool} did not run: Countersign gave no decision (${cause.message}). ${fix}`, { cause });
    this.reason = reason;
    this.tool = tool;
  }
}

function unavailable(e: CountersignApiError | CountersignNetworkError, baseUrl: string): [UnavailableReason, string] {
  if (e instanceof CountersignNetworkError) {
    return ["unreachable", `Check that the gateway is running and that ${baseUrl} (COUNTERSIGN_URL) reaches it.`];
  }
  switch (e.code) {
    case "unauthorized":
      return ["unauthorized", "The API key was refused: set COUNTERSIGN_API_KEY to an active agent key (scope requests)."];
    case "forbidden":
      return ["forbidden", "This key may not submit requests: use an agent key with the requests scope."];
    case "rate_limited":
      return [
        "rate_limited",
        `Still rate limited after retrying as Retry-After said${e.retryAfter !== undefined ? ` (${e.retryAfter} s)` : ""}: slow the agent down or raise the limit.`,
      ];
    case "service_unavailable":
    case "internal_error":
    case "unexpected_response":
      return ["unavailable", "The gateway is up but failing: see its logs (quote the request id)."];
    default:
      return ["rejected", "The gateway refused the request built from this tool call: fix the action name (actionPrefix) or the arguments."];
  }
}
