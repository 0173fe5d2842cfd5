import type { PGlite } from "@electric-sql/pglite";
import pg from "pg";

/**
 * A single SQL connection, outside Prisma: used by the migrator (multi-statement
 * scripts, session advisory locks) and for LISTEN/NOTIFY.
 */
export interface SqlDriver {
  exec(sql: string): Promise<void>;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  close(): Promise<void>;
}

export function pgliteDriver(db: PGlite): SqlDriver {
  return {
    async exec(sql) {
      await db.exec(sql);
    },
    async query<T>(sql: string, params?: unknown[]) {
      const r = await db.query<T>(sql, params);
      return r.rows;
    },
    async close() {
      // The PGlite instance is owned by the Database; closing it here would close Prisma's too.
    },
  };
}

export async function pgDriver(connectionString: string): Promise<SqlDriver & { client: pg.Client }> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: 5_000 });
  // An idle client whose server goes away emits 'error'; unhandled, that would crash the process.
  client.on("error", () => {});
  await client.connect();
  return {
    client,
    async exec(sql) {
      await client.query(sql);
    },
    async query<T>(sql: string, params?: unknown[]) {
      const r = await client.query(sql, params as unknown[]);
      return r.rows as T[];
    },
    async close() {
      await client.end().catch(() => {});
    },
  };
}
