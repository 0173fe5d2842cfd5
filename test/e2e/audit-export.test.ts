import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type AuditEventBody, type AuditEventRecord, auditHash, type CheckpointRecord } from "@countersign/core";
import { type Database, openDatabase } from "@countersign/db";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { run } from "../../apps/cli/src/main.ts";
import { sealCheckpoint } from "../../packages/services/src/index.ts";
import { createRequest } from "../../packages/services/src/requests/create.ts";
import { decide } from "../../packages/services/src/requests/decide.ts";
import { setupServices } from "../../packages/services/test/helpers.ts";
import { runCli } from "../support/api-helpers.ts";
import { type Engine, engines, freshPostgresUrl, tempDir } from "../support/db.ts";

type Line = AuditEventRecord | (CheckpointRecord & { object: "checkpoint" });

/**
 * The audit log outside the database: `countersign audit export` writes JSON Lines (each
 * checkpoint's events, then the checkpoint), `audit verify --file` detects every tamper in
 * the export and names the first bad event or checkpoint, and `audit anchor` keeps
 * checkpoints that `audit verify --anchor` holds the log to. `audit verify` also catches a
 * tamper made in the database. On PGlite (data dir) and PostgreSQL (DATABASE_URL).
 */
describe.each(engines())("audit export, anchor and verify through the CLI on %s", (engine: Engine) => {
  const files = tempDir("cs-audit-");
  let cliEnv: Record<string, string>;
  let reopen: () => Promise<Database>;
  let dropDb: (() => Promise<void>) | undefined;
  let lines: string[];
  let parsed: Line[];
  let jwksFile: string;

  beforeAll(async () => {
    // Build a real log with the service verbs, then close the database for the CLI.
    const dataDir = join(files.dir, "data");
    mkdirSync(dataDir, { recursive: true });
    if (engine === "pglite") {
      reopen = () => openDatabase({ kind: "pglite", dataDir });
      cliEnv = { COUNTERSIGN_DATA_DIR: dataDir };
    } else {
      const fresh = await freshPostgresUrl();
      dropDb = fresh.drop;
      reopen = () => openDatabase({ kind: "postgres", url: fresh.url });
      // A CLI on another machine than the gateway: it has no key ring and must be given the JWKS.
      cliEnv = { DATABASE_URL: fresh.url, COUNTERSIGN_DATA_DIR: join(files.dir, "unused") };
    }
    const db = await reopen();
    await db.migrate();
    const h = await setupServices(engine, { database: { db, cleanup: () => db.close() }, receiptKeyFile: join(dataDir, "receipt-keys.json") });
    const agent = (await h.agent("bot", "owner@example.com")).actor;
    for (let i = 0; i < 3; i++) {
      const r = await createRequest({ ctx: h.ctx(agent), input: { body: { action: "deploy.api", summary: `deploy ${i}`, params: { i } } } });
      h.clock.advance(1000);
      await decide({ ctx: h.ctx(h.reviewer("alice@example.com")), input: { requestId: r.resource.id, body: { decision: "approve" } } });
      await decide({ ctx: h.ctx(h.reviewer("bob@example.com")), input: { requestId: r.resource.id, body: { decision: i === 2 ? "deny" : "approve" } } });
      // Requests 0 and 1 are sealed, each in its own checkpoint; request 2 is not sealed yet.
      if (i < 2) await sealCheckpoint({ ctx: h.ctx(h.system), input: {} });
    }
    jwksFile = join(files.dir, "jwks.json");
    writeFileSync(jwksFile, JSON.stringify(h.deps.receipts.jwks(new Date())));
    await h.cleanup();

    const exported = await runCli(["audit", "export", "--out", join(files.dir, "clean.jsonl")], cliEnv);
    expect(exported).toMatchObject({ code: 0 });
    lines = readFileSync(join(files.dir, "clean.jsonl"), "utf8").trim().split("\n");
    parsed = lines.map((l) => JSON.parse(l) as Line);
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
  const isCheckpoint = (l: Line): l is CheckpointRecord & { object: "checkpoint" } => "object" in l;
  /**
   * `countersign audit verify --file ... --jwks ...`, run in this process through the CLI's
   * own entry point (the same commander program the binary runs; spawning one per tamper is
   * slow on 2 cores).
   */
  async function verifyFile(name: string, content: string[], extra: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
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
      const code = await run(["node", "countersign", "audit", "verify", "--file", file, "--jwks", jwksFile, ...extra]);
      return { code, stdout, stderr };
    } finally {
      out.mockRestore();
      err.mockRestore();
    }
  }

  it("exports each checkpoint's events then the checkpoint, then the unsealed tail, and it all verifies", async () => {
    // key.created + 3 × (request.created, 2 × decision.recorded, request.approved|denied), 2 checkpoints
    expect(parsed.map((l) => (isCheckpoint(l) ? `cp${l.seq}` : l.type.split(".")[0]))).toEqual([
      "key",
      "request",
      "decision",
      "decision",
      "request",
      "cp1",
      "request",
      "decision",
      "decision",
      "request",
      "cp2",
      "request",
      "decision",
      "decision",
      "request",
    ]);
    const ok = "audit log ok: 13 events in 2 checkpoints, 4 not sealed yet, last checkpoint 2";
    // The real binary, on the export and on the database.
    const [fromFile, fromDb] = await Promise.all([
      runCli(["audit", "verify", "--file", write("clean-copy", lines), "--jwks", jwksFile], cliEnv),
      runCli(["audit", "verify", "--json", ...(engine === "postgres" ? ["--jwks", jwksFile] : [])], cliEnv),
    ]);
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect(fromFile.stdout).toContain(ok);
    expect(fromDb.code, fromDb.stderr).toBe(0);
    expect(JSON.parse(fromDb.stdout)).toMatchObject({ ok: true, events: 13, checkpoints: 2, unsealed: 4 });
    expect((await verifyFile("clean-copy-2", lines)).stdout).toContain(ok);
  });

  it("says which keys it needs when it has none to check signatures with", async () => {
    const r = await runCli(["audit", "verify", "--file", write("no-keys", lines)], { ...cliEnv, COUNTERSIGN_DATA_DIR: join(files.dir, "nowhere") });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^countersign: no keys to check checkpoint signatures with: pass --jwks/);
  });

  it("detects each tamper in an export and names the first bad event or checkpoint", async () => {
    const event = (i: number) => parsed[i] as AuditEventRecord;
    const edited = [...lines];
    edited[2] = JSON.stringify({ ...event(2), data: { ...(event(2).data as object), decision: "deny" } });

    const deleted = lines.filter((_, i) => i !== 2);

    const reordered = [...lines];
    [reordered[2], reordered[3]] = [lines[3] as string, lines[2] as string];

    // A forger appends a well-formed event to request 0's chain and claims a leaf of checkpoint 1.
    const prev = event(4);
    const forgedBody: AuditEventBody = {
      v: 2,
      stream: prev.stream,
      index: prev.index + 1,
      at: prev.at,
      type: "receipt.redeemed",
      requestId: prev.requestId,
      actor: { type: "agent", principal: "mallory@example.com", surface: "api", surfaceUserId: null },
      data: {},
      prevHash: prev.hash,
    };
    const forged = { ...forgedBody, seq: prev.seq + 1000, hash: auditHash(forgedBody), sealedIn: 1, leafIndex: 5 };
    const inserted = [...lines.slice(0, 5), JSON.stringify(forged), ...lines.slice(5)];

    const cp1 = parsed[5] as CheckpointRecord;
    const forgedCheckpoint = [...lines];
    forgedCheckpoint[5] = JSON.stringify({ ...cp1, rootHash: "ab".repeat(32) });

    const removedCheckpoint = lines.filter((_, i) => i !== 10);

    const results = {
      edited: await verifyFile("edited", edited),
      deleted: await verifyFile("deleted", deleted),
      reordered: await verifyFile("reordered", reordered),
      inserted: await verifyFile("inserted", inserted),
      forgedCheckpoint: await verifyFile("forged-checkpoint", forgedCheckpoint),
      removedCheckpoint: await verifyFile("removed-checkpoint", removedCheckpoint),
    };
    for (const r of Object.values(results)) {
      expect(r.code).toBe(1);
      expect(r.stdout).not.toContain("audit log ok");
    }
    expect(results.edited.stderr).toMatch(new RegExp(`^countersign: audit log broken at event seq ${event(2).seq}: edited \\(`));
    expect(results.deleted.stderr).toMatch(/^countersign: audit log broken at .*: deleted \(/);
    expect(results.reordered.stderr).toMatch(/^countersign: audit log broken at .*: reordered \(/);
    expect(results.inserted.stderr).toMatch(/^countersign: audit log broken at checkpoint 1: inserted \(/);
    expect(results.forgedCheckpoint.stderr).toMatch(/^countersign: audit log broken at checkpoint 1: edited \(its content does not match its hash\)/);
    expect(results.removedCheckpoint.stderr).toMatch(
      /^countersign: audit log broken at event seq \d+: deleted \(it claims checkpoint 2, which is not in the log\)/,
    );
  });

  it("a garbled export is refused, naming the line", async () => {
    const garbled = [...lines.slice(0, 3), "{not json", ...lines.slice(3)];
    const r = await verifyFile("garbled", garbled);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/garbled\.jsonl:4: not valid JSON/);
  });

  it("anchors: the newest checkpoint appended to a file holds a later verify to it, and a truncated export fails it", async () => {
    const anchors = join(files.dir, "anchors.jsonl");
    const a = await runCli(["audit", "anchor", "--append", anchors], cliEnv);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout).toMatch(/^anchored checkpoint 2 \(9 events, [0-9a-f]{64}\)/);
    expect(JSON.parse(readFileSync(anchors, "utf8").trim())).toMatchObject({ seq: 2, cumulativeSize: 9 });
    const printed = await runCli(["audit", "anchor"], cliEnv);
    expect(JSON.parse(printed.stdout)).toMatchObject({ seq: 2 });

    expect((await verifyFile("anchored", lines, ["--anchor", anchors])).stdout).toMatch(/extends all 1 anchored checkpoint/);
    // The operator cuts the log back to checkpoint 1: everything still chains, but the anchor is gone.
    const cut = lines.slice(0, 6);
    expect(await verifyFile("cut", cut)).toMatchObject({ code: 0 });
    const r = await verifyFile("cut-anchored", cut, ["--anchor", anchors]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^countersign: audit log broken at checkpoint 2: deleted \(an anchored checkpoint is no longer in the log/);
  });

  it("an export --since a checkpoint verifies as a tail with --tail, and not without it", async () => {
    const out = join(files.dir, "tail.jsonl");
    expect(await runCli(["audit", "export", "--since", "1", "--out", out], cliEnv)).toMatchObject({ code: 0 });
    const tail = readFileSync(out, "utf8").trim().split("\n");
    expect(tail).toHaveLength(lines.length - 6);
    expect(await verifyFile("tail", tail, ["--tail"])).toMatchObject({ code: 0 });
    expect((await verifyFile("tail-strict", tail)).code).toBe(1);
  });

  it("audit verify against the database names an event edited in place, and a decision rewritten in the state tables", async () => {
    const db = await reopen();
    const seq = (parsed[2] as AuditEventRecord).seq;
    try {
      await db.prisma.$executeRawUnsafe(`UPDATE audit_events SET actor_principal = 'mallory@example.com' WHERE seq = $1`, seq);
    } finally {
      await db.close();
    }
    const keys = engine === "postgres" ? ["--jwks", jwksFile] : [];
    const r = await runCli(["audit", "verify", ...keys], cliEnv);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^countersign: audit log broken at event seq ${seq}: edited \\(its content does not match its hash\\)`));

    const db2 = await reopen();
    try {
      await db2.prisma.$executeRawUnsafe(`UPDATE audit_events SET actor_principal = 'alice@example.com' WHERE seq = $1`, seq);
      await db2.prisma.$executeRawUnsafe(`UPDATE approval_requests SET status = 'approved' WHERE status = 'denied'`);
    } finally {
      await db2.close();
    }
    const s = await runCli(["audit", "verify", ...keys], cliEnv);
    expect(s.code).toBe(1);
    expect(s.stderr).toMatch(/^countersign: audit log broken at request req_\w+: state_mismatch \(its status is approved but its events say denied\)/);
  });
});
