import { type Actor, canonicalSha256 } from "@countersign/core";
import { createLocalJWKSet, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { engines } from "../../../test/support/db.ts";
import { authenticateKey, createKey, getRequest, listKeys, listRequests, revokeKey, verifyAudit } from "../src/index.ts";
import { cancelRequest } from "../src/requests/cancel.ts";
import { createRequest } from "../src/requests/create.ts";
import { decide } from "../src/requests/decide.ts";
import { expireDue } from "../src/requests/expire-due.ts";
import { PUBLIC_URL, rowCounts, type ServiceHarness, settleAll, setupServices } from "./helpers.ts";

/** The service verbs against a real database, on every engine. */
describe.each(engines())("services on %s", (engine) => {
  let h: ServiceHarness;
  let agent: Actor;
  let agentKey: string;
  let other: Actor;
  const alice = () => h.reviewer("alice@example.com");
  const bob = () => h.reviewer("bob@example.com");

  beforeAll(async () => {
    h = await setupServices(engine, { callbackAllow: "http:127.0.0.1/32" });
    const a = await h.agent("deploy-bot", "owner@example.com");
    agent = a.actor;
    agentKey = a.key.key;
    other = (await h.agent("other-bot", "other@example.com")).actor;
  });
  afterAll(async () => {
    await h?.cleanup();
  });

  const submit = (body: Record<string, unknown>, actor: Actor = agent, idempotencyKey?: string) =>
    createRequest({ ctx: h.ctx(actor), input: { body: { summary: "do it", ...body }, idempotencyKey } });
  const vote = (actor: Actor, requestId: string, decision: "approve" | "deny", reason?: string) =>
    decide({ ctx: h.ctx(actor), input: { requestId, body: { decision, ...(reason ? { reason } : {}) } } });

  async function expectNothingWritten(fn: () => Promise<unknown>, code: string) {
    const before = await rowCounts(h.db);
    await expect(fn()).rejects.toMatchObject({ code });
    expect(await rowCounts(h.db)).toEqual(before);
  }

  async function expectOnlyRefusalAudited(fn: () => Promise<unknown>, code: string) {
    const before = await rowCounts(h.db);
    await expect(fn()).rejects.toMatchObject({ code });
    expect(await rowCounts(h.db)).toEqual({ ...before, audit_events: before.audit_events! + 1 });
    const last = await h.db.prisma.auditEvent.findFirstOrThrow({ orderBy: { seq: "desc" } });
    expect(last.type).toBe("decision.refused");
    expect((last.data as { code: string }).code).toBe(code);
  }

  describe("createRequest", () => {
    it("records a pending request, its audit event and nothing else for a require_approval rule", async () => {
      const before = await rowCounts(h.db);
      const r = await submit({ action: "deploy.api", params: { version: "1.2.3" }, environment: "production" });
      expect(r.replayed).toBe(false);
      expect(r.resource).toMatchObject({
        status: "pending",
        resolution: null,
        action: "deploy.api",
        params: { version: "1.2.3" },
        paramsSha256: canonicalSha256({ version: "1.2.3" }),
        agent: { name: "deploy-bot", owner: "owner@example.com" },
        policy: { ruleId: "deploy-two-sre", requiredApprovals: 2, onExpire: "deny", approverGroups: ["sre"] },
        approvals: { required: 2, received: 0 },
        receipt: null,
      });
      expect(new Date(r.resource.expiresAt).getTime() - h.clock.now().getTime()).toBe(3600_000);
      expect(await rowCounts(h.db)).toEqual({ ...before, approval_requests: before.approval_requests! + 1, audit_events: before.audit_events! + 1 });
    });

    it("an allow rule approves at once with a verifiable receipt; a deny rule denies", async () => {
      const allowed = await submit({ action: "logs.read", params: { since: "1h" } });
      expect(allowed.resource).toMatchObject({ status: "approved", resolution: "policy" });
      const jwks = createLocalJWKSet(h.deps.receipts.jwks(h.clock.now()));
      const { payload } = await jwtVerify(allowed.resource.receipt!, jwks, { issuer: PUBLIC_URL, currentDate: h.clock.now() });
      expect(payload).toMatchObject({ jti: allowed.resource.id, action: "logs.read", params_sha256: canonicalSha256({ since: "1h" }), approvers: [] });

      const denied = await submit({ action: "db.drop" });
      expect(denied.resource).toMatchObject({ status: "denied", resolution: "policy", receipt: null });
    });

    it("writes nothing for an invalid body, a non-agent caller, or a forbidden callback URL", async () => {
      await expectNothingWritten(() => submit({ action: "deploy.api", bogus: 1 }), "invalid_request");
      await expectNothingWritten(() => submit({ action: "not-dotted" }), "invalid_request");
      await expectNothingWritten(() => submit({ action: "deploy.api" }, alice()), "forbidden");
      await expectNothingWritten(() => submit({ action: "deploy.api", callbackUrl: "https://169.254.169.254/latest" }), "callback_url_forbidden");
      await expectNothingWritten(() => submit({ action: "deploy.api", callbackUrl: "http://10.0.0.1/hook" }), "callback_url_forbidden");
      // Field errors name the field.
      await expect(submit({ action: "deploy.api", bogus: 1, metadata: { a: "b" }, params: {} })).rejects.toMatchObject({
        errors: [{ path: "bogus", message: "unknown field" }],
      });
    });

    it("an Idempotency-Key replays the same request; a different body under it is a conflict that writes nothing", async () => {
      const body = { action: "deploy.api", params: { v: 1, list: [1, 2] } };
      const first = await submit(body, agent, "idem-1");
      const again = await submit({ params: { list: [1, 2], v: 1 }, action: "deploy.api" }, agent, "idem-1");
      expect(again.replayed).toBe(true);
      expect(again.resource.id).toBe(first.resource.id);
      await expectNothingWritten(() => submit({ ...body, params: { v: 2 } }, agent, "idem-1"), "idempotency_conflict");
      // Keys are scoped per API key: another agent may use the same Idempotency-Key.
      const theirs = await submit(body, other, "idem-1");
      expect(theirs.replayed).toBe(false);
      expect(theirs.resource.id).not.toBe(first.resource.id);
    });

    it("concurrent submissions with one Idempotency-Key create exactly one request", async () => {
      const before = await rowCounts(h.db);
      const rs = await settleAll([1, 2, 3, 4].map(() => submit({ action: "deploy.api", params: { race: true } }, agent, "idem-race")));
      expect(rs.every((r) => r.ok)).toBe(true);
      const ids = new Set(rs.map((r) => r.ok && r.value.resource.id));
      expect(ids.size).toBe(1);
      expect(rs.filter((r) => r.ok && !r.value.replayed)).toHaveLength(1);
      expect((await rowCounts(h.db)).approval_requests).toBe(before.approval_requests! + 1);
    });
  });

  describe("decide", () => {
    it("quorum of 2: the first approval keeps it pending, the second approves and signs a receipt naming both", async () => {
      const { resource } = await submit({ action: "deploy.web", params: { a: 1 }, onBehalfOf: "Requester@Example.com" });
      expect(resource.onBehalfOf).toBe("requester@example.com");
      const one = await vote(alice(), resource.id, "approve", "looks fine");
      expect(one.finished).toBe(false);
      expect(one.resource).toMatchObject({ status: "pending", approvals: { required: 2, received: 1 } });
      const two = await vote(bob(), resource.id, "approve");
      expect(two.finished).toBe(true);
      expect(two.resource).toMatchObject({ status: "approved", resolution: "quorum", approvals: { received: 2 } });
      const { payload } = await jwtVerify(two.resource.receipt!, createLocalJWKSet(h.deps.receipts.jwks(h.clock.now())), { currentDate: h.clock.now() });
      expect(payload).toMatchObject({
        jti: resource.id,
        on_behalf_of: "requester@example.com",
        rule: "deploy-two-sre",
        approvers: [
          { principal: "alice@example.com", surface: "api" },
          { principal: "bob@example.com", surface: "api" },
        ],
      });
    });

    it("a single eligible deny denies, even after an approval", async () => {
      const { resource } = await submit({ action: "deploy.web" });
      await vote(alice(), resource.id, "approve");
      const d = await vote(bob(), resource.id, "deny", "not today");
      expect(d.finished).toBe(true);
      expect(d.resource).toMatchObject({ status: "denied", resolution: "denied", receipt: null });
    });

    it("refuses self-approval (key owner and onBehalfOf), ineligible reviewers, second votes and votes on closed requests; each refusal is audited and changes nothing else", async () => {
      const { resource } = await submit({ action: "deploy.web", onBehalfOf: "alice@example.com" });
      // The agent key's owner, even if the policy listed them.
      await expectOnlyRefusalAudited(() => vote(h.reviewer("owner@example.com"), resource.id, "approve"), "self_approval_forbidden");
      // The person the agent acts for, although alice is in the sre group.
      await expectOnlyRefusalAudited(() => vote(alice(), resource.id, "approve"), "self_approval_forbidden");
      await expectOnlyRefusalAudited(() => vote(h.reviewer("mallory@example.com"), resource.id, "approve"), "not_an_approver");
      await vote(bob(), resource.id, "approve");
      await expectOnlyRefusalAudited(() => vote(bob(), resource.id, "approve"), "already_voted");
      await vote(h.reviewer("carol@example.com"), resource.id, "approve");
      await expectOnlyRefusalAudited(() => vote(h.reviewer("carol@example.com"), resource.id, "deny"), "request_not_pending");
      const after = await getRequest({ ctx: h.ctx(agent), input: { requestId: resource.id } });
      expect(after.status).toBe("approved");
      expect(after.decisions.map((d) => d.reviewer)).toEqual(["bob@example.com", "carol@example.com"]);
    });

    it("agents can never decide, and unknown requests are not found; neither writes anything", async () => {
      const { resource } = await submit({ action: "deploy.web" });
      await expectNothingWritten(() => vote(agent, resource.id, "approve"), "forbidden");
      await expectNothingWritten(() => vote(alice(), "req_01ARZ3NDEKTSV4RRFFQ69G5FAV", "approve"), "not_found");
      await expectNothingWritten(() => decide({ ctx: h.ctx(alice()), input: { requestId: resource.id, body: { decision: "maybe" } } }), "invalid_request");
    });
  });

  describe("cancel, read and expire", () => {
    it("the requesting key cancels its pending request and a request.cancelled callback is queued", async () => {
      const { resource } = await submit({ action: "deploy.web", callbackUrl: "http://127.0.0.1:9/hook" });
      const c = await cancelRequest({ ctx: h.ctx(agent), input: { requestId: resource.id, body: { reason: "no longer needed" } } });
      expect(c).toMatchObject({ status: "cancelled", resolution: "cancelled" });
      const jobs = await h.db.prisma.outboxJob.findMany({ where: { requestId: resource.id } });
      expect(jobs).toHaveLength(1);
      expect(jobs[0]).toMatchObject({ kind: "callback", status: "pending", id: `job_cb_${resource.id.slice(4)}` });
      expect(jobs[0]!.payload).toMatchObject({ type: "request.cancelled", data: { id: resource.id, status: "cancelled" } });
      expect(c.deliveries).toMatchObject([{ kind: "callback", status: "pending", attempts: 0 }]);
      await expectNothingWritten(() => cancelRequest({ ctx: h.ctx(agent), input: { requestId: resource.id, body: {} } }), "request_not_pending");
    });

    it("another agent and reviewers cannot cancel (reported as not found); an admin can", async () => {
      const { resource } = await submit({ action: "deploy.web" });
      await expectNothingWritten(() => cancelRequest({ ctx: h.ctx(other), input: { requestId: resource.id, body: {} } }), "not_found");
      await expectNothingWritten(() => cancelRequest({ ctx: h.ctx(alice()), input: { requestId: resource.id, body: {} } }), "not_found");
      await expectNothingWritten(() => cancelRequest({ ctx: h.ctx(agent), input: { requestId: resource.id, body: { nope: 1 } } }), "invalid_request");
      const admin: Actor = { type: "admin", keyId: "key_admin", owner: "root@example.com" };
      expect((await cancelRequest({ ctx: h.ctx(admin), input: { requestId: resource.id, body: {} } })).status).toBe("cancelled");
    });

    it("reads: the owner key and reviewers read a request; another agent gets not_found and cannot list", async () => {
      const { resource } = await submit({ action: "deploy.web" });
      expect((await getRequest({ ctx: h.ctx(agent), input: { requestId: resource.id } })).id).toBe(resource.id);
      expect((await getRequest({ ctx: h.ctx(alice()), input: { requestId: resource.id } })).id).toBe(resource.id);
      await expect(getRequest({ ctx: h.ctx(other), input: { requestId: resource.id } })).rejects.toMatchObject({ code: "not_found" });
      await expect(getRequest({ ctx: h.ctx(agent), input: { requestId: "req_bad" } })).rejects.toMatchObject({ code: "not_found" });
      await expect(listRequests({ ctx: h.ctx(agent), input: {} })).rejects.toMatchObject({ code: "forbidden" });
      const page = await listRequests({ ctx: h.ctx(alice()), input: { status: "pending", limit: 2 } });
      expect(page.data).toHaveLength(2);
      expect(page.data.every((r) => r.status === "pending")).toBe(true);
      const next = await listRequests({ ctx: h.ctx(alice()), input: { status: "pending", limit: 2, cursor: page.nextCursor! } });
      expect(next.data[0]!.id < page.data[1]!.id).toBe(true);
    });

    it("the sweeper expires overdue requests (onExpire: deny denies) and never approves, even with votes in", async () => {
      const partial = await submit({ action: "deploy.api", callbackUrl: "http://127.0.0.1:9/hook" });
      await vote(alice(), partial.resource.id, "approve");
      const plain = await submit({ action: "report.build", callbackUrl: "http://127.0.0.1:9/hook" });
      h.clock.advance(61 * 60 * 1000);
      expect(await expireDue({ ctx: h.ctx(h.system), input: {} })).toBeGreaterThanOrEqual(2);
      const p = await getRequest({ ctx: h.ctx(agent), input: { requestId: partial.resource.id } });
      expect(p).toMatchObject({ status: "denied", resolution: "timeout", receipt: null, approvals: { received: 1 } });
      const q = await getRequest({ ctx: h.ctx(agent), input: { requestId: plain.resource.id } });
      expect(q).toMatchObject({ status: "expired", resolution: "timeout", receipt: null });
      const payloads = await h.db.prisma.outboxJob.findMany({ where: { requestId: { in: [partial.resource.id, plain.resource.id] }, kind: "callback" } });
      expect(payloads.map((j) => (j.payload as { type: string }).type).sort()).toEqual(["request.denied", "request.expired"]);
      expect(await h.db.prisma.approvalRequest.count({ where: { status: "pending", expiresAt: { lte: h.clock.now() } } })).toBe(0);
      expect(await expireDue({ ctx: h.ctx(h.system), input: {} })).toBe(0);
    });
  });

  describe("keys", () => {
    it("authenticates a key; a forged secret, a malformed key and a revoked key are all unauthorized at once", async () => {
      const k = await createKey({ ctx: h.ctx(h.system), input: { name: "temp", owner: "Temp@Example.com", scopes: ["requests", "requests"] } });
      expect(k).toMatchObject({ owner: "temp@example.com", scopes: ["requests"] });
      expect(k.key).toMatch(/^cs_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{32,}$/);
      expect(k.webhookSecret).toMatch(/^whsec_/);
      expect((await authenticateKey({ ctx: h.ctx(h.system), input: { presented: k.key } })).id).toBe(k.id);
      const forged = `${k.prefix}_${"A".repeat(32)}`;
      await expect(authenticateKey({ ctx: h.ctx(h.system), input: { presented: forged } })).rejects.toMatchObject({ code: "unauthorized" });
      await expect(authenticateKey({ ctx: h.ctx(h.system), input: { presented: "not-a-key" } })).rejects.toMatchObject({ code: "unauthorized" });
      await revokeKey({ ctx: h.ctx(h.system), input: { id: k.prefix } });
      await expect(authenticateKey({ ctx: h.ctx(h.system), input: { presented: k.key } })).rejects.toMatchObject({ code: "unauthorized" });
      // Only the hash is stored.
      const row = await h.db.prisma.apiKey.findUniqueOrThrow({ where: { id: k.id } });
      expect(JSON.stringify(row)).not.toContain(k.key.slice(16));
      const listed = await listKeys({ ctx: h.ctx(h.system), input: undefined });
      expect(JSON.stringify(listed)).not.toContain(k.key.slice(16));
      expect(listed.find((x) => x.id === k.id)?.revokedAt).not.toBeNull();
      // Only operators manage keys.
      await expect(createKey({ ctx: h.ctx(agent), input: { name: "x", owner: "x@example.com", scopes: ["admin"] } })).rejects.toMatchObject({
        code: "forbidden",
      });
      expect(agentKey).toMatch(/^cs_/);
    });

    it("revoking a key with hundreds of pending requests succeeds, and cancels every one of them", async () => {
      const bot = await h.agent("runaway-bot", "runaway@example.com");
      const n = 300;
      for (let i = 0; i < n; i++) await submit({ action: "report.build", params: { i } }, bot.actor);
      const revoked = await revokeKey({ ctx: h.ctx(h.system), input: { id: bot.key.id } });
      expect(revoked).toMatchObject({ id: bot.key.id, cancelledRequests: n });
      expect(revoked.revokedAt).not.toBeNull();
      expect(await h.db.prisma.approvalRequest.count({ where: { apiKeyId: bot.key.id, status: "pending" } })).toBe(0);
      expect(await h.db.prisma.approvalRequest.count({ where: { apiKeyId: bot.key.id, status: "cancelled", resolution: "key_revoked" } })).toBe(n);
      // Revoking again writes nothing more.
      const before = await rowCounts(h.db);
      expect(await revokeKey({ ctx: h.ctx(h.system), input: { id: bot.key.id } })).toMatchObject({ cancelledRequests: 0 });
      expect(await rowCounts(h.db)).toEqual(before);
    }, 120_000);

    it("a revoked key's request that is still pending (revoked, not yet cancelled) cannot be decided, and the refusal is audited", async () => {
      const bot = await h.agent("half-revoked-bot", "half@example.com");
      const { resource } = await submit({ action: "report.build" }, bot.actor);
      // The revocation committed; the cancellations have not run yet.
      await h.db.prisma.apiKey.update({ where: { id: bot.key.id }, data: { revokedAt: new Date() } });
      await expect(vote(alice(), resource.id, "approve")).rejects.toMatchObject({ code: "request_not_pending", message: expect.stringContaining("revoked") });
      const row = await h.db.prisma.approvalRequest.findUniqueOrThrow({ where: { id: resource.id } });
      expect(row.status).toBe("pending");
      expect(await h.db.prisma.decision.count({ where: { requestId: resource.id } })).toBe(0);
      const refused = await h.db.prisma.auditEvent.findMany({ where: { requestId: resource.id, type: "decision.refused" } });
      expect(refused).toHaveLength(1);
      // And createRequest refuses the key (it is also refused at the edge, before it gets here).
      await expect(submit({ action: "report.build" }, bot.actor)).rejects.toMatchObject({ code: "unauthorized" });
    });

    it("the audit chain over everything above verifies", async () => {
      const v = await verifyAudit({ ctx: h.ctx(h.system), input: {} });
      expect(v.ok).toBe(true);
      expect(v.events).toBe((await rowCounts(h.db)).audit_events);
    });
  });
});
