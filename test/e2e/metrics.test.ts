import { createServer, type Server } from "node:http";
import type { Database } from "@countersign/db";
import type { ClaimedJob, ServiceDeps } from "@countersign/services";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../apps/gateway/src/http/app.ts";
import { Waiters } from "../../apps/gateway/src/http/waiters.ts";
import { chatMetricsRegistry, createMetrics, metricsRoute } from "../../apps/gateway/src/metrics.ts";
import { type GatewayProcess, startGateway } from "../support/gateway.ts";
import { freePort } from "../support/net.ts";

const POLICY = `
version: 1
rules:
  - id: reads
    match: { action: "*.read" }
    effect: allow
  - id: anyone
    effect: require_approval
    approvers: ["*"]
default: deny
`;

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] as string] = l[2] as string;
    out.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return out;
}

/** The value of the sample named `name` whose labels include `labels` (0 when absent). */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const hit = samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return hit?.value ?? 0;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("metrics", () => {
  // One gateway, with metrics on their own port. The default (on the API port behind an
  // admin key) is exercised against a real gateway in openapi.test.ts, and both route
  // variants in-process below.
  let gw: GatewayProcess;
  let metricsPort: number;
  let agentKey: string;
  let aliceKey: string;
  let ownerKey: string;
  let receiver: Server;
  let receiverUrl: string;

  beforeAll(async () => {
    metricsPort = await freePort();
    gw = await startGateway({ engine: "pglite", policy: POLICY, env: { COUNTERSIGN_METRICS_PORT: String(metricsPort) } });
    agentKey = (await gw.createKey({ name: "agent", owner: "owner@example.com", scopes: ["requests"] })).key;
    aliceKey = (await gw.createKey({ name: "alice", owner: "alice@example.com", scopes: ["decisions"] })).key;
    ownerKey = (await gw.createKey({ name: "owner", owner: "owner@example.com", scopes: ["decisions"] })).key;
    // A callback receiver that answers with the status named in the callback URL.
    receiver = createServer((req, res) => {
      req.resume();
      req.on("end", () => res.writeHead(Number(new URL(req.url ?? "/", "http://x").searchParams.get("status"))).end());
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`;
  });
  afterAll(async () => {
    await gw?.stop();
    await new Promise<void>((r) => receiver?.close(() => r()));
  });

  const scrape = async (): Promise<Sample[]> => {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(res.status).toBe(200);
    return parse(await res.text());
  };
  const submit = async (body: Record<string, unknown>) => {
    const res = await gw.api("/v1/requests", { method: "POST", key: agentKey, json: { summary: "metrics", ...body } });
    expect(res.status).toBe(201);
    return (await res.json()) as { id: string; status: string };
  };
  const decide = (id: string, key: string, decision: "approve" | "deny") => gw.api(`/v1/requests/${id}/decisions`, { method: "POST", key, json: { decision } });

  it("with COUNTERSIGN_METRICS_PORT, serves /metrics only on that port, bound to HOST, without a key", async () => {
    expect((await gw.api("/metrics")).status).toBe(404);
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toContain("# TYPE countersign_requests_total counter");
    expect(text).toContain("process_cpu_seconds_total");
    expect((await fetch(`http://127.0.0.1:${metricsPort}/v1/requests`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { method: "POST" })).status).toBe(405);
    expect(gw.logs.join("")).toContain(`metrics on http://127.0.0.1:${metricsPort}/metrics`);
  });

  it("counts requests by action, rule and final status, decisions by surface and outcome, refusals by code, and time to decision", async () => {
    const before = await scrape();
    await submit({ action: "logs.read" }); // allowed by policy
    const approved = await submit({ action: "db.export" });
    const denied = await submit({ action: "db.export" });
    const pending = await submit({ action: "iam.role.attach", expiresIn: 600 });
    const waiting = await scrape();
    expect(value(waiting, "countersign_requests_pending")).toBe(value(before, "countersign_requests_pending") + 3);
    // Only the one that expires within 15 minutes is "expiring soon".
    expect(value(waiting, "countersign_requests_expiring_soon")).toBe(value(before, "countersign_requests_expiring_soon") + 1);
    // Exported (value() reads a missing one as 0); outbox.int.test.ts checks its value against known jobs.
    expect(waiting.some((x) => x.name === "countersign_outbox_oldest_due_seconds")).toBe(true);

    expect((await decide(approved.id, ownerKey, "approve")).status).toBe(403); // self-approval, refused
    expect((await decide(approved.id, aliceKey, "approve")).status).toBe(201);
    expect((await decide(approved.id, aliceKey, "approve")).status).toBe(409); // no longer pending, refused
    expect((await decide(denied.id, aliceKey, "deny")).status).toBe(201);
    await gw.api(`/v1/requests/${pending.id}/cancel`, { method: "POST", key: agentKey, json: {} });

    const after = await scrape();
    const delta = (name: string, labels: Record<string, string> = {}) => value(after, name, labels) - value(before, name, labels);
    expect(delta("countersign_requests_created_total", { action: "logs.read", rule: "reads", effect: "allow" })).toBe(1);
    expect(delta("countersign_requests_created_total", { action: "db.export", rule: "anyone", effect: "require_approval" })).toBe(2);
    expect(delta("countersign_requests_total", { action: "logs.read", rule: "reads", status: "approved" })).toBe(1);
    expect(delta("countersign_requests_total", { action: "db.export", rule: "anyone", status: "approved" })).toBe(1);
    expect(delta("countersign_requests_total", { action: "db.export", rule: "anyone", status: "denied" })).toBe(1);
    expect(delta("countersign_requests_total", { action: "iam.role.attach", rule: "anyone", status: "cancelled" })).toBe(1);
    expect(delta("countersign_decisions_total", { surface: "api", outcome: "approve" })).toBe(1);
    expect(delta("countersign_decisions_total", { surface: "api", outcome: "deny" })).toBe(1);
    expect(delta("countersign_decisions_total", { surface: "api", outcome: "refused" })).toBe(2);
    expect(delta("countersign_decision_refusals_total", { surface: "api", code: "self_approval_forbidden" })).toBe(1);
    expect(delta("countersign_decision_refusals_total", { surface: "api", code: "request_not_pending" })).toBe(1);
    expect(delta("countersign_decision_duration_seconds_count", { status: "approved", resolution: "quorum" })).toBe(1);
    expect(delta("countersign_decision_duration_seconds_count", { status: "approved", resolution: "policy" })).toBe(1);
    expect(delta("countersign_decision_duration_seconds_bucket", { status: "denied", resolution: "denied", le: "+Inf" })).toBe(1);
    expect(value(after, "countersign_requests_pending")).toBe(value(before, "countersign_requests_pending"));
  });

  it("reports open long-polls", async () => {
    const r = await submit({ action: "ops.wait" });
    const abort = new AbortController();
    const polling = gw.api(`/v1/requests/${r.id}?wait=30`, { key: agentKey, signal: abort.signal }).catch(() => undefined);
    await sleep(300);
    expect(value(await scrape(), "countersign_long_poll_waiters")).toBeGreaterThanOrEqual(1);
    abort.abort();
    await polling;
  });

  it("counts outbox attempts and failures by kind, callback delivery latency, and queue depth", async () => {
    const before = await scrape();
    await submit({ action: "audit.read", callbackUrl: `${receiverUrl}?status=200` }); // delivered
    await submit({ action: "audit.read", callbackUrl: `${receiverUrl}?status=410` }); // refused for good
    await submit({ action: "audit.read", callbackUrl: `${receiverUrl}?status=503` }); // retried later: waits in the outbox

    let after = before;
    for (let i = 0; i < 100; i++) {
      after = await scrape();
      if (
        value(after, "countersign_outbox_attempts_total", { kind: "callback", outcome: "error" }) -
          value(before, "countersign_outbox_attempts_total", { kind: "callback", outcome: "error" }) >=
        2
      )
        break;
      await sleep(100);
    }
    const delta = (name: string, labels: Record<string, string> = {}) => value(after, name, labels) - value(before, name, labels);
    expect(delta("countersign_outbox_attempts_total", { kind: "callback", outcome: "ok" })).toBe(1);
    expect(delta("countersign_outbox_attempts_total", { kind: "callback", outcome: "error" })).toBe(2);
    expect(delta("countersign_outbox_failures_total", { kind: "callback" })).toBe(1);
    expect(delta("countersign_callback_delivery_seconds_count")).toBe(1);
    expect(delta("countersign_outbox_attempt_duration_seconds_count", { kind: "callback" })).toBe(3);
    expect(value(after, "countersign_outbox_jobs", { kind: "callback", status: "pending" })).toBe(1);
    expect(value(after, "countersign_outbox_jobs", { kind: "callback", status: "failed" })).toBe(1);
  });

  it("on the API port, /metrics needs an admin key unless COUNTERSIGN_METRICS_PUBLIC=true", async () => {
    // The gateway passes COUNTERSIGN_METRICS_PUBLIC straight to metricsRoute; check the route it builds.
    const log = { debug() {}, info() {}, warn() {}, error() {}, child: () => ({}) as never };
    const m = createMetrics({ db: {} as Database, log });
    const db = { listen: async () => async () => {} } as unknown as Database;
    const deps = { db, publicUrl: "http://localhost", clock: () => new Date() } as unknown as ServiceDeps;
    const fetchMetrics = async (isPublic: boolean) => {
      const app = createApp({
        deps,
        waiters: new Waiters(db),
        log,
        rateLimit: 0,
        rateBurst: 1,
        metrics: metricsRoute(m, deps, isPublic),
        ready: async () => ({ ok: true, detail: {} }),
      });
      const server = app.listen(0, "127.0.0.1");
      await new Promise((r) => server.once("listening", r));
      try {
        const res = await fetch(`http://127.0.0.1:${(server.address() as { port: number }).port}/metrics`);
        return { status: res.status, text: await res.text() };
      } finally {
        server.close();
      }
    };
    const pub = await fetchMetrics(true);
    expect(pub.status).toBe(200);
    expect(pub.text).toContain("countersign_outbox_attempts_total");
    expect((await fetchMetrics(false)).status).toBe(401);
  });

  it("derives Slack and Teams API errors and rate limits from failed chat jobs; the helpers are shared", async () => {
    const m = createMetrics({ db: {} as Database, log: { debug() {}, info() {}, warn() {}, error() {}, child: () => ({}) as never } });
    const job = (kind: string, attempts = 1) =>
      ({ id: "job_1", kind, requestId: null, payload: {}, attempts, maxAttempts: 12, createdAt: new Date() }) as unknown as ClaimedJob;
    const before = parse(await chatMetricsRegistry.metrics());
    m.onSettled(job("slack.post"), { ok: false, error: "ratelimited", httpStatus: 429, retryAfterMs: 1000 }, 5);
    m.onSettled(job("teams.update"), { ok: false, error: "bad gateway", httpStatus: 502 }, 5);
    m.onSettled(job("slack.update", 12), { ok: false, error: "channel_not_found", permanent: true }, 5);
    m.onSettled(job("slack.post"), { ok: true }, 5);
    const after = parse(await chatMetricsRegistry.metrics());
    const delta = (name: string, labels: Record<string, string>) => value(after, name, labels) - value(before, name, labels);
    expect(delta("countersign_chat_api_rate_limits_total", { surface: "slack" })).toBe(1);
    expect(delta("countersign_chat_api_errors_total", { surface: "teams", kind: "http_502" })).toBe(1);
    expect(delta("countersign_chat_api_errors_total", { surface: "slack", kind: "error" })).toBe(1);
    expect(delta("countersign_chat_api_errors_total", { surface: "slack", kind: "rate_limited" })).toBe(0);
    const own = parse(await m.registry.metrics());
    expect(value(own, "countersign_outbox_failures_total", { kind: "slack.update" })).toBe(1);
    expect(value(own, "countersign_outbox_attempts_total", { kind: "slack.post", outcome: "ok" })).toBe(1);
  });
});
