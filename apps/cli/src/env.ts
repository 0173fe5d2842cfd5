import { bool, DatabaseEnv, parseEnv } from "@countersign/config";
import { CallbackAllowSpec, ReceiptKeySpec } from "@countersign/services/env-specs";
import { z } from "zod";

/**
 * Every setting the CLI reads, parsed once before a command opens anything. It shares the
 * database variables with the gateway, so both find the same data.
 */
export const CliEnv = z.object({
  ...DatabaseEnv,
  COUNTERSIGN_POLICY_FILE: z.string().optional(),
  COUNTERSIGN_RECEIPT_KEY: ReceiptKeySpec.optional(),
  COUNTERSIGN_CALLBACK_ALLOW: CallbackAllowSpec.optional(),
  // Checked by `teams package`, which explains what each must be.
  COUNTERSIGN_PUBLIC_URL: z.string().optional(),
  TEAMS_APP_ID: z.string().optional(),
  // Whether Slack and Teams are configured, as the gateway decides it: `policy check` warns
  // about channels the gateway could not reach.
  SLACK_BOT_TOKEN: z.string().optional(),
  TEAMS_DEV_NO_AUTH: bool.default(false),
});
export type CliEnv = z.infer<typeof CliEnv>;

export function parseCliEnv(source: Record<string, string | undefined>): CliEnv {
  return parseEnv(CliEnv, source);
}
