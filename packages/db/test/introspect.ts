import { type Engine, freshPostgresUrl, tempDir } from "../../../test/support/db.ts";
import type { Database } from "../src/database.ts";
import { openDatabase } from "../src/database.ts";
import type { ExpectedSchema } from "./prisma-schema.ts";

/** A fresh database that has NOT been migrated, plus the URL (PostgreSQL) to open it again. */
export async function openUnmigrated(engine: Engine): Promise<{ db: Database; url?: string; dataDir?: string; cleanup: () => Promise<void> }> {
  if (engine === "pglite") {
    const t = tempDir("cs-db-");
    const db = await openDatabase({ kind: "pglite", dataDir: t.dir });
    return {
      db,
      dataDir: t.dir,
      cleanup: async () => {
        await db.close();
        t.remove();
      },
    };
  }
  const fresh = await freshPostgresUrl();
  const db = await openDatabase({ kind: "postgres", url: fresh.url });
  return {
    db,
    url: fresh.url,
    cleanup: async () => {
      await db.close();
      await fresh.drop();
    },
  };
}

/** Reads the live shape of the public schema (except Prisma's bookkeeping table) in the same form as expectedSchema(). */
export async function introspect(db: Database): Promise<ExpectedSchema> {
  const q = <T>(sql: string) => db.prisma.$queryRawUnsafe<T[]>(sql);
  const columns = await q<{ table: string; column: string; type: string; udt: string; nullable: string; def: string | null }>(`
    SELECT c.table_name AS "table", c.column_name AS "column", c.data_type AS "type", c.udt_name AS udt,
           c.is_nullable AS nullable, c.column_default AS def
      FROM information_schema.columns c
      JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
     WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' AND c.table_name <> '_prisma_migrations'
     ORDER BY 1, c.ordinal_position`);
  const precision = await q<{ table: string; column: string; p: number | null }>(`
    SELECT table_name AS "table", column_name AS "column", datetime_precision::int AS p
      FROM information_schema.columns
     WHERE table_schema = 'public' AND data_type LIKE 'timestamp%'`);
  const enums = await q<{ name: string; labels: string }>(`
    SELECT t.typname AS name, string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) AS labels
      FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE n.nspname = 'public' GROUP BY t.typname`);
  const indexes = await q<{ name: string; table: string; cols: string; uniq: string; prim: string }>(`
    SELECT i.relname AS name, t.relname AS "table",
           string_agg(a.attname, ',' ORDER BY k.ord) AS cols,
           ix.indisunique::text AS uniq, ix.indisprimary::text AS prim
      FROM pg_index ix
      JOIN pg_class i ON i.oid = ix.indexrelid
      JOIN pg_class t ON t.oid = ix.indrelid
      JOIN pg_namespace n ON n.oid = t.relnamespace
      CROSS JOIN LATERAL unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
      JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
     WHERE n.nspname = 'public' AND t.relname <> '_prisma_migrations'
     GROUP BY i.relname, t.relname, ix.indisunique, ix.indisprimary`);
  const fks = await q<{ name: string; table: string; cols: string; ref: string; refcols: string; del: string; upd: string }>(`
    SELECT c.conname AS name, t.relname AS "table", r.relname AS ref,
           (SELECT string_agg(a.attname, ',' ORDER BY k.ord) FROM unnest(c.conkey) WITH ORDINALITY k(attnum, ord)
              JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum) AS cols,
           (SELECT string_agg(a.attname, ',' ORDER BY k.ord) FROM unnest(c.confkey) WITH ORDINALITY k(attnum, ord)
              JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum) AS refcols,
           c.confdeltype::text AS del, c.confupdtype::text AS upd
      FROM pg_constraint c
      JOIN pg_class t ON t.oid = c.conrelid
      JOIN pg_class r ON r.oid = c.confrelid
      JOIN pg_namespace n ON n.oid = t.relnamespace
     WHERE c.contype = 'f' AND n.nspname = 'public'`);

  const ACTION: Record<string, string> = { a: "NO ACTION", r: "RESTRICT", c: "CASCADE", n: "SET NULL", d: "SET DEFAULT" };
  const out: ExpectedSchema = { tables: {}, enums: {}, indexes: {}, foreignKeys: {} };
  for (const c of columns) {
    out.tables[c.table] ??= {};
    (out.tables[c.table] as Record<string, ExpectedSchema["tables"][string][string]>)[c.column] = {
      type: c.type,
      udt: c.udt,
      nullable: c.nullable === "YES",
      default: c.def,
    };
  }
  for (const e of enums) out.enums[e.name] = e.labels.split(",");
  for (const i of indexes) {
    out.indexes[i.name] = { table: i.table, columns: i.cols.split(","), unique: i.uniq === "true", primary: i.prim === "true" };
  }
  for (const f of fks) {
    out.foreignKeys[f.name] = {
      table: f.table,
      columns: f.cols.split(","),
      refTable: f.ref,
      refColumns: f.refcols.split(","),
      onDelete: ACTION[f.del] ?? f.del,
      onUpdate: ACTION[f.upd] ?? f.upd,
    };
  }
  // Prisma's DateTime is timestamp(3); anything else is drift.
  for (const p of precision) {
    const col = out.tables[p.table]?.[p.column];
    if (col && p.p !== 3) col.type = `${col.type} (precision ${p.p})`;
  }
  return out;
}
