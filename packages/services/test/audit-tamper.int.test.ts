import { type AuditEventBody, auditHash, canonicalJson, checkpointBody, streamGenesis } from "@countersign/core";
import { testSigner } from "@countersign/core/testing";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { engines } from "../../../test/support/db.ts";
import { auditRecord, latestCheckpoint, sealCheckpoint, verifyAudit } from "../src/index.ts";
import { createRequest } from "../src/requests/create.ts";
import { decide } from "../src/requests/decide.ts";
import { type ServiceHarness, setupServices } from "./helpers.ts";

/**
 * Every tamper an operator with write access to the database could try is detected by
 * verifyAudit, which names the first bad event, checkpoint or request. Each test tampers
 * with a pristine copy of the log and of the state tables, restored before the next.
 */
describe.each(engines())("audit log tamper detection in the database on %s", (engine) => {
  let h: ServiceHarness;
  type EventRow = Awaited<ReturnType<ServiceHarness["db"]["prisma"]["auditEvent"]["findMany"]>>[number];
  type CheckpointRow = Awaited<ReturnType<ServiceHarness["db"]["prisma"]["auditCheckpoint"]["findMany"]>>[number];
  let events: EventRow[];
  let checkpoints: CheckpointRow[];
  let requests: { id: string }[];
  const exec = (sql: string, ...params: unknown[]) => h.db.prisma.$executeRawUnsafe(sql, ...params);
  const verify = (input: Parameters<typeof verifyAudit>[0]["input"] = {}) => verifyAudit({ ctx: h.ctx(h.system), input });
  const seal = () => sealCheckpoint({ ctx: h.ctx(h.system), input: {} });
  const seqOf = (requestId: string, index: number) => events.find((e) => e.stream === requestId && e.index === index)?.seq as number;

  beforeAll(async () => {
    h = await setupServices(engine);
    const agent = (await h.agent("bot", "owner@example.com")).actor;
    requests = [];
    // Every request stays pending (the test policy needs two approvals), which beforeEach restores.
    for (let i = 0; i < 3; i++) {
      const r = await createRequest({ ctx: h.ctx(agent), input: { body: { action: "deploy.api", summary: `deploy ${i}`, params: { i } } } });
      requests.push(r.resource);
      h.clock.advance(1000);
      await decide({ ctx: h.ctx(h.reviewer("alice@example.com")), input: { requestId: r.resource.id, body: { decision: "approve" } } });
      // Two checkpoints, then an unsealed tail: every shape verify has to handle.
      if (i < 2) expect((await seal()).sealed).not.toBeNull();
    }
    events = await h.db.prisma.auditEvent.findMany({ orderBy: { seq: "asc" } });
    checkpoints = await h.db.prisma.auditCheckpoint.findMany({ orderBy: { seq: "asc" } });
    expect(events.map((e) => [e.stream === "system" ? "system" : requests.findIndex((r) => r.id === e.stream), e.index, e.type])).toEqual([
      ["system", 0, "key.created"],
      [0, 0, "request.created"],
      [0, 1, "decision.recorded"],
      [1, 0, "request.created"],
      [1, 1, "decision.recorded"],
      [2, 0, "request.created"],
      [2, 1, "decision.recorded"],
    ]);
    expect(checkpoints.map((c) => c.treeSize)).toEqual([3, 2]);
  });
  afterAll(async () => {
    await h?.cleanup();
  });

  beforeEach(async () => {
    await h.db.prisma.$transaction(async (tx) => {
      await tx.auditEvent.deleteMany({});
      await tx.auditCheckpoint.deleteMany({});
      await tx.auditCheckpoint.createMany({ data: checkpoints });
      await tx.auditEvent.createMany({ data: events.map((r) => ({ ...r, data: r.data as object })) });
      // Only status and principal are tampered with below.
      await tx.$executeRawUnsafe(`UPDATE approval_requests SET status = 'pending'`);
      await tx.$executeRawUnsafe(`UPDATE decisions SET principal = 'alice@example.com'`);
    });
    expect(await verify()).toMatchObject({ ok: true, events: 7, checkpoints: 2, unsealed: 2 });
  });

  it("edited: an event's data changed, its hash left alone", async () => {
    const seq = seqOf(requests[0]!.id, 1);
    await exec(`UPDATE audit_events SET data = jsonb_set(data, '{decision}', '"deny"') WHERE seq = $1`, seq);
    expect(await verify()).toMatchObject({ ok: false, firstBad: { event: seq, problem: "edited" } });
  });

  it("edited: an event re-hashed after the edit breaks the next link of its request's chain", async () => {
    const row = events.find((e) => e.seq === seqOf(requests[0]!.id, 0))!;
    const r = auditRecord(row);
    const body: AuditEventBody = {
      v: 2,
      stream: r.stream,
      index: r.index,
      at: r.at,
      type: r.type,
      requestId: r.requestId,
      actor: r.actor,
      data: { forged: true },
      prevHash: r.prevHash,
    };
    await exec(`UPDATE audit_events SET data = '{"forged":true}', hash = $1 WHERE seq = $2`, auditHash(body), row.seq);
    expect(await verify()).toMatchObject({ ok: false, firstBad: { event: seqOf(requests[0]!.id, 1), problem: "edited" } });
  });

  it("edited: re-hashing the last sealed event of a chain breaks its checkpoint's signed root", async () => {
    const row = events.find((e) => e.seq === seqOf(requests[1]!.id, 1))!;
    const r = auditRecord(row);
    const actor = { ...r.actor, principal: "mallory@example.com" };
    const body: AuditEventBody = {
      v: 2,
      stream: r.stream,
      index: r.index,
      at: r.at,
      type: r.type,
      requestId: r.requestId,
      actor,
      data: r.data,
      prevHash: r.prevHash,
    };
    await exec(`UPDATE audit_events SET actor_principal = 'mallory@example.com', hash = $1 WHERE seq = $2`, auditHash(body), row.seq);
    expect(await verify()).toMatchObject({ ok: false, firstBad: { checkpoint: 2, problem: "edited" } });
  });

  it("deleted: an event removed from a checkpoint", async () => {
    await exec(`DELETE FROM audit_events WHERE seq = $1`, seqOf(requests[1]!.id, 1));
    expect(await verify()).toMatchObject({ ok: false, firstBad: { checkpoint: 2, problem: "deleted" } });
  });

  it("deleted: an unsealed event removed from the middle of its chain is named by the gap", async () => {
    // The tail of request 2 is unsealed; drop its first event.
    await exec(`DELETE FROM audit_events WHERE seq = $1`, seqOf(requests[2]!.id, 0));
    expect(await verify()).toMatchObject({ ok: false, firstBad: { event: seqOf(requests[2]!.id, 1), problem: "deleted" } });
  });

  it("inserted: a correctly hashed forged event claiming a leaf of a checkpoint", async () => {
    const id = requests[0]!.id;
    const last = events.find((e) => e.seq === seqOf(id, 1))!;
    const body: AuditEventBody = {
      v: 2,
      stream: id,
      index: 2,
      at: last.at.toISOString(),
      type: "decision.recorded",
      requestId: id,
      actor: { type: "reviewer", principal: "mallory@example.com", surface: "api", surfaceUserId: null },
      data: { decision: "approve" },
      prevHash: last.hash,
    };
    await exec(
      `INSERT INTO audit_events (v, stream, idx, at, type, request_id, actor_type, actor_principal, actor_surface, data, prev_hash, hash, sealed_in, leaf_index)
       VALUES (2, $1, 2, $2, 'decision.recorded', $1, 'reviewer', 'mallory@example.com', 'api', '{"decision":"approve"}', $3, $4, 1, 3)`,
      id,
      last.at,
      last.hash,
      auditHash(body),
    );
    expect(await verify()).toMatchObject({ ok: false, firstBad: { checkpoint: 1, problem: "inserted" } });
  });

  it("inserted: a forged event backdated and left unsealed is caught by the sealing delay", async () => {
    const id = requests[0]!.id;
    const last = events.find((e) => e.seq === seqOf(id, 1))!;
    const at = new Date(checkpoints[0]!.sealedAt.getTime() - 120_000);
    const body: AuditEventBody = {
      v: 2,
      stream: id,
      index: 2,
      at: at.toISOString(),
      type: "request.cancelled",
      requestId: id,
      actor: { type: "system", principal: null, surface: null, surfaceUserId: "x" },
      data: {},
      prevHash: last.hash,
    };
    const [row] = await h.db.prisma.$queryRawUnsafe<{ seq: number }[]>(
      `INSERT INTO audit_events (v, stream, idx, at, type, request_id, actor_type, actor_surface_user_id, data, prev_hash, hash)
       VALUES (2, $1, 2, $2, 'request.cancelled', $1, 'system', 'x', '{}', $3, $4) RETURNING seq`,
      id,
      at,
      last.hash,
      auditHash(body),
    );
    expect(await verify()).toMatchObject({ ok: false, firstBad: { event: row!.seq, problem: "unsealed" } });
  });

  it("reordered: two leaves of a checkpoint swapped", async () => {
    const [a, b] = events.filter((e) => e.sealedIn === 1);
    await h.db.prisma.$transaction([
      h.db.prisma.$executeRawUnsafe(`UPDATE audit_events SET leaf_index = -1 WHERE seq = $1`, a!.seq),
      h.db.prisma.$executeRawUnsafe(`UPDATE audit_events SET leaf_index = $1 WHERE seq = $2`, a!.leafIndex, b!.seq),
      h.db.prisma.$executeRawUnsafe(`UPDATE audit_events SET leaf_index = $1 WHERE seq = $2`, b!.leafIndex, a!.seq),
    ]);
    expect(await verify()).toMatchObject({ ok: false, firstBad: { problem: "reordered" } });
  });

  it("forged checkpoint: a new root under the old signature", async () => {
    await exec(`UPDATE audit_checkpoints SET root_hash = $1 WHERE seq = 2`, "ab".repeat(32));
    expect(await verify()).toMatchObject({ ok: false, firstBad: { checkpoint: 2, problem: "edited" } });
  });

  it("forged checkpoint: re-signed with a key the verifier does not trust", async () => {
    const mallory = testSigner("mallory");
    const c = (await latestCheckpoint({ ctx: h.ctx(h.system), input: undefined }))!;
    await exec(`UPDATE audit_checkpoints SET jws = $1, kid = 'mallory' WHERE seq = $2`, mallory.sign(canonicalJson(checkpointBody(c))), c.seq);
    expect(await verify()).toMatchObject({ ok: false, firstBad: { checkpoint: c.seq, problem: "bad_signature" } });
  });

  it("bad signature: verified against another gateway's keys", async () => {
    expect(await verify({ jwks: { keys: [testSigner().jwk] } })).toMatchObject({ ok: false, firstBad: { checkpoint: 1, problem: "bad_signature" } });
  });

  it("removed checkpoint: the first one is named as missing", async () => {
    await exec(`DELETE FROM audit_checkpoints WHERE seq = 1`);
    expect(await verify()).toMatchObject({ ok: false, firstBad: { checkpoint: 2, problem: "deleted" } });
  });

  it("removed checkpoint: the newest one leaves events that claim it", async () => {
    await exec(`DELETE FROM audit_checkpoints WHERE seq = 2`);
    expect(await verify()).toMatchObject({ ok: false, firstBad: { problem: "deleted" } });
  });

  it("truncated: the newest checkpoint and everything it sealed removed, caught by an anchor", async () => {
    const anchors = checkpoints.map((c) => ({ seq: c.seq, hash: c.hash }));
    await exec(`DELETE FROM audit_events WHERE sealed_in = 2 OR sealed_in IS NULL`);
    await exec(`DELETE FROM audit_checkpoints WHERE seq = 2`);
    expect(await verify({ anchors })).toMatchObject({ ok: false, firstBad: { checkpoint: 2, problem: "deleted" } });
  });

  it("state tables: a request's status edited to disagree with its events", async () => {
    await exec(`UPDATE approval_requests SET status = 'approved' WHERE id = $1`, requests[1]!.id);
    expect(await verify()).toMatchObject({ ok: false, firstBad: { requestId: requests[1]!.id, problem: "state_mismatch" } });
  });

  it("state tables: a decision's principal edited", async () => {
    await exec(`UPDATE decisions SET principal = 'mallory@example.com' WHERE request_id = $1`, requests[2]!.id);
    const v = await verify();
    expect(v).toMatchObject({ ok: false, firstBad: { requestId: requests[2]!.id, problem: "state_mismatch" } });
    expect(v.firstBad?.detail).toContain("mallory@example.com");
  });

  it("the genesis of each chain is derived from its request id", () => {
    for (const r of requests) expect(events.find((e) => e.stream === r.id && e.index === 0)?.prevHash).toBe(streamGenesis(r.id));
  });
});
