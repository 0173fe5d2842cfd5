import { type AuditEventRecord, canonicalSha256 } from "@countersign/core";
import { compactVerify, createLocalJWKSet, decodeProtectedHeader, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CreatedKey } from "../../packages/services/src/index.ts";
import { API_POLICY, expectNothingWritten, expectProblem, revokeKey, snapshot, verifyChains } from "../support/api-helpers.ts";
import { type GatewayProcess, startGateway } from "../support/gateway.ts";

const ISSUER = "https://countersign.example.test";

interface Resource {
  id: string;
  status: string;
  resolution: string | null;
  receipt: string | null;
  approvals: { required: number; received: number };
  decisions: { reviewer: string; decision: string }[];
}

/**
 * POST /v1/requests/:id/decisions, POST /v1/requests/:id/cancel, GET /v1/audit, /healthz,
 * /readyz and /.well-known/jwks.json: happy, error and security cases.
 */
describe("API: deciding, cancelling, audit and well-known routes", () => {
  let gw: GatewayProcess;
  const keys: Record<string, CreatedKey> = {};
  const key = (name: string) => (keys[name] as CreatedKey).key;

  beforeAll(async () => {
    gw = await startGateway({ engine: "pglite", policy: API_POLICY, env: { COUNTERSIGN_RATE_LIMIT: "0", COUNTERSIGN_PUBLIC_URL: ISSUER } });
    const specs = [
      ["agent", "owner@example.com", ["requests"]],
      ["other", "other@example.com", ["requests"]],
      ["alice", "alice@example.com", ["decisions"]],
      ["bob", "bob@example.com", ["decisions"]],
      ["carol", "carol@example.com", ["decisions"]],
      ["mallory", "mallory@example.com", ["decisions"]],
      // The agent's owner also holds a reviewer key: it must never approve the agent's requests.
      ["ownerReviewer", "owner@example.com", ["decisions"]],
      ["admin", "root@example.com", ["admin"]],
    ] as const;
    for (const [name, owner, scopes] of specs) keys[name] = await gw.createKey({ name, owner, scopes: [...scopes] });
  });
  afterAll(async () => {
    if (gw) expect(gw.logs.join("")).not.toContain("unhandled error");
    await gw?.stop();
  });

  const nothingWritten = <T>(fn: () => Promise<T>) => expectNothingWritten(gw, key("admin"), fn);
  async function submit(extra: Record<string, unknown> = {}, as = "agent"): Promise<Resource> {
    const res = await gw.api("/v1/requests", {
      method: "POST",
      key: key(as),
      json: { action: "report.build", summary: "Build it", params: { n: 1 }, ...extra },
    });
    expect(res.status).toBe(201);
    return (await res.json()) as Resource;
  }
  const vote = (id: string, as: string, decision: unknown, reason?: string) =>
    gw.api(`/v1/requests/${id}/decisions`, { method: "POST", key: key(as), json: { decision, ...(reason ? { reason } : {}) } });
  const read = async (id: string) => (await (await gw.api(`/v1/requests/${id}`, { key: key("admin") })).json()) as Resource;

  /** A refused vote is audited (one decision.refused event) and changes nothing else. */
  async function expectRefusal(res: () => Promise<Response>, status: number, code: string, id: string) {
    const before = await snapshot(gw, key("admin"));
    const reqBefore = await read(id);
    await expectProblem(await res(), status, code);
    const after = await snapshot(gw, key("admin"));
    expect(after.requests).toEqual(before.requests);
    expect(after.auditSeq).toBe(before.auditSeq + 1);
    const [event] = ((await (await gw.api(`/v1/audit?after=${before.auditSeq}`, { key: key("admin") })).json()) as { data: AuditEventRecord[] }).data;
    expect(event).toMatchObject({ type: "decision.refused", requestId: id, data: { code } });
    expect(await read(id)).toEqual(reqBefore);
  }

  describe("POST /v1/requests/:id/decisions", () => {
    it("201: one approval decides a 1-approval request and returns a receipt", async () => {
      const r = await submit();
      const res = await vote(r.id, "alice", "approve", "ticket OPS-42");
      expect(res.status).toBe(201);
      expect(await res.json()).toMatchObject({
        id: r.id,
        status: "approved",
        resolution: "quorum",
        approvals: { required: 1, received: 1 },
        decisions: [{ reviewer: "alice@example.com", decision: "approve", reason: "ticket OPS-42", surface: "api" }],
        receipt: expect.stringMatching(/^eyJ/),
      });
    });

    it("quorum of 2: the first approval leaves it pending, the second approves", async () => {
      const r = await submit({ action: "deploy.api" });
      const one = await vote(r.id, "alice", "approve");
      expect(one.status).toBe(201);
      expect(await one.json()).toMatchObject({ status: "pending", approvals: { required: 2, received: 1 }, receipt: null });
      const two = await vote(r.id, "bob", "approve");
      expect(two.status).toBe(201);
      expect(await two.json()).toMatchObject({ status: "approved", approvals: { required: 2, received: 2 } });
    });

    it("a single deny denies, even after an approval", async () => {
      const r = await submit({ action: "deploy.api" });
      expect((await vote(r.id, "alice", "approve")).status).toBe(201);
      const d = await vote(r.id, "bob", "deny", "not during the freeze");
      expect(d.status).toBe(201);
      expect(await d.json()).toMatchObject({ status: "denied", resolution: "denied", receipt: null });
    });

    it("409 already_voted: one vote per reviewer", async () => {
      const r = await submit({ action: "deploy.api" });
      expect((await vote(r.id, "alice", "approve")).status).toBe(201);
      await expectRefusal(() => vote(r.id, "alice", "approve"), 409, "already_voted", r.id);
      await expectRefusal(() => vote(r.id, "alice", "deny"), 409, "already_voted", r.id);
    });

    it("409 request_not_pending: decisions on approved, denied and cancelled requests are refused", async () => {
      const approved = await submit();
      await vote(approved.id, "alice", "approve");
      await expectRefusal(() => vote(approved.id, "bob", "deny"), 409, "request_not_pending", approved.id);
      const denied = await submit({ action: "db.drop" });
      await expectRefusal(() => vote(denied.id, "bob", "approve"), 409, "request_not_pending", denied.id);
      const cancelled = await submit();
      expect((await gw.api(`/v1/requests/${cancelled.id}/cancel`, { method: "POST", key: key("agent") })).status).toBe(200);
      await expectRefusal(() => vote(cancelled.id, "bob", "approve"), 409, "request_not_pending", cancelled.id);
    });

    it("403 self_approval_forbidden: the agent key's owner cannot decide through the API", async () => {
      const r = await submit();
      await expectRefusal(() => vote(r.id, "ownerReviewer", "approve"), 403, "self_approval_forbidden", r.id);
      await expectRefusal(() => vote(r.id, "ownerReviewer", "deny"), 403, "self_approval_forbidden", r.id);
    });

    it("403 self_approval_forbidden: the person named in onBehalfOf cannot decide, even as an eligible approver", async () => {
      const r = await submit({ action: "deploy.api", onBehalfOf: "Alice@Example.com" });
      await expectRefusal(() => vote(r.id, "alice", "approve"), 403, "self_approval_forbidden", r.id);
      // Others still can.
      expect((await vote(r.id, "bob", "approve")).status).toBe(201);
    });

    it("403 not_an_approver: a reviewer outside the rule's approvers", async () => {
      const r = await submit({ action: "deploy.api" });
      await expectRefusal(() => vote(r.id, "mallory", "approve"), 403, "not_an_approver", r.id);
    });

    it("403 forbidden: agent and admin keys can never decide; nothing is written", async () => {
      const r = await submit();
      await expectProblem(await nothingWritten(() => vote(r.id, "agent", "approve")), 403, "forbidden");
      await expectProblem(await nothingWritten(() => vote(r.id, "other", "approve")), 403, "forbidden");
      await expectProblem(await nothingWritten(() => vote(r.id, "admin", "approve")), 403, "forbidden");
    });

    it("401: no key, a forged key, and a revoked reviewer key (at once)", async () => {
      const r = await submit();
      await expectProblem(
        await nothingWritten(() => gw.api(`/v1/requests/${r.id}/decisions`, { method: "POST", json: { decision: "approve" } })),
        401,
        "unauthorized",
      );
      const forged = `${keys.alice!.prefix}_${"x".repeat(32)}`;
      await expectProblem(
        await nothingWritten(() => gw.api(`/v1/requests/${r.id}/decisions`, { method: "POST", key: forged, json: { decision: "approve" } })),
        401,
        "unauthorized",
      );
      const temp = await gw.createKey({ name: "temp-reviewer", owner: "temp@example.com", scopes: ["decisions"] });
      await revokeKey(gw, temp.prefix);
      await expectProblem(
        await nothingWritten(() => gw.api(`/v1/requests/${r.id}/decisions`, { method: "POST", key: temp.key, json: { decision: "approve" } })),
        401,
        "unauthorized",
      );
      expect((await read(r.id)).status).toBe("pending");
    });

    it("400/413/415: malformed, unknown-field, wrong-type, oversized and non-JSON bodies write nothing", async () => {
      const r = await submit();
      const url = `/v1/requests/${r.id}/decisions`;
      const p1 = await expectProblem(await nothingWritten(() => vote(r.id, "alice", "maybe")), 400, "invalid_request");
      expect(p1.errors?.map((e) => e.path)).toEqual(["decision"]);
      const p2 = await expectProblem(
        await nothingWritten(() => gw.api(url, { method: "POST", key: key("alice"), json: { decision: "approve", approvals: 5 } })),
        400,
        "invalid_request",
      );
      expect(p2.errors).toEqual([{ path: "approvals", message: "unknown field" }]);
      await expectProblem(await nothingWritten(() => gw.api(url, { method: "POST", key: key("alice"), json: {} })), 400, "invalid_request");
      await expectProblem(await nothingWritten(() => gw.api(url, { method: "POST", key: key("alice") })), 400, "invalid_request");
      await expectProblem(
        await nothingWritten(() =>
          gw.api(url, { method: "POST", key: key("alice"), body: "{decision:approve}", headers: { "content-type": "application/json" } }),
        ),
        400,
        "invalid_request",
      );
      await expectProblem(
        await nothingWritten(() =>
          gw.api(url, { method: "POST", key: key("alice"), body: "decision=approve", headers: { "content-type": "application/x-www-form-urlencoded" } }),
        ),
        415,
        "unsupported_media_type",
      );
      await expectProblem(
        await nothingWritten(() => gw.api(url, { method: "POST", key: key("alice"), json: { decision: "approve", reason: "r".repeat(70_000) } })),
        413,
        "payload_too_large",
      );
      expect((await read(r.id)).status).toBe("pending");
    });

    it("404: unknown and malformed request ids", async () => {
      await expectProblem(await nothingWritten(() => vote("req_01ARZ3NDEKTSV4RRFFQ69G5FAV", "alice", "approve")), 404, "not_found");
      await expectProblem(await nothingWritten(() => vote("not-an-id", "alice", "approve")), 404, "not_found");
      await expectProblem(await nothingWritten(() => vote("req_../../etc", "alice", "approve")), 404, "not_found");
    });
  });

  describe("receipts", () => {
    it("verify with jose against the served JWKS, and fail when any claim or the params change", async () => {
      const params = { table: "customers", columns: ["id", "email"], limit: 100 };
      const r = await submit({ action: "db.export", params, resource: "db/customers", environment: "production", onBehalfOf: "dana@example.com" });
      const approved = (await (await vote(r.id, "alice", "approve")).json()) as Resource;
      const receipt = approved.receipt as string;
      const jwksRes = await gw.api("/.well-known/jwks.json");
      const jwks = createLocalJWKSet((await jwksRes.json()) as { keys: [] });
      const { payload, protectedHeader } = await jwtVerify(receipt, jwks, { algorithms: ["EdDSA"], issuer: ISSUER });
      expect(protectedHeader).toMatchObject({ alg: "EdDSA", typ: "countersign-receipt+jwt" });
      expect(payload).toMatchObject({
        jti: r.id,
        action: "db.export",
        params_sha256: canonicalSha256(params),
        resource: "db/customers",
        environment: "production",
        agent: { key_id: keys.agent!.id, name: "agent" },
        on_behalf_of: "dana@example.com",
        approvers: [{ principal: "alice@example.com", surface: "api" }],
        rule: "anyone",
      });
      expect((payload.exp as number) - (payload.iat as number)).toBe(900);
      await expect(jwtVerify(receipt, jwks, { issuer: "https://someone-else.example" })).rejects.toThrow(/iss/);

      // The executor hashes the params it is about to use: any change no longer matches.
      expect(canonicalSha256({ limit: 100, columns: ["id", "email"], table: "customers" })).toBe(payload.params_sha256);
      for (const changed of [{ ...params, limit: 101 }, { ...params, columns: ["id", "email", "ssn"] }, { ...params, extra: true }, {}]) {
        expect(canonicalSha256(changed)).not.toBe(payload.params_sha256);
      }

      // Tampering with any claim (re-encoding the payload, keeping the signature) breaks verification.
      const [h, p, s] = receipt.split(".") as [string, string, string];
      const claims = JSON.parse(Buffer.from(p, "base64url").toString("utf8")) as Record<string, unknown>;
      const tampers: Record<string, unknown>[] = [
        { ...claims, action: "db.drop" },
        { ...claims, params_sha256: canonicalSha256({ ...params, limit: 1_000_000 }) },
        { ...claims, jti: "req_01ARZ3NDEKTSV4RRFFQ69G5FAV" },
        { ...claims, approvers: [{ principal: "mallory@example.com", surface: "api" }] },
        { ...claims, on_behalf_of: null },
        { ...claims, exp: (claims.exp as number) + 86400 },
        { ...claims, resource: "db/*" },
      ];
      for (const t of tampers) {
        const forged = `${h}.${Buffer.from(JSON.stringify(t)).toString("base64url")}.${s}`;
        await expect(jwtVerify(forged, jwks)).rejects.toThrow(/signature verification failed/);
      }
      // A flipped signature bit, and a header swapped to "none", fail too.
      const sig = Buffer.from(s, "base64url");
      sig[0] = (sig[0] as number) ^ 1;
      await expect(compactVerify(`${h}.${p}.${sig.toString("base64url")}`, jwks)).rejects.toThrow();
      const none = Buffer.from(JSON.stringify({ ...decodeProtectedHeader(receipt), alg: "none" })).toString("base64url");
      await expect(jwtVerify(`${none}.${p}.`, jwks)).rejects.toThrow();
    });
  });

  describe("POST /v1/requests/:id/cancel", () => {
    it("200: the requesting key cancels its pending request (with or without a body)", async () => {
      const a = await submit();
      const res = await gw.api(`/v1/requests/${a.id}/cancel`, { method: "POST", key: key("agent"), json: { reason: "not needed" } });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ id: a.id, status: "cancelled", resolution: "cancelled" });
      const b = await submit();
      expect((await gw.api(`/v1/requests/${b.id}/cancel`, { method: "POST", key: key("agent") })).status).toBe(200);
    });

    it("200: an admin may cancel any pending request", async () => {
      const r = await submit({}, "other");
      const res = await gw.api(`/v1/requests/${r.id}/cancel`, { method: "POST", key: key("admin") });
      expect(res.status).toBe(200);
      expect(((await res.json()) as Resource).status).toBe("cancelled");
    });

    it("404 for another agent's request; 403 for reviewer keys; 401 without a key; nothing written", async () => {
      const r = await submit();
      const url = `/v1/requests/${r.id}/cancel`;
      await expectProblem(await nothingWritten(() => gw.api(url, { method: "POST", key: key("other") })), 404, "not_found");
      await expectProblem(await nothingWritten(() => gw.api(url, { method: "POST", key: key("alice") })), 403, "forbidden");
      await expectProblem(await nothingWritten(() => gw.api(url, { method: "POST" })), 401, "unauthorized");
      expect((await read(r.id)).status).toBe("pending");
    });

    it("409 for a request that is no longer pending", async () => {
      const r = await submit();
      await vote(r.id, "alice", "approve");
      await expectProblem(await nothingWritten(() => gw.api(`/v1/requests/${r.id}/cancel`, { method: "POST", key: key("agent") })), 409, "request_not_pending");
      expect((await read(r.id)).status).toBe("approved");
    });

    it("400/415 for bad bodies, 404 for bad ids", async () => {
      const r = await submit();
      const url = `/v1/requests/${r.id}/cancel`;
      const p = await expectProblem(
        await nothingWritten(() => gw.api(url, { method: "POST", key: key("agent"), json: { reason: "x", status: "approved" } })),
        400,
        "invalid_request",
      );
      expect(p.errors).toEqual([{ path: "status", message: "unknown field" }]);
      await expectProblem(
        await nothingWritten(() => gw.api(url, { method: "POST", key: key("agent"), body: "{", headers: { "content-type": "application/json" } })),
        400,
        "invalid_request",
      );
      await expectProblem(
        await nothingWritten(() => gw.api(url, { method: "POST", key: key("agent"), body: "reason=x", headers: { "content-type": "text/plain" } })),
        415,
        "unsupported_media_type",
      );
      await expectProblem(await nothingWritten(() => gw.api("/v1/requests/nope/cancel", { method: "POST", key: key("agent") })), 404, "not_found");
      expect((await read(r.id)).status).toBe("pending");
    });
  });

  describe("GET /v1/audit", () => {
    it("admin pages the chain with after/limit, and the pages verify as one chain", async () => {
      const first = await gw.api("/v1/audit?after=0&limit=3", { key: key("admin") });
      expect(first.status).toBe(200);
      const p1 = (await first.json()) as { object: string; data: AuditEventRecord[]; nextAfter: number | null };
      expect(p1.object).toBe("list");
      expect(p1.data.map((e) => e.seq)).toEqual([1, 2, 3]);
      expect(p1.nextAfter).toBe(3);
      const p2 = (await (await gw.api("/v1/audit?after=3&limit=2", { key: key("admin") })).json()) as { data: AuditEventRecord[]; nextAfter: number };
      expect(p2.data.map((e) => e.seq)).toEqual([4, 5]);

      const all: AuditEventRecord[] = [];
      let after = 0;
      for (;;) {
        const page = (await (await gw.api(`/v1/audit?after=${after}&limit=7`, { key: key("admin") })).json()) as {
          data: AuditEventRecord[];
          nextAfter: number | null;
        };
        all.push(...page.data);
        if (page.nextAfter === null) break;
        after = page.nextAfter;
      }
      expect(all.map((e) => e.seq)).toEqual([...new Set(all.map((e) => e.seq))].sort((a, b) => a - b));
      expect(verifyChains(all)).toMatchObject({ ok: true, events: all.length });
      // Every request's events form their own chain, from index 0.
      for (const id of new Set(all.flatMap((e) => (e.requestId ? [e.requestId] : [])))) {
        expect(all.filter((e) => e.stream === id).map((e) => e.index)).toEqual(all.filter((e) => e.stream === id).map((_, i) => i));
      }
      expect([...new Set(all.map((e) => e.type))]).toEqual(
        expect.arrayContaining([
          "key.created",
          "key.revoked",
          "request.created",
          "decision.recorded",
          "decision.refused",
          "request.approved",
          "request.denied",
          "request.cancelled",
        ]),
      );
      // Past the end: an empty page.
      const end = (await (await gw.api(`/v1/audit?after=${all.length}`, { key: key("admin") })).json()) as { data: unknown[]; nextAfter: null };
      expect(end).toMatchObject({ data: [], nextAfter: null });
    });

    it("403 for requests and decisions keys; 401 without a key", async () => {
      await expectProblem(await gw.api("/v1/audit", { key: key("agent") }), 403, "forbidden");
      await expectProblem(await gw.api("/v1/audit", { key: key("alice") }), 403, "forbidden");
      await expectProblem(await gw.api("/v1/audit"), 401, "unauthorized");
    });

    it("400 for bad after/limit", async () => {
      for (const q of ["after=-1", "after=abc", "limit=0", "limit=1001", "limit=x", "after=1&after=2"]) {
        await expectProblem(await gw.api(`/v1/audit?${q}`, { key: key("admin") }), 400, "invalid_request");
      }
    });
  });

  describe("health, readiness, JWKS and unknown routes", () => {
    it("/healthz and /readyz answer without a key", async () => {
      const h = await gw.api("/healthz");
      expect(h.status).toBe(200);
      expect(await h.json()).toEqual({ status: "ok" });
      const r = await gw.api("/readyz");
      expect(r.status).toBe(200);
      expect(await r.json()).toEqual({ status: "ready", database: "pglite", pendingMigrations: [], policyWarnings: [] });
    });

    it("/.well-known/jwks.json serves public Ed25519 keys only", async () => {
      const res = await gw.api("/.well-known/jwks.json");
      expect(res.status).toBe(200);
      expect(res.headers.get("cache-control")).toMatch(/max-age=\d+/);
      const { keys: jwks } = (await res.json()) as { keys: Record<string, unknown>[] };
      expect(jwks.length).toBeGreaterThanOrEqual(1);
      for (const k of jwks) {
        expect(k).toMatchObject({ kty: "OKP", crv: "Ed25519", alg: "EdDSA", use: "sig", kid: expect.any(String), x: expect.any(String) });
        expect(k).not.toHaveProperty("d");
      }
    });

    it("unknown routes and methods are 404 problem+json", async () => {
      await expectProblem(await gw.api("/v1/nothing-here"), 404, "not_found");
      await expectProblem(await gw.api("/v1/requests", { method: "DELETE", key: key("admin") }), 404, "not_found");
      await expectProblem(await gw.api("/healthz", { method: "POST" }), 404, "not_found");
    });

    it("a caller-supplied X-Request-Id is echoed when well-formed and replaced when not", async () => {
      const ok = await gw.api("/v1/requests/nope", { key: key("alice"), headers: { "x-request-id": "trace-123" } });
      expect((await expectProblem(ok, 404, "not_found")).requestId).toBe("trace-123");
      const bad = await gw.api("/v1/requests/nope", { key: key("alice"), headers: { "x-request-id": "<script>" } });
      expect((await expectProblem(bad, 404, "not_found")).requestId).toMatch(/^rq_/);
    });
  });
});
