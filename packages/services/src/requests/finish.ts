import { CountersignError, canTransition, type TerminalStatus } from "@countersign/core";
import { type AuditInput, appendAudits } from "../audit/append.ts";
import type { ServiceCall, TxCtx } from "../context.ts";
import { enqueue } from "../outbox/enqueue.ts";
import type { ReceiptClaims } from "../receipts/signer.ts";
import { enqueueCardUpdates } from "./card-updates.ts";
import type { LockedJob } from "./lock.ts";
import { type RequestRow, toResource } from "./resource.ts";

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

export interface FinishInput {
  /** The request as locked and loaded by the caller, including any vote it just added. */
  row: RequestRow;
  to: TerminalStatus;
  resolution: string;
  /** The time of the change that finishes it (a vote, the sweep), so every record agrees. */
  now: Date;
  auditData?: Record<string, unknown>;
  /** Events of the same change to append before the transition's own (a decide() vote's), in one statement with it. */
  precedingAudit?: AuditInput[];
  /** When given, the outbox jobs this transition queues are appended to it. */
  queued?: LockedJob[];
}

/**
 * Moves a locked, pending request to a terminal state and queues everything that must
 * follow: the receipt (approval), the audit event, the callback, card updates and the
 * wake-up for long-poll waiters. Runs inside the caller's transaction (`ctx.tx`); the
 * audit event names `ctx.actor`. Returns the row as it now is, without reading it again.
 */
export async function finishRequest({ ctx, input }: ServiceCall<FinishInput> & { ctx: TxCtx }): Promise<RequestRow> {
  const { tx, deps } = ctx;
  const { row, to, resolution, now } = input;
  if (!canTransition(row.status, to)) throw new CountersignError("request_not_pending", `this request is already ${row.status}`);
  const receipt = to === "approved" ? await deps.receipts.sign(receiptClaims(row), now) : null;
  const changed = await tx.approvalRequest.update({
    where: { id: row.id },
    data: { status: to, resolution, decidedAt: now, receipt },
    // Only updatedAt (set by Prisma) is not known here.
    select: { updatedAt: true },
  });
  const updated: RequestRow = { ...row, status: to, resolution, decidedAt: now, receipt, updatedAt: changed.updatedAt };
  // The NOTIFY for waiters rides on the events' insert; like any NOTIFY it is delivered on commit.
  await appendAudits(
    tx,
    [...(input.precedingAudit ?? []), { type: `request.${to}`, requestId: row.id, actor: ctx.actor, data: { resolution, ...input.auditData } }],
    now,
    { notify: row.id },
  );
  deps.events?.({ type: "request.finished", action: row.action, rule: row.ruleId, status: to, resolution, createdAt: row.createdAt, decidedAt: now });
  if (updated.callbackUrl) {
    const job = await enqueue(tx, {
      id: `job_cb_${row.id.slice(4)}`,
      kind: "callback",
      requestId: row.id,
      // The event is a snapshot of the transition, so every retry sends identical bytes.
      payload: { type: `request.${to}`, timestamp: now.toISOString(), data: toResource(updated) },
      runAt: now,
    });
    input.queued?.push(job);
  }
  const cards = await enqueueCardUpdates(tx, deps, updated, now);
  input.queued?.push(...cards);
  return updated;
}
