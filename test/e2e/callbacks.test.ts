import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseEnv } from "../../apps/gateway/src/env.ts";
import type { CreatedKey } from "../../packages/services/src/index.ts";
import { startCallbackReceiver } from "../fakes/callback-receiver.ts";
import { eventually, sleep } from "../support/api-helpers.ts";
import { type GatewayProcess, startGateway } from "../support/gateway.ts";

const POLICY = `
version: 1
rules:
  - id: quick-expire
    match: { action: test.expire }
    effect: require_approval
    approvers: ["*"]
    expiresIn: 1s
  - id: quick-deny-on-expiry
    match: { action: test.expire_deny }
    effect: require_approval
    approvers: ["*"]
    expiresIn: 1s
    onExpire: deny
  - id: anyone
    effect: require_approval
    approvers: ["*"]
default: deny
`;

// The retry schedule (0 s, 5 s, 5 min, 30 min, 2 h, ...) scaled down so ten attempts take a few
// seconds. Retry-After is not scaled.
const RETRY_SCALE = 0.00002;

interface Hit {
  headers: Record<string, string>;
  body: string;
  at: number;
}

/** A receiver whose every answer the test scripts: status, headers. */
async function scriptedReceiver(answer: (n: number, req: IncomingMessage) => { status: number; headers?: Record<string, string> }) {
  const hits: Hit[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => {
      hits.push({ headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)])), body, at: Date.now() });
      const a = answer(hits.length, req);
      res.writeHead(a.status, a.headers ?? {}).end("");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}/hook`, hits, close: () => new Promise<void>((r) => server.close(() => r())) };
}

interface Delivery {
  kind: string;
  status: string;
  attempts: number;
  lastError: string | null;
}

// Each scenario has its own receiver and request, so they run concurrently against one gateway.
describe.concurrent("signed callbacks (Standard Webhooks) from the real gateway", () => {
  let gw: GatewayProcess;
  let agent: CreatedKey;
  let reviewerKey: string;
  const closers: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    gw = await startGateway({ engine: "pglite", policy: POLICY, env: { COUNTERSIGN_RETRY_SCALE: String(RETRY_SCALE), COUNTERSIGN_SWEEP_MS: "100" } });
    agent = await gw.createKey({ name: "deploy-bot", owner: "owner@example.com", scopes: ["requests"] });
    reviewerKey = (await gw.createKey({ name: "alice", owner: "alice@example.com", scopes: ["decisions"] })).key;
  });
  afterAll(async () => {
    for (const c of closers) await c();
    await gw?.stop();
  });

  const secret = () => agent.webhookSecret as string;
  async function receiver() {
    const r = await startCallbackReceiver(secret);
    closers.push(r.close);
    return r;
  }
  async function submit(callbackUrl: string, extra: Record<string, unknown> = {}) {
    const res = await gw.api("/v1/requests", {
      method: "POST",
      key: agent.key,
      json: { action: "deploy.service", summary: "Deploy", params: { v: 1 }, callbackUrl, ...extra },
    });
    expect(res.status).toBe(201);
    return (await res.json()) as { id: string; status: string };
  }
  const decideAs = (id: string, decision: "approve" | "deny") =>
    gw.api(`/v1/requests/${id}/decisions`, { method: "POST", key: reviewerKey, json: { decision } });
  const deliveries = async (id: string) =>
    ((await (await gw.api(`/v1/requests/${id}`, { key: agent.key })).json()) as { deliveries: Delivery[] }).deliveries.filter((d) => d.kind === "callback");
  const settled = (id: string, status: string) =>
    eventually(async () => {
      const [d] = await deliveries(id);
      return d?.status === status ? d : undefined;
    }, 30_000);

  /** Verifies a delivery the way a receiver would, with the standardwebhooks library. */
  function verify(hit: { body: string; headers: Record<string, string> }) {
    const payload = new Webhook(secret()).verify(hit.body, hit.headers) as { type: string; timestamp: string; data: Record<string, unknown> };
    expect(Object.keys(payload).sort()).toEqual(["data", "timestamp", "type"]);
    expect(hit.headers["content-type"]).toBe("application/json");
    expect(hit.headers["webhook-id"]).toMatch(/^job_cb_/);
    expect(Math.abs(Number(hit.headers["webhook-timestamp"]) - Date.now() / 1000)).toBeLessThan(60);
    expect(hit.headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/=]+$/);
    return payload;
  }

  it("approve, deny and cancel each reach the receiver as a verified request.* event carrying the request resource", async () => {
    const rx = await receiver();
    const approved = await submit(rx.url);
    const denied = await submit(rx.url);
    const cancelled = await submit(rx.url);
    expect((await decideAs(approved.id, "approve")).status).toBe(201);
    expect((await decideAs(denied.id, "deny")).status).toBe(201);
    expect((await gw.api(`/v1/requests/${cancelled.id}/cancel`, { method: "POST", key: agent.key, json: { reason: "changed my mind" } })).status).toBe(200);

    for (const [r, type, status] of [
      [approved, "request.approved", "approved"],
      [denied, "request.denied", "denied"],
      [cancelled, "request.cancelled", "cancelled"],
    ] as const) {
      const hit = await rx.waitFor((c) => c.event.data.id === r.id);
      expect(hit.verified).toBe(true);
      const payload = verify(hit);
      expect(payload.type).toBe(type);
      expect(payload.data).toMatchObject({ object: "approval_request", id: r.id, status, action: "deploy.service", params: { v: 1 } });
      expect(new Date(payload.timestamp).toString()).not.toBe("Invalid Date");
      expect(hit.headers["webhook-id"]).toBe(`job_cb_${r.id.slice(4)}`);
      await settled(r.id, "done");
    }
    const approvedHit = rx.received.find((c) => c.event.data.id === approved.id)!;
    expect(approvedHit.event.data).toMatchObject({
      receipt: expect.stringMatching(/^eyJ/),
      decisions: [{ reviewer: "alice@example.com", decision: "approve" }],
    });
    // Signed with this agent's secret: another secret does not verify.
    const other = await gw.createKey({ name: "other", owner: "other@example.com", scopes: ["requests"] });
    expect(() => new Webhook(other.webhookSecret as string).verify(approvedHit.body, approvedHit.headers)).toThrow();
    // Exactly one delivery per event.
    expect(rx.received).toHaveLength(3);
  });

  it("expiry reaches the receiver as request.expired, never as an approval", async () => {
    const rx = await receiver();
    const r = await submit(rx.url, { action: "test.expire" });
    const hit = await rx.waitFor((c) => c.event.data.id === r.id);
    const payload = verify(hit);
    expect(payload.type).toBe("request.expired");
    expect(payload.data).toMatchObject({ status: "expired", resolution: "timeout", receipt: null, decisions: [] });
    // Voting after expiry is refused.
    const late = await decideAs(r.id, "approve");
    expect(late.status).toBe(409);
  });

  it("onExpire: deny yields status denied (resolution timeout), which the waiting agent sees and the receiver gets", async () => {
    const rx = await receiver();
    const r = await submit(rx.url, { action: "test.expire_deny" });
    const waited = await gw.api(`/v1/requests/${r.id}?wait=15`, { key: agent.key });
    expect(waited.status).toBe(200);
    expect(await waited.json()).toMatchObject({ id: r.id, status: "denied", resolution: "timeout", receipt: null });
    const payload = verify(await rx.waitFor((c) => c.event.data.id === r.id));
    expect(payload).toMatchObject({ type: "request.denied", data: { status: "denied", resolution: "timeout" } });
  });

  it("a receiver that fails the first 3 attempts still gets the event, with the same webhook-id and body each time", async () => {
    const rx = await receiver();
    rx.failFirst(3);
    const r = await submit(rx.url);
    await decideAs(r.id, "approve");
    const ok = await rx.waitFor((c) => c.event.data.id === r.id && rx.received.indexOf(c) === 3);
    expect(ok.verified).toBe(true);
    const attempts = rx.received.filter((c) => c.event.data.id === r.id);
    expect(attempts).toHaveLength(4);
    expect(new Set(attempts.map((a) => a.headers["webhook-id"]))).toEqual(new Set([`job_cb_${r.id.slice(4)}`]));
    expect(new Set(attempts.map((a) => a.body)).size).toBe(1);
    expect(attempts.every((a) => a.verified)).toBe(true);
    expect(await settled(r.id, "done")).toMatchObject({ attempts: 4, lastError: null });
  });

  it("Retry-After from the receiver pushes the next attempt back", async () => {
    const rx = await scriptedReceiver((n) => (n === 1 ? { status: 503, headers: { "retry-after": "2" } } : { status: 204 }));
    closers.push(rx.close);
    const r = await submit(rx.url);
    await decideAs(r.id, "approve");
    await settled(r.id, "done");
    expect(rx.hits).toHaveLength(2);
    // The scaled schedule alone would retry within milliseconds.
    expect(rx.hits[1]!.at - rx.hits[0]!.at).toBeGreaterThanOrEqual(1_900);
    expect(rx.hits[1]!.headers["webhook-id"]).toBe(rx.hits[0]!.headers["webhook-id"]);
  });

  it("410 Gone stops retries at once and the delivery shows failed", async () => {
    const rx = await receiver();
    rx.respondWith(410);
    const r = await submit(rx.url);
    await decideAs(r.id, "deny");
    const d = await settled(r.id, "failed");
    expect(d).toMatchObject({ attempts: 1, lastError: expect.stringMatching(/410/) });
    await sleep(1_500);
    expect(rx.received.filter((c) => c.event.data.id === r.id)).toHaveLength(1);
    expect((await deliveries(r.id))[0]).toMatchObject({ status: "failed", attempts: 1 });
  });

  it("a 3xx is a failure and is not followed; the event arrives once the receiver answers 2xx", async () => {
    const target = await receiver();
    let redirecting = true;
    const rx = await scriptedReceiver(() => (redirecting ? { status: 307, headers: { location: target.url } } : { status: 200 }));
    closers.push(rx.close);
    const r = await submit(rx.url);
    await decideAs(r.id, "approve");
    await eventually(async () => rx.hits.length >= 3);
    expect(await deliveries(r.id)).toMatchObject([{ lastError: expect.stringMatching(/redirect 307/) }]);
    redirecting = false;
    await settled(r.id, "done");
    // The redirect target was never contacted.
    expect(target.received).toHaveLength(0);
  });

  it("a callback that keeps failing ends `failed` after every attempt, and the request resource shows it", async () => {
    const rx = await receiver();
    rx.respondWith(500);
    const r = await submit(rx.url);
    await decideAs(r.id, "approve");
    const d = await settled(r.id, "failed");
    expect(d).toMatchObject({ kind: "callback", status: "failed", attempts: 10, lastError: "receiver answered 500" });
    const hits = rx.received.filter((c) => c.event.data.id === r.id);
    expect(hits).toHaveLength(10);
    expect(new Set(hits.map((h) => h.headers["webhook-id"])).size).toBe(1);
    expect(gw.logs.join("")).toContain("outbox job failed for good");
  });

  it("the retry scale is a test-only knob: 1 by default, refused in production", () => {
    expect(parseEnv({}).COUNTERSIGN_RETRY_SCALE).toBe(1);
    expect(parseEnv({ NODE_ENV: "test", COUNTERSIGN_RETRY_SCALE: "0.001" }).COUNTERSIGN_RETRY_SCALE).toBe(0.001);
    expect(() => parseEnv({ NODE_ENV: "production", COUNTERSIGN_RETRY_SCALE: "0.001" })).toThrow(/COUNTERSIGN_RETRY_SCALE: is a test-only setting/);
    expect(() => parseEnv({ COUNTERSIGN_RETRY_SCALE: "0" })).toThrow(/COUNTERSIGN_RETRY_SCALE/);
    expect(() => parseEnv({ COUNTERSIGN_RETRY_SCALE: "2" })).toThrow(/COUNTERSIGN_RETRY_SCALE/);
  });
});
