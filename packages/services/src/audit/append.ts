import { type Actor, type AuditEventBody, type AuditEventRecord, auditHash, SYSTEM_STREAM, streamGenesis } from "@countersign/core";
import { REQUEST_EVENTS_CHANNEL, type Tx } from "@countersign/db";

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

export interface StreamHead {
  index: number;
  hash: string;
}

/**
 * Each open transaction's known chain heads, by stream. A head is only known while the
 * transaction holds what orders that stream's appends (the request's row lock, taken by
 * the caller, or the system stream's advisory lock, taken here and held until commit),
 * so nobody else can append to it in between and it need not be read again. The map
 * dies with the transaction's client; a rolled-back transaction's heads are never reused.
 */
const streamHeads = new WeakMap<Tx, Map<string, StreamHead | null>>();

function headsOf(tx: Tx): Map<string, StreamHead | null> {
  let m = streamHeads.get(tx);
  if (!m) {
    m = new Map();
    streamHeads.set(tx, m);
  }
  return m;
}

/**
 * Tells appendAudit the head of `stream` (null: no event yet), as read by the caller in
 * this transaction while holding the stream's ordering lock, so the next append skips its read.
 */
export function knowAuditHead(tx: Tx, stream: string, head: StreamHead | null): void {
  headsOf(tx).set(stream, head);
}

const COLUMNS = "v, stream, idx, at, type, request_id, actor_type, actor_principal, actor_surface, actor_surface_user_id, data, prev_hash, hash";
const PER_ROW = 12;
// `at` goes as ISO text: TIMESTAMP(3) ignores the zone, so it stores the UTC time.
const rowSql = (i: number) => {
  const n = (k: number) => `$${i * PER_ROW + k}`;
  return `(2, ${n(1)}, ${n(2)}, ${n(3)}::timestamp(3), ${n(4)}, ${n(5)}, ${n(6)}, ${n(7)}, ${n(8)}, ${n(9)}, ${n(10)}::jsonb, ${n(11)}, ${n(12)})`;
};
const insertSql = new Map<string, string>();

/**
 * A write that belongs to the same change as the events it is appended with (the vote,
 * the transition, the outbox jobs), run in the events' statement as a data-modifying CTE,
 * so a change and its record cost one round trip. Its placeholders are its own, $1..$n.
 */
export interface CoWrite {
  sql: string;
  params: unknown[];
}

/**
 * One INSERT of `rows` events, returning their seqs in order, after `writes`; with `notify`,
 * it also queues the NOTIFY (the last parameter).
 */
function insertEvents(rows: number, notify: boolean, writes: CoWrite[]): string {
  const key = `${rows}:${notify}`;
  let sql = writes.length === 0 ? insertSql.get(key) : undefined;
  if (sql) return sql;
  const insert = `INSERT INTO audit_events (${COLUMNS}) VALUES ${Array.from({ length: rows }, (_, i) => rowSql(i)).join(", ")} RETURNING seq`;
  let offset = rows * PER_ROW + (notify ? 1 : 0);
  const ctes = writes.map((w, i) => {
    const at = offset;
    offset += w.params.length;
    let highest = 0;
    const sql = w.sql.replace(/\$(\d+)/g, (_, n: string) => {
      highest = Math.max(highest, Number(n));
      return `$${Number(n) + at}`;
    });
    // A short or long params list would shift every later write's values onto the wrong columns.
    if (highest !== w.params.length) throw new Error(`a co-write uses $1..$${highest} but has ${w.params.length} params: ${w.sql.slice(0, 60)}`);
    return `w${i} AS (${sql})`;
  });
  if (notify || ctes.length > 0) {
    const from = notify ? `e, pg_notify('${REQUEST_EVENTS_CHANNEL}', $${rows * PER_ROW + 1})` : "e";
    sql = `WITH ${[...ctes, `e AS (${insert})`].join(", ")} SELECT e.seq FROM ${from} ORDER BY e.seq`;
  } else {
    sql = insert;
  }
  if (writes.length === 0) insertSql.set(key, sql);
  return sql;
}

export interface AuditInput {
  type: string;
  requestId: string | null;
  actor: Actor;
  data: Record<string, unknown>;
}

export interface AppendOptions {
  /**
   * Also tell every process that this request changed (a NOTIFY on the request-events channel, delivered
   * on commit), in the same statement as the events.
   */
  notify?: string;
  /** Writes of the same change to run in the events' statement; see CoWrite. */
  writes?: CoWrite[];
}

/**
 * Appends one event to its stream's hash chain: the request's own chain, or the system
 * stream for events that belong to no request. Must run inside the transaction of the
 * change it records. For a request event the caller holds the request's row lock (or
 * created the row in this transaction), which orders its appends; a system event takes
 * the system stream's own lock. No append waits on another request's. The unique
 * (stream, index) index turns any writer that skipped the lock into an error, not a fork.
 */
export async function appendAudit(tx: Tx, e: AuditInput, now: Date, opts: AppendOptions = {}): Promise<AuditEventRecord> {
  return (await appendAudits(tx, [e], now, opts))[0] as AuditEventRecord;
}

/** appendAudit for several events in order, written in one statement. */
export async function appendAudits(tx: Tx, events: AuditInput[], now: Date, opts: AppendOptions = {}): Promise<AuditEventRecord[]> {
  if (events.length === 0) {
    if (opts.writes?.length) throw new Error("appendAudits: writes need an event to be appended with");
    return [];
  }
  const heads = headsOf(tx);
  const at = now.toISOString();
  const written: { body: AuditEventBody; hash: string }[] = [];
  const params: unknown[] = [];
  for (const e of events) {
    const stream = e.requestId ?? SYSTEM_STREAM;
    let last = heads.get(stream);
    if (last === undefined) {
      // Not yet known in this transaction: lock (system stream) and read the head once.
      if (stream === SYSTEM_STREAM) await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${SYSTEM_STREAM_LOCK})`);
      last = await tx.auditEvent.findFirst({ where: { stream }, orderBy: { index: "desc" }, select: { index: true, hash: true } });
    }
    // JSON round trip so what we hash is exactly what jsonb will hand back (no undefined, no Dates).
    const data = JSON.parse(JSON.stringify(e.data)) as unknown;
    const body: AuditEventBody = {
      v: 2,
      stream,
      index: last ? last.index + 1 : 0,
      at,
      type: e.type,
      requestId: e.requestId,
      actor: auditActor(e.actor),
      data,
      prevHash: last?.hash ?? streamGenesis(stream),
    };
    const hash = auditHash(body);
    heads.set(stream, { index: body.index, hash });
    written.push({ body, hash });
    const a = body.actor;
    params.push(stream, body.index, at, body.type, body.requestId, a.type, a.principal, a.surface, a.surfaceUserId, JSON.stringify(data), body.prevHash, hash);
  }
  if (opts.notify !== undefined) params.push(opts.notify);
  const writes = opts.writes ?? [];
  for (const w of writes) params.push(...w.params);
  // A failed statement aborts the transaction, so the heads set above are never used wrongly.
  const rows = await tx.$queryRawUnsafe<{ seq: number }[]>(insertEvents(events.length, opts.notify !== undefined, writes), ...params);
  return written.map(({ body, hash }, i) => ({ ...body, seq: (rows[i] as { seq: number }).seq, hash, sealedIn: null, leafIndex: null }));
}
