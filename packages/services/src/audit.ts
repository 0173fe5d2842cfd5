import { type Actor, type AuditEventBody, type AuditEventRecord, auditHash, ChainVerifier, GENESIS_HASH } from "@countersign/core";
import type { Database, Tx } from "@countersign/db";

// Every writer serialises on this transaction-scoped lock just long enough to read the
// chain head and append, so the chain is a single total order even across replicas.
const AUDIT_CHAIN_LOCK = 7265_1001;

export type AuditActor = AuditEventBody["actor"];

export function auditActor(actor: Actor): AuditActor {
  switch (actor.type) {
    case "agent":
      return { type: "agent", principal: actor.owner, surface: "api", surfaceUserId: actor.keyId };
    case "reviewer":
      return { type: "reviewer", principal: actor.principal, surface: actor.surface, surfaceUserId: actor.surfaceUserId ?? actor.keyId ?? null };
    case "admin":
      return { type: "admin", principal: actor.owner, surface: "api", surfaceUserId: actor.keyId };
    case "system":
      return { type: "system", principal: null, surface: null, surfaceUserId: actor.name };
  }
}

export interface AuditInput {
  type: string;
  requestId: string | null;
  actor: Actor;
  data: Record<string, unknown>;
}

/** Appends one event to the hash chain. Must run inside the transaction of the change it records. */
export async function appendAudit(tx: Tx, e: AuditInput, now: Date): Promise<AuditEventRecord> {
  await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${AUDIT_CHAIN_LOCK})`);
  const last = await tx.auditEvent.findFirst({ orderBy: { seq: "desc" }, select: { seq: true, hash: true } });
  // JSON round trip so what we hash is exactly what jsonb will hand back (no undefined, no Dates).
  const data = JSON.parse(JSON.stringify(e.data)) as unknown;
  const body: AuditEventBody = {
    seq: (last?.seq ?? 0) + 1,
    at: now.toISOString(),
    type: e.type,
    requestId: e.requestId,
    actor: auditActor(e.actor),
    data,
    prevHash: last?.hash ?? GENESIS_HASH,
  };
  const hash = auditHash(body);
  await tx.auditEvent.create({
    data: {
      seq: body.seq,
      at: now,
      type: body.type,
      requestId: body.requestId,
      actorType: body.actor.type,
      actorPrincipal: body.actor.principal,
      actorSurface: body.actor.surface,
      actorSurfaceUserId: body.actor.surfaceUserId,
      data: data as object,
      prevHash: body.prevHash,
      hash,
    },
  });
  return { ...body, hash };
}

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

/** Pages the chain in seq order; used by the API, export and verify. */
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

export async function listAudit(db: Database, after: number, limit: number): Promise<AuditEventRecord[]> {
  const rows = await db.prisma.auditEvent.findMany({ where: { seq: { gt: after } }, orderBy: { seq: "asc" }, take: limit });
  return rows.map(auditRecord);
}

/** Recomputes the whole chain from the database and names the first bad event. */
export async function verifyAudit(db: Database, onProgress?: (n: number) => void) {
  const v = new ChainVerifier();
  let n = 0;
  for await (const e of iterateAudit(db)) {
    n++;
    if (onProgress && n % 1000 === 0) onProgress(n);
    if (!v.push(e)) break;
  }
  return v.verdict();
}
