import { CountersignError } from "@countersign/core";
import type { Database, Tx } from "@countersign/db";

/**
 * Every table Countersign keeps, parents before children, so a snapshot loads in this
 * order. A table in the database that is not listed stops a snapshot rather than being
 * left behind: a new table must be added here (and the transfer test says so).
 */
export const SNAPSHOT_TABLES = [
  "api_keys",
  "approval_requests",
  "decisions",
  "chat_messages",
  "teams_conversations",
  "outbox_jobs",
  "outbox_attempts",
  "audit_checkpoints",
  "audit_events",
] as const;
export type SnapshotTable = (typeof SNAPSHOT_TABLES)[number];
export type TableCounts = Record<SnapshotTable, number>;

export const SNAPSHOT_FORMAT = "countersign-snapshot";

/**
 * A snapshot is a sequence of lines (JSON Lines in a backup file): a header, batches of
 * rows as PostgreSQL's row_to_json renders them, and a trailer. The trailer's counts make
 * a truncated file an error instead of a smaller database.
 */
export type SnapshotLine =
  | { format: typeof SNAPSHOT_FORMAT; version: 1; takenAt: string; engine: "pglite" | "postgres"; migrations: string[]; counts: TableCounts }
  | { table: SnapshotTable; rows: unknown[] }
  | { end: true; counts: TableCounts };

const BATCH = 500;
// Long enough for a large log over a slow link; the snapshot is read-only, so holding it is cheap on
// PostgreSQL. It waits for its turn however long the queue: an operator's backup is not refused for load.
const SNAPSHOT_TX = { timeout: 60 * 60_000, wait: "always" } as const;

async function appliedMigrations(q: Pick<Tx, "$queryRawUnsafe">): Promise<string[]> {
  const rows = await q.$queryRawUnsafe<{ name: string }[]>(
    `SELECT migration_name AS name FROM "_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL ORDER BY migration_name`,
  );
  return rows.map((r) => r.name);
}

/** Refuses a database that has a table this code does not know how to carry. */
async function checkTables(q: Pick<Tx, "$queryRawUnsafe">): Promise<void> {
  const rows = await q.$queryRawUnsafe<{ name: string }[]>(
    `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> '_prisma_migrations'`,
  );
  const unknown = rows.map((r) => r.name).filter((n) => !(SNAPSHOT_TABLES as readonly string[]).includes(n));
  if (unknown.length > 0) {
    throw new CountersignError(
      "internal_error",
      `the database has tables this version cannot copy: ${unknown.join(", ")}; use the Countersign version that made them`,
    );
  }
}

async function primaryKey(q: Pick<Tx, "$queryRawUnsafe">, table: SnapshotTable): Promise<string[]> {
  const rows = await q.$queryRawUnsafe<{ col: string }[]>(
    `SELECT a.attname AS col FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
     WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)`,
    table,
  );
  return rows.map((r) => r.col);
}

async function countsOf(q: Pick<Tx, "$queryRawUnsafe">): Promise<TableCounts> {
  const sql = SNAPSHOT_TABLES.map((t) => `SELECT '${t}' AS t, count(*)::int AS n FROM ${t}`).join(" UNION ALL ");
  const rows = await q.$queryRawUnsafe<{ t: SnapshotTable; n: number }[]>(sql);
  return Object.fromEntries(rows.map((r) => [r.t, Number(r.n)])) as TableCounts;
}

export function tableCounts(db: Database): Promise<TableCounts> {
  return countsOf(db.prisma);
}

const total = (c: TableCounts) => Object.values(c).reduce((a, b) => a + b, 0);

/**
 * Reads every table in one REPEATABLE READ transaction, so the snapshot is one consistent
 * moment even while the gateway keeps writing (on PGlite, its single connection waits
 * meanwhile). `emit` is awaited, so a slow reader slows the read instead of filling memory.
 */
export async function takeSnapshot(db: Database, emit: (line: SnapshotLine) => Promise<void>): Promise<TableCounts> {
  return db.transaction(
    async (tx) => {
      await checkTables(tx);
      const counts = await countsOf(tx);
      await emit({ format: SNAPSHOT_FORMAT, version: 1, takenAt: new Date().toISOString(), engine: db.kind, migrations: await appliedMigrations(tx), counts });
      for (const table of SNAPSHOT_TABLES) {
        const pk = await primaryKey(tx, table);
        if (pk.length !== 1) throw new CountersignError("internal_error", `${table} has no single-column primary key to page by`);
        const key = pk[0] as string;
        // Keyset pages: each batch costs the same however far into the table it is.
        let last: unknown;
        for (let read = 0; read < counts[table]; ) {
          const rows = await tx.$queryRawUnsafe<{ r: unknown }[]>(
            `SELECT row_to_json(t) AS r FROM ${table} t ${last === undefined ? "" : `WHERE ${key} > $1`} ORDER BY ${key} LIMIT ${BATCH}`,
            ...(last === undefined ? [] : [last]),
          );
          if (rows.length === 0) break;
          const batch = rows.map((x) => (typeof x.r === "string" ? JSON.parse(x.r) : x.r) as Record<string, unknown>);
          last = batch[batch.length - 1]?.[key];
          read += batch.length;
          await emit({ table, rows: batch });
        }
      }
      await emit({ end: true, counts });
      return counts;
    },
    { ...SNAPSHOT_TX, isolationLevel: "RepeatableRead" },
  );
}

export interface LoadProgress {
  table: SnapshotTable;
  loaded: number;
  of: number;
}

function invalid(message: string): CountersignError {
  return new CountersignError("invalid_request", message);
}

/**
 * Loads a snapshot into an empty, migrated database, in one transaction: a failure (a bad
 * or truncated file, a lost connection, a killed process) leaves the target as empty as it
 * was, so the same command can simply be run again.
 */
export async function loadSnapshot(db: Database, lines: AsyncIterable<SnapshotLine>, onProgress?: (p: LoadProgress) => void): Promise<TableCounts> {
  const here = await appliedMigrations(db.prisma);
  await checkTables(db.prisma);
  const before = await countsOf(db.prisma);
  if (total(before) > 0) {
    const rows = SNAPSHOT_TABLES.filter((t) => before[t] > 0).map((t) => `${t}: ${before[t]}`);
    throw new CountersignError("conflict", `the target database is not empty (${rows.join(", ")}); copy only into a new, empty database`);
  }
  return db.transaction(async (tx) => {
    let header: Extract<SnapshotLine, { format: string }> | undefined;
    const loaded = Object.fromEntries(SNAPSHOT_TABLES.map((t) => [t, 0])) as TableCounts;
    let order = 0;
    for await (const line of lines) {
      if (!header) {
        if (!("format" in line) || line.format !== SNAPSHOT_FORMAT || line.version !== 1)
          throw invalid("not a Countersign snapshot: the first line is not its header");
        const missing = line.migrations.filter((m) => !here.includes(m));
        const newer = here.filter((m) => !line.migrations.includes(m));
        if (missing.length > 0 || newer.length > 0) {
          throw invalid(
            `the snapshot's schema (${line.migrations.at(-1) ?? "none"}) differs from this version's (${here.at(-1) ?? "none"}); load it with the Countersign version that took it, then upgrade`,
          );
        }
        header = line;
        continue;
      }
      if ("end" in line) {
        for (const t of SNAPSHOT_TABLES) {
          if (line.counts[t] !== loaded[t] || header.counts[t] !== loaded[t]) {
            throw invalid(`the snapshot is inconsistent: ${t} has ${loaded[t]} rows, its header says ${header.counts[t]} and its trailer ${line.counts[t]}`);
          }
        }
        await resetSequences(tx);
        return loaded;
      }
      if (!("table" in line) || !Array.isArray(line.rows)) throw invalid("the snapshot has a line that is neither rows nor its trailer");
      const at = SNAPSHOT_TABLES.indexOf(line.table);
      if (at < 0) throw invalid(`the snapshot names a table this version does not have: ${String(line.table).slice(0, 64)}`);
      if (at < order) throw invalid(`the snapshot's tables are out of order (${line.table} after ${SNAPSHOT_TABLES[order]})`);
      order = at;
      // The rows come back through the table's own row type, so every column keeps its type.
      await tx.$executeRawUnsafe(`INSERT INTO ${line.table} SELECT * FROM json_populate_recordset(NULL::${line.table}, $1::json)`, JSON.stringify(line.rows));
      loaded[line.table] += line.rows.length;
      onProgress?.({ table: line.table, loaded: loaded[line.table], of: header.counts[line.table] });
    }
    throw invalid(header ? "the snapshot ends early: its trailer is missing (a truncated file?)" : "the snapshot is empty");
  }, SNAPSHOT_TX);
}

/** Serial columns continue after the copied rows, so the next event or attempt gets a fresh number. */
async function resetSequences(tx: Tx): Promise<void> {
  const serials = await tx.$queryRawUnsafe<{ t: string; c: string; s: string }[]>(
    `SELECT c.table_name AS t, c.column_name AS c, pg_get_serial_sequence(c.table_name, c.column_name) AS s
     FROM information_schema.columns c WHERE c.table_schema = current_schema() AND c.column_default LIKE 'nextval(%'`,
  );
  for (const { t, c, s } of serials) {
    await tx.$queryRawUnsafe(`SELECT setval('${s}', GREATEST((SELECT max(${c}) FROM ${t}), 1), (SELECT max(${c}) IS NOT NULL FROM ${t}))`);
  }
}
