import { createHash, randomUUID } from "node:crypto";
import { appendFileSync, cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { engines, tempDir } from "../../../test/support/db.ts";
import { type Database, DEFAULT_MIGRATIONS_DIR, openDatabase } from "../src/database.ts";
import { MigrationError } from "../src/migrate.ts";
import { openUnmigrated } from "./introspect.ts";

interface MigrationRow {
  id: string;
  checksum: string;
  migration_name: string;
  finished_at: Date | null;
  rolled_back_at: Date | null;
  started_at: Date;
  applied_steps_count: number;
  logs: string | null;
}

const onDisk = () =>
  readdirSync(DEFAULT_MIGRATIONS_DIR, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
const fileSha256 = (dir: string, name: string) =>
  createHash("sha256")
    .update(readFileSync(join(dir, name, "migration.sql")))
    .digest("hex");

/** A copy of the real migrations folder the test may edit. */
function migrationsCopy(): { dir: string; remove: () => void } {
  const t = tempDir("cs-migrations-");
  cpSync(DEFAULT_MIGRATIONS_DIR, t.dir, { recursive: true });
  return t;
}

describe.each(engines())("migrator on %s", (engine) => {
  let db: Database;
  let url: string | undefined;
  let cleanup: () => Promise<void>;
  const dirs: { remove: () => void }[] = [];
  const rows = () => db.prisma.$queryRawUnsafe<MigrationRow[]>(`SELECT * FROM "_prisma_migrations" ORDER BY migration_name`);

  beforeAll(async () => {
    ({ db, url, cleanup } = await openUnmigrated(engine));
  });
  afterAll(async () => {
    await cleanup?.();
    for (const d of dirs) d.remove();
  });

  it("applies every migration to a fresh database and records each as `prisma migrate deploy` does", async () => {
    expect(await db.pendingMigrations()).toEqual(onDisk());
    const r = await db.migrate();
    expect(r).toEqual({ applied: onDisk(), alreadyApplied: [] });
    const recorded = await rows();
    expect(recorded.map((m) => m.migration_name)).toEqual(onDisk());
    for (const m of recorded) {
      // checksum = lowercase hex SHA-256 of the migration.sql bytes.
      expect(m.checksum).toMatch(/^[0-9a-f]{64}$/);
      expect(m.checksum).toBe(fileSha256(DEFAULT_MIGRATIONS_DIR, m.migration_name));
      expect(m.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(m.finished_at).not.toBeNull();
      expect(m.rolled_back_at).toBeNull();
      expect(Number(m.applied_steps_count)).toBe(1);
    }
    expect(await db.pendingMigrations()).toEqual([]);
  });

  it("is idempotent: a second run applies nothing and records nothing", async () => {
    const before = await rows();
    expect(await db.migrate()).toEqual({ applied: [], alreadyApplied: onDisk() });
    expect(await db.migrate()).toEqual({ applied: [], alreadyApplied: onDisk() });
    expect(await rows()).toEqual(before);
  });

  it("refuses to run when an applied migration was edited afterwards, and changes nothing", async () => {
    const copy = migrationsCopy();
    dirs.push(copy);
    const first = onDisk()[0] as string;
    appendFileSync(join(copy.dir, first, "migration.sql"), "\n-- a harmless-looking edit\n");
    // A new migration alongside must not be applied either.
    mkdirSync(join(copy.dir, "29990101000000_later"));
    writeFileSync(join(copy.dir, "29990101000000_later", "migration.sql"), `CREATE TABLE "should_not_exist" (id TEXT);\n`);
    const before = await rows();
    await expect(db.migrate(copy.dir)).rejects.toThrow(MigrationError);
    await expect(db.migrate(copy.dir)).rejects.toThrow(new RegExp(`migration ${first} was edited after it was applied \\(checksum mismatch\\)`));
    expect(await rows()).toEqual(before);
    const t = await db.prisma.$queryRawUnsafe<{ t: string | null }[]>(`SELECT to_regclass('should_not_exist')::text AS t`);
    expect(t[0]?.t).toBeNull();
  });

  describe("new migrations", () => {
    const created: string[] = [];
    afterEach(async () => {
      for (const t of created.splice(0)) await db.prisma.$executeRawUnsafe(`DROP TABLE IF EXISTS "${t}"`);
    });

    it("applies a new migration once, in name order, and reports it as pending until then", async () => {
      const copy = migrationsCopy();
      dirs.push(copy);
      const name = `29990101000000_add_widgets_${randomUUID().slice(0, 8)}`;
      mkdirSync(join(copy.dir, name));
      writeFileSync(join(copy.dir, name, "migration.sql"), `CREATE TABLE "widgets" (id TEXT PRIMARY KEY);\nINSERT INTO "widgets" VALUES ('w1');\n`);
      created.push("widgets");
      expect(await db.pendingMigrations(copy.dir)).toEqual([name]);
      expect(await db.migrate(copy.dir)).toEqual({ applied: [name], alreadyApplied: onDisk() });
      expect(await db.migrate(copy.dir)).toEqual({ applied: [], alreadyApplied: [...onDisk(), name] });
      const w = await db.prisma.$queryRawUnsafe<{ n: number }[]>(`SELECT count(*)::int AS n FROM widgets`);
      expect(Number(w[0]?.n)).toBe(1);
      const rec = (await rows()).find((r) => r.migration_name === name);
      expect(rec?.checksum).toBe(fileSha256(copy.dir, name));
      await db.prisma.$executeRawUnsafe(`DELETE FROM "_prisma_migrations" WHERE migration_name = $1`, name);
    });

    it("rolls a failing migration back completely and records nothing for it", async () => {
      const copy = migrationsCopy();
      dirs.push(copy);
      const name = "29990101000001_broken";
      mkdirSync(join(copy.dir, name));
      writeFileSync(join(copy.dir, name, "migration.sql"), `CREATE TABLE "half_done" (id TEXT);\nSELECT * FROM "no_such_table";\n`);
      created.push("half_done");
      await expect(db.migrate(copy.dir)).rejects.toThrow(/migration 29990101000001_broken failed/);
      const t = await db.prisma.$queryRawUnsafe<{ t: string | null }[]>(`SELECT to_regclass('half_done')::text AS t`);
      expect(t[0]?.t).toBeNull();
      expect((await rows()).map((r) => r.migration_name)).toEqual(onDisk());
      // The database is still usable and the real migrations still verify.
      expect(await db.migrate()).toEqual({ applied: [], alreadyApplied: onDisk() });
    });
  });

  it.runIf(engine === "postgres")("several replicas migrating one fresh database at once apply each migration exactly once", async () => {
    const fresh = await openUnmigrated("postgres");
    const replicas = await Promise.all([1, 2, 3].map(() => openDatabase({ kind: "postgres", url: fresh.url as string })));
    try {
      const results = await Promise.all(replicas.map((r) => r.migrate()));
      expect(results.flatMap((r) => r.applied).sort()).toEqual(onDisk());
      const n = await fresh.db.prisma.$queryRawUnsafe<{ n: number }[]>(`SELECT count(*)::int AS n FROM "_prisma_migrations"`);
      expect(Number(n[0]?.n)).toBe(onDisk().length);
    } finally {
      await Promise.all(replicas.map((r) => r.close()));
      await fresh.cleanup();
    }
  });

  it.runIf(engine === "postgres")("a second connection to the migrated database finds nothing pending", async () => {
    const again = await openDatabase({ kind: "postgres", url: url as string });
    try {
      expect(await again.pendingMigrations()).toEqual([]);
      expect(await again.migrate()).toEqual({ applied: [], alreadyApplied: onDisk() });
    } finally {
      await again.close();
    }
  });
});
