import type { CoWrite } from "../audit/append.ts";
import type { RequestRow } from "./resource.ts";

// The request-path writes, as CoWrites for appendAudits, so each change goes to the
// database in the statement that records it. Times go as ISO text: TIMESTAMP(3) ignores
// the zone, so it stores the UTC time. Json columns go as text cast to jsonb.

const iso = (d: Date | null) => (d === null ? null : d.toISOString());
const json = (v: unknown) => (v === null || v === undefined ? null : JSON.stringify(v));

const REQUEST_COLUMNS = [
  "id",
  "api_key_id",
  "agent_name",
  "agent_owner",
  "action",
  "summary",
  "params",
  "params_sha256",
  "resource",
  "environment",
  "risk",
  "rationale",
  "on_behalf_of",
  "callback_url",
  "metadata",
  "status",
  "rule_id",
  "effect",
  "required_approvals",
  "approver_groups",
  "eligible",
  "notify",
  "on_expire",
  "expires_at",
  "decided_at",
  "resolution",
  "receipt",
  "redeemed_at",
  "idempotency_key",
  "body_sha256",
  "trace_context",
  "created_at",
  "updated_at",
] as const;
const CASTS: Partial<Record<(typeof REQUEST_COLUMNS)[number], string>> = {
  params: "jsonb",
  metadata: "jsonb",
  trace_context: "jsonb",
  status: '"RequestStatus"',
  approver_groups: "text[]",
  eligible: "text[]",
  notify: "text[]",
  expires_at: "timestamp(3)",
  decided_at: "timestamp(3)",
  redeemed_at: "timestamp(3)",
  created_at: "timestamp(3)",
  updated_at: "timestamp(3)",
};
const INSERT_REQUEST = `INSERT INTO approval_requests (${REQUEST_COLUMNS.join(", ")}) VALUES (${REQUEST_COLUMNS.map((c, i) => `$${i + 1}${CASTS[c] ? `::${CASTS[c]}` : ""}`).join(", ")})`;

/** A new request, as it is when it is made (pending, or already decided by the policy). */
export function insertRequest(r: RequestRow): CoWrite {
  return {
    sql: INSERT_REQUEST,
    params: [
      r.id,
      r.apiKeyId,
      r.agentName,
      r.agentOwner,
      r.action,
      r.summary,
      json(r.params),
      r.paramsSha256,
      r.resource,
      r.environment,
      r.risk,
      r.rationale,
      r.onBehalfOf,
      r.callbackUrl,
      json(r.metadata),
      r.status,
      r.ruleId,
      r.effect,
      r.requiredApprovals,
      r.approverGroups,
      r.eligible,
      r.notify,
      r.onExpire,
      iso(r.expiresAt),
      iso(r.decidedAt),
      r.resolution,
      r.receipt,
      iso(r.redeemedAt),
      r.idempotencyKey,
      r.bodySha256,
      json(r.traceContext),
      iso(r.createdAt),
      iso(r.updatedAt),
    ],
  };
}

/** A locked, pending request's move to its terminal state. */
export function transitionRequest(r: Pick<RequestRow, "id" | "status" | "resolution" | "decidedAt" | "receipt" | "updatedAt">): CoWrite {
  return {
    sql: `UPDATE approval_requests SET status = $1::"RequestStatus", resolution = $2, decided_at = $3::timestamp(3), receipt = $4, updated_at = $5::timestamp(3) WHERE id = $6`,
    params: [r.status, r.resolution, iso(r.decidedAt), r.receipt, iso(r.updatedAt), r.id],
  };
}

/** One reviewer's vote. The (request, principal) unique index refuses a second one. */
export function insertDecision(d: RequestRow["decisions"][number]): CoWrite {
  return {
    sql: `INSERT INTO decisions (id, request_id, principal, decision, reason, surface, surface_user_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::timestamp(3))`,
    params: [d.id, d.requestId, d.principal, d.decision, d.reason, d.surface, d.surfaceUserId, iso(d.createdAt)],
  };
}
