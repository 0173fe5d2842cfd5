import type { Tx } from "@countersign/db";
import { knowAuditHead } from "../audit/append.ts";
import type { RequestRow } from "./resource.ts";

/** An outbox job of the request, as the resource's deliveries need it. */
export interface LockedJob {
  id: string;
  kind: string;
  status: string;
  attempts: number;
  lastError: string | null;
  createdAt: Date;
}

export interface LockedRequest {
  row: RequestRow;
  /** The request's outbox jobs, oldest first; only when asked for. */
  jobs: LockedJob[];
}

/**
 * Locks the request row for the rest of the transaction and reads it, with its decisions
 * and cards, once. Concurrent deciders of the same request queue here; other requests
 * are not affected.
 */
export async function lockRequest(tx: Tx, id: string): Promise<RequestRow | null> {
  return (await lockAndLoad(tx, id, { jobs: false }))?.row ?? null;
}

// Timestamps are TIMESTAMP(3) holding UTC, which JSON renders without a zone.
const date = (s: string) => new Date(`${s}Z`);
const dateOrNull = (s: string | null) => (s === null ? null : date(s));

/**
 * The read after the lock, in one statement: the request, its agent key's revocation,
 * its decisions and cards (oldest first, as REQUEST_INCLUDE orders them), the head of its
 * audit chain and, when asked, its outbox jobs. It runs after the lock statement, so under
 * READ COMMITTED it sees every change committed before the lock was granted.
 */
const loadSql = (jobs: boolean) => `SELECT json_build_object(
  'r', row_to_json(r),
  'keyRevokedAt', k.revoked_at,
  'decisions', (SELECT coalesce(json_agg(d ORDER BY d.created_at), '[]'::json) FROM decisions d WHERE d.request_id = r.id),
  'messages', (SELECT coalesce(json_agg(m ORDER BY m.created_at), '[]'::json) FROM chat_messages m WHERE m.request_id = r.id),
  'head', (SELECT json_build_object('index', a.idx, 'hash', a.hash) FROM audit_events a WHERE a.stream = r.id ORDER BY a.idx DESC LIMIT 1),
  'jobs', ${
    jobs
      ? `(SELECT coalesce(json_agg(json_build_object('id', j.id, 'kind', j.kind, 'status', j.status, 'attempts', j.attempts, 'lastError', j.last_error, 'createdAt', j.created_at) ORDER BY j.created_at), '[]'::json)
      FROM outbox_jobs j WHERE j.request_id = r.id)`
      : "'[]'::json"
  }
) AS doc
FROM approval_requests r JOIN api_keys k ON k.id = r.api_key_id
WHERE r.id = $1`;
const LOAD = loadSql(false);
const LOAD_WITH_JOBS = loadSql(true);

type Raw = Record<string, unknown>;
interface LoadedDoc {
  r: Raw;
  keyRevokedAt: string | null;
  decisions: Raw[];
  messages: Raw[];
  head: { index: number; hash: string } | null;
  jobs: (Omit<LockedJob, "createdAt"> & { createdAt: string })[];
}

function toRow(doc: LoadedDoc): RequestRow {
  const r = doc.r;
  return {
    id: r.id as string,
    apiKeyId: r.api_key_id as string,
    agentName: r.agent_name as string,
    agentOwner: r.agent_owner as string,
    action: r.action as string,
    summary: r.summary as string,
    params: r.params as RequestRow["params"],
    paramsSha256: r.params_sha256 as string,
    resource: r.resource as string | null,
    environment: r.environment as string | null,
    risk: r.risk as string | null,
    rationale: r.rationale as string | null,
    onBehalfOf: r.on_behalf_of as string | null,
    callbackUrl: r.callback_url as string | null,
    metadata: r.metadata as RequestRow["metadata"],
    status: r.status as RequestRow["status"],
    ruleId: r.rule_id as string | null,
    effect: r.effect as string,
    requiredApprovals: r.required_approvals as number,
    approverGroups: r.approver_groups as string[],
    eligible: r.eligible as string[],
    notify: r.notify as string[],
    onExpire: r.on_expire as string,
    expiresAt: date(r.expires_at as string),
    decidedAt: dateOrNull(r.decided_at as string | null),
    resolution: r.resolution as string | null,
    receipt: r.receipt as string | null,
    redeemedAt: dateOrNull(r.redeemed_at as string | null),
    idempotencyKey: r.idempotency_key as string | null,
    bodySha256: r.body_sha256 as string | null,
    traceContext: (r.trace_context ?? null) as RequestRow["traceContext"],
    createdAt: date(r.created_at as string),
    updatedAt: date(r.updated_at as string),
    decisions: doc.decisions.map((d) => ({
      id: d.id as string,
      requestId: d.request_id as string,
      principal: d.principal as string,
      decision: d.decision as string,
      reason: d.reason as string | null,
      surface: d.surface as string,
      surfaceUserId: d.surface_user_id as string | null,
      createdAt: date(d.created_at as string),
    })),
    messages: doc.messages.map((m) => ({
      id: m.id as string,
      requestId: m.request_id as string,
      surface: m.surface as string,
      destination: m.destination as string,
      channel: m.channel as string,
      messageId: m.message_id as string | null,
      conversationId: m.conversation_id as string | null,
      state: m.state as string,
      error: m.error as string | null,
      createdAt: date(m.created_at as string),
      updatedAt: date(m.updated_at as string),
    })),
    apiKey: { revokedAt: dateOrNull(doc.keyRevokedAt) },
  };
}

/**
 * lockRequest, plus (with `jobs`) the request's outbox jobs, in two statements: the lock,
 * then one read. Also tells appendAudit the request's chain head, read under the lock.
 */
export async function lockAndLoad(tx: Tx, id: string, opts: { jobs: boolean }): Promise<LockedRequest | null> {
  const locked = await tx.$queryRawUnsafe<{ id: string }[]>(`SELECT id FROM approval_requests WHERE id = $1 FOR UPDATE`, id);
  if (locked.length === 0) return null;
  const rows = await tx.$queryRawUnsafe<{ doc: LoadedDoc | string }[]>(opts.jobs ? LOAD_WITH_JOBS : LOAD, id);
  const raw = rows[0]?.doc;
  if (raw === undefined) return null;
  const doc = typeof raw === "string" ? (JSON.parse(raw) as LoadedDoc) : raw;
  knowAuditHead(tx, id, doc.head);
  return { row: toRow(doc), jobs: doc.jobs.map((j) => ({ ...j, createdAt: date(j.createdAt) })) };
}
