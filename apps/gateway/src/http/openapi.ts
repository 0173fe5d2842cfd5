import { createRequire } from "node:module";
import { OpenAPIRegistry, OpenApiGeneratorV31, type ResponseConfig, type RouteConfig } from "@asteasolutions/zod-to-openapi";
import {
  CancelInput,
  CreateRequestInput,
  DecisionInput,
  ERROR_CODES,
  type ErrorCode,
  MAX_BODY_BYTES,
  MAX_PARAMS_DEPTH,
  REQUEST_ID,
  REQUEST_STATUSES,
  RISKS,
  type Scope,
} from "@countersign/core";
import type { RequestResource } from "@countersign/services";
import type { Request, Response } from "express";
import { z } from "zod";
import { HTTP_ERRORS } from "./problem.ts";

const PACKAGE_VERSION = (createRequire(import.meta.url)("../../package.json") as { version: string }).version;

/**
 * The OpenAPI 3.1 document, generated from the zod schemas that validate requests
 * (CreateRequestInput, DecisionInput, CancelInput in @countersign/core) plus response
 * schemas that mirror what the services return. Served at /openapi.json; docs/api.md is
 * rendered from it (scripts/render-api-docs.ts).
 */

// ---------- shared pieces ----------

const Timestamp = z.iso.datetime({ offset: true }).describe("RFC 3339 timestamp");
const RequestId = z.string().regex(REQUEST_ID).describe("request id: req_ followed by a ULID");
const Status = z.enum(REQUEST_STATUSES);
const SurfaceName = z.enum(["api", "slack", "teams"]);
const ErrorCodeSchema = z.enum(ERROR_CODES).meta({
  id: "ErrorCode",
  description: "The closed set of error codes; `status` is fixed per code.",
});

export const ProblemSchema = z
  .object({
    type: z.string().describe("https://countersign.dev/errors/<code>"),
    title: z.string(),
    status: z.number().int(),
    code: ErrorCodeSchema,
    detail: z.string().describe("What went wrong, for humans."),
    requestId: z.string().describe("Correlation id (also the x-request-id header); quote it when reporting a problem."),
    instance: z.string().describe("The request path."),
    errors: z
      .array(z.object({ path: z.string(), message: z.string() }))
      .optional()
      .describe("Per-field problems, for invalid_request."),
  })
  .meta({ id: "Problem", description: "RFC 9457 problem details, sent as application/problem+json with every error." });

const DeliverySchema = z.object({
  id: z.string(),
  kind: z.string().describe("callback, slack.post, teams.update, ... or <surface>.card for a posted card"),
  status: z.string(),
  attempts: z.number().int(),
  lastError: z.string().nullable(),
  destination: z.string().optional(),
});

export const ApprovalRequestSchema = z
  .object({
    object: z.literal("approval_request"),
    id: RequestId,
    status: Status,
    resolution: z
      .enum(["policy", "quorum", "denied", "timeout", "cancelled"])
      .nullable()
      .describe("How it ended: decided by a policy rule, by quorum, denied by a reviewer, at expiry, or cancelled. Null while pending."),
    action: z.string(),
    summary: z.string(),
    params: z.record(z.string(), z.unknown()).describe("Exactly as submitted."),
    paramsSha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/)
      .describe("SHA-256 of the canonical JSON of params; the receipt carries the same value."),
    resource: z.string().nullable(),
    environment: z.string().nullable(),
    risk: z.enum(RISKS).nullable(),
    rationale: z.string().nullable(),
    onBehalfOf: z.string().nullable(),
    callbackUrl: z.string().nullable(),
    metadata: z.record(z.string(), z.string()).nullable(),
    agent: z.object({ keyId: z.string(), name: z.string(), owner: z.string().describe("The key's accountable human; never an eligible approver.") }),
    policy: z.object({
      ruleId: z.string().nullable().describe("The matching rule, or null when the policy default applied."),
      effect: z.enum(["allow", "deny", "require_approval"]),
      approverGroups: z.array(z.string()),
      requiredApprovals: z.number().int(),
      onExpire: z.enum(["deny", "expire"]),
    }),
    approvals: z.object({ required: z.number().int(), received: z.number().int() }),
    decisions: z.array(
      z.object({
        reviewer: z.string().describe("The reviewer's verified principal (email)."),
        decision: z.enum(["approve", "deny"]),
        reason: z.string().nullable(),
        surface: SurfaceName,
        decidedAt: Timestamp,
      }),
    ),
    receipt: z.string().nullable().describe("Compact JWS (EdDSA) over the approval, once approved; see ReceiptClaims and /.well-known/jwks.json."),
    expiresAt: Timestamp,
    createdAt: Timestamp,
    updatedAt: Timestamp,
    decidedAt: Timestamp.nullable(),
    deliveries: z.array(DeliverySchema).describe("Callbacks and chat cards for this request, with their delivery state."),
    links: z.object({ self: z.string(), wait: z.string(), decisions: z.string(), cancel: z.string() }),
  })
  .meta({ id: "ApprovalRequest", description: "An approval request and everything decided about it." });

// The response schema must describe every field the services return, with compatible types.
type Doc = z.infer<typeof ApprovalRequestSchema>;
type SameKeys<A, B> = [Exclude<keyof A, keyof B>, Exclude<keyof B, keyof A>] extends [never, never] ? true : false;
const _keysMatch: SameKeys<Doc, RequestResource> = true;
const _assignable = (d: Doc): RequestResource => d;
void _keysMatch;
void _assignable;

export const RequestListSchema = z
  .object({ object: z.literal("list"), data: z.array(ApprovalRequestSchema), nextCursor: RequestId.nullable().describe("Pass as `cursor` for the next page.") })
  .meta({ id: "RequestList" });

const Hex64 = z.string().regex(/^[0-9a-f]{64}$/);

export const AuditEventSchema = z
  .object({
    seq: z.number().int().min(1).describe("Storage order: unique, increasing, with gaps. The hash chain is per stream."),
    v: z.union([z.literal(1), z.literal(2)]).describe("2: per-stream chain. 1: an event of the pre-migration global chain (stream `legacy`)."),
    stream: z.string().describe("The request id, `system` for events of no request, or `legacy`."),
    index: z.number().int().min(0).describe("Position in its stream: 0, 1, 2, ..."),
    at: Timestamp,
    type: z.string().describe("For example request.created, decision.recorded, decision.refused, request.approved, receipt.redeemed or key.created."),
    requestId: RequestId.nullable(),
    actor: z.object({ type: z.string(), principal: z.string().nullable(), surface: z.string().nullable(), surfaceUserId: z.string().nullable() }),
    data: z.unknown(),
    prevHash: Hex64.describe("The hash of the previous event of the stream, or the stream's genesis value."),
    hash: Hex64.describe("sha256(prevHash ‖ canonical JSON of the hashed fields); see docs/evidence.md"),
    sealedIn: z.number().int().min(1).nullable().describe("The checkpoint that sealed it; null until one does (about a second)."),
    leafIndex: z.number().int().min(0).nullable().describe("Its leaf in that checkpoint's Merkle tree."),
  })
  .meta({ id: "AuditEvent", description: "One event of the tamper-evident audit log." });

export const AuditListSchema = z
  .object({ object: z.literal("list"), data: z.array(AuditEventSchema), nextAfter: z.number().int().nullable().describe("Pass as `after` for the next page.") })
  .meta({ id: "AuditList" });

export const CheckpointSchema = z
  .object({
    v: z.literal(1),
    seq: z.number().int().min(1),
    prevHash: Hex64.describe("The previous checkpoint's hash (64 zeros for the first)."),
    treeSize: z.number().int().min(1),
    cumulativeSize: z.number().int().min(1),
    rootHash: Hex64.describe("RFC 9162 Merkle Tree Hash over the sealed events' hashes."),
    firstAt: Timestamp,
    lastAt: Timestamp,
    sealedAt: Timestamp,
    legacy: z.boolean().describe("True for the checkpoint that sealed the pre-migration chain."),
    hash: Hex64.describe("sha256 of the canonical JSON of the fields above."),
    kid: z.string(),
    jws: z
      .string()
      .describe("Compact JWS (EdDSA, typ countersign-checkpoint+jws) whose payload is the canonical JSON of the fields above; verify with the JWKS."),
  })
  .meta({ id: "Checkpoint", description: "A signed Merkle checkpoint sealing a batch of audit events." });

export const CheckpointListSchema = z
  .object({ object: z.literal("list"), data: z.array(CheckpointSchema), nextAfter: z.number().int().nullable().describe("Pass as `after` for the next page.") })
  .meta({ id: "CheckpointList" });

export const EvidenceSchema = z
  .object({
    object: z.literal("evidence"),
    requestId: RequestId,
    entries: z.array(
      z.object({
        event: AuditEventSchema,
        proof: z
          .object({ checkpoint: z.number().int().min(1), leafIndex: z.number().int().min(0), treeSize: z.number().int().min(1), path: z.array(Hex64) })
          .nullable()
          .describe("RFC 9162 inclusion proof in the checkpoint that sealed the event; null until one does."),
      }),
    ),
    checkpoints: z.array(CheckpointSchema),
  })
  .meta({
    id: "Evidence",
    description: "A request's events, the checkpoints sealing them and inclusion proofs: verifiable offline against the JWKS (SDK `verifyEvidence`).",
  });

export const JwksSchema = z
  .object({
    keys: z.array(
      z.object({
        kty: z.literal("OKP"),
        crv: z.literal("Ed25519"),
        x: z.string(),
        kid: z.string(),
        alg: z.literal("EdDSA"),
        use: z.literal("sig"),
      }),
    ),
  })
  .meta({ id: "JWKS", description: "Public keys that verify approval receipts and audit checkpoints (current and retired)." });

export const ReceiptClaimsSchema = z
  .object({
    jti: RequestId,
    action: z.string(),
    params_sha256: z.string().regex(/^[0-9a-f]{64}$/),
    resource: z.string().nullable(),
    environment: z.string().nullable(),
    agent: z.object({ key_id: z.string(), name: z.string() }),
    on_behalf_of: z.string().nullable(),
    approvers: z.array(z.object({ principal: z.string(), surface: SurfaceName })),
    rule: z.string().nullable(),
    iat: z.number().int(),
    exp: z.number().int(),
    iss: z.string(),
  })
  .meta({
    id: "ReceiptClaims",
    description:
      "Claims of the approval receipt (compact JWS, alg EdDSA, typ countersign-receipt+jwt). Verify the signature, then that action, params_sha256, environment and resource match what is about to run.",
  });

export const ReceiptRedemptionSchema = z
  .object({
    object: z.literal("receipt_redemption"),
    jti: RequestId.describe("The receipt's jti: the request id."),
    action: z.string(),
    redeemedAt: Timestamp.describe("When this redemption was recorded; a receipt is redeemed at most once."),
  })
  .meta({ id: "ReceiptRedemption", description: "A single-use receipt, marked as used." });

export const CallbackEventSchema = z
  .object({
    type: z.enum(["request.approved", "request.denied", "request.expired", "request.cancelled"]),
    timestamp: Timestamp,
    data: ApprovalRequestSchema,
  })
  .meta({ id: "CallbackEvent", description: "POSTed to the request's callbackUrl on every terminal transition." });

const HealthSchema = z.object({ status: z.literal("ok") }).meta({ id: "Health" });
const ReadySchema = z
  .object({
    status: z.enum(["ready", "unavailable"]),
    database: z.enum(["pglite", "postgres"]).optional(),
    pendingMigrations: z.array(z.string()).optional(),
    policyWarnings: z
      .array(z.object({ path: z.string(), message: z.string() }))
      .optional()
      .describe("What in the policy in force will not work as written (e.g. a channel whose surface is not configured); readiness does not depend on it."),
    error: z.string().optional(),
  })
  .meta({ id: "Readiness" });

// ---------- request schemas: the very ones that validate input ----------

const CreateRequestBody = CreateRequestInput.meta({
  id: "CreateRequestInput",
  description: "What an agent asks to do. Unknown fields are refused; everything the server assigns is absent.",
});
const DecisionBody = DecisionInput.meta({ id: "DecisionInput", description: "A reviewer's vote. One eligible deny denies." });
const CancelBody = CancelInput.meta({ id: "CancelInput" });

const ListRequestsQuery = z.object({
  status: Status.optional(),
  action: z.string().optional().describe("Exact action name."),
  limit: z.number().int().min(1).max(200).default(50).optional(),
  cursor: RequestId.optional().describe("nextCursor of the previous page."),
});
const WaitQuery = z.object({
  wait: z
    .number()
    .int()
    .min(0)
    .max(60)
    .optional()
    .describe("Long-poll: hold the call up to this many seconds until the request leaves pending. Re-poll until it is terminal."),
});
const AuditQuery = z.object({
  after: z.number().int().min(0).default(0).optional().describe("Return events with seq greater than this."),
  limit: z.number().int().min(1).max(1000).default(100).optional(),
});
const IdPath = z.object({ id: RequestId });
const JtiPath = z.object({ jti: RequestId.describe("The receipt's jti claim (the request id).") });
const IdempotencyHeader = z.object({
  "Idempotency-Key": z
    .string()
    .regex(/^[\x21-\x7e]{1,255}$/)
    .optional()
    .describe(
      "Makes the submission safe to retry: the same key and body return the original request (200, Idempotent-Replayed: true); the same key with another body is refused (422 idempotency_conflict).",
    ),
});

// ---------- responses ----------

const STATUS_TEXT: Record<number, string> = {
  400: "Invalid request",
  401: "Missing, malformed, unknown or revoked API key",
  403: "Forbidden",
  404: "Not found",
  409: "Conflict",
  413: "Payload too large",
  415: "Unsupported media type",
  422: "Unprocessable",
  429: "Rate limited",
  500: "Internal error",
  503: "Service unavailable",
};

const requestIdHeader = { "x-request-id": { description: "Correlation id, echoed from the request when valid.", schema: { type: "string" as const } } };

/** Error responses for the given codes, grouped by status, each naming its possible codes. */
function problems(...codes: ErrorCode[]): Record<string, ResponseConfig> {
  const all: ErrorCode[] = [...codes, "internal_error", "service_unavailable"];
  const byStatus = new Map<number, ErrorCode[]>();
  for (const c of new Set(all)) {
    const s = HTTP_ERRORS[c].status;
    byStatus.set(s, [...(byStatus.get(s) ?? []), c]);
  }
  const out: Record<string, ResponseConfig> = {};
  for (const [status, list] of [...byStatus].sort((a, b) => a[0] - b[0])) {
    const retry = list.some((c) => c === "rate_limited" || c === "service_unavailable");
    out[String(status)] = {
      description: `${STATUS_TEXT[status] ?? HTTP_ERRORS[list[0] as ErrorCode].title}: ${list.map((c) => `\`${c}\``).join(", ")}`,
      headers: {
        ...requestIdHeader,
        ...(retry ? { "Retry-After": { description: "Seconds to wait before retrying.", schema: { type: "integer" as const } } } : {}),
      },
      content: { "application/problem+json": { schema: ProblemSchema } },
    };
  }
  return out;
}

function ok(description: string, schema: z.ZodType, extraHeaders: NonNullable<ResponseConfig["headers"]> = {}): ResponseConfig {
  return { description, headers: { ...requestIdHeader, ...(extraHeaders as object) }, content: { "application/json": { schema } } };
}

// rate_limited: an address that keeps failing authentication is refused before the key is looked up.
const AUTH_CODES: ErrorCode[] = ["unauthorized", "forbidden", "rate_limited"];
const JSON_BODY_CODES: ErrorCode[] = ["invalid_request", "payload_too_large", "unsupported_media_type"];

function secured(...scopes: Scope[]): Pick<RouteConfig, "security"> {
  return { security: [{ apiKey: scopes }] };
}

// ---------- the routes ----------

export const ROUTES: RouteConfig[] = [
  {
    method: "post",
    path: "/v1/requests",
    operationId: "createRequest",
    tags: ["Requests"],
    summary: "Ask for approval",
    description:
      "An agent (key scope `requests`) submits what it is about to do. The policy decides at once: `allow` returns an approved request with its receipt, `deny` a denied one, `require_approval` a pending one that reviewers decide. " +
      `The body is JSON, at most ${MAX_BODY_BYTES / 1024} KB; params may nest at most ${MAX_PARAMS_DEPTH} levels. Rate-limited per key.`,
    ...secured("requests"),
    request: { headers: IdempotencyHeader, body: { required: true, content: { "application/json": { schema: CreateRequestBody } } } },
    responses: {
      201: ok("Created; the policy's verdict is in `status`.", ApprovalRequestSchema, {
        Location: { description: "The request's URL.", schema: { type: "string" } },
      }),
      200: ok("Replay: this Idempotency-Key and body were submitted before; nothing new was made.", ApprovalRequestSchema, {
        "Idempotent-Replayed": { description: "Always `true` on a replay.", schema: { type: "string", enum: ["true"] } },
      }),
      ...problems(...JSON_BODY_CODES, ...AUTH_CODES, "idempotency_conflict", "callback_url_forbidden", "rate_limited"),
    },
  },
  {
    method: "get",
    path: "/v1/requests",
    operationId: "listRequests",
    tags: ["Requests"],
    summary: "List requests",
    description: "Newest first, for reviewers (scope `decisions`) and admins.",
    ...secured("decisions", "admin"),
    request: { query: ListRequestsQuery },
    responses: { 200: ok("A page of requests.", RequestListSchema), ...problems("invalid_request", ...AUTH_CODES, "not_found") },
  },
  {
    method: "get",
    path: "/v1/requests/{id}",
    operationId: "getRequest",
    tags: ["Requests"],
    summary: "Read a request, or long-poll for its decision",
    description:
      "Any key may read its own requests; `decisions` and `admin` keys may read all. Another key's request is reported as not found. With `wait`, the call returns as soon as the request leaves `pending` (or when the wait runs out, still pending); long-poll opens are rate-limited per key, as are the long-polls a key holds open at once.",
    ...secured("requests", "decisions", "admin"),
    request: { params: IdPath, query: WaitQuery },
    responses: { 200: ok("The request.", ApprovalRequestSchema), ...problems("invalid_request", "unauthorized", "not_found", "rate_limited") },
  },
  {
    method: "post",
    path: "/v1/requests/{id}/decisions",
    operationId: "decide",
    tags: ["Requests"],
    summary: "Approve or deny",
    description:
      "A reviewer key (scope `decisions`) votes as its owner. Refused, and audited, when the reviewer owns the agent key or is the request's onBehalfOf (`self_approval_forbidden`), is not an eligible approver (`not_an_approver`), already voted (`already_voted`), or the request is no longer pending (`request_not_pending`). Agent keys can never decide.",
    ...secured("decisions"),
    request: { params: IdPath, body: { required: true, content: { "application/json": { schema: DecisionBody } } } },
    responses: {
      201: ok("The vote was recorded; the request as it now stands.", ApprovalRequestSchema),
      ...problems(...JSON_BODY_CODES, ...AUTH_CODES, "not_found", "self_approval_forbidden", "not_an_approver", "already_voted", "request_not_pending"),
    },
  },
  {
    method: "post",
    path: "/v1/requests/{id}/cancel",
    operationId: "cancelRequest",
    tags: ["Requests"],
    summary: "Withdraw a pending request",
    description: "The key that made the request, or an admin key.",
    ...secured("requests", "admin"),
    request: { params: IdPath, body: { required: false, content: { "application/json": { schema: CancelBody } } } },
    responses: { 200: ok("Cancelled.", ApprovalRequestSchema), ...problems(...JSON_BODY_CODES, ...AUTH_CODES, "not_found", "request_not_pending") },
  },
  {
    method: "post",
    path: "/v1/receipts/{jti}/redeem",
    operationId: "redeemReceipt",
    tags: ["Receipts"],
    summary: "Redeem a single-use receipt",
    description:
      "Marks the receipt of an approved request as used, for executors that must run an approval at most once: the first call answers 200, every later one 409 `receipt_already_redeemed`; of concurrent calls exactly one succeeds. Only the agent key that made the request (scope `requests`) may redeem it; any other key gets 404, as for an unknown id. A request that is not approved is refused with 409 `request_not_approved`. The redemption, and every refused one, is recorded in the audit chain (`receipt.redeemed`, `receipt.redeem_refused`). Verify the receipt before redeeming it; the SDK's `verifyReceipt(jws, { redeem })` does both. No body is needed.",
    ...secured("requests"),
    request: { params: JtiPath },
    responses: {
      200: ok("Redeemed now, for the first and only time.", ReceiptRedemptionSchema),
      ...problems(...JSON_BODY_CODES, ...AUTH_CODES, "not_found", "request_not_approved", "receipt_already_redeemed"),
    },
  },
  {
    method: "get",
    path: "/v1/audit",
    operationId: "listAudit",
    tags: ["Audit"],
    summary: "Page through the audit log",
    description:
      "Admin keys only. Events in seq order (storage order). An event that commits late can carry a seq below one already paged past; for a complete read use `countersign audit export`, which walks the signed checkpoints, and verify it with `countersign audit verify --file`.",
    ...secured("admin"),
    request: { query: AuditQuery },
    responses: { 200: ok("A page of audit events.", AuditListSchema), ...problems("invalid_request", ...AUTH_CODES) },
  },
  {
    method: "get",
    path: "/v1/audit/checkpoints",
    operationId: "listCheckpoints",
    tags: ["Audit"],
    summary: "Page through the signed checkpoints",
    description: "Admin keys only. Checkpoints in seq order, each with its JWS; they chain by `prevHash`.",
    ...secured("admin"),
    request: { query: AuditQuery },
    responses: { 200: ok("A page of checkpoints.", CheckpointListSchema), ...problems("invalid_request", ...AUTH_CODES) },
  },
  {
    method: "get",
    path: "/v1/requests/{id}/evidence",
    operationId: "getEvidence",
    tags: ["Audit"],
    summary: "A request's evidence, provable offline",
    description:
      "The request's audit events in chain order, the checkpoints that seal them and an RFC 9162 inclusion proof for each, so one approval can be proven without the rest of the log. Readable by whoever may read the request: the agent key that made it, a reviewer key or an admin key. Events are sealed within about a second; until then their `proof` is null. Verify with the SDK's `verifyEvidence()` and the JWKS.",
    ...secured("requests", "decisions", "admin"),
    request: { params: IdPath },
    responses: { 200: ok("The evidence.", EvidenceSchema), ...problems(...AUTH_CODES, "not_found") },
  },
  {
    method: "post",
    path: "/slack/events",
    operationId: "slackEvents",
    tags: ["Chat platforms"],
    summary: "Slack interactivity and events",
    description:
      "Called by Slack, not by clients: card button clicks and modal submissions (form-encoded `payload`) and Events API callbacks (JSON). Every call must carry a valid X-Slack-Signature over the raw body, made within the last five minutes. Mounted only when Slack is configured over HTTP (SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET, without SLACK_APP_TOKEN's Socket Mode).",
    security: [],
    request: {
      headers: z.object({
        "X-Slack-Signature": z.string().describe("v0=<hex HMAC-SHA256 of `v0:{timestamp}:{raw body}` with the signing secret>"),
        "X-Slack-Request-Timestamp": z.string().describe("Unix seconds"),
      }),
      body: {
        required: true,
        content: {
          "application/x-www-form-urlencoded": { schema: z.object({ payload: z.string().describe("The interaction, as JSON") }) },
          "application/json": { schema: z.record(z.string(), z.unknown()) },
        },
      },
    },
    responses: { 200: { description: "Acknowledged." }, 401: { description: "The signature or timestamp does not verify." } },
  },
  {
    method: "post",
    path: "/api/messages",
    operationId: "teamsMessages",
    tags: ["Chat platforms"],
    summary: "Microsoft Teams (Bot Framework) activities",
    description:
      "Called by the Bot Framework, not by clients: card actions (Adaptive Card Universal Actions arrive as `invoke` activities named `adaptiveCard/action`) and conversation updates. The Authorization header must carry a Bot Framework JWT for this app (in TEAMS_DEV_NO_AUTH emulator mode, for development only, it is not checked). Mounted only when Teams is configured.",
    security: [],
    request: {
      headers: z.object({ Authorization: z.string().optional().describe("Bearer <Bot Framework JWT>") }),
      body: { required: true, content: { "application/json": { schema: z.record(z.string(), z.unknown()).describe("A Bot Framework Activity") } } },
    },
    responses: {
      200: {
        description: "Handled; an invoke is answered with its response (an Adaptive Card refresh).",
        content: { "application/json": { schema: z.object({ statusCode: z.number().int(), type: z.string(), value: z.unknown() }) } },
      },
      401: { description: "The JWT does not verify, or is for another app or tenant." },
    },
  },
  {
    method: "get",
    path: "/.well-known/jwks.json",
    operationId: "getJwks",
    tags: ["Receipts"],
    summary: "Receipt verification keys",
    description: "Public, cacheable for five minutes. Verify receipts offline against these keys.",
    security: [],
    responses: { 200: ok("The key set.", JwksSchema) },
  },
  {
    method: "get",
    path: "/healthz",
    operationId: "health",
    tags: ["Operations"],
    summary: "Liveness",
    security: [],
    responses: { 200: ok("The process is up.", HealthSchema) },
  },
  {
    method: "get",
    path: "/readyz",
    operationId: "ready",
    tags: ["Operations"],
    summary: "Readiness",
    description: "Ready when the database answers and no migration is pending. The detail also lists the policy's warnings, as start-up logs them.",
    security: [],
    responses: { 200: ok("Ready.", ReadySchema), 503: ok("Not ready.", ReadySchema) },
  },
  {
    method: "get",
    path: "/openapi.json",
    operationId: "openapi",
    tags: ["Operations"],
    summary: "This document",
    security: [],
    responses: { 200: ok("The OpenAPI 3.1 document.", z.record(z.string(), z.unknown())) },
  },
  {
    method: "get",
    path: "/metrics",
    operationId: "metrics",
    tags: ["Operations"],
    summary: "Prometheus metrics",
    description:
      "Prometheus text exposition. Needs an admin key unless COUNTERSIGN_METRICS_PUBLIC=true. When COUNTERSIGN_METRICS_PORT is set, it is served only on that port (without authentication) and not here. See docs/api.md for the metric names.",
    ...secured("admin"),
    responses: {
      200: { description: "The metrics.", content: { "text/plain; version=0.0.4": { schema: { type: "string" } } } },
      ...problems(...AUTH_CODES),
    },
  },
];

// ---------- the document ----------

/**
 * zod-to-openapi writes a regex's flags after its source (`^[a-z]+$/i`), which is not a
 * valid JSON Schema pattern. Drop the flags; for `i`, spell both cases out.
 */
export function fixPattern(pattern: string): string {
  const m = /^(.*[^\\])\/([a-z]+)$/s.exec(pattern);
  if (!m) return pattern;
  const [, source, flags] = m as unknown as [string, string, string];
  const unsupported = flags.replace(/[iu]/g, "");
  if (unsupported) throw new Error(`openapi: regex flag(s) "${unsupported}" cannot be expressed in a JSON Schema pattern: ${pattern}`);
  return flags.includes("i") ? caseInsensitive(source) : source;
}

function caseInsensitive(src: string): string {
  let out = "";
  let inClass = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i] as string;
    if (c === "\\") {
      const next = src[i + 1] ?? "";
      const len =
        next === "x"
          ? 4
          : next === "u"
            ? src[i + 2] === "{"
              ? src.indexOf("}", i) - i + 1
              : 6
            : next === "p" || next === "P"
              ? src.indexOf("}", i) - i + 1
              : next === "c"
                ? 3
                : 2;
      out += src.slice(i, i + len);
      i += len - 1;
      continue;
    }
    if (inClass) {
      if (c === "]") inClass = false;
      const range = /^([a-zA-Z])-([a-zA-Z])/.exec(src.slice(i));
      if (range) {
        const [, a, b] = range as unknown as [string, string, string];
        const other = a === a.toLowerCase() ? `${a.toUpperCase()}-${b.toUpperCase()}` : `${a.toLowerCase()}-${b.toLowerCase()}`;
        out += `${a}-${b}${other}`;
        i += 2;
        continue;
      }
      out += /[a-zA-Z]/.test(c) ? c + (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()) : c;
      continue;
    }
    if (c === "[") {
      inClass = true;
      out += c;
      continue;
    }
    out += /[a-zA-Z]/.test(c) ? `[${c.toLowerCase()}${c.toUpperCase()}]` : c;
  }
  return out;
}

function fixPatterns(node: unknown): void {
  if (Array.isArray(node)) {
    node.forEach(fixPatterns);
    return;
  }
  if (node === null || typeof node !== "object") return;
  const o = node as Record<string, unknown>;
  for (const [k, v] of Object.entries(o)) {
    if (k === "pattern" && typeof v === "string") o[k] = fixPattern(v);
    else fixPatterns(v);
  }
}

export interface OpenApiDocument {
  openapi: string;
  info: Record<string, unknown>;
  servers?: { url: string }[];
  paths: Record<string, Record<string, Record<string, unknown>>>;
  components: { schemas: Record<string, Record<string, unknown>>; securitySchemes: Record<string, unknown> } & Record<string, unknown>;
  webhooks?: Record<string, unknown>;
  [k: string]: unknown;
}

export function buildOpenApiDocument(opts: { version?: string; serverUrl?: string | undefined } = {}): OpenApiDocument {
  const registry = new OpenAPIRegistry();
  registry.registerComponent("securitySchemes", "apiKey", {
    type: "http",
    scheme: "bearer",
    description:
      "An API key from `countersign keys create`, sent as `Authorization: Bearer cs_...`. Each operation lists the key scopes it accepts (`requests`, `decisions`, `admin`).",
  });
  for (const route of ROUTES) registry.registerPath(route);
  registry.registerWebhook({
    method: "post",
    path: "request.decided",
    operationId: "callback",
    summary: "Decision callback",
    description:
      "Sent to the request's callbackUrl when it reaches a terminal state, signed per Standard Webhooks with the agent key's own secret. Deduplicate on webhook-id (stable across retries). Answer 2xx; 410 stops retries; other answers are retried for about three days.",
    request: {
      headers: z.object({
        "webhook-id": z.string(),
        "webhook-timestamp": z.string().describe("Unix seconds"),
        "webhook-signature": z.string().describe("v1,<base64 HMAC-SHA256 of `id.timestamp.body`>"),
      }),
      body: { required: true, content: { "application/json": { schema: CallbackEventSchema } } },
    },
    responses: { 200: { description: "Received." } },
  });

  const generator = new OpenApiGeneratorV31([...registry.definitions, { type: "schema", schema: ReceiptClaimsSchema }]);
  const doc = generator.generateDocument({
    openapi: "3.1.0",
    info: {
      title: "Countersign API",
      version: opts.version ?? PACKAGE_VERSION,
      description:
        "Countersign is an approval gateway for privileged actions: agents ask before acting, a policy decides or asks humans, reviewers approve or deny, and every approval carries a signed receipt.",
    },
    ...(opts.serverUrl ? { servers: [{ url: opts.serverUrl }] } : {}),
    security: [{ apiKey: [] }],
    tags: [
      { name: "Requests", description: "Ask for approval, wait for it, decide, cancel." },
      { name: "Audit", description: "The tamper-evident audit log: per-request hash chains sealed by signed Merkle checkpoints." },
      { name: "Receipts", description: "Keys that verify approval receipts, and single-use redemption." },
      { name: "Operations", description: "Health, readiness, this document and metrics." },
      { name: "Chat platforms", description: "Endpoints that Slack and Microsoft Teams call; each verifies the platform's signature." },
    ],
  }) as unknown as OpenApiDocument;

  // What zod-to-openapi cannot see through: params is `unknown` piped into a JSON record...
  const create = doc.components.schemas.CreateRequestInput as { properties: Record<string, unknown> };
  create.properties.params = {
    type: "object",
    additionalProperties: true,
    default: {},
    description: `The exact arguments of the action, any JSON object nested at most ${MAX_PARAMS_DEPTH} levels. Receipts carry the SHA-256 of its canonical JSON.`,
  };
  // ...and the metadata record's key length and entry count (a refine).
  create.properties.metadata = { ...(create.properties.metadata as object), propertyNames: { type: "string", maxLength: 100 }, maxProperties: 50 };
  fixPatterns(doc);
  return doc;
}

/** Serves the document; built once per process (it only changes with the code). */
export function openApiHandler(opts: { version?: string; serverUrl?: string | undefined } = {}) {
  let cached: string | undefined;
  return (_req: Request, res: Response) => {
    cached ??= JSON.stringify(buildOpenApiDocument(opts));
    res.setHeader("cache-control", "public, max-age=300");
    res.type("application/json").send(cached);
  };
}
