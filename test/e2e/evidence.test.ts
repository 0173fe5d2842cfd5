import { type CheckpointRecord, canonicalJson, checkpointBody } from "@countersign/core";
import { compactVerify, createLocalJWKSet } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Evidence, EvidenceVerificationError, type JsonWebKeySet, verifyEvidence } from "../../packages/sdk/src/index.ts";
import type { CreatedKey } from "../../packages/services/src/index.ts";
import { API_POLICY, eventually, expectProblem } from "../support/api-helpers.ts";
import { engines } from "../support/db.ts";
import { type GatewayProcess, startGateway } from "../support/gateway.ts";

/**
 * One approved request proven offline: the gateway seals its events into signed Merkle
 * checkpoints within about a second, `GET /v1/requests/:id/evidence` hands over its events,
 * the checkpoints and an inclusion proof for each, and the SDK's verifyEvidence() checks
 * all of it against the JWKS alone, with no further call to the gateway.
 */
describe.each(engines())("request evidence, end to end on %s", (engine) => {
  let gw: GatewayProcess;
  const keys: Record<string, CreatedKey> = {};
  const key = (name: string) => (keys[name] as CreatedKey).key;

  beforeAll(async () => {
    gw = await startGateway({ engine, policy: API_POLICY, env: { COUNTERSIGN_RATE_LIMIT: "0", COUNTERSIGN_CHECKPOINT_MS: "200" } });
    const specs = [
      ["agent", "owner@example.com", ["requests"]],
      ["other", "other@example.com", ["requests"]],
      ["alice", "alice@example.com", ["decisions"]],
      ["admin", "root@example.com", ["admin"]],
    ] as const;
    for (const [name, owner, scopes] of specs) keys[name] = await gw.createKey({ name, owner, scopes: [...scopes] });
  });
  afterAll(async () => {
    if (gw) expect(gw.logs.join("")).not.toContain("audit checkpoint failed");
    await gw?.stop();
  });

  async function approvedRequest(): Promise<string> {
    const res = await gw.api("/v1/requests", { method: "POST", key: key("agent"), json: { action: "report.build", summary: "Build it", params: { n: 1 } } });
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };
    const vote = await gw.api(`/v1/requests/${id}/decisions`, { method: "POST", key: key("alice"), json: { decision: "approve", reason: "ok" } });
    expect(vote.status).toBe(201);
    return id;
  }
  /** The evidence once the checkpointer has sealed every event of the request. */
  const sealedEvidence = (id: string, as = "agent") =>
    eventually(async () => {
      const ev = (await (await gw.api(`/v1/requests/${id}/evidence`, { key: key(as) })).json()) as Evidence;
      return ev.entries.every((e) => e.proof !== null) ? ev : null;
    });

  it("proves an approved request's events offline, against the JWKS alone", async () => {
    const id = await approvedRequest();
    const evidence = await sealedEvidence(id);
    expect(evidence.entries.map((e) => e.event.type)).toEqual(["request.created", "decision.recorded", "request.approved"]);
    // Fetched once, kept: from here on nothing talks to the gateway.
    const jwks = (await (await gw.api("/.well-known/jwks.json")).json()) as JsonWebKeySet;
    const summary = await verifyEvidence(JSON.parse(JSON.stringify(evidence)), { jwks, requestId: id });
    expect(summary).toMatchObject({ requestId: id, status: "approved", approvers: [{ principal: "alice@example.com", surface: "api" }], events: 3, sealed: 3 });

    // The same evidence with one vote rewritten, or claimed for another request, is refused.
    const forged = structuredClone(evidence);
    (forged.entries[1]!.event.actor as { principal: string | null }).principal = "mallory@example.com";
    await expect(verifyEvidence(forged, { jwks })).rejects.toBeInstanceOf(EvidenceVerificationError);
    await expect(verifyEvidence(evidence, { jwks, requestId: "req_0000000000000000000000000000" })).rejects.toMatchObject({ problem: "wrong_request" });
    // Against another gateway's keys, the checkpoints do not verify.
    await expect(verifyEvidence(evidence, { jwks: { keys: [] } })).rejects.toMatchObject({ problem: "bad_signature" });
  });

  it("accepts a request's evidence before sealing only when told to, and seals it within moments", async () => {
    const res = await gw.api("/v1/requests", { method: "POST", key: key("agent"), json: { action: "report.build", summary: "fresh", params: { n: 2 } } });
    const { id } = (await res.json()) as { id: string };
    const ev = (await (await gw.api(`/v1/requests/${id}/evidence`, { key: key("agent") })).json()) as Evidence;
    const jwks = (await (await gw.api("/.well-known/jwks.json")).json()) as JsonWebKeySet;
    // Sealed or not yet (the checkpointer runs every 200 ms here), allowUnsealed accepts it as it stands.
    await expect(verifyEvidence(ev, { jwks, allowUnsealed: true })).resolves.toMatchObject({ requestId: id, status: "pending", events: 1 });
    // The same evidence with its proof withheld is refused without allowUnsealed (the gateway's null-proof shape).
    const unsealed = { ...ev, entries: ev.entries.map((e) => ({ ...e, proof: null })) };
    await expect(verifyEvidence(unsealed, { jwks })).rejects.toMatchObject({ problem: "unsealed" });
    const sealed = await sealedEvidence(id);
    await expect(verifyEvidence(sealed, { jwks })).resolves.toMatchObject({ sealed: 1 });
  });

  it("the agent that asked, a reviewer and an admin may read it; another agent gets 404 as for an unknown id", async () => {
    const id = await approvedRequest();
    for (const who of ["agent", "alice", "admin"]) expect((await gw.api(`/v1/requests/${id}/evidence`, { key: key(who) })).status).toBe(200);
    await expectProblem(await gw.api(`/v1/requests/${id}/evidence`, { key: key("other") }), 404, "not_found");
    await expectProblem(await gw.api("/v1/requests/req_0000000000000000000000000000/evidence", { key: key("admin") }), 404, "not_found");
    await expectProblem(await gw.api(`/v1/requests/${id}/evidence`), 401, "unauthorized");
  });

  it("admins page the signed checkpoints; they chain, and each JWS verifies against the JWKS", async () => {
    await approvedRequest();
    await eventually(async () => {
      const r = (await (await gw.api("/v1/audit?limit=1000", { key: key("admin") })).json()) as { data: { sealedIn: number | null }[] };
      return r.data.every((e) => e.sealedIn !== null);
    });
    const res = await gw.api("/v1/audit/checkpoints?limit=1000", { key: key("admin") });
    expect(res.status).toBe(200);
    const { data } = (await res.json()) as { data: CheckpointRecord[] };
    expect(data.length).toBeGreaterThan(0);
    const jwks = createLocalJWKSet((await (await gw.api("/.well-known/jwks.json")).json()) as Parameters<typeof createLocalJWKSet>[0]);
    let prev = "0".repeat(64);
    for (const c of data) {
      expect(c.prevHash).toBe(prev);
      const { payload, protectedHeader } = await compactVerify(c.jws, jwks);
      expect(protectedHeader.typ).toBe("countersign-checkpoint+jws");
      expect(new TextDecoder().decode(payload)).toBe(canonicalJson(checkpointBody(c)));
      prev = c.hash;
    }
    await expectProblem(await gw.api("/v1/audit/checkpoints", { key: key("agent") }), 403, "forbidden");
  });
});
