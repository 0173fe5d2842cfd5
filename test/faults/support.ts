import { exportJWK, generateKeyPair } from "jose";
import pg from "pg";
import type { ReceivedCallback } from "../fakes/callback-receiver.ts";

/**
 * Shared by the fault suite. `single.*` needs one approval, `quorum.*` two and `quorum3.*`
 * three, each from the reviewers group; `auto.read` is allowed by policy. Requests expire
 * after an hour, so the sweeper never interferes.
 */
export const REVIEWERS = ["r1@example.com", "r2@example.com", "r3@example.com", "r4@example.com", "r5@example.com"];

export const FAULT_POLICY = `
version: 1
groups:
  reviewers: [${REVIEWERS.join(", ")}]
rules:
  - id: auto-read
    match: { action: auto.read }
    effect: allow
  - id: single
    match: { action: "single.*" }
    effect: require_approval
    approvers: [reviewers]
    approvals: 1
    expiresIn: 1h
  - id: quorum
    match: { action: "quorum.*" }
    effect: require_approval
    approvers: [reviewers]
    approvals: 2
    expiresIn: 1h
  - id: quorum3
    match: { action: "quorum3.*" }
    effect: require_approval
    approvers: [reviewers]
    approvals: 3
    expiresIn: 1h
default: deny
`;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function sql<T = Record<string, unknown>>(url: string, text: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  c.on("error", () => {});
  await c.connect();
  try {
    return (await c.query(text, params)).rows as T[];
  } finally {
    await c.end().catch(() => {});
  }
}

/** fetch with a deadline; network failures come back as `status: 0` with the error. */
export async function call(
  url: string,
  init: { method?: string; key?: string; json?: unknown; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ status: number; headers: Headers; text: string; body: unknown; ms: number; error?: string }> {
  const started = performance.now();
  const headers = new Headers(init.headers);
  if (init.key) headers.set("authorization", `Bearer ${init.key}`);
  if (init.json !== undefined) headers.set("content-type", "application/json");
  try {
    const res = await fetch(url, {
      method: init.method ?? (init.json !== undefined ? "POST" : "GET"),
      headers,
      ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}),
      signal: AbortSignal.timeout(init.timeoutMs ?? 30_000),
    });
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: res.status, headers: res.headers, text, body, ms: performance.now() - started };
  } catch (e) {
    return { status: 0, headers: new Headers(), text: "", body: undefined, ms: performance.now() - started, error: (e as Error).message };
  }
}

/**
 * Calls `once` again while it answers 503 (overloaded; nothing was committed), after the
 * Retry-After it gives, as a well-behaved client does. Other answers are returned as they are.
 */
export async function retryBusy<T extends { status: number; headers: Headers }>(once: () => Promise<T>, attempts = 10): Promise<T> {
  let r = await once();
  for (let i = 0; r.status === 503 && i < attempts; i++) {
    await sleep(Number(r.headers.get("retry-after") ?? 1) * 1000);
    r = await once();
  }
  return r;
}

/**
 * The lifecycle rules, checked in the database itself: every request is in a state its
 * votes and audit trail can explain, and every terminal request has exactly one terminal
 * audit event and (with a callback URL) exactly one callback job. Returns the violations.
 */
export async function lifecycleViolations(url: string): Promise<string[]> {
  const rows = await sql<{ id: string; problem: string }>(
    url,
    `WITH d AS (
       SELECT r.id, r.status::text AS status, r.effect, r.resolution, r.decided_at, r.receipt, r.required_approvals, r.callback_url,
              count(dc.*) FILTER (WHERE dc.decision = 'approve')::int AS approves,
              count(dc.*) FILTER (WHERE dc.decision = 'deny')::int AS denies,
              count(dc.*)::int AS votes
         FROM approval_requests r LEFT JOIN decisions dc ON dc.request_id = r.id
        GROUP BY r.id),
     a AS (
       SELECT request_id,
              count(*) FILTER (WHERE type = 'request.created')::int AS created,
              count(*) FILTER (WHERE type IN ('request.approved','request.denied','request.expired','request.cancelled'))::int AS terminal,
              count(*) FILTER (WHERE type = 'decision.recorded')::int AS recorded,
              max(type) FILTER (WHERE type IN ('request.approved','request.denied','request.expired','request.cancelled')) AS terminal_type
         FROM audit_events WHERE request_id IS NOT NULL GROUP BY request_id),
     j AS (SELECT request_id, count(*)::int AS callbacks FROM outbox_jobs WHERE kind = 'callback' GROUP BY request_id)
     SELECT d.id, p.problem FROM d
       LEFT JOIN a ON a.request_id = d.id
       LEFT JOIN j ON j.request_id = d.id
       CROSS JOIN LATERAL (VALUES
         (CASE WHEN coalesce(a.created, 0) <> 1 THEN 'request.created audit events: ' || coalesce(a.created, 0) END),
         (CASE WHEN coalesce(a.recorded, 0) <> d.votes THEN 'decisions ' || d.votes || ' but decision.recorded events ' || coalesce(a.recorded, 0) END),
         (CASE WHEN d.status = 'pending' AND coalesce(a.terminal, 0) <> 0 THEN 'pending with a terminal audit event' END),
         (CASE WHEN d.status <> 'pending' AND (coalesce(a.terminal, 0) <> 1 OR a.terminal_type <> 'request.' || d.status)
               THEN d.status || ' with terminal audit events ' || coalesce(a.terminal, 0) || ' (' || coalesce(a.terminal_type, '-') || ')' END),
         (CASE WHEN d.status = 'pending' AND (d.decided_at IS NOT NULL OR d.denies > 0 OR d.approves >= d.required_approvals)
               THEN 'pending but decided_at/deny/quorum says otherwise' END),
         (CASE WHEN d.status <> 'pending' AND d.decided_at IS NULL THEN 'terminal without decided_at' END),
         (CASE WHEN d.status = 'approved' AND d.effect <> 'allow' AND (d.approves < d.required_approvals OR d.denies > 0)
               THEN 'approved with ' || d.approves || '/' || d.required_approvals || ' approvals and ' || d.denies || ' denies' END),
         (CASE WHEN d.status = 'approved' AND d.receipt IS NULL THEN 'approved without a receipt' END),
         (CASE WHEN d.status = 'denied' AND d.resolution = 'denied' AND d.denies <> 1 THEN 'denied by vote with ' || d.denies || ' denies' END),
         (CASE WHEN d.status <> 'pending' AND d.approves > d.required_approvals AND d.effect <> 'allow'
               THEN 'more approvals recorded (' || d.approves || ') than required (' || d.required_approvals || ')' END),
         (CASE WHEN d.callback_url IS NOT NULL AND d.status <> 'pending' AND coalesce(j.callbacks, 0) <> 1 THEN 'terminal with ' || coalesce(j.callbacks, 0) || ' callback jobs' END),
         (CASE WHEN d.status = 'pending' AND coalesce(j.callbacks, 0) <> 0 THEN 'pending with a callback job' END)
       ) AS p(problem)
      WHERE p.problem IS NOT NULL
      ORDER BY d.id`,
  );
  return rows.map((r) => `${r.id}: ${r.problem}`);
}

/**
 * What the requester saw: every terminal request with a callback URL was delivered at
 * least once with a valid signature, and redeliveries of one event share its webhook-id
 * and bytes. Returns the violations.
 */
export async function callbackViolations(url: string, received: readonly ReceivedCallback[]): Promise<string[]> {
  const out: string[] = [];
  const byRequest = new Map<string, ReceivedCallback[]>();
  for (const c of received) {
    if (!c.verified) out.push(`unverified delivery ${c.headers["webhook-id"]} for ${c.event?.data?.id}`);
    const id = c.event.data.id;
    byRequest.set(id, [...(byRequest.get(id) ?? []), c]);
  }
  const terminal = await sql<{ id: string; status: string }>(
    url,
    `SELECT id, status::text AS status FROM approval_requests WHERE callback_url IS NOT NULL AND status <> 'pending'`,
  );
  for (const r of terminal) {
    const got = byRequest.get(r.id) ?? [];
    if (got.length === 0) {
      out.push(`${r.id} (${r.status}): no callback received`);
      continue;
    }
    const ids = new Set(got.map((c) => c.headers["webhook-id"]));
    const bodies = new Set(got.map((c) => c.body));
    if (ids.size !== 1) out.push(`${r.id}: deliveries carry ${ids.size} different webhook-ids (${[...ids].join(", ")})`);
    if (bodies.size !== 1) out.push(`${r.id}: redeliveries carry different bodies`);
    if (got[0]?.event.type !== `request.${r.status}`) out.push(`${r.id}: event ${got[0]?.event.type} but status ${r.status}`);
  }
  for (const id of byRequest.keys()) {
    if (!terminal.some((t) => t.id === id)) out.push(`${id}: callback received for a request that is not terminal`);
  }
  return out;
}

/** Waits until no callback job is waiting or running (a killed worker's lease runs out after 60 s). */
export async function callbacksSettled(url: string, timeoutMs = 150_000): Promise<{ done: number; failed: number; open: number }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [r] = await sql<{ done: number; failed: number; open: number }>(
      url,
      `SELECT count(*) FILTER (WHERE status = 'done')::int AS done, count(*) FILTER (WHERE status = 'failed')::int AS failed,
              count(*) FILTER (WHERE status IN ('pending','running'))::int AS open
         FROM outbox_jobs WHERE kind = 'callback'`,
    );
    if (!r) throw new Error("no row");
    if (r.open === 0 || Date.now() > deadline) return r;
    await sleep(500);
  }
}

/**
 * Every audit event sealed exactly once: none left unsealed once the checkpointers had a
 * round, each checkpoint's leaves numbered 0..size-1 with no gap or repeat, sizes adding
 * up, and every event naming a checkpoint that exists. Waits up to `withinMs` for the
 * last round. Returns the violations.
 */
export async function sealingViolations(url: string, withinMs = 15_000): Promise<string[]> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const rows = await sql<{ problem: string }>(
      url,
      `SELECT 'unsealed events: ' || count(*) AS problem FROM audit_events WHERE sealed_in IS NULL HAVING count(*) > 0
       UNION ALL
       SELECT 'checkpoint ' || c.seq || ' has ' || count(e.seq) || ' leaves (max index ' || coalesce(max(e.leaf_index), -1) || ') but tree size ' || c.tree_size
         FROM audit_checkpoints c LEFT JOIN audit_events e ON e.sealed_in = c.seq
        GROUP BY c.seq, c.tree_size
       HAVING count(e.seq) <> c.tree_size OR coalesce(max(e.leaf_index), -1) <> c.tree_size - 1 OR count(DISTINCT e.leaf_index) <> c.tree_size
       UNION ALL
       SELECT 'events ' || count(*) || ' but sealed leaves ' || coalesce((SELECT max(cumulative_size) FROM audit_checkpoints), 0)
         FROM audit_events HAVING count(*) <> coalesce((SELECT max(cumulative_size) FROM audit_checkpoints), 0)
       UNION ALL
       SELECT 'event ' || e.seq || ' names missing checkpoint ' || e.sealed_in FROM audit_events e
        WHERE e.sealed_in IS NOT NULL AND NOT EXISTS (SELECT 1 FROM audit_checkpoints c WHERE c.seq = e.sealed_in)`,
    );
    if (rows.length === 0 || Date.now() > deadline) return rows.map((r) => r.problem);
    await sleep(250);
  }
}

/** COUNTERSIGN_RECEIPT_KEY for every replica of a test: one fresh Ed25519 key, as the README asks replicas to share. */
export async function sharedReceiptKey(kid: string): Promise<string> {
  const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  return JSON.stringify({ ...(await exportJWK(privateKey)), kid });
}
