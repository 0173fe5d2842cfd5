import { type Actor, type AuditEventBody, type AuditEventRecord, auditHash, SYSTEM_STREAM, streamGenesis } from "@countersign/core";
import type { Tx } from "@countersign/db";

// Orders appends to the system stream only (keys, policy, refusals naming no request);
// request events are ordered by their request's row lock instead.
export const SYSTEM_STREAM_LOCK = 7265_1003;

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

/**
 * Appends one event to its stream's hash chain: the request's own chain, or the system
 * stream for events that belong to no request. Must run inside the transaction of the
 * change it records. For a request event the caller holds the request's row lock (or
 * created the row in this transaction), which orders its appends; a system event takes
 * the system stream's own lock. No append waits on another request's. The unique
 * (stream, index) index turns any writer that skipped the lock into an error, not a fork.
 */
export async function appendAudit(tx: Tx, e: AuditInput, now: Date): Promise<AuditEventRecord> {
  const stream = e.requestId ?? SYSTEM_STREAM;
  if (stream === SYSTEM_STREAM) await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${SYSTEM_STREAM_LOCK})`);
  const last = await tx.auditEvent.findFirst({ where: { stream }, orderBy: { index: "desc" }, select: { index: true, hash: true } });
  // JSON round trip so what we hash is exactly what jsonb will hand back (no undefined, no Dates).
  const data = JSON.parse(JSON.stringify(e.data)) as unknown;
  const body: AuditEventBody = {
    v: 2,
    stream,
    index: last ? last.index + 1 : 0,
    at: now.toISOString(),
    type: e.type,
    requestId: e.requestId,
    actor: auditActor(e.actor),
    data,
    prevHash: last?.hash ?? streamGenesis(stream),
  };
  const hash = auditHash(body);
  const row = await tx.auditEvent.create({
    data: {
      v: 2,
      stream,
      index: body.index,
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
    select: { seq: true },
  });
  return { ...body, seq: row.seq, hash, sealedIn: null, leafIndex: null };
}
