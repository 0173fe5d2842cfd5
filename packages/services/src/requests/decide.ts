import { CountersignError, DecisionInput, evaluateVote, type RefusalCode } from "@countersign/core";
import { type AuditInput, appendAudit } from "../audit/append.ts";
import { recordRefusal } from "../audit/record-refusal.ts";
import { requireReviewer } from "../authz.ts";
import { type ServiceCall, withTransaction } from "../context.ts";
import { fromZod, isUniqueViolation } from "../errors.ts";
import { newId } from "../ids.ts";
import { failSpan, type Span, spanClock, startSpan, withSpanContext } from "../tracing.ts";
import { cardUpdateJobs } from "./card-updates.ts";
import { finishRequest } from "./finish.ts";
import { type LockedJob, lockAndLoad } from "./lock.ts";
import { type DeliveryView, type RequestResource, toResource } from "./resource.ts";
import { insertDecision } from "./writes.ts";

/** As loadDeliveries orders them: by createdAt, oldest first (the sort is stable). */
function deliveriesOf(jobs: LockedJob[]): DeliveryView[] {
  return [...jobs]
    .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime())
    .map((j) => ({ id: j.id, kind: j.kind, status: j.status, attempts: j.attempts, lastError: j.lastError }));
}

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
  // `countersign.decide` is a span of the request's trace (stored at intake), which is only
  // known once the row is read: it starts then, dated from here, and is linked both ways
  // with the caller's span (the reviewer's HTTP request, a trace of its own).
  const startTime = spanClock();
  let span: Span | undefined;
  try {
    const outcome = await withTransaction(ctx, async (tctx) => {
      const { tx } = tctx;
      const locked = await lockAndLoad(tx, input.requestId, { jobs: true });
      if (!locked) throw new CountersignError("not_found", `no request ${input.requestId}`);
      const { row } = locked;
      const started = startSpan("countersign.decide", {
        within: row.traceContext,
        startTime,
        attributes: { "countersign.request.id": row.id, "countersign.decision": decision, "countersign.surface": reviewer.surface },
      });
      span = started.span;
      return withSpanContext(started.ctx, async () => {
        // The jobs this transaction queues join those read under the lock, so the answer needs no read after commit.
        const jobs = [...locked.jobs];
        // Read after the lock, so votes are timestamped in the order they are counted.
        const now = deps.clock();
        const verdict =
          row.status === "pending" && row.apiKey.revokedAt
            ? ({ ok: false, code: "request_not_pending", message: "the agent key that made this request was revoked, so it can no longer be decided" } as const)
            : evaluateVote(row, row.decisions as { principal: string; decision: "approve" | "deny" }[], reviewer.principal, decision, now);
        if (!verdict.ok) {
          await appendAudit(
            tx,
            { type: "decision.refused", requestId: row.id, actor: ctx.actor, data: { code: verdict.code, decision, status: row.status } },
            now,
          );
          return { refused: { code: verdict.code, message: verdict.message } } as const;
        }
        const vote = {
          id: newId("dec"),
          requestId: row.id,
          principal: reviewer.principal,
          decision,
          reason: reason || null,
          surface: reviewer.surface,
          surfaceUserId: reviewer.surfaceUserId ?? reviewer.keyId ?? null,
          createdAt: now,
        };
        const recorded: AuditInput = {
          type: "decision.recorded",
          requestId: row.id,
          actor: ctx.actor,
          data: { decision, reason: reason || null, approvals: verdict.approvals, required: row.requiredApprovals },
        };
        // Decisions are ordered by createdAt, and this one is the newest.
        const withVote = { ...row, decisions: [...row.decisions, vote] };
        if (verdict.status === "pending") {
          const cards = cardUpdateJobs(deps, withVote, now);
          // The vote, its event, the card refreshes and the NOTIFY for waiters (delivered on commit): one statement.
          await appendAudit(tx, recorded, now, { notify: row.id, writes: [insertDecision(vote), ...cards.map((c) => c.write)] });
          jobs.push(...cards.map((c) => c.view));
          return { row: withVote, jobs, finished: false } as const;
        }
        // The vote's event and the transition's are written together, in this order.
        const done = await finishRequest({
          ctx: tctx,
          input: {
            row: withVote,
            to: verdict.status,
            resolution: verdict.resolution ?? verdict.status,
            now,
            auditData: { approvals: verdict.approvals },
            precedingAudit: [recorded],
            precedingWrites: [insertDecision(vote)],
            queued: jobs,
          },
        });
        return { row: done, jobs, finished: true } as const;
      });
    }).catch(async (e: unknown) => {
      if (!isUniqueViolation(e)) throw e;
      // A concurrent second vote by the same person lost the race on the one-vote index.
      const message = "you have already decided on this request";
      await recordRefusal({ ctx, input: { requestId: input.requestId, code: "already_voted", message, decision } });
      throw new CountersignError("already_voted", message);
    });

    deps.events?.({
      type: "decision",
      surface: reviewer.surface,
      decision,
      refused: "refused" in outcome ? (outcome.refused?.code as RefusalCode) : undefined,
    });
    if ("refused" in outcome && outcome.refused) {
      span?.setAttribute("countersign.outcome", "refused");
      throw new CountersignError(outcome.refused.code as RefusalCode, outcome.refused.message);
    }
    if (!("row" in outcome) || !outcome.row) throw new CountersignError("internal_error", "decide produced no row");
    span?.setAttribute("countersign.outcome", outcome.finished ? outcome.row.status : "recorded");
    return { resource: toResource(outcome.row, deliveriesOf(outcome.jobs)), finished: outcome.finished };
  } catch (e) {
    if (span) failSpan(span, e);
    throw e;
  } finally {
    span?.end();
  }
}
