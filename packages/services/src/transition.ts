import { type Actor, canTransition, type TerminalStatus } from "@countersign/core";
import { REQUEST_EVENTS_CHANNEL, type Tx } from "@countersign/db";
import { appendAudit } from "./audit.ts";
import type { ServiceDeps } from "./context.ts";
import { enqueue } from "./outbox.ts";
import type { ReceiptClaims } from "./receipts.ts";
import { loadRequest, type RequestRow, toResource } from "./resource.ts";

/** Tells every process (via NOTIFY, delivered on commit) that this request changed. */
export async function notifyChanged(tx: Tx, requestId: string): Promise<void> {
  await tx.$executeRawUnsafe(`SELECT pg_notify('${REQUEST_EVENTS_CHANNEL}', $1)`, requestId);
}

export function receiptClaims(r: RequestRow): ReceiptClaims {
  return {
    jti: r.id,
    action: r.action,
    params_sha256: r.paramsSha256,
    resource: r.resource,
    environment: r.environment,
    agent: { key_id: r.apiKeyId, name: r.agentName },
    on_behalf_of: r.onBehalfOf,
    approvers: r.decisions.filter((d) => d.decision === "approve").map((d) => ({ principal: d.principal, surface: d.surface })),
    rule: r.ruleId,
  };
}

/** Surfaces that have a card for this request's notify list and are configured. */
export function cardSurfaces(deps: ServiceDeps, r: { notify: string[] }): ("slack" | "teams")[] {
  const channels = deps.policy().channels;
  const out = new Set<"slack" | "teams">();
  for (const name of r.notify) {
    const c = channels[name];
    if (c?.slack && deps.surfaces.slack) out.add("slack");
    if (c?.teams && deps.surfaces.teams) out.add("teams");
  }
  return [...out];
}

/** Queues card refreshes after a decision or transition; the relay renders fresh state. */
export async function enqueueCardUpdates(tx: Tx, deps: ServiceDeps, r: RequestRow, now: Date): Promise<void> {
  for (const surface of cardSurfaces(deps, r)) {
    await enqueue(tx, { kind: `${surface}.update`, requestId: r.id, payload: { requestId: r.id }, runAt: now });
  }
}

/**
 * Moves a locked, pending request to a terminal state and queues everything that must
 * follow: the receipt (approval), the audit event, the callback, card updates and the
 * wake-up for long-poll waiters. Runs inside the caller's transaction.
 */
export async function finishRequest(
  tx: Tx,
  deps: ServiceDeps,
  row: RequestRow,
  to: TerminalStatus,
  resolution: string,
  actor: Actor,
  now: Date,
  auditData: Record<string, unknown> = {},
): Promise<RequestRow> {
  if (!canTransition(row.status, to)) throw new Error(`illegal transition ${row.status} -> ${to}`);
  const receipt = to === "approved" ? await deps.receipts.sign(receiptClaims(row), now) : null;
  await tx.approvalRequest.update({ where: { id: row.id }, data: { status: to, resolution, decidedAt: now, receipt } });
  const updated = (await loadRequest(tx, row.id)) as RequestRow;
  await appendAudit(tx, { type: `request.${to}`, requestId: row.id, actor, data: { resolution, ...auditData } }, now);
  deps.events?.({ type: "request.finished", action: row.action, rule: row.ruleId, status: to, resolution, createdAt: row.createdAt, decidedAt: now });
  if (updated.callbackUrl) {
    const jobId = `job_cb_${row.id.slice(4)}`;
    await enqueue(tx, {
      id: jobId,
      kind: "callback",
      requestId: row.id,
      // The event is a snapshot of the transition, so every retry sends identical bytes.
      payload: { type: `request.${to}`, timestamp: now.toISOString(), data: toResource(updated) },
      runAt: now,
    });
  }
  await enqueueCardUpdates(tx, deps, updated, now);
  await notifyChanged(tx, row.id);
  return updated;
}

/** Locks the request row for the rest of the transaction; concurrent deciders queue here. */
export async function lockRequest(tx: Tx, id: string): Promise<RequestRow | null> {
  const locked = await tx.$queryRawUnsafe<{ id: string }[]>(`SELECT id FROM approval_requests WHERE id = $1 FOR UPDATE`, id);
  if (locked.length === 0) return null;
  return loadRequest(tx, id);
}
