import { DEFAULT_MAX_UNSEALED_AGE_MS } from "@countersign/core/constants";
import type { Command } from "commander";
import type { JSONWebKeySet } from "jose";
import type { WithAdmin } from "./audit-actions.ts";

// The commands' definitions only: their actions (and the verifier they need) load when one runs.
const actions = () => import("./audit-actions.ts");

export function registerAuditCommands(program: Command, withAdmin: WithAdmin, localJwks: () => Promise<JSONWebKeySet>): void {
  const audit = program.command("audit").description("export, anchor and verify the tamper-evident audit log");
  audit
    .command("export")
    .description("write the audit log as JSON Lines: each checkpoint's events then the checkpoint, then the unsealed events")
    .option("--since <checkpoint>", "only what follows this checkpoint (verify such a tail with --tail)", "0")
    .option("--out <file>", "write to a file instead of stdout")
    .option("--json", "accepted for symmetry with the other commands: the export is always JSON Lines")
    .action(async (o: { since: string; out?: string }) => (await actions()).auditExport(o, withAdmin));

  audit
    .command("anchor")
    .description("print the newest checkpoint, or keep it somewhere the gateway's operator cannot rewrite")
    .option("--append <file>", "append it to this file (one JSON line per anchor)")
    .option("--post <url>", "POST it as JSON to this URL")
    .option("--json", "print the anchor as JSON (what is appended or posted)")
    .action(async (o: { append?: string; post?: string; json?: boolean }) => (await actions()).auditAnchor(o, withAdmin));

  audit
    .command("verify")
    .description("check every chain, checkpoint signature and root, sealing and the state tables (database, or --file) and name the first problem")
    .option("--file <file>", "verify an export instead of the database")
    .option("--jwks <file-or-url>", "trust these keys for checkpoint signatures (default: the gateway's key ring in the data directory)")
    .option("--anchor <file>", "also prove that the log still contains every checkpoint in this anchor file, unchanged")
    .option("--tail", "the --file is an export made with --since: trust where it starts")
    .option("--max-unsealed-age <duration>", "how long an event may stay unsealed before that is reported", `${DEFAULT_MAX_UNSEALED_AGE_MS / 1000}s`)
    .option("--json", "print JSON")
    .action(async (o: { file?: string; jwks?: string; anchor?: string; tail?: boolean; maxUnsealedAge: string; json?: boolean }) =>
      (await actions()).auditVerify(o, withAdmin, localJwks),
    );
}
