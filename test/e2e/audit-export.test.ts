import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type AuditEventBody, type AuditEventRecord, auditHash } from "@countersign/core";
import { type Database, openDatabase } from "@countersign/db";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { run } from "../../apps/cli/src/main.ts";
import { createRequest } from "../../packages/services/src/requests/create.ts";
import { decide } from "../../packages/services/src/requests/decide.ts";
import { setupServices } from "../../packages/services/test/helpers.ts";
import { runCli } from "../support/api-helpers.ts";
import { type Engine, engines, freshPostgresUrl, tempDir } from "../support/db.ts";

/**
 * The audit chain outside the database: `countersign audit export` writes JSON Lines, and
 * `countersign audit verify --file` detects each of the four tampers (edit, delete, reorder,
 * insert) in the export, naming the first bad seq. `audit verify` also catches a tamper
 * made in the database. On PGlite (data dir) and PostgreSQL (DATABASE_URL).
 */
describe.each(engines())("audit export and verify through the CLI on %s", (engine: Engine) => {
  const files = tempDir("cs-audit-");
  let cliEnv: Record<string, string>;
  let reopen: () => Promise<Database>;
  let dropDb: (() => Promise<void>) | undefined;
  let lines: string[];
  let events: AuditEventRecord[];

  beforeAll(async () => {
    // Build a real chain with the service verbs, then close the database for the CLI.
    if (engine === "pglite") {
      const dataDir = join(files.dir, "data");
      reopen = () => openDatabase({ kind: "pglite", dataDir });
      cliEnv = { COUNTERSIGN_DATA_DIR: dataDir };
    } else {
      const fresh = await freshPostgresUrl();
      dropDb = fresh.drop;
      reopen = () => openDatabase({ kind: "postgres", url: fresh.url });
      cliEnv = { DATABASE_URL: fresh.url, COUNTERSIGN_DATA_DIR: join(files.dir, "unused") };
    }
    const db = await reopen();
    await db.migrate();
    const h = await setupServices(engine, { database: { db, cleanup: () => db.close() } });
    const agent = (await h.agent("bot", "owner@example.com")).actor;
    for (let i = 0; i < 3; i++) {
      const r = await createRequest({ ctx: h.ctx(agent), input: { body: { action: "deploy.api", summary: `deploy ${i}`, params: { i } } } });
      h.clock.advance(1000);
      await decide({ ctx: h.ctx(h.reviewer("alice@example.com")), input: { requestId: r.resource.id, body: { decision: "approve" } } });
      await decide({ ctx: h.ctx(h.reviewer("bob@example.com")), input: { requestId: r.resource.id, body: { decision: i === 2 ? "deny" : "approve" } } });
    }
    await h.cleanup();

    const exported = await runCli(["audit", "export", "--out", join(files.dir, "clean.jsonl")], cliEnv);
    expect(exported).toMatchObject({ code: 0 });
    lines = readFileSync(join(files.dir, "clean.jsonl"), "utf8").trim().split("\n");
    events = lines.map((l) => JSON.parse(l) as AuditEventRecord);
  });
  afterAll(async () => {
    await dropDb?.();
    files.remove();
  });

  const write = (name: string, content: string[]) => {
    const file = join(files.dir, `${name}.jsonl`);
    writeFileSync(file, `${content.join("\n")}\n`);
    return file;
  };
  /**
   * `countersign audit verify --file`, run in this process through the CLI's own entry point
   * (the same commander program the binary runs; spawning one per tamper is slow on 2 cores).
   */
  async function verifyFile(name: string, content: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const file = write(name, content);
    let stdout = "";
    let stderr = "";
    const out = vi.spyOn(process.stdout, "write").mockImplementation((c: string | Uint8Array) => {
      stdout += String(c);
      return true;
    });
    const err = vi.spyOn(process.stderr, "write").mockImplementation((c: string | Uint8Array) => {
      stderr += String(c);
      return true;
    });
    try {
      const code = await run(["node", "countersign", "audit", "verify", "--file", file]);
      return { code, stdout, stderr };
    } finally {
      out.mockRestore();
      err.mockRestore();
    }
  }

  it("exports every event as one JSON line, in seq order, and the export verifies", async () => {
    // key.created + 3 × (request.created, 2 × decision.recorded, request.approved|denied)
    expect(events).toHaveLength(13);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.at(-1)?.type).toBe("request.denied");
    // The real binary, on the export and on the database.
    const [ok, fromDb] = await Promise.all([
      runCli(["audit", "verify", "--file", write("clean-copy", lines)], cliEnv),
      runCli(["audit", "verify", "--json"], cliEnv),
    ]);
    expect(ok).toMatchObject({ code: 0, stdout: "audit chain ok: 13 events, last seq 13\n" });
    expect(JSON.parse(fromDb.stdout)).toEqual({ ok: true, count: 13, lastSeq: 13 });
    // The in-process entry point agrees.
    expect(await verifyFile("clean-copy-2", lines)).toMatchObject({ code: 0, stdout: "audit chain ok: 13 events, last seq 13\n" });
  });

  it("detects each of the four tampers in an export and names the first bad seq", async () => {
    const edited = [...lines];
    const e6 = JSON.parse(lines[5] as string) as AuditEventRecord;
    edited[5] = JSON.stringify({ ...e6, data: { ...(e6.data as object), decision: "approve", reason: "rewritten" } });

    const deleted = lines.filter((_, i) => i !== 6);

    const reordered = [...lines];
    [reordered[8], reordered[9]] = [lines[9] as string, lines[8] as string];

    // A forger inserts a well-formed event chained to seq 4, claiming seq 5.
    const prev = events[3] as AuditEventRecord;
    const forgedBody: AuditEventBody = {
      seq: 5,
      at: prev.at,
      type: "decision.recorded",
      requestId: prev.requestId,
      actor: { type: "reviewer", principal: "mallory@example.com", surface: "api", surfaceUserId: null },
      data: { decision: "approve", reason: null, approvals: 2, required: 2 },
      prevHash: prev.hash,
    };
    const inserted = [...lines.slice(0, 4), JSON.stringify({ ...forgedBody, hash: auditHash(forgedBody) }), ...lines.slice(4)];

    const rEdit = await verifyFile("edited", edited);
    const rDelete = await verifyFile("deleted", deleted);
    const rReorder = await verifyFile("reordered", reordered);
    const rInsert = await verifyFile("inserted", inserted);
    expect(rEdit.code).toBe(1);
    expect(rEdit.stderr).toMatch(/^countersign: audit chain broken at seq 6: edited \(/);
    expect(rDelete.code).toBe(1);
    expect(rDelete.stderr).toMatch(/^countersign: audit chain broken at seq 8: deleted_or_reordered \(expected seq 7 before it\)/);
    expect(rReorder.code).toBe(1);
    expect(rReorder.stderr).toMatch(/^countersign: audit chain broken at seq 10: deleted_or_reordered \(expected seq 9 before it\)/);
    expect(rInsert.code).toBe(1);
    expect(rInsert.stderr).toMatch(/^countersign: audit chain broken at seq 5: inserted \(/);
    for (const r of [rEdit, rDelete, rReorder, rInsert]) expect(r.stdout).not.toContain("audit chain ok");
  });

  it("a truncated or garbled export is refused", async () => {
    const garbled = [...lines.slice(0, 3), "{not json", ...lines.slice(3)];
    const r = await verifyFile("garbled", garbled);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/garbled\.jsonl:4: not valid JSON/);
  });

  it("audit verify against the database names an event edited in place", async () => {
    const db = await reopen();
    try {
      await db.prisma.$executeRawUnsafe(`UPDATE audit_events SET actor_principal = 'mallory@example.com' WHERE seq = 3`);
    } finally {
      await db.close();
    }
    const r = await runCli(["audit", "verify"], cliEnv);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^countersign: audit chain broken at seq 3: edited \(its content does not match its hash\)/);
  });
});
