import { CountersignError, DecisionInput, evaluateVote, type RefusalCode } from "@countersign/core";
import { appendAudit } from "./audit.ts";
import { requireReviewer } from "./authz.ts";
import type { ServiceCall } from "./context.ts";
import { fromZod, isUniqueViolation } from "./errors.ts";
import { newId } from "./ids.ts";
import { loadDeliveries, loadRequest, type RequestResource, toResource } from "./resource.ts";
import { enqueueCardUpdates, finishRequest, lockRequest, notifyChanged } from "./transition.ts";

export interface DecideResult {
  resource: RequestResource;
  /** True when this vote moved the request to a terminal state. */
  finished: boolean;
}

/**
 * The one decision path for every surface (API, Slack, Teams). The request row is
 * locked for the transaction, so concurrent votes queue and are counted exactly once.
 * A refused vote is audited in its own committed transaction and then thrown.
 */
export async function decide({ ctx, input }: ServiceCall<{ requestId: string; body: unknown }>): Promise<DecideResult> {
  const reviewer = requireReviewer(ctx.actor);
  const parsed = DecisionInput.safeParse(input.body);
  if (!parsed.success) throw fromZod(parsed.error);
  const { decision, reason } = parsed.data;
  const { deps } = ctx;
  const now = deps.clock();

  const outcome = await deps.db.prisma
    .$transaction(async (tx) => {
      const row = await lockRequest(tx, input.requestId);
      if (!row) throw new CountersignError("not_found", `no request ${input.requestId}`);
      const verdict = evaluateVote(row, row.decisions as { principal: string; decision: "approve" | "deny" }[], reviewer.principal, decision, now);
      if (!verdict.ok) {
        await appendAudit(
          tx,
          { type: "decision.refused", requestId: row.id, actor: ctx.actor, data: { code: verdict.code, decision, status: row.status } },
          now,
        );
        return { refused: { code: verdict.code, message: verdict.message } } as const;
      }
      await tx.decision.create({
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
      const withVote = (await loadRequest(tx, row.id))!;
      if (verdict.status === "pending") {
        await enqueueCardUpdates(tx, deps, withVote, now);
        await notifyChanged(tx, row.id);
        return { row: withVote, finished: false } as const;
      }
      const done = await finishRequest(tx, deps, withVote, verdict.status, verdict.resolution ?? verdict.status, ctx.actor, now, {
        approvals: verdict.approvals,
      });
      return { row: done, finished: true } as const;
    })
    .catch((e: unknown) => {
      if (isUniqueViolation(e)) throw new CountersignError("already_voted", "you have already decided on this request");
      throw e;
    });

  deps.events?.({ type: "decision", surface: reviewer.surface, decision, refused: "refused" in outcome ? (outcome.refused?.code as RefusalCode) : undefined });
  if ("refused" in outcome && outcome.refused) {
    throw new CountersignError(outcome.refused.code as RefusalCode, outcome.refused.message);
  }
  if (!("row" in outcome) || !outcome.row) throw new Error("unreachable: decide produced no row");
  return { resource: toResource(outcome.row, await loadDeliveries(deps.db.prisma, outcome.row.id)), finished: outcome.finished };
}
