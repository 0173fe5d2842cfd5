import { type Actor, type AuditEventBody, type AuditEventRecord, auditHash, GENESIS_HASH } from "@countersign/core";
import type { Tx } from "@countersign/db";

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
    case "unverified":
      return { type: "unverified", principal: null, surface: actor.surface, surfaceUserId: actor.surfaceUserId };
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
