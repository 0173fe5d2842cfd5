import { execFile } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { PGlite } from "@electric-sql/pglite";
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaPGlite } from "pglite-prisma-adapter";
import { Admission, type AdmissionWait } from "./admission.ts";
import { pgDriver, pgliteDriver, type SqlDriver } from "./driver.ts";
import { PrismaClient } from "./generated/prisma/client.ts";
import { loadMigrations, type MigrateResult, migrate, pendingMigrations } from "./migrate.ts";

export type Db = PrismaClient;
/** The handle passed to code running inside a transaction. */
export type Tx = Omit<PrismaClient, "$connect" | "$disconnect" | "$on" | "$transaction" | "$extends">;

export const DEFAULT_MIGRATIONS_DIR = fileURLToPath(new URL("../../../prisma/migrations", import.meta.url));

/** Channel used to tell every process (replica) that a request changed state. */
export const REQUEST_EVENTS_CHANNEL = "countersign_request_events";

export type DatabaseConfig =
  /** `dataDir` is Countersign's data directory; PGlite's files live in its `pglite/` folder. */
  ({ kind: "pglite"; dataDir: string } | { kind: "postgres"; url: string; poolSize?: number }) & {
    /** How many transactions may wait for a connection before more are refused (DATABASE_QUEUE_LIMIT). */
    queueLimit?: number;
  };

/** The default of DATABASE_QUEUE_LIMIT. */
export const DEFAULT_QUEUE_LIMIT = 256;

export interface TransactionOptions {
  isolationLevel?: "ReadCommitted" | "RepeatableRead" | "Serializable";
  /** How long the transaction may run once it has a connection (Prisma's `timeout`). */
  timeout?: number;
  /** "always": wait in the queue whatever its bound (see Admission). */
  wait?: AdmissionWait;
}

export interface Database {
  kind: "pglite" | "postgres";
  prisma: PrismaClient;
  /** A human-readable location for logs: the data dir, or the URL without its password. */
  location: string;
  migrate(dir?: string): Promise<MigrateResult>;
  pendingMigrations(dir?: string): Promise<string[]>;
  /** Subscribe to NOTIFY on a channel; returns an unsubscribe function. */
  listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>>;
  /**
   * An interactive transaction, admitted through `admission`: at most one per pool
   * connection runs, and a burst waits its turn in arrival order (up to the queue's bound)
   * instead of timing out in the pool. Every service transaction goes through here.
   */
  transaction<T>(fn: (tx: Tx) => Promise<T>, opts?: TransactionOptions): Promise<T>;
  admission: Admission;
  /** Cheap round trip used by /readyz. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** `DATABASE_URL` unset means embedded PGlite; a postgres:// URL means PostgreSQL. */
export function databaseConfigFrom(opts: { url?: string | undefined; dataDir: string }): DatabaseConfig {
  if (!opts.url) return { kind: "pglite", dataDir: resolve(opts.dataDir) };
  if (!/^postgres(ql)?:\/\//.test(opts.url)) {
    throw new Error("DATABASE_URL must start with postgres:// or postgresql://");
  }
  return { kind: "postgres", url: opts.url };
}

export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "postgres://(unparseable)";
  }
}

export interface OpenOptions {
  /** Called before a slow first-time step (creating the embedded database), so a caller can say what it is doing. */
  onProgress?: (message: string) => void;
}

export async function openDatabase(config: DatabaseConfig, opts: OpenOptions = {}): Promise<Database> {
  const queueLimit = config.queueLimit ?? DEFAULT_QUEUE_LIMIT;
  return config.kind === "pglite" ? openPglite(config.dataDir, queueLimit, opts) : openPostgres(config.url, config.poolSize, queueLimit);
}

/**
 * PGlite's own start parameters with shared_buffers cut from PostgreSQL's 128 MB to
 * 16 MB: the WASM heap never shrinks, so the buffer pool is resident for good, while the
 * gateway's working set is small and the files are in the OS page cache anyway. Measured
 * on a bare PGlite process (2026-12-02 tracker note): 199 MB instead of 348 MB of RSS, with
 * the same query rate.
 */
export const PGLITE_START_PARAMS = [...PGlite.defaultStartParams, "-c", "shared_buffers=16MB"];

/**
 * Creates a new PGlite cluster in a short-lived child process. initdb grows the WASM
 * heap to about 800 MB and a WASM heap is never returned to the OS, so run in-process it
 * would stay in the gateway's RSS for its whole life.
 */
async function initPglite(dir: string): Promise<void> {
  const script = "const { PGlite } = await import(process.argv[1]); const db = new PGlite(process.argv[2]); await db.waitReady; await db.close();";
  await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script, import.meta.resolve("@electric-sql/pglite"), dir], {
    maxBuffer: 16 * 1024 * 1024,
  }).catch((e: Error & { stderr?: string }) => {
    throw new Error(`cannot create the embedded database in ${dir}: ${(e.stderr || e.message).trim().split("\n").pop()}`);
  });
}

/**
 * Runs `fn` in a Prisma transaction once `admission` lets it. An admitted transaction finds
 * a connection at once but for reads outside transactions holding one briefly, so the pool
 * wait (`maxWait`) is generous: past the queue, callers are refused before they get here.
 */
function admitted(prisma: PrismaClient, admission: Admission) {
  return <T>(fn: (tx: Tx) => Promise<T>, opts: TransactionOptions = {}): Promise<T> =>
    admission.run(
      () =>
        prisma.$transaction(fn, {
          maxWait: 10_000,
          timeout: opts.timeout ?? 5_000,
          ...(opts.isolationLevel ? { isolationLevel: opts.isolationLevel } : {}),
        }),
      opts.wait,
    );
}

async function openPglite(dataDir: string, queueLimit: number, opts: OpenOptions): Promise<Database> {
  const dir = join(dataDir, "pglite");
  mkdirSync(dir, { recursive: true });
  if (!existsSync(join(dir, "PG_VERSION"))) {
    opts.onProgress?.(`creating the embedded database in ${dir} (first start only; this takes a few seconds)`);
    await initPglite(dir);
  }
  const lite = new PGlite(dir, { startParams: PGLITE_START_PARAMS });
  await lite.waitReady;
  const prisma = new PrismaClient({ adapter: new PrismaPGlite(lite) });
  const driver = pgliteDriver(lite);
  // One connection: transactions take turns here rather than inside the adapter.
  const admission = new Admission(1, queueLimit);
  return {
    kind: "pglite",
    prisma,
    admission,
    transaction: admitted(prisma, admission),
    location: dataDir,
    migrate: async (dir = DEFAULT_MIGRATIONS_DIR) => migrate(driver, await loadMigrations(dir)),
    pendingMigrations: async (dir = DEFAULT_MIGRATIONS_DIR) => pendingMigrations(driver, await loadMigrations(dir)),
    async listen(channel, onPayload) {
      const unsub = await lite.listen(channel, onPayload);
      return async () => unsub();
    },
    async ping() {
      await lite.query("SELECT 1");
    },
    async close() {
      await prisma.$disconnect();
      await lite.close();
    },
  };
}

async function openPostgres(url: string, poolSize = 10, queueLimit = DEFAULT_QUEUE_LIMIT): Promise<Database> {
  const pool = new pg.Pool({ connectionString: url, max: poolSize, connectionTimeoutMillis: 5_000 });
  // Idle clients emit 'error' when the server goes away; the next query reports it instead.
  pool.on("error", () => {});
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  const listeners = new Map<string, Set<(payload: string) => void>>();
  let listenDriver: (SqlDriver & { client: pg.Client }) | undefined;
  let closed = false;

  // One dedicated connection carries every LISTEN; it reconnects after an outage so
  // waiters on this replica keep hearing decisions made on other replicas.
  async function ensureListener(): Promise<void> {
    if (listenDriver || closed) return;
    const d = await pgDriver(url);
    listenDriver = d;
    d.client.on("notification", (msg) => {
      for (const cb of listeners.get(msg.channel) ?? []) cb(msg.payload ?? "");
    });
    const reconnect = () => {
      if (listenDriver !== d) return;
      listenDriver = undefined;
      void d.close();
      const retry = async () => {
        if (closed) return;
        try {
          await ensureListener();
          for (const ch of listeners.keys()) await listenDriver?.exec(`LISTEN "${ch}"`);
        } catch {
          setTimeout(retry, 1_000).unref();
        }
      };
      setTimeout(retry, 250).unref();
    };
    d.client.on("error", reconnect);
    d.client.on("end", reconnect);
  }

  async function withDriver<T>(fn: (d: SqlDriver) => Promise<T>): Promise<T> {
    const d = await pgDriver(url);
    try {
      return await fn(d);
    } finally {
      await d.close();
    }
  }

  const admission = new Admission(poolSize, queueLimit);
  return {
    kind: "postgres",
    prisma,
    admission,
    transaction: admitted(prisma, admission),
    location: redactUrl(url),
    migrate: async (dir = DEFAULT_MIGRATIONS_DIR) => {
      const ms = await loadMigrations(dir);
      return withDriver((d) => migrate(d, ms));
    },
    pendingMigrations: async (dir = DEFAULT_MIGRATIONS_DIR) => {
      const ms = await loadMigrations(dir);
      return withDriver((d) => pendingMigrations(d, ms));
    },
    async listen(channel, onPayload) {
      let set = listeners.get(channel);
      if (!set) {
        set = new Set();
        listeners.set(channel, set);
        await ensureListener();
        await listenDriver?.exec(`LISTEN "${channel}"`);
      }
      set.add(onPayload);
      return async () => {
        set?.delete(onPayload);
      };
    },
    async ping() {
      const c = await pool.connect();
      try {
        await c.query("SELECT 1");
      } finally {
        c.release();
      }
    },
    async close() {
      closed = true;
      await prisma.$disconnect();
      await listenDriver?.close();
      await pool.end().catch(() => {});
    },
  };
}
