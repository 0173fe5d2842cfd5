import { CountersignError, canTransition, type TerminalStatus } from "@countersign/core";
import { type AuditInput, appendAudits, type CoWrite } from "../audit/append.ts";
import type { ServiceCall, TxCtx } from "../context.ts";
import { type QueuedJob, queueJob } from "../outbox/enqueue.ts";
import type { ReceiptClaims } from "../receipts/signer.ts";
import { inSpan } from "../tracing.ts";
import { cardUpdateJobs } from "./card-updates.ts";
import type { LockedJob } from "./lock.ts";
import { type RequestRow, toResource } from "./resource.ts";
import { insertRequest, transitionRequest } from "./writes.ts";

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
  /** Writes of the same change (a vote's insert) to run in the same statement as the transition. */
  precedingWrites?: CoWrite[];
  /** When given, the outbox jobs this transition queues are appended to it. */
  queued?: LockedJob[];
  /**
   * The row does not exist yet (an intake the policy decided at once): it is inserted in
   * its terminal state, since a statement's UPDATE cannot see a row its own INSERT made.
   */
  insert?: boolean;
  /**
   * Uses the receipt as it is issued (an approval only): the MCP gateway forwards a call
   * the policy allowed at once, and a replay of it must not run the tool a second time.
   */
  redeem?: boolean;
}

/**
 * Moves a locked, pending request to a terminal state and queues everything that must
 * follow: the receipt (approval), the audit event, the callback, card updates and the
 * wake-up for long-poll waiters. Runs inside the caller's transaction (`ctx.tx`); the
 * audit event names `ctx.actor`. Returns the row as it now is, without reading it again.
 */
export function finishRequest(call: ServiceCall<FinishInput> & { ctx: TxCtx }): Promise<RequestRow> {
  const { row, to, resolution } = call.input;
  // A span of the request's trace: under decide's span, or (sweeper, cancel) under the stored intake context.
  const attributes = { "countersign.request.id": row.id, "countersign.transition.to": to, "countersign.resolution": resolution };
  return inSpan("countersign.transition", { within: row.traceContext, attributes }, () => finish(call));
}

async function finish({ ctx, input }: ServiceCall<FinishInput> & { ctx: TxCtx }): Promise<RequestRow> {
  const { tx, deps } = ctx;
  const { row, to, resolution, now } = input;
  if (!canTransition(row.status, to)) throw new CountersignError("request_not_pending", `this request is already ${row.status}`);
  const receipt = to === "approved" ? await deps.receipts.sign(receiptClaims(row), now) : null;
  // updatedAt is when this row is written, not the change's time: a sweep shares one `now`
  // across its batch, and audit verify skips rows written after its walk began by this stamp.
  // Only an insert can redeem: a transition's UPDATE does not write redeemed_at.
  const redeemedAt = input.redeem && input.insert && to === "approved" ? now : row.redeemedAt;
  const updated: RequestRow = { ...row, status: to, resolution, decidedAt: now, receipt, redeemedAt, updatedAt: deps.clock() };
  const at = now.toISOString();
  const transition = input.insert ? insertRequest(updated) : transitionRequest(updated);
  const jobs: QueuedJob[] = [];
  if (updated.callbackUrl) {
    jobs.push(
      queueJob(
        {
          id: `job_cb_${row.id.slice(4)}`,
          kind: "callback",
          requestId: row.id,
          // The event is a snapshot of the transition, so every retry sends identical bytes.
          payload: { type: `request.${to}`, timestamp: at, data: toResource(updated) },
          runAt: now,
        },
        now,
      ),
    );
  }
  jobs.push(...cardUpdateJobs(deps, updated, now));
  // The vote, the transition, its events, its jobs and the NOTIFY for waiters (delivered on commit): one statement.
  await appendAudits(
    tx,
    [
      ...(input.precedingAudit ?? []),
      { type: `request.${to}`, requestId: row.id, actor: ctx.actor, data: { resolution, ...input.auditData } },
      ...(redeemedAt && !row.redeemedAt
        ? [{ type: "receipt.redeemed", requestId: row.id, actor: ctx.actor, data: { action: row.action, redeemedAt: at } }]
        : []),
    ],
    now,
    { notify: row.id, writes: [...(input.precedingWrites ?? []), transition, ...jobs.map((j) => j.write)] },
  );
  deps.events?.({ type: "request.finished", action: row.action, rule: row.ruleId, status: to, resolution, createdAt: row.createdAt, decidedAt: now });
  input.queued?.push(...jobs.map((j) => j.view));
  return updated;
}
