import { isIP } from "node:net";
import { bool, DatabaseEnv, type EnvProblem, isOn, parseEnv as parseWith } from "@countersign/config";
import { CallbackAllowSpec, ReceiptKeySpec } from "@countersign/services";
import { z } from "zod";
import { TrustProxySpec } from "./http/rate-limit.ts";

export { EnvError } from "@countersign/config";

// grpc is not shipped (it would pull in @grpc/grpc-js); a collector takes OTLP over HTTP on 4318.
const OtlpProtocol = z.enum(["http/protobuf", "http/json"], {
  error: "must be http/protobuf or http/json (grpc is not supported; use the collector's OTLP/HTTP port, 4318)",
});

/**
 * Every setting the gateway reads, parsed once at boot, before anything opens a database.
 * A bad value stops the process with every problem named; nothing else in the gateway
 * reads process.env.
 */
export const GatewayEnv = z.object({
  NODE_ENV: z.enum(["development", "production", "test"]).default("development"),
  HOST: z
    .string()
    .refine(
      (h) =>
        isIP(h) !== 0 ||
        (!/^[\d.]+$/.test(h) && /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(h)),
      "must be an IP address of this machine (127.0.0.1, 0.0.0.0, ::) or a host name",
    )
    .default("127.0.0.1"),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  ...DatabaseEnv,
  COUNTERSIGN_POLICY_FILE: z.string().optional(),
  COUNTERSIGN_PUBLIC_URL: z.url().optional(),
  COUNTERSIGN_RECEIPT_KEY: ReceiptKeySpec.optional(),
  COUNTERSIGN_RECEIPT_TTL: z.coerce
    .number()
    .int()
    .min(60)
    .max(86400 * 30)
    .default(900),
  COUNTERSIGN_CALLBACK_ALLOW: CallbackAllowSpec.optional(),
  COUNTERSIGN_RATE_LIMIT: z.coerce.number().min(0).default(50),
  COUNTERSIGN_RATE_BURST: z.coerce.number().min(1).default(100),
  COUNTERSIGN_WAIT_RATE_LIMIT: z.coerce.number().min(0).default(20),
  COUNTERSIGN_WAIT_RATE_BURST: z.coerce.number().min(1).default(200),
  COUNTERSIGN_WAIT_MAX_OPEN: z.coerce.number().int().min(0).default(1000),
  COUNTERSIGN_UNAUTH_RATE_LIMIT: z.coerce.number().min(0).default(5),
  COUNTERSIGN_UNAUTH_RATE_BURST: z.coerce.number().min(1).default(20),
  COUNTERSIGN_TRUST_PROXY: TrustProxySpec.optional(),
  COUNTERSIGN_RELAY_POLL_MS: z.coerce.number().int().min(10).max(60_000).default(200),
  COUNTERSIGN_SWEEP_MS: z.coerce.number().int().min(50).max(60_000).default(1000),
  // How often a tool call waiting for approval sends MCP progress, which keeps the client from timing out.
  COUNTERSIGN_MCP_PROGRESS_MS: z.coerce.number().int().min(100).max(60_000).default(15_000),
  // A checkpoint seals new audit events every this many ms, or sooner once this many wait.
  COUNTERSIGN_CHECKPOINT_MS: z.coerce.number().int().min(50).max(60_000).default(1000),
  COUNTERSIGN_CHECKPOINT_MAX_EVENTS: z.coerce.number().int().min(1).max(100_000).default(1000),
  // Test-only: multiplies outbox retry backoff (never Retry-After) so retry schedules run in seconds.
  COUNTERSIGN_RETRY_SCALE: z.coerce.number().positive().max(1).default(1),
  COUNTERSIGN_METRICS_PORT: z.coerce.number().int().min(1).max(65535).optional(),
  COUNTERSIGN_METRICS_PUBLIC: bool.default(false),
  LOG_LEVEL: z.enum(["error", "warn", "info", "debug"]).default("info"),
  LOG_FORMAT: z.enum(["json", "pretty"]).optional(),
  SLACK_BOT_TOKEN: z.string().optional(),
  SLACK_SIGNING_SECRET: z.string().optional(),
  SLACK_APP_TOKEN: z.string().optional(),
  SLACK_API_URL: z.url().optional(),
  TEAMS_APP_ID: z.string().optional(),
  TEAMS_APP_PASSWORD: z.string().optional(),
  TEAMS_APP_TENANT_ID: z.string().optional(),
  TEAMS_APP_TYPE: z.enum(["MultiTenant", "SingleTenant", "UserAssignedMSI"]).optional(),
  TEAMS_OPENID_METADATA_URL: z.url().optional(),
  TEAMS_TOKEN_ISSUER: z.string().optional(),
  TEAMS_LOGIN_URL: z.url().optional(),
  TEAMS_OAUTH_SCOPE: z.string().optional(),
  TEAMS_CALLER_ID: z.string().optional(),
  TEAMS_OAUTH_API_URL: z.url().optional(),
  TEAMS_DEV_NO_AUTH: bool.default(false),
  // OpenTelemetry traces, by the standard variables (tracing.ts). Off unless OTEL_TRACES_EXPORTER
  // or an OTLP endpoint is set; the exporter also reads OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT,
  // _COMPRESSION and OTEL_RESOURCE_ATTRIBUTES itself.
  OTEL_SDK_DISABLED: z.enum(["true", "false", "TRUE", "FALSE", "True", "False"]).optional(),
  OTEL_TRACES_EXPORTER: z
    .string()
    .regex(/^\s*(otlp|console|none)\s*(,\s*(otlp|console|none)\s*)*$/, "must be otlp, console or none (a comma-separated list)")
    .optional(),
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url().optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.url().optional(),
  OTEL_EXPORTER_OTLP_PROTOCOL: OtlpProtocol.optional(),
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: OtlpProtocol.optional(),
  OTEL_SERVICE_NAME: z.string().min(1).optional(),
  OTEL_TRACES_SAMPLER: z
    .enum(["always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"])
    .optional(),
  OTEL_TRACES_SAMPLER_ARG: z.coerce.number().min(0).max(1).optional(),
  OTEL_BSP_SCHEDULE_DELAY: z.coerce.number().int().min(0).optional(),
  OTEL_BSP_EXPORT_TIMEOUT: z.coerce.number().int().min(0).optional(),
  OTEL_BSP_MAX_QUEUE_SIZE: z.coerce.number().int().min(1).optional(),
  OTEL_BSP_MAX_EXPORT_BATCH_SIZE: z.coerce.number().int().min(1).optional(),
});

export type GatewayEnv = z.infer<typeof GatewayEnv>;

/**
 * Rules that relate several variables. They run on the raw values, so a user sees these
 * problems together with any per-variable ones instead of one round at a time.
 */
function crossCheck(e: Record<string, string | undefined>): EnvProblem[] {
  const out: EnvProblem[] = [];
  const on = isOn;
  if (Boolean(e.SLACK_BOT_TOKEN) !== Boolean(e.SLACK_SIGNING_SECRET)) {
    out.push({
      variable: e.SLACK_BOT_TOKEN ? "SLACK_SIGNING_SECRET" : "SLACK_BOT_TOKEN",
      message: "SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET are set together",
    });
  }
  const sovereign = ["TEAMS_OPENID_METADATA_URL", "TEAMS_TOKEN_ISSUER", "TEAMS_LOGIN_URL", "TEAMS_OAUTH_SCOPE", "TEAMS_CALLER_ID", "TEAMS_OAUTH_API_URL"];
  const missing = sovereign.filter((k) => !e[k]);
  if (missing.length > 0 && missing.length < sovereign.length) {
    out.push({ variable: missing[0] as string, message: `sovereign-cloud overrides are all set or none; missing: ${missing.join(", ")}` });
  }
  if (e.COUNTERSIGN_RETRY_SCALE !== undefined && Number(e.COUNTERSIGN_RETRY_SCALE) !== 1 && e.NODE_ENV === "production") {
    out.push({ variable: "COUNTERSIGN_RETRY_SCALE", message: "is a test-only setting and is refused when NODE_ENV=production" });
  }
  if (on(e.TEAMS_DEV_NO_AUTH) && e.NODE_ENV === "production") {
    out.push({ variable: "TEAMS_DEV_NO_AUTH", message: "is refused when NODE_ENV=production" });
  }
  if (e.TEAMS_APP_ID && !e.TEAMS_APP_TYPE) {
    out.push({ variable: "TEAMS_APP_TYPE", message: "is required with TEAMS_APP_ID (MultiTenant, SingleTenant or UserAssignedMSI)" });
  }
  if (e.TEAMS_APP_TYPE === "SingleTenant" && !e.TEAMS_APP_TENANT_ID) {
    out.push({ variable: "TEAMS_APP_TENANT_ID", message: "is required for a SingleTenant app" });
  }
  return out;
}

export function parseEnv(source: Record<string, string | undefined>): GatewayEnv {
  return parseWith(GatewayEnv, source, crossCheck);
}
