import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_MIGRATIONS_DIR, loadMigrations, migrate, openDatabase } from "@countersign/db";
import pg from "pg";
import { ROOT } from "./gateway.ts";

export type Engine = "pglite" | "postgres";

/** A fresh, empty database on the PostgreSQL server at `baseUrl`; `drop` removes it. */
export async function freshPostgres(baseUrl: string, migrated = false): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `cs_bench_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  const u = new URL(baseUrl);
  u.pathname = `/${name}`;
  const url = u.toString();
  if (migrated) {
    const db = await openDatabase({ kind: "postgres", url, poolSize: 1 });
    await db.migrate();
    await db.close();
  }
  return {
    url,
    drop: async () => {
      const c = new pg.Client({ connectionString: baseUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await c.end();
    },
  };
}

export async function postgresReachable(url: string): Promise<string | null> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
  c.on("error", () => {});
  try {
    await c.connect();
    await c.query("SELECT 1");
    return null;
  } catch (e) {
    return (e as Error).message;
  } finally {
    await c.end().catch(() => {});
  }
}

/** The minimal surface of PGlite the baseline uses (loaded from packages/db's dependency). */
export interface PGliteLike {
  query<T>(sql: string, params?: unknown[]): Promise<{ rows: T[] }>;
  exec(sql: string): Promise<unknown>;
  transaction<T>(fn: (tx: { query<R>(sql: string, params?: unknown[]): Promise<{ rows: R[] }> }) => Promise<T>): Promise<T>;
  close(): Promise<void>;
  waitReady: Promise<void>;
}

/** A migrated PGlite database in a temp directory, opened in this process (the same driver the gateway embeds). */
export async function freshPglite(): Promise<{ lite: PGliteLike; remove: () => Promise<void> }> {
  const require = createRequire(join(ROOT, "packages/db/package.json"));
  const { PGlite } = require("@electric-sql/pglite") as { PGlite: new (dir: string) => PGliteLike };
  const dir = mkdtempSync(join(tmpdir(), "cs-bench-lite-"));
  const lite = new PGlite(dir);
  await lite.waitReady;
  await migrate(
    {
      exec: async (sql) => {
        await lite.exec(sql);
      },
      query: async <T>(sql: string, params?: unknown[]) => (await lite.query<T>(sql, params)).rows,
      close: async () => {},
    },
    await loadMigrations(DEFAULT_MIGRATIONS_DIR),
  );
  return {
    lite,
    remove: async () => {
      await lite.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
