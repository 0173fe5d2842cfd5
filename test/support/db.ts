import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Database, openDatabase } from "@countersign/db";
import pg from "pg";
import { inject } from "vitest";

export type Engine = "pglite" | "postgres";

/** A fresh PostgreSQL database on the test server; dropped by the returned cleanup. */
export async function freshPostgresUrl(): Promise<{ url: string; drop: () => Promise<void> }> {
  const base = inject("pgUrl");
  if (!base) throw new Error("PostgreSQL tier is not available");
  const name = `cs_t_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  const u = new URL(base);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: base });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await c.end();
    },
  };
}

export function tempDir(prefix = "cs-test-"): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Engines to run the data-layer tests on: PGlite always, PostgreSQL when reachable. */
export function engines(): Engine[] {
  return inject("pgUrl") ? ["pglite", "postgres"] : ["pglite"];
}

/** Opens a fresh, migrated database of the given engine; `poolSize` applies to PostgreSQL only (PGlite has one connection). */
export async function openTestDatabase(
  engine: Engine,
  opts: { poolSize?: number; queueLimit?: number } = {},
): Promise<{ db: Database; cleanup: () => Promise<void> }> {
  const queue = opts.queueLimit === undefined ? {} : { queueLimit: opts.queueLimit };
  if (engine === "pglite") {
    const t = tempDir();
    const db = await openDatabase({ kind: "pglite", dataDir: t.dir, ...queue });
    await db.migrate();
    return {
      db,
      cleanup: async () => {
        await db.close();
        t.remove();
      },
    };
  }
  const pgdb = await freshPostgresUrl();
  const db = await openDatabase({ kind: "postgres", url: pgdb.url, ...(opts.poolSize ? { poolSize: opts.poolSize } : {}), ...queue });
  await db.migrate();
  return {
    db,
    cleanup: async () => {
      await db.close();
      await pgdb.drop();
    },
  };
}
