import { join, resolve } from "node:path";
import type { Command } from "commander";
import type { CliEnv } from "./env.ts";
import { CliError } from "./errors.ts";

/**
 * `countersign receipts rotate-key`: adds a new receipt signing key to the key ring in
 * the data directory and retires the current one. Retired keys stay in the JWKS (the
 * audit checkpoints they signed must keep verifying); restart the gateway to start
 * signing with the new key.
 */
export function registerReceiptCommands(program: Command, env: () => Promise<CliEnv>): void {
  const receipts = program.command("receipts").description("manage approval receipt signing keys");
  receipts
    .command("rotate-key")
    .description("add a new Ed25519 signing key and retire the current one (restart the gateway afterwards)")
    .option("--json", "print JSON")
    .action(async (o: { json?: boolean }) => {
      const e = await env();
      if (e.COUNTERSIGN_RECEIPT_KEY) {
        throw new CliError("COUNTERSIGN_RECEIPT_KEY is set, so the key comes from the environment: rotate it there");
      }
      const file = join(resolve(e.COUNTERSIGN_DATA_DIR), "receipt-keys.json");
      const { rotateReceiptKey } = await import("@countersign/services");
      const kid = await rotateReceiptKey(file);
      if (o.json) process.stdout.write(`${JSON.stringify({ kid, file })}\n`);
      else process.stdout.write(`new receipt key ${kid} in ${file}; restart the gateway to sign with it\n`);
    });
}
