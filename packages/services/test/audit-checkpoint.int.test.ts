import { cpSync, rmSync } from "node:fs";
import { join } from "node:path";
import { auditHash, BUILTIN_POLICY, type LegacyAuditEventBody } from "@countersign/core";
import { DEFAULT_MIGRATIONS_DIR, openDatabase } from "@countersign/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { engines, freshPostgresUrl, tempDir } from "../../../test/support/db.ts";
import { createKey, getEvidence, recordStartup, sealCheckpoint, verifyAudit } from "../src/index.ts";
import { createRequest } from "../src/requests/create.ts";
import { decide } from "../src/requests/decide.ts";
import { type ServiceHarness, setupServices } from "./helpers.ts";

async function sealedExactlyOnce(h: ServiceHarness): Promise<void> {
  const [row] = await h.db.prisma.$queryRawUnsafe<{ total: number; unsealed: number; sealed: number; leaves: number }[]>(
    `SELECT count(*)::int AS total,
            count(*) FILTER (WHERE sealed_in IS NULL)::int AS unsealed,
            count(*) FILTER (WHERE sealed_in IS NOT NULL)::int AS sealed,
            (SELECT COALESCE(MAX(cumulative_size), 0)::int FROM audit_checkpoints) AS leaves
       FROM audit_events`,
  );
  expect(row?.unsealed).toBe(0);
  expect(row?.sealed).toBe(row?.leaves);
}

describe.each(engines())("the checkpointer on %s", (engine) => {
  let h: ServiceHarness;
  let agent: Awaited<ReturnType<ServiceHarness["agent"]>>["actor"];
  const seal = () => sealCheckpoint({ ctx: h.ctx(h.system), input: {} });
  const ask = (i: number) => createRequest({ ctx: h.ctx(agent), input: { body: { action: "svc.restart", summary: `restart ${i}`, params: { i } } } });

  beforeAll(async () => {
    h = await setupServices(engine);
    agent = (await h.agent("bot", "owner@example.com")).actor;
  });
  afterAll(async () => {
    await h?.cleanup();
  });

  it("seals every unsealed event once, in seq order, and then has nothing to seal", async () => {
    for (let i = 0; i < 5; i++) await ask(i);
    const r = await seal();
    if (!r.sealed) throw new Error(`nothing sealed: ${r.reason}`);
    expect(r.sealed.treeSize).toBe(6); // key.created + 5 × request.created
    const leaves = await h.db.prisma.auditEvent.findMany({ where: { sealedIn: r.sealed.seq }, orderBy: { leafIndex: "asc" } });
    expect(leaves.map((l) => l.leafIndex)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(leaves.map((l) => l.seq)).toEqual([...leaves.map((l) => l.seq)].sort((a, b) => a - b));
    expect(await seal()).toEqual({ sealed: null, reason: "nothing_to_seal" });
    await sealedExactlyOnce(h);
  });

  it("caps a checkpoint at maxEvents; the next round takes the rest, chained to it", async () => {
    for (let i = 0; i < 7; i++) await ask(100 + i);
    const a = await sealCheckpoint({ ctx: h.ctx(h.system), input: { maxEvents: 4 } });
    const b = await sealCheckpoint({ ctx: h.ctx(h.system), input: { maxEvents: 4 } });
    expect([a.sealed?.treeSize, b.sealed?.treeSize]).toEqual([4, 3]);
    expect(b.sealed?.prevHash).toBe(a.sealed?.hash);
    expect(b.sealed?.cumulativeSize).toBe((a.sealed?.cumulativeSize ?? 0) + 3);
    await sealedExactlyOnce(h);
    expect(await verifyAudit({ ctx: h.ctx(h.system), input: {} })).toMatchObject({ ok: true, unsealed: 0 });
  });

  it("a checkpointer that dies mid-round (here: signing fails) leaves nothing half-sealed, and the next one seals it all", async () => {
    await ask(200);
    await ask(201);
    const real = h.deps.receipts.signCheckpoint;
    h.deps.receipts.signCheckpoint = async () => {
      // The rows are chosen and the tree built; the round dies before it can commit.
      throw new Error("killed");
    };
    await expect(seal()).rejects.toThrow("killed");
    h.deps.receipts.signCheckpoint = real;
    expect(await h.db.prisma.auditEvent.count({ where: { sealedIn: null } })).toBe(2);
    const before = await h.db.prisma.auditCheckpoint.count();
    expect((await seal()).sealed?.treeSize).toBe(2);
    expect(await h.db.prisma.auditCheckpoint.count()).toBe(before + 1);
    await sealedExactlyOnce(h);
  });

  it("concurrent rounds (one per replica) seal each event exactly once", async () => {
    for (let i = 0; i < 20; i++) await ask(300 + i);
    const results = await Promise.all(Array.from({ length: 4 }, () => sealCheckpoint({ ctx: h.ctx(h.system), input: { maxEvents: 5 } })));
    // Whoever lost the election skipped ("busy"); run until drained.
    for (let r = await seal(); r.sealed; r = await seal());
    expect(results.some((r) => r.sealed)).toBe(true);
    await sealedExactlyOnce(h);
    expect(await verifyAudit({ ctx: h.ctx(h.system), input: {} })).toMatchObject({ ok: true });
  });

  it("records the policy and signing key a gateway starts with in the system stream, once per change", async () => {
    const start = (policy = BUILTIN_POLICY, signingKid = "kid-1") =>
      recordStartup({ ctx: h.ctx(h.system), input: { policySource: "builtin", policy, signingKid } });
    expect(await start()).toEqual({ policyChanged: true, keyChanged: true });
    // A restart, or a second replica, with the same policy and key records nothing.
    expect(await Promise.all([start(), start()])).toEqual([
      { policyChanged: false, keyChanged: false },
      { policyChanged: false, keyChanged: false },
    ]);
    expect(await start({ ...BUILTIN_POLICY, default: "allow" }, "kid-2")).toEqual({ policyChanged: true, keyChanged: true });
    const events = await h.db.prisma.auditEvent.findMany({
      where: { stream: "system", type: { in: ["policy.loaded", "signing_key.activated"] } },
      orderBy: { index: "asc" },
    });
    expect(events.map((e) => [e.type, (e.data as { kid?: string; default?: string }).kid ?? (e.data as { default?: string }).default])).toEqual([
      ["policy.loaded", "deny"],
      ["signing_key.activated", "kid-1"],
      ["policy.loaded", "allow"],
      ["signing_key.activated", "kid-2"],
    ]);
    expect(events[3]?.data).toMatchObject({ previousKid: "kid-1" });
  });

  it("the evidence of an approved request proves each of its events against its checkpoint", async () => {
    const r = await createRequest({ ctx: h.ctx(agent), input: { body: { action: "svc.restart", summary: "evidence", params: { e: 1 } } } });
    await decide({ ctx: h.ctx(h.reviewer("alice@example.com")), input: { requestId: r.resource.id, body: { decision: "approve" } } });
    const unsealed = await getEvidence({ ctx: h.ctx(agent), input: { requestId: r.resource.id } });
    expect(unsealed.entries.map((e) => e.proof)).toEqual([null, null, null]);
    await seal();
    const ev = await getEvidence({ ctx: h.ctx(agent), input: { requestId: r.resource.id } });
    expect(ev.entries.map((e) => e.event.type)).toEqual(["request.created", "decision.recorded", "request.approved"]);
    expect(ev.entries.every((e) => e.proof !== null)).toBe(true);
    expect(ev.checkpoints).toHaveLength(1);
    // Another agent key cannot read it, worded as for a request that does not exist.
    const other = await createKey({ ctx: h.ctx(h.system), input: { name: "other", owner: "x@example.com", scopes: ["requests"] } });
    await expect(
      getEvidence({
        ctx: h.ctx({ type: "agent", keyId: other.id, keyName: other.name, owner: other.owner, scopes: other.scopes }),
        input: { requestId: r.resource.id },
      }),
    ).rejects.toMatchObject({ code: "not_found" });
  });
});

/**
 * Done-when of the audit-checkpoints issue: no request's transaction takes a lock shared
 * by other requests. Two decisions on different requests hold their transactions open at
 * once; neither waits on the other. PostgreSQL only: PGlite has one connection, so it
 * serialises every transaction whatever the locking.
 */
describe.skipIf(!engines().includes("postgres"))("no shared lock in a request's transaction (postgres)", () => {
  let h: ServiceHarness;
  beforeAll(async () => {
    h = await setupServices("postgres");
  });
  afterAll(async () => {
    await h?.cleanup();
  });

  it("two decisions on different requests are both open at once, and neither waits", async () => {
    const agent = (await h.agent("bot", "owner@example.com")).actor;
    const ids = [];
    for (const i of [1, 2])
      ids.push((await createRequest({ ctx: h.ctx(agent), input: { body: { action: "svc.restart", summary: `r${i}`, params: { i } } } })).resource.id);
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    let firstDecided!: () => void;
    const firstIn = new Promise<void>((r) => {
      firstDecided = r;
    });
    // Decision 1 runs to the end of its work and then keeps its transaction open.
    const first = h.db.prisma.$transaction(
      async (tx) => {
        const ctx = { ...h.ctx(h.reviewer("alice@example.com")), tx };
        await decide({ ctx, input: { requestId: ids[0] as string, body: { decision: "approve" } } });
        firstDecided();
        await held;
      },
      { timeout: 30_000 },
    );
    await firstIn;
    // While it is open, decision 2 (another request) and a key creation (the system stream) both commit.
    const started = Date.now();
    await decide({ ctx: h.ctx(h.reviewer("bob@example.com")), input: { requestId: ids[1] as string, body: { decision: "approve" } } });
    await createKey({ ctx: h.ctx(h.system), input: { name: "k2", owner: "y@example.com", scopes: ["requests"] } });
    const waited = Date.now() - started;
    // Nothing in the open transaction is an advisory lock others would queue on.
    const locks = await h.db.prisma.$queryRawUnsafe<{ n: number }[]>(
      `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    );
    release();
    await first;
    expect(locks[0]?.n).toBe(0);
    expect(waited).toBeLessThan(10_000);
    const statuses = await h.db.prisma.approvalRequest.findMany({ where: { id: { in: ids } }, select: { status: true } });
    expect(statuses.map((s) => s.status)).toEqual(["approved", "approved"]);
    // The open transaction did commit its events, each in its own chain.
    expect(await h.db.prisma.auditEvent.count({ where: { stream: ids[0] as string } })).toBe(3);
  });
});

/**
 * Existing databases keep what they could prove: the pre-migration global chain is
 * verified once and sealed as the first checkpoint, and verifies afterwards.
 */
describe.each(engines())("migrating a database with the old global chain on %s", (engine) => {
  const oldMigrations = tempDir("cs-old-migrations-");
  afterAll(() => oldMigrations.remove());

  async function legacyDatabase(breakIt: boolean) {
    cpSync(DEFAULT_MIGRATIONS_DIR, oldMigrations.dir, { recursive: true });
    rmSync(join(oldMigrations.dir, "20261202000000_audit_checkpoints"), { recursive: true, force: true });
    let url: string | undefined;
    let drop = async () => {};
    const dataDir = tempDir("cs-legacy-");
    if (engine === "postgres") ({ url, drop } = await freshPostgresUrl());
    const db = await openDatabase(engine === "postgres" ? { kind: "postgres", url: url as string } : { kind: "pglite", dataDir: dataDir.dir });
    await db.migrate(oldMigrations.dir);
    // Write the old chain as the old appendAudit did: seq 1.., prevHash of the previous event.
    let prev = "0".repeat(64);
    for (let seq = 1; seq <= 4; seq++) {
      const body: LegacyAuditEventBody = {
        seq,
        at: new Date(Date.UTC(2026, 10, 20, 0, 0, seq)).toISOString(),
        type: seq === 1 ? "key.created" : "request.note",
        requestId: null,
        actor: { type: "system", principal: null, surface: null, surfaceUserId: "migration-test" },
        data: { n: seq },
        prevHash: prev,
      };
      const hash = auditHash(body);
      await db.prisma.$executeRawUnsafe(
        `INSERT INTO audit_events (seq, at, type, request_id, actor_type, actor_surface_user_id, data, prev_hash, hash) VALUES ($1, $2, $3, NULL, 'system', 'migration-test', $4::jsonb, $5, $6)`,
        seq,
        new Date(body.at),
        body.type,
        JSON.stringify(breakIt && seq === 3 ? { n: 99 } : body.data),
        prev,
        hash,
      );
      prev = hash;
    }
    await db.migrate();
    return {
      db,
      cleanup: async () => {
        await db.close();
        await drop();
        dataDir.remove();
      },
    };
  }

  it("seals the verified legacy chain as checkpoint 1, then seals new events after it", async () => {
    const database = await legacyDatabase(false);
    const h = await setupServices(engine, { database });
    try {
      const r1 = await sealCheckpoint({ ctx: h.ctx(h.system), input: {} });
      expect(r1.sealed).toMatchObject({ seq: 1, legacy: true, treeSize: 4 });
      await h.agent("after-migration", "owner@example.com");
      const r2 = await sealCheckpoint({ ctx: h.ctx(h.system), input: {} });
      expect(r2.sealed).toMatchObject({ seq: 2, legacy: false, treeSize: 1, prevHash: r1.sealed?.hash });
      // New events get seqs after the old ones.
      const newest = await h.db.prisma.auditEvent.findFirst({ orderBy: { seq: "desc" } });
      expect(newest).toMatchObject({ seq: 5, v: 2, stream: "system", index: 0 });
      expect(await verifyAudit({ ctx: h.ctx(h.system), input: {} })).toMatchObject({ ok: true, events: 5, checkpoints: 2 });
    } finally {
      await h.cleanup();
    }
  });

  it("refuses to seal a legacy chain that does not verify, and verify names the break", async () => {
    const database = await legacyDatabase(true);
    const h = await setupServices(engine, { database });
    try {
      expect(await sealCheckpoint({ ctx: h.ctx(h.system), input: {} })).toEqual({ sealed: null, reason: "legacy_chain_broken" });
      expect(await h.db.prisma.auditCheckpoint.count()).toBe(0);
      expect(h.logged.some((l) => l.level === "error" && l.message.includes("pre-migration audit chain"))).toBe(true);
      expect(await verifyAudit({ ctx: h.ctx(h.system), input: {} })).toMatchObject({ ok: false, firstBad: { event: 3, problem: "edited" } });
    } finally {
      await h.cleanup();
    }
  });
});
