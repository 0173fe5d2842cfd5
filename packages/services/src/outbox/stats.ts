import type { Database } from "@countersign/db";

/** Queue depth by kind and status, and the number of pending requests: for metrics. */
export async function outboxStats(db: Database): Promise<{ jobs: { kind: string; status: string; n: number }[]; pending: number }> {
  const [jobs, pending] = await Promise.all([
    db.prisma.outboxJob.groupBy({ by: ["kind", "status"], where: { status: { in: ["pending", "running", "failed"] } }, _count: { _all: true } }),
    db.prisma.approvalRequest.count({ where: { status: "pending" } }),
  ]);
  return { jobs: jobs.map((j) => ({ kind: j.kind, status: j.status, n: j._count._all })), pending };
}
