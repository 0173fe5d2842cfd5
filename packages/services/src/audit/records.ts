import type { AuditEventRecord } from "@countersign/core";
import type { Database } from "@countersign/db";

type AuditRow = Awaited<ReturnType<Database["prisma"]["auditEvent"]["findMany"]>>[number];

export function auditRecord(r: AuditRow): AuditEventRecord {
  return {
    seq: r.seq,
    at: r.at.toISOString(),
    type: r.type,
    requestId: r.requestId,
    actor: { type: r.actorType, principal: r.actorPrincipal, surface: r.actorSurface, surfaceUserId: r.actorSurfaceUserId },
    data: r.data,
    prevHash: r.prevHash,
    hash: r.hash,
  };
}

/** Pages the chain in seq order; used by export and verify. */
export async function* iterateAudit(db: Database, opts: { after?: number; pageSize?: number } = {}): AsyncGenerator<AuditEventRecord> {
  let after = opts.after ?? 0;
  const take = opts.pageSize ?? 1000;
  for (;;) {
    const rows = await db.prisma.auditEvent.findMany({ where: { seq: { gt: after } }, orderBy: { seq: "asc" }, take });
    for (const r of rows) yield auditRecord(r);
    if (rows.length < take) return;
    after = rows[rows.length - 1]?.seq ?? after;
  }
}
