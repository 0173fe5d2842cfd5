import type { AuditEventRecord } from "@countersign/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CreatedKey } from "../../packages/services/src/index.ts";
import { API_POLICY, allAuditEvents, expectNothingWritten, expectProblem, revokeKey, runCli, snapshot, verifyChains } from "../support/api-helpers.ts";
import { engines } from "../support/db.ts";
import { type GatewayProcess, startGateway } from "../support/gateway.ts";

interface Resource {
  id: string;
  status: string;
  receipt: string | null;
  updatedAt: string;
}

interface Redemption {
  object: string;
  jti: string;
  action: string;
  redeemedAt: string;
}

/**
 * POST /v1/receipts/:jti/redeem: single-use receipts. The first redemption by the agent key
 * that made the request answers 200 and every later one 409; other keys cannot tell the
 * request exists; a request that is not approved is refused; concurrent redemptions
 * succeed exactly once; and every outcome is in the request's audit chain.
 */
describe("API: redeeming single-use receipts", () => {
  let gw: GatewayProcess;
  const keys: Record<string, CreatedKey> = {};
  const key = (name: string) => (keys[name] as CreatedKey).key;

  beforeAll(async () => {
    gw = await startGateway({ engine: "pglite", policy: API_POLICY, env: { COUNTERSIGN_RATE_LIMIT: "0" } });
    const specs = [
      ["agent", "owner@example.com", ["requests"]],
      ["other", "other@example.com", ["requests"]],
      ["doomed", "doomed@example.com", ["requests"]],
      ["alice", "alice@example.com", ["decisions"]],
      ["admin", "root@example.com", ["admin"]],
    ] as const;
    for (const [name, owner, scopes] of specs) keys[name] = await gw.createKey({ name, owner, scopes: [...scopes] });
  });
  afterAll(async () => {
    if (gw) expect(gw.logs.join("")).not.toContain("unhandled error");
    await gw?.stop();
  });

  const nothingWritten = <T>(fn: () => Promise<T>) => expectNothingWritten(gw, key("admin"), fn);
  async function submit(body: Record<string, unknown> = {}, as = "agent"): Promise<Resource> {
    const res = await gw.api("/v1/requests", {
      method: "POST",
      key: key(as),
      json: { action: "report.build", summary: "Build it", params: { n: 1 }, ...body },
    });
    expect(res.status).toBe(201);
    return (await res.json()) as Resource;
  }
  /** A request approved by a reviewer (rule `anyone`), with its receipt. */
  async function approved(as = "agent"): Promise<Resource> {
    const r = await submit({}, as);
    const res = await gw.api(`/v1/requests/${r.id}/decisions`, { method: "POST", key: key("alice"), json: { decision: "approve" } });
    expect(res.status).toBe(201);
    const done = (await res.json()) as Resource;
    expect(done).toMatchObject({ status: "approved", receipt: expect.any(String) });
    return done;
  }
  const redeem = (jti: string, as?: string, init: Parameters<GatewayProcess["api"]>[1] = {}) =>
    gw.api(`/v1/receipts/${jti}/redeem`, { method: "POST", ...(as ? { key: key(as) } : {}), ...init });
  const read = async (id: string) => (await (await gw.api(`/v1/requests/${id}`, { key: key("admin") })).json()) as Resource;
  async function auditFor(requestId: string): Promise<AuditEventRecord[]> {
    const all: AuditEventRecord[] = [];
    let after = 0;
    for (;;) {
      const page = (await (await gw.api(`/v1/audit?after=${after}&limit=1000`, { key: key("admin") })).json()) as {
        data: AuditEventRecord[];
        nextAfter: number | null;
      };
      all.push(...page.data);
      if (page.nextAfter === null) break;
      after = page.nextAfter;
    }
    return all.filter((e) => e.requestId === requestId);
  }

  it("200 the first time, 409 receipt_already_redeemed after that; both in the request's audit chain", async () => {
    const r = await approved();
    const before = Date.now();
    const first = await redeem(r.id, "agent");
    expect(first.status).toBe(200);
    expect(first.headers.get("content-type")).toMatch(/^application\/json/);
    const body = (await first.json()) as Redemption;
    expect(body).toEqual({ object: "receipt_redemption", jti: r.id, action: "report.build", redeemedAt: expect.any(String) });
    expect(Math.abs(Date.parse(body.redeemedAt) - before)).toBeLessThan(10_000);

    const second = await expectProblem(await redeem(r.id, "agent"), 409, "receipt_already_redeemed");
    expect(second.detail).toContain(body.redeemedAt);
    expect(second.instance).toBe(`/v1/receipts/${r.id}/redeem`);
    await expectProblem(await redeem(r.id, "agent"), 409, "receipt_already_redeemed");

    // The request and its receipt are unchanged; only the audit chain grew.
    const after = await read(r.id);
    expect(after).toMatchObject({ status: "approved", receipt: r.receipt });

    const events = await auditFor(r.id);
    expect(events.map((e) => e.type)).toEqual([
      "request.created",
      "decision.recorded",
      "request.approved",
      "receipt.redeemed",
      "receipt.redeem_refused",
      "receipt.redeem_refused",
    ]);
    const [redeemed, refused] = events.slice(3);
    expect(redeemed).toMatchObject({
      at: body.redeemedAt,
      actor: { type: "agent", principal: "owner@example.com", surface: "api", surfaceUserId: keys.agent?.id },
      data: { action: "report.build", redeemedAt: body.redeemedAt },
    });
    expect(refused).toMatchObject({ data: { code: "receipt_already_redeemed", status: "approved", redeemedAt: body.redeemedAt } });
  });

  it("a policy-allowed request's receipt is single-use too", async () => {
    const res = await gw.api("/v1/requests", { method: "POST", key: key("agent"), json: { action: "logs.read", summary: "Read logs" } });
    const r = (await res.json()) as Resource;
    expect(r.status).toBe("approved");
    expect((await redeem(r.id, "agent")).status).toBe(200);
    await expectProblem(await redeem(r.id, "agent"), 409, "receipt_already_redeemed");
  });

  it("404 for another key's receipt, exactly as for an unknown or malformed id; the probe writes nothing and burns nothing", async () => {
    const r = await approved();
    const probes = await nothingWritten(async () => [
      await expectProblem(await redeem(r.id, "other"), 404, "not_found"),
      await expectProblem(await redeem(`req_${"0".repeat(26)}`, "other"), 404, "not_found"),
      await expectProblem(await redeem(`req_${"0".repeat(26)}`, "agent"), 404, "not_found"),
      await expectProblem(await redeem("not-a-request", "agent"), 404, "not_found"),
    ]);
    // Same words for "exists but not yours" and "does not exist", so ids cannot be probed.
    expect(probes[0]?.detail).toBe(`no request ${r.id}`);
    expect(probes[1]?.detail).toBe(`no request req_${"0".repeat(26)}`);
    // The owner can still redeem it.
    expect((await redeem(r.id, "agent")).status).toBe(200);
    // And the other key's own receipts are its own.
    const theirs = await approved("other");
    await expectProblem(await redeem(theirs.id, "agent"), 404, "not_found");
    expect((await redeem(theirs.id, "other")).status).toBe(200);
  });

  it("needs a requests key: 401 without one, 403 for reviewer and admin keys; nothing written", async () => {
    const r = await approved();
    await nothingWritten(async () => {
      await expectProblem(await redeem(r.id), 401, "unauthorized");
      await expectProblem(await redeem(r.id, undefined, { headers: { authorization: "Bearer cs_nope_nope" } }), 401, "unauthorized");
      await expectProblem(await redeem(r.id, "alice"), 403, "forbidden");
      await expectProblem(await redeem(r.id, "admin"), 403, "forbidden");
      await expectProblem(await redeem(r.id, "agent", { headers: { "content-type": "text/plain" }, body: "x" }), 415, "unsupported_media_type");
    });
    expect((await redeem(r.id, "agent")).status).toBe(200);
  });

  it("a revoked key can no longer redeem its receipts", async () => {
    const r = await approved("doomed");
    await revokeKey(gw, keys.doomed?.id as string);
    await nothingWritten(async () => expectProblem(await redeem(r.id, "doomed"), 401, "unauthorized"));
  });

  it("409 request_not_approved for a pending, denied or cancelled request (audited); a pending one redeems once approved", async () => {
    const pending = await submit();
    const denied = (await (
      await gw.api("/v1/requests", { method: "POST", key: key("agent"), json: { action: "db.drop", summary: "Drop" } })
    ).json()) as Resource;
    expect(denied.status).toBe("denied");
    const cancelled = await submit();
    expect((await gw.api(`/v1/requests/${cancelled.id}/cancel`, { method: "POST", key: key("agent"), json: {} })).status).toBe(200);

    for (const [r, status] of [
      [pending, "pending"],
      [denied, "denied"],
      [cancelled, "cancelled"],
    ] as const) {
      const before = await snapshot(gw, key("admin"));
      const p = await expectProblem(await redeem(r.id, "agent"), 409, "request_not_approved");
      expect(p.detail).toContain(status);
      const after = await snapshot(gw, key("admin"));
      expect(after.requests).toEqual(before.requests);
      expect(after.auditSeq).toBe(before.auditSeq + 1);
      expect((await auditFor(r.id)).at(-1)).toMatchObject({ type: "receipt.redeem_refused", data: { code: "request_not_approved", status, redeemedAt: null } });
    }

    // Refusing a pending request did not mark anything: once approved, it redeems.
    expect((await gw.api(`/v1/requests/${pending.id}/decisions`, { method: "POST", key: key("alice"), json: { decision: "approve" } })).status).toBe(201);
    expect((await redeem(pending.id, "agent")).status).toBe(200);
    await expectProblem(await redeem(pending.id, "agent"), 409, "receipt_already_redeemed");
  });

  it("concurrent redemptions of one receipt: exactly one 200, every other 409", async () => {
    for (let round = 0; round < 3; round++) {
      const r = await approved();
      const results = await Promise.all(Array.from({ length: 8 }, () => redeem(r.id, "agent")));
      const statuses = results.map((res) => res.status).sort();
      expect(statuses).toEqual([200, 409, 409, 409, 409, 409, 409, 409]);
      for (const res of results) {
        if (res.status === 409) await expectProblem(res, 409, "receipt_already_redeemed");
        else await res.body?.cancel();
      }
      const events = await auditFor(r.id);
      expect(events.filter((e) => e.type === "receipt.redeemed")).toHaveLength(1);
      expect(events.filter((e) => e.type === "receipt.redeem_refused")).toHaveLength(7);
    }
  });

  it("the audit chain still verifies, over the API and with `countersign audit verify`", async () => {
    const all = await allAuditEvents(gw, key("admin"));
    expect(all.some((e) => e.type === "receipt.redeemed")).toBe(true);
    expect(verifyChains(all)).toMatchObject({ ok: true, events: all.length });
    // The real CLI, reaching the running gateway's embedded database through its admin socket.
    const cli = await runCli(["audit", "verify", "--json"], { COUNTERSIGN_DATA_DIR: gw.dataDir });
    expect(cli.stderr).toBe("");
    expect(cli.code).toBe(0);
    expect(JSON.parse(cli.stdout)).toMatchObject({ ok: true, events: all.length });
  });
});

describe.skipIf(!engines().includes("postgres"))("API: redeeming across two replicas on one PostgreSQL", () => {
  let a: GatewayProcess;
  let b: GatewayProcess;
  let agent: string;
  let reviewer: string;

  beforeAll(async () => {
    a = await startGateway({ engine: "postgres", policy: API_POLICY, env: { COUNTERSIGN_RATE_LIMIT: "0" } });
    b = await startGateway({ databaseUrl: a.env.DATABASE_URL as string, policy: API_POLICY, env: { COUNTERSIGN_RATE_LIMIT: "0" } });
    agent = (await a.createKey({ name: "agent", owner: "owner@example.com", scopes: ["requests"] })).key;
    reviewer = (await a.createKey({ name: "alice", owner: "alice@example.com", scopes: ["decisions"] })).key;
  });
  afterAll(async () => {
    await b?.stop();
    await a?.stop();
  });

  it("exactly one of many concurrent redemptions, spread over both replicas, succeeds", async () => {
    for (let round = 0; round < 3; round++) {
      const created = await a.api("/v1/requests", { method: "POST", key: agent, json: { action: "report.build", summary: "Build", params: { round } } });
      const { id } = (await created.json()) as Resource;
      expect((await b.api(`/v1/requests/${id}/decisions`, { method: "POST", key: reviewer, json: { decision: "approve" } })).status).toBe(201);
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).api(`/v1/receipts/${id}/redeem`, { method: "POST", key: agent })));
      expect(results.map((r) => r.status).sort()).toEqual([200, ...Array(9).fill(409)]);
      for (const res of results) {
        if (res.status === 409) await expectProblem(res, 409, "receipt_already_redeemed");
        else await res.body?.cancel();
      }
    }
  });
});
