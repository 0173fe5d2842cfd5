import type { Command } from "commander";
import type { CliEnv } from "./env.ts";

// Definitions only: the actions (Prisma, the services, zlib) load when one runs.
const actions = () => import("./db-actions.ts");

export function registerDbCommands(program: Command, env: () => Promise<CliEnv>): void {
  program
    .command("backup")
    .description("write a consistent snapshot of every table (and the receipt key ring) to a file, while the gateway runs")
    .requiredOption("--out <file>", "the backup file to write (gzip'd JSON Lines; it holds the receipt signing keys, so keep it like the data directory)")
    .option("--json", "print JSON")
    .action(async (o: { out: string; json?: boolean }) => (await actions()).backup(o, await env()));

  program
    .command("restore <file>")
    .description("load a backup into an empty database: a new embedded data directory, or an empty DATABASE_URL")
    .option("--json", "print JSON")
    .action(async (file: string, o: { json?: boolean }) => (await actions()).restore(file, o, await env()));

  const db = program.command("db").description("move the data between databases");
  db.command("copy")
    .description(
      "copy everything from this database (the embedded one unless DATABASE_URL is set) into an empty PostgreSQL database, verifying the audit log before and after",
    )
    .requiredOption("--to <url>", "the target: postgres://user@host:port/database (must be empty; it is migrated first)")
    .option("--json", "print JSON")
    .action(async (o: { to: string; json?: boolean }) => (await actions()).copy(o, await env()));
}
