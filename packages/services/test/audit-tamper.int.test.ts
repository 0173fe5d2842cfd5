import { type AuditEventBody, auditHash } from "@countersign/core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { engines } from "../../../test/support/db.ts";
import { auditRecord, iterateAudit, listAudit, verifyAudit } from "../src/index.ts";
import { createRequest } from "../src/requests/create.ts";
import { decide } from "../src/requests/decide.ts";
import { type ServiceHarness, setupServices } from "./helpers.ts";

/**
 * The four tampers an operator with database access could try (edit, delete, reorder,
 * insert) are each detected by verifyAudit, which names the first event that does not fit.
 * Each test tampers with a pristine copy of the chain and restores it afterwards.
 */
describe.each(engines())("audit chain tamper detection in the database on %s", (engine) => {
  let h: ServiceHarness;
  type Row = Awaited<ReturnType<ServiceHarness["db"]["prisma"]["auditEvent"]["findMany"]>>[number];
  let pristine: Row[];

  beforeAll(async () => {
    h = await setupServices(engine);
    const agent = (await h.agent("bot", "owner@example.com")).actor;
    for (let i = 0; i < 3; i++) {
      const r = await createRequest({ ctx: h.ctx(agent), input: { body: { action: "deploy.api", summary: `deploy ${i}`, params: { i } } } });
      h.clock.advance(1000);
      await decide({ ctx: h.ctx(h.reviewer("alice@example.com")), input: { requestId: r.resource.id, body: { decision: "approve" } } });
    }
    pristine = await h.db.prisma.auditEvent.findMany({ orderBy: { seq: "asc" } });
    // key.created, then 3 × (request.created, decision.recorded)
    expect(pristine.map((e) => e.type)).toEqual([
      "key.created",
      "request.created",
      "decision.recorded",
      "request.created",
      "decision.recorded",
      "request.created",
      "decision.recorded",
    ]);
  });
  afterAll(async () => {
    await h?.cleanup();
  });

  beforeEach(async () => {
    await h.db.prisma.$transaction(async (tx) => {
      await tx.auditEvent.deleteMany({});
      await tx.auditEvent.createMany({ data: pristine.map((r) => ({ ...r, data: r.data as object })) });
    });
    expect(await verifyAudit({ ctx: h.ctx(h.system), input: {} })).toEqual({ ok: true, count: 7, lastSeq: 7 });
  });

  const exec = (sql: string, ...params: unknown[]) => h.db.prisma.$executeRawUnsafe(sql, ...params);

  it("an edited event (data changed, hash left alone) is named", async () => {
    await exec(`UPDATE audit_events SET data = jsonb_set(data, '{decision}', '"deny"') WHERE seq = 4`);
    expect(await verifyAudit({ ctx: h.ctx(h.system), input: {} })).toMatchObject({ ok: false, lastSeq: 3, firstBad: { seq: 4, problem: "edited" } });
  });

  it("an edit that also recomputes the event's own hash breaks the link to the next event", async () => {
    const row = pristine[4]!;
    const body: AuditEventBody = { ...auditRecord(row), actor: { ...auditRecord(row).actor, principal: "mallory@example.com" } };
    const { hash: _old, ...rest } = body as AuditEventBody & { hash?: string };
    await exec(`UPDATE audit_events SET actor_principal = 'mallory@example.com', hash = $1 WHERE seq = 5`, auditHash(rest));
    expect(await verifyAudit({ ctx: h.ctx(h.system), input: {} })).toMatchObject({ ok: false, lastSeq: 5, firstBad: { seq: 6, problem: "bad_link" } });
  });

  it("a deleted event is detected at the event after the gap", async () => {
    await exec(`DELETE FROM audit_events WHERE seq = 5`);
    expect(await verifyAudit({ ctx: h.ctx(h.system), input: {} })).toMatchObject({
      ok: false,
      lastSeq: 4,
      firstBad: { seq: 6, problem: "deleted_or_reordered" },
    });
  });

  it("reordered events (two swapped) are detected at the first out-of-place event", async () => {
    // Swap the contents of seq 3 and 4 (through a free seq, because seq is the primary key).
    await h.db.prisma.$transaction(async (tx) => {
      await tx.$executeRawUnsafe(`UPDATE audit_events SET seq = 1000 WHERE seq = 3`);
      await tx.$executeRawUnsafe(`UPDATE audit_events SET seq = 3 WHERE seq = 4`);
      await tx.$executeRawUnsafe(`UPDATE audit_events SET seq = 4 WHERE seq = 1000`);
    });
    // Row 3 now holds event 4, whose seq field was rewritten, so its content no longer matches its hash.
    expect(await verifyAudit({ ctx: h.ctx(h.system), input: {} })).toMatchObject({ ok: false, lastSeq: 2, firstBad: { seq: 3, problem: "edited" } });
  });

  it("moving an event's timestamp is an edit of hashed content and is named", async () => {
    await exec(`UPDATE audit_events SET at = at - interval '1 day' WHERE seq = 7`);
    expect(await verifyAudit({ ctx: h.ctx(h.system), input: {} })).toMatchObject({ ok: false, firstBad: { seq: 7, problem: "edited" } });
  });

  it("an inserted event with a valid hash of its own is detected at the first original event after it", async () => {
    // The forger renumbers the tail to make room and chains the forgery correctly to seq 4.
    const prev = pristine[3]!;
    const forged: AuditEventBody = {
      seq: 5,
      at: new Date(prev.at.getTime() + 1).toISOString(),
      type: "decision.recorded",
      requestId: prev.requestId,
      actor: { type: "reviewer", principal: "mallory@example.com", surface: "api", surfaceUserId: null },
      data: { decision: "approve", reason: null, approvals: 2, required: 2 },
      prevHash: prev.hash,
    };
    await h.db.prisma.$transaction(async (tx) => {
      await tx.$executeRawUnsafe(`UPDATE audit_events SET seq = seq + 1000 WHERE seq >= 5`);
      await tx.$executeRawUnsafe(`UPDATE audit_events SET seq = seq - 999 WHERE seq >= 1005`);
      await tx.auditEvent.create({
        data: {
          seq: 5,
          at: new Date(forged.at),
          type: forged.type,
          requestId: forged.requestId,
          actorType: "reviewer",
          actorPrincipal: "mallory@example.com",
          actorSurface: "api",
          actorSurfaceUserId: null,
          data: forged.data as object,
          prevHash: forged.prevHash,
          hash: auditHash(forged),
        },
      });
    });
    const v = await verifyAudit({ ctx: h.ctx(h.system), input: {} });
    // The forgery itself chains; the original event 5 (now seq 6) no longer matches its hash.
    expect(v).toMatchObject({ ok: false, lastSeq: 5, firstBad: { seq: 6, problem: "edited" } });
  });

  it("an event inserted without renumbering (appended with a made-up prevHash) is detected", async () => {
    const forged: AuditEventBody = {
      seq: 8,
      at: new Date().toISOString(),
      type: "request.approved",
      requestId: pristine[2]!.requestId,
      actor: { type: "system", principal: null, surface: null, surfaceUserId: "policy" },
      data: { resolution: "policy" },
      prevHash: pristine[2]!.hash,
    };
    await h.db.prisma.auditEvent.create({
      data: {
        seq: 8,
        at: new Date(forged.at),
        type: forged.type,
        requestId: forged.requestId,
        actorType: "system",
        actorPrincipal: null,
        actorSurface: null,
        actorSurfaceUserId: "policy",
        data: forged.data as object,
        prevHash: forged.prevHash,
        hash: auditHash(forged),
      },
    });
    expect(await verifyAudit({ ctx: h.ctx(h.system), input: {} })).toMatchObject({ ok: false, lastSeq: 7, firstBad: { seq: 8, problem: "bad_link" } });
  });

  it("paging (after/limit) and iteration return the chain in order", async () => {
    expect((await listAudit({ ctx: h.ctx(h.system), input: { after: 2, limit: 3 } })).map((e) => e.seq)).toEqual([3, 4, 5]);
    expect((await listAudit({ ctx: h.ctx(h.system), input: { after: 7, limit: 10 } })).map((e) => e.seq)).toEqual([]);
    const all: number[] = [];
    for await (const e of iterateAudit(h.db, { pageSize: 3 })) all.push(e.seq);
    expect(all).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });
});
