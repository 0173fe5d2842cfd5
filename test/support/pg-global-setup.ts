import pg from "pg";

export const DEFAULT_TEST_PG_URL = "postgresql://postgres@127.0.0.1:5432/test";

/**
 * Decides whether the PostgreSQL tier runs. Under CI an unreachable server fails the
 * run instead of silently skipping half the suite.
 */
export default async function setup({ provide }: { provide: (k: string, v: unknown) => void }) {
  const url = process.env.COUNTERSIGN_TEST_PG_URL ?? DEFAULT_TEST_PG_URL;
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("SELECT 1");
    provide("pgUrl", url);
  } catch (e) {
    if (process.env.CI) {
      throw new Error(`PostgreSQL tier: cannot reach ${url} (${(e as Error).message}); CI requires it`);
    }
    console.warn(`\n!! PostgreSQL tier SKIPPED: cannot reach ${url} (${(e as Error).message}). Set COUNTERSIGN_TEST_PG_URL.\n`);
    provide("pgUrl", null);
  } finally {
    await client.end().catch(() => {});
  }
}

declare module "vitest" {
  export interface ProvidedContext {
    pgUrl: string | null;
  }
}
