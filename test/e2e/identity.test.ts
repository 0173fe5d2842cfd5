import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CreatedKey } from "../../packages/services/src/index.ts";
import { expectProblem, revokeKey, runCli, sleep } from "../support/api-helpers.ts";
import { type GatewayProcess, startGateway } from "../support/gateway.ts";

interface Resource {
  id: string;
  status: string;
  resolution: string | null;
  receipt: string | null;
  approvals: { required: number; received: number };
  decisions: { reviewer: string; decision: string }[];
}

const POLICY = `
version: 1
rules:
  - id: two-of-anyone
    match: { action: "quorum.*" }
    effect: require_approval
    approvers: ["*"]
    approvals: 2
  - id: anyone
    effect: require_approval
    approvers: ["*"]
default: deny
`;

/**
 * Issue #11: one person is one principal, whatever their address looks like, and a
 * revoked key gets nothing. Every case here approved (201) before the fix.
 */
describe("separation of duties across spellings of one address, and key revocation", () => {
  let gw: GatewayProcess;
  let admin: CreatedKey;
  let agent: CreatedKey;

  beforeAll(async () => {
    gw = await startGateway({ engine: "pglite", policy: POLICY, env: { COUNTERSIGN_RATE_LIMIT: "0" } });
    admin = await gw.createKey({ name: "admin", owner: "root@example.com", scopes: ["admin"] });
    agent = await gw.createKey({ name: "deploy-bot", owner: "ops-lead@example.com", scopes: ["requests"] });
  });
  afterAll(async () => {
    if (gw) expect(gw.logs.join("")).not.toContain("unhandled error");
    await gw?.stop();
  });

  async function submit(extra: Record<string, unknown> = {}, key = agent.key): Promise<Resource> {
    const res = await gw.api("/v1/requests", { method: "POST", key, json: { action: "report.build", summary: "Build it", params: { n: 1 }, ...extra } });
    expect(res.status).toBe(201);
    return (await res.json()) as Resource;
  }
  const vote = (id: string, key: string, decision = "approve") => gw.api(`/v1/requests/${id}/decisions`, { method: "POST", key, json: { decision } });
  const read = async (id: string) => (await (await gw.api(`/v1/requests/${id}`, { key: admin.key })).json()) as Resource;
  const reviewer = (owner: string) => gw.createKey({ name: `reviewer ${owner}`, owner, scopes: ["decisions"] });

  it.each([
    ["fullwidth letters", "ＯＰＳ-lead@example.com"],
    ["a +tag", "ops-lead+x@example.com"],
    ["a trailing dot", "ops-lead@example.com."],
    ["mixed case", "OPS-Lead@Example.COM"],
  ])("reproduction 1: a decisions key owned by the agent's owner written with %s cannot approve the agent's request", async (_label, owner) => {
    const r = await submit();
    const k = await reviewer(owner);
    await expectProblem(await vote(r.id, k.key), 403, "self_approval_forbidden");
    expect(await read(r.id)).toMatchObject({ status: "pending", decisions: [] });
  });

  it("reproduction 1: an owner with a zero-width space is refused when the key is created", async () => {
    await expect(reviewer("ops-lead\u200b@example.com")).rejects.toMatchObject({ code: "invalid_request" });
    await expect(reviewer("ops-lеad@example.com")).rejects.toMatchObject({ code: "invalid_request" });
  });

  it('reproduction 2: carol and her variants never reach a quorum of two alone on a "*" rule', async () => {
    const r = await submit({ action: "quorum.run", summary: "Two people needed" });
    expect(r.approvals.required).toBe(2);
    const carol = await reviewer("carol@example.com");
    expect((await vote(r.id, carol.key)).status).toBe(201);
    for (const owner of ["carol+x@example.com", "ＣＡＲＯＬ@example.com", "carol@example.com.", "caro1@example.com"]) {
      const k = await reviewer(owner);
      await expectProblem(await vote(r.id, k.key), 409, "already_voted");
    }
    expect(await read(r.id)).toMatchObject({ status: "pending", approvals: { received: 1 } });
    const dave = await reviewer("dave@example.com");
    expect((await vote(r.id, dave.key)).status).toBe(201);
    expect(await read(r.id)).toMatchObject({ status: "approved", approvals: { received: 2 } });
  });

  it("reproduction 3: onBehalfOf bob+x@ is bob; bob cannot approve it", async () => {
    const r = await submit({ onBehalfOf: "bob+x@example.com" });
    const bob = await reviewer("bob@example.com");
    await expectProblem(await vote(r.id, bob.key), 403, "self_approval_forbidden");
    const look = await gw.api("/v1/requests", {
      method: "POST",
      key: agent.key,
      json: { action: "report.build", summary: "x", params: {}, onBehalfOf: "bоb@example.com" },
    });
    const p = await expectProblem(look, 400, "invalid_request");
    expect(p.errors?.[0]).toMatchObject({ path: "onBehalfOf", message: expect.stringContaining("mixes Latin and Cyrillic") });
  });

  it("reproduction 4: revoking a key cancels its pending requests, ends its open long-polls with 401, and no receipt is handed out", async () => {
    const bot = await gw.createKey({ name: "doomed-bot", owner: "doomed@example.com", scopes: ["requests"] });
    const pending = await submit({}, bot.key);
    const other = await submit({}, bot.key);
    const poll = gw.api(`/v1/requests/${pending.id}?wait=30`, { key: bot.key });
    await sleep(300);
    await revokeKey(gw, bot.id);
    const res = await poll;
    await expectProblem(res, 401, "unauthorized");
    for (const id of [pending.id, other.id]) {
      expect(await read(id)).toMatchObject({ status: "cancelled", resolution: "key_revoked", receipt: null });
    }
    const alice = await reviewer("alice@example.com");
    await expectProblem(await vote(pending.id, alice.key), 409, "request_not_pending");
    const audit = (await (await gw.api("/v1/audit?limit=1000", { key: admin.key })).json()) as {
      data: { type: string; requestId: string | null; data: Record<string, unknown> }[];
    };
    const cancelled = audit.data.filter((e) => e.type === "request.cancelled" && (e.requestId === pending.id || e.requestId === other.id));
    expect(cancelled).toHaveLength(2);
    expect(cancelled.every((e) => e.data.reason === "key_revoked")).toBe(true);
  });

  it("countersign keys audit reports owners that are one person, and exits 1", async () => {
    const env = { ...gw.env };
    await reviewer("dana@example.com");
    const clean = await runCli(["keys", "audit", "--json"], env);
    const before = JSON.parse(clean.stdout) as { collisions: { owners: string[] }[] };
    expect(before.collisions.map((c) => c.owners.sort())).toContainEqual(["ops-lead+x@example.com", "ops-lead@example.com"]);
    await reviewer("dana+other@example.com");
    const r = await runCli(["keys", "audit"], env);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('one person, several owners ("dana@example.com", "dana+other@example.com")');
  });
});
