import { canonicalSha256 } from "@countersign/core";
import { createLocalJWKSet, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCallbackReceiver } from "../fakes/callback-receiver.ts";
import { type GatewayProcess, startGateway } from "../support/gateway.ts";

describe("release: long-poll, signed callbacks and receipts (PGlite gateway)", () => {
  let gw: GatewayProcess;
  let agentKey: string;
  let secret: string;
  let reviewerKey: string;
  let receiver: Awaited<ReturnType<typeof startCallbackReceiver>>;

  beforeAll(async () => {
    gw = await startGateway({ engine: "pglite" });
    const agent = await gw.createKey({ name: "deploy-bot", owner: "owner@example.com", scopes: ["requests"] });
    agentKey = agent.key;
    secret = agent.webhookSecret as string;
    reviewerKey = (await gw.createKey({ name: "alice", owner: "alice@example.com", scopes: ["decisions"] })).key;
    receiver = await startCallbackReceiver(() => secret);
  });
  afterAll(async () => {
    await receiver?.close();
    await gw?.stop();
  });

  async function submit(body: Record<string, unknown>) {
    const res = await gw.api("/v1/requests", { method: "POST", key: agentKey, json: { summary: "Export", action: "db.export", ...body } });
    expect(res.status).toBe(201);
    return (await res.json()) as { id: string; status: string };
  }

  it("approve releases a long-poll waiter and delivers a verified request.approved callback with a valid receipt", async () => {
    const params = { table: "customers", limit: 10 };
    const r = await submit({ params, callbackUrl: receiver.url });
    const waiting = gw.api(`/v1/requests/${r.id}?wait=20`, { key: agentKey }).then((x) => x.json());
    await new Promise((res) => setTimeout(res, 200));
    const d = await gw.api(`/v1/requests/${r.id}/decisions`, { method: "POST", key: reviewerKey, json: { decision: "approve" } });
    expect(d.status).toBe(201);
    const released = (await waiting) as { status: string; receipt: string };
    expect(released.status).toBe("approved");

    const cb = await receiver.waitFor((c) => c.event.data.id === r.id);
    expect(cb.verified).toBe(true);
    expect(cb.event.type).toBe("request.approved");
    expect(cb.headers["webhook-id"]).toMatch(/^job_/);

    const jwks = await (await gw.api("/.well-known/jwks.json")).json();
    // With no COUNTERSIGN_PUBLIC_URL the issuer names the port actually bound.
    const { payload } = await jwtVerify(released.receipt, createLocalJWKSet(jwks), { issuer: `http://localhost:${gw.port}` });
    expect(payload.jti).toBe(r.id);
    expect(payload.params_sha256).toBe(canonicalSha256(params));
    expect(payload.approvers).toEqual([{ principal: "alice@example.com", surface: "api" }]);
  });
});
