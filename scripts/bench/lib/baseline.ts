import { randomUUID } from "node:crypto";
import { type AuditEventBody, auditHash, canonicalSha256, streamGenesis } from "@countersign/core";
import pg from "pg";
import { type Engine, freshPglite, freshPostgres, type PGliteLike } from "./db.ts";

/**
 * The "limit" for intake: the same rows Countersign writes for one request, written with
 * hand-written SQL in one transaction through the same driver (node-postgres pool of the
 * gateway's default size, or PGlite in-process), with no HTTP, auth, validation, policy
 * or ORM in the way.
 *
 * allow:            request row (final state), audit events request.created and
 *                   request.approved (in the request's own chain, no shared lock), NOTIFY.
 * require_approval: request row (pending), audit event request.created, outbox row
 *                   (the Slack card job).
 */
export type IntakeCase = "allow" | "require_approval";

type Query = <T = Record<string, unknown>>(sql: string, params?: unknown[]) => Promise<T[]>;

export interface BaselineDb {
  /** Runs `fn` in one transaction. */
  tx<T>(fn: (q: Query) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

const KEY_ID = "key_bench_baseline";
const RECEIPT_PLACEHOLDER = "x".repeat(620); // about the size of a real EdDSA receipt JWS

export async function openBaseline(engine: Engine, pgUrl: string | undefined, poolSize: number): Promise<BaselineDb> {
  let db: BaselineDb;
  if (engine === "postgres") {
    const fresh = await freshPostgres(pgUrl as string, true);
    const pool = new pg.Pool({ connectionString: fresh.url, max: poolSize });
    pool.on("error", () => {});
    db = {
      async tx(fn) {
        const c = await pool.connect();
        try {
          await c.query("BEGIN");
          const r = await fn(async (sql, params) => (await c.query(sql, params as unknown[])).rows);
          await c.query("COMMIT");
          return r;
        } catch (e) {
          await c.query("ROLLBACK").catch(() => {});
          throw e;
        } finally {
          c.release();
        }
      },
      async close() {
        await pool.end();
        await fresh.drop();
      },
    };
  } else {
    const { lite, remove } = await freshPglite();
    db = {
      tx: (fn) => (lite as PGliteLike).transaction((t) => fn(async (sql, params) => (await t.query(sql, params)).rows as never)),
      close: remove,
    };
  }
  await db.tx((q) =>
    q(
      `INSERT INTO api_keys (id, prefix, hash, name, owner, scopes, signing_secret) VALUES ($1, 'cs_baseline0000', $2, 'bench', 'owner@bench.example', '{requests}', 'whsec_x')`,
      [KEY_ID, "0".repeat(64)],
    ),
  );
  return db;
}

function auditRow(prev: { index: number; hash: string }, type: string, requestId: string, at: Date, data: Record<string, unknown>) {
  const body: AuditEventBody = {
    v: 2,
    stream: requestId,
    index: prev.index + 1,
    at: at.toISOString(),
    type,
    requestId,
    actor: { type: "agent", principal: "owner@bench.example", surface: "api", surfaceUserId: KEY_ID },
    data,
    prevHash: prev.hash,
  };
  return { body, hash: auditHash(body) };
}

let counter = 0;

/** One intake, as raw SQL: the rows and NOTIFY of the given case. */
export async function baselineIntake(db: BaselineDb, kind: IntakeCase): Promise<void> {
  const now = new Date();
  const id = `req_BASELINE${(counter++).toString().padStart(16, "0")}`;
  const params = { table: "customers", n: counter };
  const expiresAt = new Date(now.getTime() + 86_400_000);
  const approved = kind === "allow";
  await db.tx(async (q) => {
    await q(
      `INSERT INTO approval_requests (id, api_key_id, agent_name, agent_owner, action, summary, params, params_sha256, environment,
         status, rule_id, effect, required_approvals, approver_groups, eligible, notify, on_expire, expires_at, decided_at, resolution, receipt,
         created_at, updated_at)
       VALUES ($1, $2, 'bench', 'owner@bench.example', $3, 'Benchmark request', $4, $5, 'production',
         $6, $7, $8, $9, '{}', '{*}', $10, 'expire', $11, $12, $13, $14, $15, $15)`,
      [
        id,
        KEY_ID,
        approved ? "bench.read" : "bench.write",
        JSON.stringify(params),
        canonicalSha256(params),
        approved ? "approved" : "pending",
        approved ? "allow-reads" : "needs-approval",
        approved ? "allow" : "require_approval",
        approved ? 0 : 1,
        approved ? "{}" : "{ops}",
        expiresAt,
        approved ? now : null,
        approved ? "policy" : null,
        approved ? RECEIPT_PLACEHOLDER : null,
        now,
      ],
    );
    // A new request's chain starts at its genesis: no head to read and no lock to take.
    const created = auditRow({ index: -1, hash: streamGenesis(id) }, "request.created", id, now, {
      action: "bench",
      effect: kind,
      expiresAt: expiresAt.toISOString(),
    });
    const rows = [created];
    if (approved) rows.push(auditRow({ index: created.body.index, hash: created.hash }, "request.approved", id, now, { resolution: "policy" }));
    const values: unknown[] = [];
    const tuples = rows.map((r, i) => {
      values.push(id, r.body.index, now, r.body.type, id, "agent", "owner@bench.example", "api", KEY_ID, JSON.stringify(r.body.data), r.body.prevHash, r.hash);
      const b = i * 12;
      return `(${Array.from({ length: 12 }, (_, k) => `$${b + k + 1}`).join(", ")})`;
    });
    await q(
      `INSERT INTO audit_events (stream, idx, at, type, request_id, actor_type, actor_principal, actor_surface, actor_surface_user_id, data, prev_hash, hash)
       VALUES ${tuples.join(", ")}`,
      values,
    );
    if (approved) {
      await q(`SELECT pg_notify('countersign_request_events', $1)`, [id]);
    } else {
      await q(`INSERT INTO outbox_jobs (id, kind, request_id, payload, max_attempts, run_at, updated_at) VALUES ($1, 'slack.post', $2, $3, 12, $4, $4)`, [
        `job_${randomUUID()}`,
        id,
        JSON.stringify({ requestId: id, destination: "ops", channel: "C0BENCH0001" }),
        now,
      ]);
    }
  });
}
