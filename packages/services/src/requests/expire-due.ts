import { CountersignError } from "@countersign/core";
import { type ServiceCall, withTransaction } from "../context.ts";
import { finishRequest } from "./finish.ts";
import { lockRequest } from "./lock.ts";

/**
 * Moves pending requests past their expiry to `expired` (or `denied` when the rule says
 * onExpire: deny). Never approves. Safe to run on every replica at once: each request
 * is locked and re-checked, and a locked one is skipped. Returns how many it moved.
 */
export async function expireDue({ ctx, input }: ServiceCall<{ batch?: number }>): Promise<number> {
  if (ctx.actor.type !== "system") throw new CountersignError("forbidden", "only the gateway's sweeper expires requests");
  const { deps } = ctx;
  const now = deps.clock();
  const due = await deps.db.prisma.approvalRequest.findMany({
    where: { status: "pending", expiresAt: { lte: now } },
    select: { id: true },
    orderBy: { expiresAt: "asc" },
    take: input.batch ?? 100,
  });
  let n = 0;
  for (const { id } of due) {
    const done = await withTransaction(ctx, async (tctx) => {
      const row = await lockRequest(tctx.tx, id);
      if (row?.status !== "pending" || row.expiresAt > now) return false;
      const to = row.onExpire === "deny" ? "denied" : "expired";
      await finishRequest({
        ctx: tctx,
        input: { row, to, resolution: "timeout", now, auditData: { expiresAt: row.expiresAt.toISOString(), onExpire: row.onExpire } },
      });
      return true;
    });
    if (done) n++;
  }
  return n;
}
