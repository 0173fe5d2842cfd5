import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { engines, openTestDatabase, tempDir } from "../../../test/support/db.ts";
import { type Database, databaseConfigFrom, REQUEST_EVENTS_CHANNEL, redactUrl } from "../src/database.ts";
import { acquireDataDirLock, DataDirLockedError, lockPath, readLock } from "../src/lock.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(engines())("database handle on %s", (engine) => {
  let db: Database;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ db, cleanup } = await openTestDatabase(engine));
  });
  afterAll(async () => {
    await cleanup?.();
  });

  it("pings, and reports no pending migrations once migrated", async () => {
    await db.ping();
    expect(await db.pendingMigrations()).toEqual([]);
    expect(db.kind).toBe(engine);
  });

  it("delivers NOTIFY to listeners when the transaction commits, and never for a rolled-back one", async () => {
    const got: string[] = [];
    const unlisten = await db.listen(REQUEST_EVENTS_CHANNEL, (p) => got.push(p));
    try {
      await db.prisma
        .$transaction(async (tx) => {
          await tx.$executeRawUnsafe(`SELECT pg_notify('${REQUEST_EVENTS_CHANNEL}', $1)`, "rolled-back");
          throw new Error("abort");
        })
        .catch(() => {});
      await db.prisma.$transaction(async (tx) => {
        await tx.$executeRawUnsafe(`SELECT pg_notify('${REQUEST_EVENTS_CHANNEL}', $1)`, "req_committed");
        await sleep(100);
        // Not delivered while the transaction is open.
        expect(got).toEqual([]);
      });
      for (let i = 0; i < 50 && got.length === 0; i++) await sleep(20);
      expect(got).toEqual(["req_committed"]);
    } finally {
      await unlisten();
    }
    // After unlistening, nothing more arrives for this listener.
    await db.prisma.$executeRawUnsafe(`SELECT pg_notify('${REQUEST_EVENTS_CHANNEL}', 'late')`);
    await sleep(150);
    expect(got).toEqual(["req_committed"]);
  });
});

describe("database configuration", () => {
  it("picks PGlite without a URL and PostgreSQL with one; rejects other schemes", () => {
    expect(databaseConfigFrom({ dataDir: "/tmp/x" })).toEqual({ kind: "pglite", dataDir: "/tmp/x" });
    expect(databaseConfigFrom({ url: "postgres://u@h/db", dataDir: "/tmp/x" })).toEqual({ kind: "postgres", url: "postgres://u@h/db" });
    expect(() => databaseConfigFrom({ url: "mysql://u@h/db", dataDir: "/tmp/x" })).toThrow(/postgres:\/\//);
  });

  it("never shows a database password in the location it logs", () => {
    expect(redactUrl("postgresql://app:s3cret@db.internal:5432/countersign")).toBe("postgresql://app:***@db.internal:5432/countersign");
    expect(redactUrl("not a url")).not.toContain("not a url");
  });
});

describe("data directory lock (PGlite is single-process)", () => {
  const t = tempDir("cs-lock-");
  afterAll(() => t.remove());

  it("is exclusive while its holder lives, names the holder, and is released", () => {
    const release = acquireDataDirLock(t.dir, { role: "gateway", socket: "/tmp/x.sock" });
    expect(readLock(t.dir)).toMatchObject({ pid: process.pid, role: "gateway", socket: "/tmp/x.sock" });
    let err: unknown;
    try {
      acquireDataDirLock(t.dir, { role: "cli" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DataDirLockedError);
    expect((err as DataDirLockedError).message).toMatch(new RegExp(`the gateway \\(pid ${process.pid}\\) has the embedded database open`));
    release();
    expect(existsSync(lockPath(t.dir))).toBe(false);
  });

  it("takes over a stale lock left by a process that died", () => {
    writeFileSync(lockPath(t.dir), JSON.stringify({ pid: 2 ** 22 + 12345, role: "gateway", startedAt: new Date(0).toISOString() }));
    expect(readLock(t.dir)).toBeNull();
    const release = acquireDataDirLock(t.dir, { role: "cli" });
    expect(JSON.parse(readFileSync(lockPath(t.dir), "utf8"))).toMatchObject({ pid: process.pid, role: "cli" });
    release();
  });
});
