import { CountersignError, DecisionInput, evaluateVote, type RefusalCode } from "@countersign/core";
import { appendAudit } from "../audit/append.ts";
import { recordRefusal } from "../audit/record-refusal.ts";
import { requireReviewer } from "../authz.ts";
import { type ServiceCall, withTransaction } from "../context.ts";
import { fromZod, isUniqueViolation } from "../errors.ts";
import { newId } from "../ids.ts";
import { enqueueCardUpdates } from "./card-updates.ts";
import { finishRequest } from "./finish.ts";
import { lockRequest, notifyChanged } from "./lock.ts";
import { loadDeliveries, type RequestResource, toResource } from "./resource.ts";

export interface DecideResult {
  resource: RequestResource;
  /** True when this vote moved the request to a terminal state. */
  finished: boolean;
}

/**
 * The one decision path for every surface (API, Slack, Teams). The request row is
 * locked and read once for the transaction, so concurrent votes queue and are counted
 * exactly once. A refused vote is audited in its own committed transaction and then thrown.
 */
export async function decide({ ctx, input }: ServiceCall<{ requestId: string; body: unknown }>): Promise<DecideResult> {
  const reviewer = requireReviewer(ctx.actor);
  const parsed = DecisionInput.safeParse(input.body);
  if (!parsed.success) throw fromZod(parsed.error);
  const { decision, reason } = parsed.data;
  const { deps } = ctx;

  const outcome = await withTransaction(ctx, async (tctx) => {
    const { tx } = tctx;
    const row = await lockRequest(tx, input.requestId);
    if (!row) throw new CountersignError("not_found", `no request ${input.requestId}`);
    // Read after the lock, so votes are timestamped in the order they are counted.
    const now = deps.clock();
    const verdict =
      row.status === "pending" && row.apiKey.revokedAt
        ? ({ ok: false, code: "request_not_pending", message: "the agent key that made this request was revoked, so it can no longer be decided" } as const)
        : evaluateVote(row, row.decisions as { principal: string; decision: "approve" | "deny" }[], reviewer.principal, decision, now);
    if (!verdict.ok) {
      await appendAudit(tx, { type: "decision.refused", requestId: row.id, actor: ctx.actor, data: { code: verdict.code, decision, status: row.status } }, now);
      return { refused: { code: verdict.code, message: verdict.message } } as const;
    }
    const vote = await tx.decision.create({
      data: {
        id: newId("dec"),
        requestId: row.id,
        principal: reviewer.principal,
        decision,
        reason: reason || null,
        surface: reviewer.surface,
        surfaceUserId: reviewer.surfaceUserId ?? reviewer.keyId ?? null,
        createdAt: now,
      },
    });
    await appendAudit(
      tx,
      {
        type: "decision.recorded",
        requestId: row.id,
        actor: ctx.actor,
        data: { decision, reason: reason || null, approvals: verdict.approvals, required: row.requiredApprovals },
      },
      now,
    );
    // Decisions are ordered by createdAt, and this one is the newest.
    const withVote = { ...row, decisions: [...row.decisions, vote] };
    if (verdict.status === "pending") {
      await enqueueCardUpdates(tx, deps, withVote, now);
      await notifyChanged(tx, row.id);
      return { row: withVote, finished: false } as const;
    }
    const done = await finishRequest({
      ctx: tctx,
      input: { row: withVote, to: verdict.status, resolution: verdict.resolution ?? verdict.status, now, auditData: { approvals: verdict.approvals } },
    });
    return { row: done, finished: true } as const;
  }).catch(async (e: unknown) => {
    if (!isUniqueViolation(e)) throw e;
    // A concurrent second vote by the same person lost the race on the one-vote index.
    const message = "you have already decided on this request";
    await recordRefusal({ ctx, input: { requestId: input.requestId, code: "already_voted", message, decision } });
    throw new CountersignError("already_voted", message);
  });

  deps.events?.({ type: "decision", surface: reviewer.surface, decision, refused: "refused" in outcome ? (outcome.refused?.code as RefusalCode) : undefined });
  if ("refused" in outcome && outcome.refused) {
    throw new CountersignError(outcome.refused.code as RefusalCode, outcome.refused.message);
  }
  if (!("row" in outcome) || !outcome.row) throw new CountersignError("internal_error", "decide produced no row");
  return { resource: toResource(outcome.row, await loadDeliveries(deps.db.prisma, outcome.row.id)), finished: outcome.finished };
}
