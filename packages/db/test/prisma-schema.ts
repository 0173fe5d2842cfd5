/**
 * Derives the PostgreSQL shape that `prisma migrate` would create from schema.prisma:
 * tables, columns (type, nullability, default), enums, indexes and unique constraints,
 * and foreign keys, named the way Prisma names them. `@prisma/internals` (getDMMF) is not
 * installed here, so this reads the schema file itself. It supports the subset of the
 * Prisma schema language this project uses and throws on anything else, so a new
 * construct makes the drift test fail loudly instead of being silently ignored.
 */

export interface ExpectedColumn {
  /** information_schema data_type, or `USER-DEFINED`/`ARRAY` with `udt` for enums and lists. */
  type: string;
  udt: string;
  nullable: boolean;
  /** Normalised column default, or null. */
  default: string | null;
}

export interface ExpectedIndex {
  table: string;
  columns: string[];
  unique: boolean;
  primary: boolean;
}

export interface ExpectedForeignKey {
  table: string;
  columns: string[];
  refTable: string;
  refColumns: string[];
  onDelete: string;
  onUpdate: string;
}

export interface ExpectedSchema {
  tables: Record<string, Record<string, ExpectedColumn>>;
  enums: Record<string, string[]>;
  indexes: Record<string, ExpectedIndex>;
  foreignKeys: Record<string, ExpectedForeignKey>;
}

interface Field {
  name: string;
  type: string;
  list: boolean;
  optional: boolean;
  attrs: string;
}

interface Block {
  kind: "model" | "enum";
  name: string;
  lines: string[];
}

const SCALARS: Record<string, { type: string; udt: string }> = {
  String: { type: "text", udt: "text" },
  Int: { type: "integer", udt: "int4" },
  BigInt: { type: "bigint", udt: "int8" },
  Float: { type: "double precision", udt: "float8" },
  Boolean: { type: "boolean", udt: "bool" },
  DateTime: { type: "timestamp without time zone", udt: "timestamp" },
  Json: { type: "jsonb", udt: "jsonb" },
  Bytes: { type: "bytea", udt: "bytea" },
};

const ACTIONS: Record<string, string> = { Cascade: "CASCADE", Restrict: "RESTRICT", NoAction: "NO ACTION", SetNull: "SET NULL", SetDefault: "SET DEFAULT" };

function stripComment(line: string): string {
  // No string literal in this schema contains "//"; a quoted one would be rejected below.
  const i = line.indexOf("//");
  return (i >= 0 ? line.slice(0, i) : line).trim();
}

function blocks(source: string): Block[] {
  const out: Block[] = [];
  let cur: Block | null = null;
  for (const raw of source.split("\n")) {
    const line = stripComment(raw);
    if (!line) continue;
    if (!cur) {
      const m = /^(model|enum|generator|datasource|view|type)\s+(\w+)\s*\{$/.exec(line);
      if (!m) throw new Error(`schema.prisma: unexpected line outside a block: ${line}`);
      if (m[1] === "view" || m[1] === "type") throw new Error(`schema.prisma: ${m[1]} blocks are not supported by the drift test`);
      cur = { kind: m[1] === "enum" ? "enum" : "model", name: m[2] as string, lines: [] };
      if (m[1] === "generator" || m[1] === "datasource") cur = { kind: "model", name: `__${m[1]}`, lines: [] };
      continue;
    }
    if (line === "}") {
      if (!cur.name.startsWith("__")) out.push(cur);
      cur = null;
      continue;
    }
    cur.lines.push(line);
  }
  if (cur) throw new Error("schema.prisma: unterminated block");
  return out;
}

/** Finds `@name(...)` (balanced parentheses) in an attribute string. */
function attrArgs(attrs: string, name: string): string | undefined {
  const re = new RegExp(`${name.replace(/[@.]/g, (c) => `\\${c}`)}(?![\\w.])`);
  const m = re.exec(attrs);
  if (!m) return undefined;
  let i = m.index + m[0].length;
  if (attrs[i] !== "(") return "";
  let depth = 0;
  const start = i + 1;
  for (; i < attrs.length; i++) {
    if (attrs[i] === "(") depth++;
    else if (attrs[i] === ")" && --depth === 0) return attrs.slice(start, i);
  }
  throw new Error(`schema.prisma: unbalanced parentheses in ${attrs}`);
}

function listArg(args: string, key?: string): string[] | undefined {
  const m = key ? new RegExp(`${key}\\s*:\\s*\\[([^\\]]*)\\]`).exec(args) : /^\s*\[([^\]]*)\]/.exec(args);
  return m
    ? (m[1] as string)
        .split(",")
        .map((s) => s.trim().replace(/\(.*\)$/, ""))
        .filter(Boolean)
    : undefined;
}

function namedArg(args: string, key: string): string | undefined {
  const m = new RegExp(`${key}\\s*:\\s*("([^"]*)"|\\w+)`).exec(args);
  return m ? (m[2] ?? m[1]) : undefined;
}

export function expectedSchema(source: string): ExpectedSchema {
  const all = blocks(source);
  const enumNames = new Set(all.filter((b) => b.kind === "enum").map((b) => b.name));
  const modelNames = new Set(all.filter((b) => b.kind === "model").map((b) => b.name));
  const result: ExpectedSchema = { tables: {}, enums: {}, indexes: {}, foreignKeys: {} };

  for (const b of all.filter((x) => x.kind === "enum")) {
    result.enums[b.name] = b.lines.map((l) => {
      if (!/^\w+$/.test(l)) throw new Error(`schema.prisma: enum ${b.name}: unsupported member "${l}"`);
      return l;
    });
  }

  // Table and column names first: relations refer to other models' columns.
  const tableOf = new Map<string, string>();
  const fieldsOf = new Map<string, Field[]>();
  const blockAttrs = new Map<string, string[]>();
  for (const b of all.filter((x) => x.kind === "model")) {
    const fields: Field[] = [];
    const attrs: string[] = [];
    for (const l of b.lines) {
      if (l.startsWith("@@")) {
        attrs.push(l);
        continue;
      }
      const m = /^(\w+)\s+(\w+)(\[\])?(\?)?\s*(.*)$/.exec(l);
      if (!m) throw new Error(`schema.prisma: model ${b.name}: cannot read field "${l}"`);
      fields.push({ name: m[1] as string, type: m[2] as string, list: Boolean(m[3]), optional: Boolean(m[4]), attrs: m[5] ?? "" });
    }
    const map = attrs.map((a) => attrArgs(a, "@@map")).find((x) => x !== undefined);
    tableOf.set(b.name, map ? (JSON.parse(map.trim()) as string) : b.name);
    fieldsOf.set(b.name, fields);
    blockAttrs.set(b.name, attrs);
  }
  const columnOf = (model: string, field: string): string => {
    const f = fieldsOf.get(model)?.find((x) => x.name === field);
    if (!f) throw new Error(`schema.prisma: ${model}.${field} does not exist`);
    const map = attrArgs(f.attrs, "@map");
    return map ? (JSON.parse(map.trim()) as string) : f.name;
  };

  for (const [model, fields] of fieldsOf) {
    const table = tableOf.get(model) as string;
    const columns: Record<string, ExpectedColumn> = {};
    for (const f of fields) {
      if (modelNames.has(f.type)) {
        // A relation field: no column of its own, but the side with `fields:` owns a foreign key.
        const rel = attrArgs(f.attrs, "@relation");
        const from = rel !== undefined ? listArg(rel, "fields") : undefined;
        if (rel !== undefined && from) {
          const to = listArg(rel, "references");
          if (!to) throw new Error(`schema.prisma: ${model}.${f.name}: @relation without references`);
          const cols = from.map((x) => columnOf(model, x));
          const optional = from.some((x) => fieldsOf.get(model)?.find((y) => y.name === x)?.optional);
          const name = namedArg(rel, "map") ?? `${table}_${cols.join("_")}_fkey`;
          result.foreignKeys[name] = {
            table,
            columns: cols,
            refTable: tableOf.get(f.type) as string,
            refColumns: to.map((x) => columnOf(f.type, x)),
            onDelete: ACTIONS[namedArg(rel, "onDelete") ?? (optional ? "SetNull" : "Restrict")] as string,
            onUpdate: ACTIONS[namedArg(rel, "onUpdate") ?? "Cascade"] as string,
          };
        }
        continue;
      }
      const col = columnOf(model, f.name);
      const unknownAttr = f.attrs.replace(/@(id|unique|updatedAt|map|default|relation)(\((?:[^()]|\([^()]*\))*\))?/g, "").trim();
      if (unknownAttr) throw new Error(`schema.prisma: ${model}.${f.name}: unsupported attribute "${unknownAttr}" (add it to the drift test)`);
      const base = enumNames.has(f.type) ? { type: "USER-DEFINED", udt: f.type } : SCALARS[f.type];
      if (!base) throw new Error(`schema.prisma: ${model}.${f.name}: unsupported type ${f.type}`);
      const type = f.list ? { type: "ARRAY", udt: `_${base.udt}` } : base;
      const def = attrArgs(f.attrs, "@default");
      let defaultSql: string | null = null;
      if (def !== undefined) {
        const d = def.trim();
        if (d === "now()") defaultSql = "CURRENT_TIMESTAMP";
        else if (d === "autoincrement()") defaultSql = `nextval('${table}_${col}_seq'::regclass)`;
        else if (/^-?\d+(\.\d+)?$/.test(d)) defaultSql = d;
        else if (d === "true" || d === "false") defaultSql = d;
        else if (/^"[^"]*"$/.test(d)) defaultSql = `'${JSON.parse(d)}'::text`;
        else if (enumNames.has(f.type) && result.enums[f.type]?.includes(d)) defaultSql = `'${d}'::"${f.type}"`;
        else throw new Error(`schema.prisma: ${model}.${f.name}: unsupported default ${d}`);
      }
      // Prisma never puts NOT NULL on scalar lists in PostgreSQL.
      columns[col] = { ...type, nullable: f.optional || f.list, default: defaultSql };
      if (/@id(?!\w)/.test(f.attrs)) result.indexes[`${table}_pkey`] = { table, columns: [col], unique: true, primary: true };
      if (/@unique(?!\w)/.test(f.attrs)) {
        const args = attrArgs(f.attrs, "@unique");
        result.indexes[(args && namedArg(args, "map")) || `${table}_${col}_key`] = { table, columns: [col], unique: true, primary: false };
      }
    }
    for (const a of blockAttrs.get(model) ?? []) {
      const kind = /^@@(\w+)/.exec(a)?.[1];
      if (kind === "map") continue;
      const args = attrArgs(a, `@@${kind}`);
      const fieldList = args === undefined ? undefined : (listArg(args) ?? listArg(args, "fields"));
      if (!fieldList) throw new Error(`schema.prisma: ${model}: unsupported block attribute ${a}`);
      const cols = fieldList.map((x) => columnOf(model, x));
      const custom = namedArg(args as string, "map") ?? namedArg(args as string, "name");
      if (kind === "id") result.indexes[`${table}_pkey`] = { table, columns: cols, unique: true, primary: true };
      else if (kind === "unique") result.indexes[custom ?? `${table}_${cols.join("_")}_key`] = { table, columns: cols, unique: true, primary: false };
      else if (kind === "index") result.indexes[custom ?? `${table}_${cols.join("_")}_idx`] = { table, columns: cols, unique: false, primary: false };
      else throw new Error(`schema.prisma: ${model}: unsupported block attribute ${a}`);
    }
    result.tables[table] = columns;
  }
  return result;
}
