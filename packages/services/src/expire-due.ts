import type { ServiceDeps } from "./context.ts";
import { finishRequest, lockRequest } from "./transition.ts";

const SWEEPER = { type: "system", name: "expiry-sweeper" } as const;

/**
 * Moves pending requests past their expiry to `expired` (or `denied` when the rule says
 * onExpire: deny). Never approves. Safe to run on every replica at once: each request
 * is locked and re-checked, and a locked one is skipped.
 */
export async function expireDue(deps: ServiceDeps, batch = 100): Promise<number> {
  const now = deps.clock();
  const due = await deps.db.prisma.approvalRequest.findMany({
    where: { status: "pending", expiresAt: { lte: now } },
    select: { id: true },
    orderBy: { expiresAt: "asc" },
    take: batch,
  });
  let n = 0;
  for (const { id } of due) {
    const done = await deps.db.prisma.$transaction(async (tx) => {
      const row = await lockRequest(tx, id);
      if (row?.status !== "pending" || row.expiresAt > now) return false;
      const to = row.onExpire === "deny" ? "denied" : "expired";
      await finishRequest(tx, deps, row, to, "timeout", SWEEPER, now, { expiresAt: row.expiresAt.toISOString(), onExpire: row.onExpire });
      return true;
    });
    if (done) n++;
  }
  return n;
}
