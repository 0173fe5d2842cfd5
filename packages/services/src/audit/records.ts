import type { AuditEventRecord, CheckpointRecord } from "@countersign/core";
import type { Database } from "@countersign/db";

type AuditRow = Awaited<ReturnType<Database["prisma"]["auditEvent"]["findMany"]>>[number];
type CheckpointRow = Awaited<ReturnType<Database["prisma"]["auditCheckpoint"]["findMany"]>>[number];

export function auditRecord(r: AuditRow): AuditEventRecord {
  return {
    seq: r.seq,
    v: r.v === 1 ? 1 : 2,
    stream: r.stream,
    index: r.index,
    at: r.at.toISOString(),
    type: r.type,
    requestId: r.requestId,
    actor: { type: r.actorType, principal: r.actorPrincipal, surface: r.actorSurface, surfaceUserId: r.actorSurfaceUserId },
    data: r.data,
    prevHash: r.prevHash,
    hash: r.hash,
    sealedIn: r.sealedIn,
    leafIndex: r.leafIndex,
  };
}

export function checkpointRecord(r: CheckpointRow): CheckpointRecord {
  return {
    v: 1,
    seq: r.seq,
    prevHash: r.prevHash,
    treeSize: r.treeSize,
    cumulativeSize: r.cumulativeSize,
    rootHash: r.rootHash,
    firstAt: r.firstAt.toISOString(),
    lastAt: r.lastAt.toISOString(),
    sealedAt: r.sealedAt.toISOString(),
    legacy: r.legacy,
    hash: r.hash,
    kid: r.kid,
    jws: r.jws,
  };
}

export type LogItem = { kind: "checkpoint"; checkpoint: CheckpointRecord; events: AuditEventRecord[] } | { kind: "unsealed"; event: AuditEventRecord };

async function* checkpoints(db: Database, after: number, upTo: number, take: number): AsyncGenerator<CheckpointRecord> {
  for (;;) {
    const rows = await db.prisma.auditCheckpoint.findMany({ where: { seq: { gt: after, lte: upTo } }, orderBy: { seq: "asc" }, take });
    for (const r of rows) yield checkpointRecord(r);
    if (rows.length < take) return;
    after = rows[rows.length - 1]?.seq ?? after;
  }
}

/** Events sealed in checkpoints (after, upTo], in (sealedIn, leafIndex) order, paged by that key. */
async function* sealedEvents(db: Database, after: number, upTo: number, take: number): AsyncGenerator<AuditEventRecord> {
  let cursor = { sealedIn: after, leafIndex: 2_147_483_647 };
  for (;;) {
    const rows = await db.prisma.auditEvent.findMany({
      where: {
        sealedIn: { lte: upTo },
        OR: [{ sealedIn: { gt: cursor.sealedIn } }, { sealedIn: cursor.sealedIn, leafIndex: { gt: cursor.leafIndex } }],
      },
      orderBy: [{ sealedIn: "asc" }, { leafIndex: "asc" }],
      take,
    });
    for (const r of rows) yield auditRecord(r);
    const last = rows[rows.length - 1];
    if (rows.length < take || !last) return;
    cursor = { sealedIn: last.sealedIn as number, leafIndex: last.leafIndex as number };
  }
}

/**
 * Walks the log in verification order: each checkpoint (by seq) with the events it
 * seals in leaf order, then every other event by seq. The walk is pinned to the newest
 * checkpoint when it starts, so a gateway sealing meanwhile does not disturb it: an event
 * sealed by a later checkpoint (which exists) is yielded as still unsealed, while one
 * that names a checkpoint which does not exist keeps that claim for verify to flag.
 */
export async function* iterateLog(db: Database, opts: { afterCheckpoint?: number; pageSize?: number } = {}): AsyncGenerator<LogItem> {
  const take = opts.pageSize ?? 1000;
  const after = opts.afterCheckpoint ?? 0;
  const upTo = (await db.prisma.auditCheckpoint.aggregate({ _max: { seq: true } }))._max.seq ?? 0;
  const events = sealedEvents(db, after, upTo, take);
  let next = await events.next();
  const orphans: AuditEventRecord[] = [];
  for await (const checkpoint of checkpoints(db, after, upTo, take)) {
    const sealed: AuditEventRecord[] = [];
    while (!next.done && (next.value.sealedIn as number) <= checkpoint.seq) {
      if (next.value.sealedIn === checkpoint.seq) sealed.push(next.value);
      else orphans.push(next.value);
      next = await events.next();
    }
    yield { kind: "checkpoint", checkpoint, events: sealed };
  }
  for (; !next.done; next = await events.next()) orphans.push(next.value);
  const exists = new Map<number, boolean>();
  const laterCheckpointExists = async (seq: number) => {
    if (!exists.has(seq)) exists.set(seq, (await db.prisma.auditCheckpoint.count({ where: { seq } })) > 0);
    return exists.get(seq) as boolean;
  };
  for (let afterSeq = 0; ; ) {
    const rows = await db.prisma.auditEvent.findMany({
      where: { seq: { gt: afterSeq }, OR: [{ sealedIn: null }, { sealedIn: { gt: upTo } }] },
      orderBy: { seq: "asc" },
      take,
    });
    const limit = rows.length < take ? Number.POSITIVE_INFINITY : (rows[rows.length - 1]?.seq ?? 0);
    // Orphans come only from tampering, so they are few: merged in by seq.
    const page = [...rows.map(auditRecord), ...orphans.filter((o) => o.seq > afterSeq && o.seq <= limit)].sort((a, b) => a.seq - b.seq);
    for (const event of page) {
      const sealedLater = event.sealedIn !== null && event.sealedIn > upTo && (await laterCheckpointExists(event.sealedIn));
      yield { kind: "unsealed", event: sealedLater ? { ...event, sealedIn: null, leafIndex: null } : event };
    }
    if (rows.length < take) return;
    afterSeq = limit;
  }
}

/** One line of `countersign audit export`: an event, or the checkpoint that seals the events before it. */
export type ExportLine = AuditEventRecord | (CheckpointRecord & { object: "checkpoint" });

/**
 * The log as `audit export` writes it: each checkpoint's events in leaf order followed
 * by the checkpoint, then the events not sealed yet. `afterCheckpoint` starts after a
 * checkpoint already archived; such a tail verifies from that point on.
 */
export async function* exportLog(db: Database, afterCheckpoint = 0): AsyncGenerator<ExportLine> {
  for await (const item of iterateLog(db, { afterCheckpoint })) {
    if (item.kind === "checkpoint") {
      yield* item.events;
      yield { object: "checkpoint", ...item.checkpoint };
    } else {
      yield item.event;
    }
  }
}
