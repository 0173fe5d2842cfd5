import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startCallbackReceiver } from "../fakes/callback-receiver.ts";
import { freshPostgresUrl } from "../support/db.ts";
import { type GatewayProcess, startGateway } from "../support/gateway.ts";
import {
  call,
  callbacksSettled,
  callbackViolations,
  FAULT_POLICY,
  lifecycleViolations,
  REVIEWERS,
  retryBusy,
  sealingViolations,
  sharedReceiptKey,
  sleep,
  sql,
} from "./support.ts";

/** Runs `fn` over `items` with at most `n` in flight. */
async function limited<T>(items: readonly T[], n: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      for (;;) {
        const i = next++;
        if (i >= items.length) return;
        await fn(items[i] as T, i);
      }
    }),
  );
}

/**
 * Two gateway processes on one PostgreSQL database, with clients deciding the same
 * requests through both at once. The database, not either process, decides who wins.
 */
describe.skipIf(!inject("pgUrl"))("two replicas on one PostgreSQL", () => {
  let a: GatewayProcess;
  let b: GatewayProcess;
  let db: { url: string; drop: () => Promise<void> };
  let rx: Awaited<ReturnType<typeof startCallbackReceiver>>;
  let secret = "";
  let agent = "";
  const reviewer = new Map<string, string>();

  beforeAll(async () => {
    db = await freshPostgresUrl();
    const env = { COUNTERSIGN_RATE_LIMIT: "0", COUNTERSIGN_RETRY_SCALE: "0.01", COUNTERSIGN_RECEIPT_KEY: await sharedReceiptKey("faults") };
    [a, b] = await Promise.all([
      startGateway({ databaseUrl: db.url, policy: FAULT_POLICY, env }),
      startGateway({ databaseUrl: db.url, policy: FAULT_POLICY, env }),
    ]);
    const k = await a.createKey({ name: "replica-bot", owner: "owner@example.com", scopes: ["requests"] });
    agent = k.key;
    secret = k.webhookSecret as string;
    for (const r of REVIEWERS) reviewer.set(r, (await b.createKey({ name: r, owner: r, scopes: ["decisions"] })).key);
    rx = await startCallbackReceiver(() => secret);
  });

  afterAll(async () => {
    await rx?.close();
    await a?.stop();
    await b?.stop();
    await db?.drop();
  });

  const submit = async (gw: GatewayProcess, action: string, n: number) => {
    const r = await retryBusy(() =>
      call(`${gw.url}/v1/requests`, { key: agent, json: { action, summary: `replica ${n}`, params: { n }, callbackUrl: rx.url } }),
    );
    expect(r.status, r.text).toBe(201);
    return (r.body as { id: string }).id;
  };
  /** Submits `count` requests alternately through both replicas, 16 at a time. */
  const submitMany = async (count: number, action: string, via?: GatewayProcess, offset = 0) => {
    const ids: string[] = [];
    await limited(
      Array.from({ length: count }, (_, n) => n),
      16,
      async (n) => {
        ids[n] = await submit(via ?? replica(n), action, offset + n);
      },
    );
    return ids;
  };
  // A 503 means the replica was too busy to start the transaction and nothing was committed: retried, it takes part in the race again.
  const decide = (gw: GatewayProcess, id: string, who: string, decision: "approve" | "deny") =>
    retryBusy(() => call(`${gw.url}/v1/requests/${id}/decisions`, { key: reviewer.get(who) as string, json: { decision } }));
  const replica = (i: number) => (i % 2 === 0 ? a : b);

  it("approve on A and deny on B at the same moment: exactly one wins, hundreds of times", { timeout: 240_000 }, async () => {
    const ids = await submitMany(240, "single.deploy");
    const outcomes: string[] = [];
    await limited(ids, 8, async (id, i) => {
      // Alternate which replica approves, so neither one is always first in line.
      const [approve, deny] = await Promise.all([decide(replica(i), id, "r1@example.com", "approve"), decide(replica(i + 1), id, "r2@example.com", "deny")]);
      const won = [approve.status, deny.status].filter((s) => s === 201).length;
      const refused = [approve.status, deny.status].filter((s) => s === 409).length;
      if (won !== 1 || refused !== 1) outcomes.push(`${id}: approve ${approve.status}, deny ${deny.status}`);
      const loser = approve.status === 201 ? deny : approve;
      if ((loser.body as { code?: string })?.code !== "request_not_pending") outcomes.push(`${id}: loser answered ${loser.text.slice(0, 200)}`);
      const final = (await call(`${b.url}/v1/requests/${id}`, { key: agent })).body as { status: string; decisions: unknown[] };
      const expected = approve.status === 201 ? "approved" : "denied";
      if (final.status !== expected || final.decisions.length !== 1)
        outcomes.push(`${id}: final ${final.status} with ${final.decisions.length} decisions, expected ${expected}`);
    });
    expect(outcomes).toEqual([]);
    const wins = await sql<{ status: string; n: number }>(
      db.url,
      `SELECT status::text AS status, count(*)::int AS n FROM approval_requests WHERE action = 'single.deploy' GROUP BY 1`,
    );
    // Both outcomes happen: the race is real, not one replica always first.
    expect(wins.map((w) => w.status).sort()).toEqual(["approved", "denied"]);
  });

  it("five reviewers approve a 3-of-5 request at once through both replicas: exactly three votes count", { timeout: 240_000 }, async () => {
    const ids = await submitMany(80, "quorum3.deploy");
    const problems: string[] = [];
    await limited(ids, 4, async (id, i) => {
      // One in four requests also gets a deny racing the approvals.
      const withDeny = i % 4 === 0;
      const votes = await Promise.all(REVIEWERS.map((r, k) => decide(replica(i + k), id, r, withDeny && k === 4 ? "deny" : "approve")));
      const accepted = votes.filter((v) => v.status === 201).length;
      const other = votes.filter((v) => v.status !== 201 && !(v.status === 409 && (v.body as { code?: string }).code === "request_not_pending"));
      if (other.length) problems.push(`${id}: unexpected answers ${other.map((v) => `${v.status} ${v.text.slice(0, 120)}`).join("; ")}`);
      const final = (await call(`${a.url}/v1/requests/${id}`, { key: agent })).body as {
        status: string;
        approvals: { required: number; received: number };
        decisions: { decision: string }[];
      };
      if (final.decisions.length !== accepted) problems.push(`${id}: ${accepted} votes accepted but ${final.decisions.length} recorded`);
      if (final.status === "approved" && (final.approvals.received !== 3 || final.decisions.some((d) => d.decision === "deny"))) {
        problems.push(`${id}: approved with ${final.approvals.received} approvals / ${final.decisions.length} decisions`);
      }
      if (final.status === "denied" && (final.approvals.received >= 3 || final.decisions.filter((d) => d.decision === "deny").length !== 1)) {
        problems.push(`${id}: denied with ${final.approvals.received} approvals`);
      }
      if (final.status === "pending") problems.push(`${id}: still pending after five votes`);
      if (!withDeny && final.status !== "approved") problems.push(`${id}: five approvals but ${final.status}`);
    });
    expect(problems).toEqual([]);
  });

  it("a long-poll waiter on A is released by a decision made on B", { timeout: 120_000 }, async () => {
    const ids = await submitMany(20, "single.deploy", a, 1000);
    const waiting = ids.map((id) => call(`${a.url}/v1/requests/${id}?wait=40`, { key: agent, timeoutMs: 60_000 }));
    await sleep(1_000);
    for (const id of ids) expect((await decide(b, id, "r3@example.com", "approve")).status).toBe(201);
    const released = await Promise.all(waiting);
    // A waiter that timed out would come back pending; every one comes back approved.
    expect(released.map((r) => (r.body as { status: string }).status)).toEqual(ids.map(() => "approved"));
  });

  it("each outbox job ran on one replica at a time, and both replicas ran jobs", { timeout: 180_000 }, async () => {
    const settled = await callbacksSettled(db.url);
    expect(settled).toMatchObject({ open: 0, failed: 0 });
    const overlaps = await sql<{ job_id: string }>(
      db.url,
      `SELECT x.job_id FROM outbox_attempts x JOIN outbox_attempts y
          ON x.job_id = y.job_id AND x.id < y.id AND x.started_at < y.finished_at AND y.started_at < x.finished_at`,
    );
    expect(overlaps).toEqual([]);
    const perJob = await sql<{ id: string; attempts: number; logged: number }>(
      db.url,
      `SELECT j.id, j.attempts, count(x.*)::int AS logged FROM outbox_jobs j LEFT JOIN outbox_attempts x ON x.job_id = j.id
        WHERE j.kind = 'callback' GROUP BY j.id, j.attempts`,
    );
    const deliveries = new Map<string, number>();
    for (const c of rx.received) deliveries.set(c.headers["webhook-id"] as string, (deliveries.get(c.headers["webhook-id"] as string) ?? 0) + 1);
    // Every delivery the receiver saw is an attempt some replica claimed and recorded: none ran unclaimed or twice at once.
    expect(perJob.filter((j) => j.attempts !== j.logged || (deliveries.get(j.id) ?? 0) !== j.logged)).toEqual([]);
    const workers = await sql<{ worker: string }>(db.url, `SELECT DISTINCT split_part(worker, ':', 2) AS worker FROM outbox_attempts`);
    expect(workers.length).toBe(2);
    expect(await callbackViolations(db.url, rx.received)).toEqual([]);
    expect(await lifecycleViolations(db.url)).toEqual([]);
  });

  it("with both replicas sealing, exactly one checkpoint covers each event", { timeout: 60_000 }, async () => {
    expect(await sealingViolations(db.url)).toEqual([]);
    const checkpoints = await sql<{ n: number }>(db.url, `SELECT count(*)::int AS n FROM audit_checkpoints`);
    expect(checkpoints[0]?.n).toBeGreaterThan(1);
  });
});
