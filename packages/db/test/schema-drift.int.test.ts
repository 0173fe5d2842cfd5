import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { engines } from "../../../test/support/db.ts";
import type { Database } from "../src/database.ts";
import { introspect, openUnmigrated } from "./introspect.ts";
import { type ExpectedSchema, expectedSchema } from "./prisma-schema.ts";

const SCHEMA = fileURLToPath(new URL("../../../prisma/schema.prisma", import.meta.url));

/**
 * The committed SQL migrations and schema.prisma must describe the same database. The
 * expectation is derived from schema.prisma itself (never a copy of it), and a fresh
 * database is migrated with the project's migrator and introspected.
 */
describe.each(engines())("migrations match schema.prisma on %s", (engine) => {
  let db: Database;
  let cleanup: () => Promise<void>;
  let expected: ExpectedSchema;
  let actual: ExpectedSchema;

  beforeAll(async () => {
    ({ db, cleanup } = await openUnmigrated(engine));
    const r = await db.migrate();
    expect(r.applied.length).toBeGreaterThan(0);
    expected = expectedSchema(readFileSync(SCHEMA, "utf8"));
    actual = await introspect(db);
  });
  afterAll(async () => {
    await cleanup?.();
  });

  it("has exactly the tables the schema declares", () => {
    expect(Object.keys(actual.tables).sort()).toEqual(Object.keys(expected.tables).sort());
    // Sanity: the parser saw the models this project is built on.
    expect(Object.keys(expected.tables)).toEqual(expect.arrayContaining(["api_keys", "approval_requests", "decisions", "audit_events", "outbox_jobs"]));
  });

  it("has exactly the declared columns, with their types, nullability and defaults", () => {
    for (const table of Object.keys(expected.tables)) {
      expect({ table, columns: actual.tables[table] }).toEqual({ table, columns: expected.tables[table] });
    }
  });

  it("has exactly the declared enums, in order", () => {
    expect(actual.enums).toEqual(expected.enums);
  });

  it("has exactly the declared primary keys, unique constraints and indexes, with Prisma's names", () => {
    expect(actual.indexes).toEqual(expected.indexes);
  });

  it("has exactly the declared foreign keys and referential actions", () => {
    expect(actual.foreignKeys).toEqual(expected.foreignKeys);
  });
});

describe("the drift check itself", () => {
  const engine = engines()[0]!;
  let db: Database;
  let cleanup: () => Promise<void>;
  let expected: ExpectedSchema;
  beforeAll(async () => {
    ({ db, cleanup } = await openUnmigrated(engine));
    await db.migrate();
    expected = expectedSchema(readFileSync(SCHEMA, "utf8"));
  });
  afterAll(async () => {
    await cleanup?.();
  });

  it("notices a changed nullability, an extra column, a dropped index and a changed foreign key action", async () => {
    const exec = (sql: string) => db.prisma.$executeRawUnsafe(sql);
    await exec(`ALTER TABLE api_keys ALTER COLUMN name DROP NOT NULL`);
    await exec(`ALTER TABLE decisions ADD COLUMN sneaky TEXT`);
    await exec(`DROP INDEX audit_events_request_id_idx`);
    await exec(`ALTER TABLE decisions DROP CONSTRAINT decisions_request_id_fkey`);
    await exec(
      `ALTER TABLE decisions ADD CONSTRAINT decisions_request_id_fkey FOREIGN KEY (request_id) REFERENCES approval_requests(id) ON DELETE CASCADE ON UPDATE CASCADE`,
    );
    const drifted = await introspect(db);
    expect(drifted.tables.api_keys?.name?.nullable).toBe(true);
    expect(drifted.tables.api_keys).not.toEqual(expected.tables.api_keys);
    expect(drifted.tables.decisions).not.toEqual(expected.tables.decisions);
    expect(drifted.indexes).not.toEqual(expected.indexes);
    expect(drifted.foreignKeys.decisions_request_id_fkey?.onDelete).toBe("CASCADE");
    expect(drifted.foreignKeys).not.toEqual(expected.foreignKeys);
  });

  it("derives the expectation from the schema text, so a schema edit changes it", () => {
    const source = readFileSync(SCHEMA, "utf8");
    const edited = expectedSchema(
      source.replace(/(\n\s+name\s+)String(\s)/, "$1String?$2").replace('@@index([requestId])\n  @@map("audit_events")', '@@map("audit_events")'),
    );
    expect(edited.tables.api_keys?.name?.nullable).toBe(true);
    expect(expected.tables.api_keys?.name?.nullable).toBe(false);
    expect(edited.indexes.audit_events_request_id_idx).toBeUndefined();
    expect(expected.indexes.audit_events_request_id_idx).toEqual({ table: "audit_events", columns: ["request_id"], unique: false, primary: false });
    // Constructs the parser does not model make the test fail instead of being ignored.
    expect(() => expectedSchema(source.replace("model Decision {", 'model Decision {\n  weird Unsupported("x")'))).toThrow(/unsupported/);
    expect(() => expectedSchema(source.replace("model Decision {", "model Decision {\n  code String @db.VarChar(10)"))).toThrow(/unsupported attribute/);
  });
});
