import { exportJWK, generateKeyPair } from "jose";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { CreatedKey } from "../../packages/services/src/index.ts";
import { startCallbackReceiver } from "../fakes/callback-receiver.ts";
import { eventually, revokeKey } from "../support/api-helpers.ts";
import { freshPostgresUrl } from "../support/db.ts";
import { type GatewayProcess, startGateway } from "../support/gateway.ts";

/**
 * API keys, webhook secrets, tokens (receipts), the receipt signing key, database
 * passwords and Authorization headers are never logged, even at debug level. The test
 * drives every route with real credentials (and credentials in odd places), then searches
 * everything the gateway wrote to stdout and stderr.
 */
describe("secrets never reach the logs (LOG_LEVEL=debug)", () => {
  let gw: GatewayProcess;
  let dropDb: (() => Promise<void>) | undefined;
  const secrets = new Map<string, string>();
  let agent: CreatedKey;
  let reviewer: CreatedKey;
  let admin: CreatedKey;
  let rx: Awaited<ReturnType<typeof startCallbackReceiver>>;
  const DB_PASSWORD = "Pg-Pa55word-never-logged";

  beforeAll(async () => {
    const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
    const jwk = { ...(await exportJWK(privateKey)), kid: "log-test" };
    secrets.set("receipt private key", jwk.d as string);
    const env: Record<string, string> = {
      LOG_LEVEL: "debug",
      LOG_FORMAT: "json",
      COUNTERSIGN_RECEIPT_KEY: JSON.stringify(jwk),
      COUNTERSIGN_RETRY_SCALE: "0.01",
    };
    let databaseUrl: string | undefined;
    // On PostgreSQL (when available) the URL carries a password, which must be redacted too.
    if (inject("pgUrl")) {
      const fresh = await freshPostgresUrl();
      dropDb = fresh.drop;
      const u = new URL(fresh.url);
      u.password = DB_PASSWORD;
      databaseUrl = u.toString();
      secrets.set("database password", DB_PASSWORD);
    }
    gw = await startGateway({ engine: databaseUrl ? "postgres" : "pglite", ...(databaseUrl ? { databaseUrl } : {}), env });
    agent = await gw.createKey({ name: "deploy-bot", owner: "owner@example.com", scopes: ["requests"] });
    reviewer = await gw.createKey({ name: "alice", owner: "alice@example.com", scopes: ["decisions"] });
    admin = await gw.createKey({ name: "root", owner: "root@example.com", scopes: ["admin"] });
    for (const [name, k] of [
      ["agent", agent],
      ["reviewer", reviewer],
      ["admin", admin],
    ] as const) {
      secrets.set(`${name} key`, k.key);
      // The part after the public prefix is the secret; it must not appear even on its own.
      secrets.set(`${name} key secret part`, k.key.slice(k.prefix.length + 1));
    }
    secrets.set("agent webhook secret", agent.webhookSecret as string);
    secrets.set("agent webhook secret body", (agent.webhookSecret as string).slice("whsec_".length));
    rx = await startCallbackReceiver(() => agent.webhookSecret as string);
  });
  afterAll(async () => {
    await rx?.close();
    await gw?.stop();
    await dropDb?.();
  });

  it("drives every route with credentials, then finds none of them in the logs", async () => {
    // Submit with a callback, read, long-poll, list, decide, cancel, audit, JWKS.
    const created = await gw.api("/v1/requests", {
      method: "POST",
      key: agent.key,
      json: { action: "db.export", summary: "Export", params: { table: "t" }, callbackUrl: rx.url },
      headers: { "idempotency-key": "log-test-1" },
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    expect((await gw.api(`/v1/requests/${id}`, { key: agent.key })).status).toBe(200);
    expect((await gw.api(`/v1/requests/${id}?wait=1`, { key: agent.key })).status).toBe(200);
    expect((await gw.api("/v1/requests?limit=5", { key: reviewer.key })).status).toBe(200);
    const decided = await gw.api(`/v1/requests/${id}/decisions`, { method: "POST", key: reviewer.key, json: { decision: "approve", reason: "ok" } });
    expect(decided.status).toBe(201);
    const receipt = ((await decided.json()) as { receipt: string }).receipt;
    secrets.set("receipt (a signed token)", receipt);
    const hit = await rx.waitFor((c) => c.event.data.id === id);
    expect(hit.verified).toBe(true);
    secrets.set("webhook signature", hit.headers["webhook-signature"] as string);

    // A callback that fails (and is logged as failing) must not leak the secret either.
    rx.failFirst(1);
    const second = await gw.api("/v1/requests", {
      method: "POST",
      key: agent.key,
      json: { action: "db.export", summary: "Export 2", callbackUrl: rx.url },
    });
    const id2 = ((await second.json()) as { id: string }).id;
    expect((await gw.api(`/v1/requests/${id2}/cancel`, { method: "POST", key: agent.key })).status).toBe(200);
    expect((await gw.api("/v1/audit?limit=10", { key: admin.key })).status).toBe(200);
    expect((await gw.api("/.well-known/jwks.json")).status).toBe(200);

    // Errors: wrong scope, bad body, unknown route — each logged at debug with its request id.
    expect((await gw.api("/v1/audit", { key: agent.key })).status).toBe(403);
    expect((await gw.api("/v1/requests", { method: "POST", key: agent.key, body: "{oops", headers: { "content-type": "application/json" } })).status).toBe(400);
    // Credentials where they do not belong: a lower-case scheme, the query string, the path,
    // a request-id header, a body field, and a forged key sharing a real prefix.
    await gw.api(`/v1/requests/${id}`, { headers: { authorization: `bearer ${reviewer.key}` } });
    await gw.api(`/v1/requests?api_key=${encodeURIComponent(admin.key)}&token=${encodeURIComponent(agent.key)}`, { key: reviewer.key });
    await gw.api(`/v1/requests/${encodeURIComponent(agent.key)}`, { key: reviewer.key });
    await gw.api("/healthz", { headers: { "x-request-id": agent.key } });
    await gw.api("/v1/requests", { method: "POST", key: agent.key, json: { action: "x.y", summary: "s", apiKey: admin.key, password: DB_PASSWORD } });
    await gw.api("/v1/requests", { method: "POST", key: `${agent.prefix}_${"A".repeat(32)}`, json: {} });

    // A revoked key is refused (and the refusal logged without the key).
    await revokeKey(gw, reviewer.id);
    expect((await gw.api("/v1/requests", { key: reviewer.key })).status).toBe(401);

    // Let the failed callback's retry run and everything flush.
    await eventually(async () => rx.received.filter((c) => c.event.data.id === id2).length >= 2, 20_000);
    await gw.kill("SIGTERM");

    const logs = gw.logs.join("");
    // The test is only meaningful if debug logging really happened.
    expect(logs).toMatch(/"level":"debug","message":"http"/);
    expect(logs).toContain(`"path":"/v1/requests/${id}/decisions"`);
    expect(logs).toContain("outbox job attempt failed; will retry");
    // Query strings are never logged; paths are logged in full (with credentials redacted).
    expect(logs).not.toContain("api_key=");
    expect(logs).toContain('"path":"/v1/requests/[redacted]"');
    expect(logs.split("\n").filter(Boolean).length).toBeGreaterThan(20);

    const leaked = [...secrets].filter(([, value]) => value && logs.includes(value)).map(([name]) => name);
    expect(leaked).toEqual([]);
    expect(logs).not.toMatch(/Bearer\s+cs_/i);
    expect(logs).not.toMatch(/whsec_[A-Za-z0-9+/=]{8,}/);
    expect(logs).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.eyJ/);
  });
});
