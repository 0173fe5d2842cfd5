import type { Database } from "@countersign/db";

/** How far ahead `expiringSoon` looks: long enough to page someone, short enough to mean "now". */
export const EXPIRING_SOON_MS = 15 * 60_000;

export interface OutboxStats {
  jobs: { kind: string; status: string; n: number }[];
  pending: number;
  /** Pending requests that expire within EXPIRING_SOON_MS. */
  expiringSoon: number;
  /** How long the oldest due, undelivered job has been waiting (the relay's lag); 0 when none is due. */
  oldestDueSeconds: number;
}

/** Queue depth and lag, and the pending requests (all, and those about to expire): for metrics. */
export async function outboxStats(db: Database, now = new Date()): Promise<OutboxStats> {
  const [jobs, pending, expiringSoon, oldest] = await Promise.all([
    db.prisma.outboxJob.groupBy({ by: ["kind", "status"], where: { status: { in: ["pending", "running", "failed"] } }, _count: { _all: true } }),
    db.prisma.approvalRequest.count({ where: { status: "pending" } }),
    db.prisma.approvalRequest.count({ where: { status: "pending", expiresAt: { lte: new Date(now.getTime() + EXPIRING_SOON_MS) } } }),
    db.prisma.outboxJob.aggregate({ where: { status: "pending", runAt: { lte: now } }, _min: { runAt: true } }),
  ]);
  const due = oldest._min.runAt;
  return {
    jobs: jobs.map((j) => ({ kind: j.kind, status: j.status, n: j._count._all })),
    pending,
    expiringSoon,
    oldestDueSeconds: due ? Math.max(0, (now.getTime() - due.getTime()) / 1000) : 0,
  };
}
