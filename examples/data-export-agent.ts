/**
 * A plain TypeScript agent that exports a database table, but only after a human has
 * approved exactly that export in Countersign.
 *
 *   export COUNTERSIGN_URL=http://127.0.0.1:8080
 *   export COUNTERSIGN_API_KEY=cs_...        # a key with the "requests" scope
 *   pnpm tsx --tsconfig examples/tsconfig.json examples/data-export-agent.ts customers ./customers.csv
 *
 * While it waits, approve (or deny) the request through the API with a reviewer key, in
 * Slack or in Teams. The export runs only once approved, with the params the signed
 * receipt covers. Exit codes: 0 exported, 2 denied, 3 expired/cancelled/timed out.
 */
import { writeFile } from "node:fs/promises";
import { ApprovalDeniedError, ApprovalError, Countersign } from "@countersign/sdk";

interface ExportParams {
  table: string;
  format: "csv";
  destination: string;
}

// Stand-in for the real database.
const TABLES: Record<string, Record<string, string | number>[]> = {
  customers: [
    { id: 1, name: "Ada Lovelace", email: "ada@example.com" },
    { id: 2, name: "Grace Hopper", email: "grace@example.com" },
  ],
  invoices: [{ id: 10, customer: 1, total: 1250 }],
};

/** The privileged action. Nothing calls it except the guard below, after approval. */
async function exportTable(p: ExportParams): Promise<number> {
  const rows = TABLES[p.table];
  if (!rows) throw new Error(`no table ${p.table}`);
  const header = Object.keys(rows[0] ?? {});
  const csv = [header.join(","), ...rows.map((r) => header.map((h) => String(r[h] ?? "")).join(","))].join("\n");
  await writeFile(p.destination, `${csv}\n`);
  return rows.length;
}

const apiKey = process.env.COUNTERSIGN_API_KEY;
if (!apiKey) {
  console.error("set COUNTERSIGN_API_KEY to an API key with the requests scope");
  process.exit(64);
}
const cs = new Countersign({ baseUrl: process.env.COUNTERSIGN_URL ?? "http://127.0.0.1:8080", apiKey });

// Every call asks first: params = the call's argument, and exportTable runs only when approved.
const guardedExport = cs.guard(
  "data.export",
  async (p: ExportParams, approval) => {
    const by = approval.receipt.approvers.map((a) => `${a.principal} (${a.surface})`).join(", ") || `policy rule ${approval.receipt.rule}`;
    console.log(`approved by ${by}; receipt ${approval.receipt.jti}`);
    return exportTable(p);
  },
  {
    summary: (p) => `Export the ${p.table} table as ${p.format.toUpperCase()}`,
    resource: (p) => `db/${p.table}`,
    environment: "production",
    risk: "high",
    rationale: "Quarterly reconciliation requested by finance",
    timeoutMs: Number(process.env.COUNTERSIGN_TIMEOUT_MS ?? 15 * 60_000),
    onSubmitted: (r) => console.log(`waiting for approval of ${r.id} (${cs.baseUrl}${r.links.self})`),
  },
);

const [table = "customers", destination = `./${table}.csv`] = process.argv.slice(2);
try {
  const rows = await guardedExport({ table, format: "csv", destination });
  console.log(`exported ${rows} rows to ${destination}`);
} catch (e) {
  if (e instanceof ApprovalDeniedError) {
    console.error(`not exported: ${e.message}`);
    process.exit(2);
  }
  if (e instanceof ApprovalError) {
    console.error(`not exported: ${e.message}`);
    process.exit(3);
  }
  throw e;
}
