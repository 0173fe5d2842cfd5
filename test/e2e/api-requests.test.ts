import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CreatedKey } from "../../packages/services/src/index.ts";
import { API_POLICY, expectNothingWritten, expectProblem, revokeKey, snapshot } from "../support/api-helpers.ts";
import { type GatewayProcess, startGateway } from "../support/gateway.ts";

/** POST /v1/requests, GET /v1/requests/:id (with ?wait) and GET /v1/requests: happy, error and security cases. */
describe("API: submitting and reading requests", () => {
  let gw: GatewayProcess;
  let agent: CreatedKey;
  let otherAgent: CreatedKey;
  let alice: CreatedKey;
  let admin: CreatedKey;

  beforeAll(async () => {
    // No callback allow-list: the SSRF guard is fully in force.
    gw = await startGateway({ engine: "pglite", policy: API_POLICY, env: { COUNTERSIGN_CALLBACK_ALLOW: "", COUNTERSIGN_RATE_LIMIT: "0" } });
    [agent, otherAgent, alice, admin] = await Promise.all([
      gw.createKey({ name: "deploy-bot", owner: "owner@example.com", scopes: ["requests"] }),
      gw.createKey({ name: "other-bot", owner: "other@example.com", scopes: ["requests"] }),
      gw.createKey({ name: "alice", owner: "alice@example.com", scopes: ["decisions"] }),
      gw.createKey({ name: "root", owner: "root@example.com", scopes: ["admin"] }),
    ]);
  });
  afterAll(async () => {
    if (gw) expect(gw.logs.join("")).not.toContain("unhandled error");
    await gw?.stop();
  });

  const post = (json: unknown, key = agent.key, headers: Record<string, string> = {}) => gw.api("/v1/requests", { method: "POST", key, json, headers });
  const raw = (body: string, contentType: string | null, key = agent.key) => {
    const headers: Record<string, string> = contentType ? { "content-type": contentType } : {};
    return gw.api("/v1/requests", { method: "POST", key, body, headers });
  };
  const nothingWritten = <T>(fn: () => Promise<T>) => expectNothingWritten(gw, admin.key, fn);
  const body = (extra: Record<string, unknown> = {}) => ({ action: "report.build", summary: "Build the report", params: { q: 1 }, ...extra });

  describe("POST /v1/requests", () => {
    it("201: a pending request with a Location header, recorded once in the audit log", async () => {
      const before = await snapshot(gw, admin.key);
      const res = await post(body({ environment: "staging", risk: "low", resource: "reports/q1", rationale: "monthly", metadata: { ticket: "OPS-1" } }));
      expect(res.status).toBe(201);
      const r = (await res.json()) as Record<string, unknown> & { id: string };
      expect(res.headers.get("location")).toBe(`/v1/requests/${r.id}`);
      expect(r.id).toMatch(/^req_[0-9A-HJKMNP-TV-Z]{26}$/);
      expect(r).toMatchObject({
        object: "approval_request",
        status: "pending",
        action: "report.build",
        environment: "staging",
        risk: "low",
        resource: "reports/q1",
        metadata: { ticket: "OPS-1" },
        agent: { keyId: agent.id, name: "deploy-bot", owner: "owner@example.com" },
        policy: { ruleId: "anyone", requiredApprovals: 1 },
        approvals: { required: 1, received: 0 },
        decisions: [],
        receipt: null,
        links: { self: `/v1/requests/${r.id}` },
      });
      const after = await snapshot(gw, admin.key);
      expect(after.auditSeq).toBe(before.auditSeq + 1);
      expect(after.requests).toHaveLength(before.requests.length + 1);
    });

    it("201: an allow rule approves at once (with a receipt) and a deny rule denies", async () => {
      const allowed = await post(body({ action: "logs.read" }));
      expect(allowed.status).toBe(201);
      expect(await allowed.json()).toMatchObject({ status: "approved", resolution: "policy", receipt: expect.stringMatching(/^eyJ/) });
      const denied = await post(body({ action: "db.drop" }));
      expect(denied.status).toBe(201);
      expect(await denied.json()).toMatchObject({ status: "denied", resolution: "policy", receipt: null });
    });

    it("idempotency: the same key and body return the same request (200, replayed) and write nothing", async () => {
      const first = await post(body({ params: { a: 1, b: [1, 2] } }), agent.key, { "idempotency-key": "export-2026-11-21" });
      expect(first.status).toBe(201);
      const { id } = (await first.json()) as { id: string };
      const again = await nothingWritten(() => post(body({ params: { b: [1, 2], a: 1 } }), agent.key, { "idempotency-key": "export-2026-11-21" }));
      expect(again.status).toBe(200);
      expect(again.headers.get("idempotent-replayed")).toBe("true");
      expect(((await again.json()) as { id: string }).id).toBe(id);
    });

    it("idempotency: the same key with a different body is 422 idempotency_conflict and writes nothing", async () => {
      await post(body(), agent.key, { "idempotency-key": "k-conflict" });
      const res = await nothingWritten(() => post(body({ summary: "Something else" }), agent.key, { "idempotency-key": "k-conflict" }));
      await expectProblem(res, 422, "idempotency_conflict");
      // Idempotency keys are per API key: another agent's identical key is unrelated.
      expect((await post(body(), otherAgent.key, { "idempotency-key": "k-conflict" })).status).toBe(201);
    });

    it("400: an Idempotency-Key that is too long or not printable ASCII", async () => {
      const res = await nothingWritten(() => post(body(), agent.key, { "idempotency-key": "x".repeat(256) }));
      const p = await expectProblem(res, 400, "invalid_request");
      expect(p.errors).toEqual([{ path: "Idempotency-Key", message: expect.any(String) }]);
    });

    it("400: malformed JSON, and nothing is written", async () => {
      const res = await nothingWritten(() => raw('{"action": "report.build", "summary": ', "application/json"));
      const p = await expectProblem(res, 400, "invalid_request");
      expect(p.detail).toMatch(/not valid JSON/);
    });

    it("415: a body that is not declared as JSON", async () => {
      await expectProblem(await nothingWritten(() => raw(JSON.stringify(body()), "text/plain")), 415, "unsupported_media_type");
      await expectProblem(await nothingWritten(() => raw("action=report.build", "application/x-www-form-urlencoded")), 415, "unsupported_media_type");
      await expectProblem(await nothingWritten(() => raw(JSON.stringify(body()), null)), 415, "unsupported_media_type");
    });

    it("400: unknown fields are named one by one; server-assigned fields cannot be set", async () => {
      const res = await nothingWritten(() => post(body({ status: "approved", bogus: true })));
      const p = await expectProblem(res, 400, "invalid_request");
      expect(p.errors).toEqual(
        expect.arrayContaining([
          { path: "status", message: "unknown field" },
          { path: "bogus", message: "unknown field" },
        ]),
      );
      expect(p.errors).toHaveLength(2);
    });

    it("400: per-field errors for missing and ill-typed fields", async () => {
      const res = await nothingWritten(() => post({ action: "no_dots", risk: "extreme", expiresIn: 5, params: [1] }));
      const p = await expectProblem(res, 400, "invalid_request");
      const paths = (p.errors ?? []).map((e) => e.path).sort();
      expect(paths).toEqual(["action", "expiresIn", "params", "risk", "summary"]);
    });

    it("400: a JSON body that is not an object, and params nested deeper than 32 levels", async () => {
      await expectProblem(await nothingWritten(() => raw("[1,2,3]", "application/json")), 400, "invalid_request");
      await expectProblem(await nothingWritten(() => raw('"just a string"', "application/json")), 400, "invalid_request");
      let deep: unknown = 1;
      for (let i = 0; i < 40; i++) deep = { d: deep };
      const p = await expectProblem(await nothingWritten(() => post(body({ params: deep }))), 400, "invalid_request");
      expect(p.errors?.[0]?.path).toBe("params");
    });

    it("413: a body over 64 KB, declared or streamed, and nothing is written", async () => {
      const big = JSON.stringify(body({ params: { blob: "x".repeat(70 * 1024) } }));
      await expectProblem(await nothingWritten(() => raw(big, "application/json")), 413, "payload_too_large");
      // Without a Content-Length (chunked), the parser's limit still applies.
      const chunks = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(new TextEncoder().encode(big));
          c.close();
        },
      });
      const streamed = await nothingWritten(() =>
        fetch(`${gw.url}/v1/requests`, {
          method: "POST",
          headers: { authorization: `Bearer ${agent.key}`, "content-type": "application/json" },
          body: chunks,
          duplex: "half",
        } as RequestInit),
      );
      await expectProblem(streamed, 413, "payload_too_large");
      // Just under the limit is fine.
      const fits = JSON.stringify(body({ params: { blob: "x".repeat(60 * 1024) } }));
      expect((await raw(fits, "application/json")).status).toBe(201);
    });

    it.each([
      ["loopback 127.0.0.1", "https://127.0.0.1/hook"],
      ["private 10.x", "https://10.1.2.3/hook"],
      ["cloud metadata 169.254.169.254", "https://169.254.169.254/latest/meta-data/"],
      ["IPv6 loopback [::1]", "https://[::1]:8443/hook"],
      ["a hostname resolving to loopback (localhost)", "https://localhost/hook"],
      ["plain http", "http://example.com/hook"],
    ])("422: a callbackUrl to %s is callback_url_forbidden and nothing is written", async (_label, callbackUrl) => {
      const res = await nothingWritten(() => post(body({ callbackUrl })));
      const p = await expectProblem(res, 422, "callback_url_forbidden");
      expect(p.errors).toEqual([{ path: "callbackUrl", message: expect.any(String) }]);
    });

    it("401: no key, another scheme, a forged key, and a forged secret behind a real key prefix", async () => {
      const forgedSecret = `${agent.prefix}_${"A".repeat(32)}`;
      const forged = `cs_${"Z".repeat(12)}_${"B".repeat(32)}`;
      const variants: Record<string, string>[] = [{}, { authorization: `Basic ${Buffer.from("a:b").toString("base64")}` }, { authorization: "Bearer" }];
      for (const headers of variants) {
        const res = await nothingWritten(() => gw.api("/v1/requests", { method: "POST", json: body(), headers }));
        await expectProblem(res, 401, "unauthorized");
      }
      for (const key of [forged, forgedSecret, "not-a-key", `${agent.key}x`]) {
        const p = await expectProblem(await nothingWritten(() => post(body(), key)), 401, "unauthorized");
        // The same answer whichever part was wrong, so keys cannot be probed.
        expect(p.detail).toBe("The API key is missing, malformed, unknown or revoked.");
      }
    });

    it("401: a revoked key stops working at once", async () => {
      const k = await gw.createKey({ name: "short-lived", owner: "temp@example.com", scopes: ["requests"] });
      expect((await post(body(), k.key)).status).toBe(201);
      await revokeKey(gw, k.id);
      await expectProblem(await nothingWritten(() => post(body(), k.key)), 401, "unauthorized");
      await expectProblem(await gw.api("/v1/requests/req_01ARZ3NDEKTSV4RRFFQ69G5FAV", { key: k.key }), 401, "unauthorized");
    });

    it("403: keys without the requests scope cannot submit", async () => {
      await expectProblem(await nothingWritten(() => post(body(), alice.key)), 403, "forbidden");
      await expectProblem(await nothingWritten(() => post(body(), admin.key)), 403, "forbidden");
    });
  });

  describe("GET /v1/requests/:id", () => {
    let id: string;
    beforeAll(async () => {
      id = ((await (await post(body({ summary: "to read" }))).json()) as { id: string }).id;
    });

    it("200 for the key that made it, for reviewers and for admins", async () => {
      for (const key of [agent.key, alice.key, admin.key]) {
        const res = await gw.api(`/v1/requests/${id}`, { key });
        expect(res.status).toBe(200);
        expect(await res.json()).toMatchObject({ id, status: "pending", summary: "to read" });
      }
    });

    it("404 for another agent's request, exactly as for a request that does not exist", async () => {
      const theirs = await expectProblem(await gw.api(`/v1/requests/${id}`, { key: otherAgent.key }), 404, "not_found");
      const missing = await expectProblem(await gw.api("/v1/requests/req_01ARZ3NDEKTSV4RRFFQ69G5FAV", { key: otherAgent.key }), 404, "not_found");
      expect(theirs.title).toBe(missing.title);
      expect(theirs.detail).not.toContain("another");
    });

    it("4xx for ids that are not request ids", async () => {
      for (const bad of ["abc", "req_123", "req_01ARZ3NDEKTSV4RRFFQ69G5FAVX", "%27%20OR%201%3D1", "x".repeat(300)]) {
        const res = await gw.api(`/v1/requests/${bad}`, { key: alice.key });
        const p = await expectProblem(res, 404, "not_found");
        expect(p.detail.length).toBeLessThan(200);
      }
    });

    it("401 without a key", async () => {
      await expectProblem(await gw.api(`/v1/requests/${id}`), 401, "unauthorized");
    });

    it("?wait holds a pending request for up to `wait` seconds and returns it still pending", async () => {
      const t0 = Date.now();
      const res = await gw.api(`/v1/requests/${id}?wait=1`, { key: agent.key });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { status: string }).status).toBe("pending");
      expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    });

    it("?wait returns as soon as a decision lands", async () => {
      const mine = ((await (await post(body({ summary: "wait for me" }))).json()) as { id: string }).id;
      const t0 = Date.now();
      const waiting = gw.api(`/v1/requests/${mine}?wait=30`, { key: agent.key });
      await new Promise((r) => setTimeout(r, 300));
      const d = await gw.api(`/v1/requests/${mine}/decisions`, { method: "POST", key: alice.key, json: { decision: "approve" } });
      expect(d.status).toBe(201);
      const res = await waiting;
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ id: mine, status: "approved", decisions: [{ reviewer: "alice@example.com", decision: "approve" }] });
      expect(Date.now() - t0).toBeLessThan(10_000);
      // A finished request answers at once.
      const t1 = Date.now();
      expect((await gw.api(`/v1/requests/${mine}?wait=30`, { key: agent.key })).status).toBe(200);
      expect(Date.now() - t1).toBeLessThan(2_000);
    });

    it("400 for a bad wait: not a number, over 60, negative, or given twice", async () => {
      for (const q of ["wait=abc", "wait=61", "wait=-1", "wait=1.5", "wait=1&wait=2"]) {
        const p = await expectProblem(await gw.api(`/v1/requests/${id}?${q}`, { key: agent.key }), 400, "invalid_request");
        expect(p.errors?.[0]?.path).toBe("wait");
      }
    });

    it("?wait on another agent's request is 404 at once (no waiting, no leak)", async () => {
      const t0 = Date.now();
      await expectProblem(await gw.api(`/v1/requests/${id}?wait=5`, { key: otherAgent.key }), 404, "not_found");
      expect(Date.now() - t0).toBeLessThan(2_000);
    });
  });

  describe("GET /v1/requests", () => {
    it("200 for reviewers and admins, newest first, filtered by status, paged by cursor", async () => {
      const res = await gw.api("/v1/requests?status=pending&limit=2", { key: alice.key });
      expect(res.status).toBe(200);
      const page = (await res.json()) as { object: string; data: { id: string; status: string }[]; nextCursor: string };
      expect(page.object).toBe("list");
      expect(page.data).toHaveLength(2);
      expect(page.data.every((r) => r.status === "pending")).toBe(true);
      expect(page.data[0]!.id > page.data[1]!.id).toBe(true);
      expect(page.nextCursor).toBe(page.data[1]!.id);
      const next = (await (await gw.api(`/v1/requests?status=pending&limit=2&cursor=${page.nextCursor}`, { key: alice.key })).json()) as {
        data: { id: string }[];
      };
      expect(next.data.length).toBeGreaterThan(0);
      expect(next.data.every((r) => r.id < page.nextCursor)).toBe(true);
      const all = (await (await gw.api("/v1/requests?action=logs.read", { key: admin.key })).json()) as { data: { action: string }[]; nextCursor: null };
      expect(all.data.length).toBeGreaterThan(0);
      expect(all.data.every((r) => r.action === "logs.read")).toBe(true);
      expect(all.nextCursor).toBeNull();
    });

    it("403 for agent keys, 401 without a key", async () => {
      await expectProblem(await gw.api("/v1/requests", { key: agent.key }), 403, "forbidden");
      await expectProblem(await gw.api("/v1/requests"), 401, "unauthorized");
    });

    it("400 for bad filters and limits; 4xx for a bad cursor", async () => {
      for (const q of ["status=bogus", "limit=0", "limit=201", "limit=abc", "status=pending&status=denied"]) {
        await expectProblem(await gw.api(`/v1/requests?${q}`, { key: alice.key }), 400, "invalid_request");
      }
      const res = await gw.api("/v1/requests?cursor=not-an-id", { key: alice.key });
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    });
  });
});
