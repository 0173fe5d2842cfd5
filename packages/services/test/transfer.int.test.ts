import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { engines, openTestDatabase } from "../../../test/support/db.ts";
import {
  decide,
  loadSnapshot,
  SNAPSHOT_TABLES,
  type SnapshotLine,
  sealCheckpoint,
  type TableCounts,
  tableCounts,
  takeSnapshot,
  verifyAudit,
} from "../src/index.ts";
import { createRequest } from "../src/requests/create.ts";
import { type ServiceHarness, setupServices } from "./helpers.ts";

async function* replay(lines: SnapshotLine[]): AsyncGenerator<SnapshotLine> {
  for (const l of lines) yield l;
}

/** Every row of every table, as the database renders it, in primary-key-free stable order. */
async function dump(h: { db: ServiceHarness["db"] }): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const t of SNAPSHOT_TABLES) {
    const rows = await h.db.prisma.$queryRawUnsafe<{ r: string }[]>(`SELECT row_to_json(x)::text AS r FROM ${t} x`);
    out[t] = rows.map((x) => x.r).sort();
  }
  return out;
}

const targets = engines();

describe.each(targets)("a snapshot of an embedded database loaded into %s", (target) => {
  let src: ServiceHarness;
  let lines: SnapshotLine[];
  let counts: TableCounts;

  beforeAll(async () => {
    src = await setupServices("pglite");
    const { actor: agent } = await src.agent("bot", "owner@example.com");
    const ask = (action: string, i: number) =>
      createRequest({
        ctx: src.ctx(agent),
        input: { body: { action, summary: `${action} ${i}`, params: { i, nested: { list: [1, "two", null] } }, metadata: { n: String(i) } } },
      });
    for (let i = 0; i < 3; i++) {
      const r = await ask("svc.restart", i);
      await decide({
        ctx: src.ctx(src.reviewer("alice@example.com")),
        input: { requestId: r.resource.id, body: { decision: i === 2 ? "deny" : "approve", reason: "ok" } },
      });
    }
    await ask("logs.read", 9); // allowed by policy: a receipt at once
    await sealCheckpoint({ ctx: src.ctx(src.system), input: {} });
    await ask("svc.restart", 10); // pending and unsealed
    lines = [];
    counts = await takeSnapshot(src.db, async (l) => void lines.push(l));
  });
  afterAll(async () => {
    await src?.cleanup();
  });

  it("carries every row of every table unchanged, and the audit log still verifies", async () => {
    expect(counts.approval_requests).toBe(5);
    expect(counts.audit_checkpoints).toBe(1);
    const dst = await setupServices(target);
    try {
      const progress: string[] = [];
      const loaded = await loadSnapshot(dst.db, replay(lines), (p) => progress.push(`${p.table} ${p.loaded}/${p.of}`));
      expect(loaded).toEqual(counts);
      expect(progress).toContain(`audit_events ${counts.audit_events}/${counts.audit_events}`);
      expect(await dump(dst)).toEqual(await dump(src));
      // The same key ring verifies the checkpoint's signature on the copy.
      const verdict = await verifyAudit({ ctx: dst.ctx(dst.system), input: { jwks: src.deps.receipts.jwks(new Date()) } });
      expect(verdict).toMatchObject({
        ok: true,
        unsealed: counts.audit_events - (await src.db.prisma.auditEvent.count({ where: { sealedIn: { not: null } } })),
      });
      // Sequences go on after the copied rows: a new event on the copy gets a fresh seq.
      const { actor } = await dst.agent("later", "owner@example.com");
      expect(actor.type).toBe("agent");
      const maxSeq = await dst.db.prisma.auditEvent.aggregate({ _max: { seq: true } });
      expect(maxSeq._max.seq).toBeGreaterThan(
        Math.max(...lines.flatMap((l) => ("table" in l && l.table === "audit_events" ? l.rows.map((r) => (r as { seq: number }).seq) : []))),
      );
    } finally {
      await dst.cleanup();
    }
  });

  it("refuses a target that is not empty, and writes nothing", async () => {
    const dst = await setupServices(target);
    try {
      await dst.agent("already-here", "x@example.com");
      const before = await tableCounts(dst.db);
      await expect(loadSnapshot(dst.db, replay(lines))).rejects.toMatchObject({ code: "conflict", message: expect.stringContaining("api_keys: 1") });
      expect(await tableCounts(dst.db)).toEqual(before);
    } finally {
      await dst.cleanup();
    }
  });

  it("a truncated or altered snapshot is refused and leaves the target empty, so it can be loaded again", async () => {
    const { db, cleanup } = await openTestDatabase(target);
    try {
      const empty = await tableCounts(db);
      await expect(loadSnapshot(db, replay(lines.slice(0, -1)))).rejects.toMatchObject({
        code: "invalid_request",
        message: expect.stringContaining("trailer is missing"),
      });
      expect(await tableCounts(db)).toEqual(empty);
      const dropped = lines.map((l) => ("table" in l && l.table === "decisions" ? { ...l, rows: l.rows.slice(1) } : l));
      await expect(loadSnapshot(db, replay(dropped))).rejects.toMatchObject({ message: expect.stringContaining("decisions has 2 rows") });
      expect(await tableCounts(db)).toEqual(empty);
      await expect(loadSnapshot(db, replay([{ table: "api_keys", rows: [] }, ...lines]))).rejects.toMatchObject({
        message: expect.stringContaining("not a Countersign snapshot"),
      });
      const [head, ...rest] = lines as [Extract<SnapshotLine, { format: string }>, ...SnapshotLine[]];
      await expect(loadSnapshot(db, replay([{ ...head, migrations: [...head.migrations, "29990101000000_future"] }, ...rest]))).rejects.toMatchObject({
        message: expect.stringContaining("differs from this version's"),
      });
      // After all that, the real one loads.
      expect(await loadSnapshot(db, replay(lines))).toEqual(counts);
    } finally {
      await cleanup();
    }
  });

  it("refuses to snapshot a database with a table it does not know", async () => {
    const { db, cleanup } = await openTestDatabase(target);
    try {
      await db.prisma.$executeRawUnsafe(`CREATE TABLE surprise (id int primary key)`);
      await expect(takeSnapshot(db, async () => {})).rejects.toThrow(/tables this version cannot copy: surprise/);
    } finally {
      await cleanup();
    }
  });
});
