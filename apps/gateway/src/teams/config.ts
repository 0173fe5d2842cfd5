import { EnvError, type EnvProblem } from "@countersign/config";
import type { GatewayEnv } from "../env.ts";

export interface TeamsSettings {
  /** "emulator": TEAMS_DEV_NO_AUTH, no app id and no JWT checks. */
  mode: "bot" | "emulator";
  /** Empty in emulator mode. */
  appId: string;
  appType: GatewayEnv["TEAMS_APP_TYPE"] | undefined;
  /** Activities from any other tenant are refused; null accepts every tenant. */
  tenantId: string | null;
  /** True when the sovereign-cloud overrides are in force. */
  sovereign: boolean;
  /** True when outbound tokens come from a plain-http loopback login endpoint (tests only). */
  testCredentials: boolean;
  /** botbuilder's configuration keys; teams/index.ts turns them into its authentication (botbuilder loads only then). */
  botConfig: Record<string, string>;
  /** Only for testCredentials: the bot's client secret, used against the loopback login endpoint. */
  appPassword: string;
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

/**
 * The Teams part of the configuration, checked beyond what env.ts can see on its own.
 * Returns null when Teams is not configured. Problems throw EnvError, which the gateway
 * prints as one message before exiting.
 */
export function teamsSettings(env: GatewayEnv): TeamsSettings | null {
  if (!env.TEAMS_APP_ID && !env.TEAMS_DEV_NO_AUTH) return null;
  const problems: EnvProblem[] = [];
  const production = env.NODE_ENV === "production";

  for (const key of ["TEAMS_OPENID_METADATA_URL", "TEAMS_LOGIN_URL", "TEAMS_OAUTH_API_URL"] as const) {
    const v = env[key];
    if (!v) continue;
    const u = new URL(v);
    if (u.protocol === "https:") continue;
    if (u.protocol !== "http:" || !LOOPBACK.has(u.hostname)) problems.push({ variable: key, message: "must be an https URL" });
    else if (production) problems.push({ variable: key, message: "a plain-http loopback endpoint is for tests only and is refused when NODE_ENV=production" });
  }

  if (env.TEAMS_DEV_NO_AUTH) {
    if (env.TEAMS_APP_ID)
      problems.push({
        variable: "TEAMS_DEV_NO_AUTH",
        message: "cannot be combined with TEAMS_APP_ID (emulator mode runs with no app id and no authentication)",
      });
  } else if (env.TEAMS_APP_TYPE === "UserAssignedMSI") {
    if (env.TEAMS_APP_PASSWORD)
      problems.push({ variable: "TEAMS_APP_PASSWORD", message: "must not be set for a UserAssignedMSI app (the managed identity signs in)" });
    if (!env.TEAMS_APP_TENANT_ID) problems.push({ variable: "TEAMS_APP_TENANT_ID", message: "is required for a UserAssignedMSI app" });
  } else if (!env.TEAMS_APP_PASSWORD) {
    problems.push({ variable: "TEAMS_APP_PASSWORD", message: `is required for a ${env.TEAMS_APP_TYPE ?? "MultiTenant"} app (the bot's client secret)` });
  }
  if (problems.length) throw new EnvError(problems);

  const emulator = env.TEAMS_DEV_NO_AUTH;
  const appId = emulator ? "" : (env.TEAMS_APP_ID ?? "");
  const sovereign = Boolean(env.TEAMS_OPENID_METADATA_URL);
  const testCredentials = !emulator && Boolean(env.TEAMS_LOGIN_URL?.startsWith("http:"));

  const config: Record<string, string> = {
    MicrosoftAppId: appId,
    ...(emulator ? {} : { MicrosoftAppType: env.TEAMS_APP_TYPE ?? "MultiTenant" }),
    ...(!emulator && env.TEAMS_APP_PASSWORD ? { MicrosoftAppPassword: env.TEAMS_APP_PASSWORD } : {}),
    ...(!emulator && env.TEAMS_APP_TENANT_ID ? { MicrosoftAppTenantId: env.TEAMS_APP_TENANT_ID } : {}),
  };
  // All six overrides or none (env.ts enforces it); with them botbuilder uses exactly these
  // endpoints and no public-cloud defaults.
  if (sovereign) {
    Object.assign(config, {
      ToBotFromChannelOpenIdMetadataUrl: env.TEAMS_OPENID_METADATA_URL,
      ToBotFromChannelTokenIssuer: env.TEAMS_TOKEN_ISSUER,
      ToChannelFromBotLoginUrl: env.TEAMS_LOGIN_URL,
      ToChannelFromBotOAuthScope: env.TEAMS_OAUTH_SCOPE,
      CallerId: env.TEAMS_CALLER_ID,
      OAuthUrl: env.TEAMS_OAUTH_API_URL,
    });
  }
  const tenantId = env.TEAMS_APP_TENANT_ID ?? null;
  return {
    mode: emulator ? "emulator" : "bot",
    appId,
    appType: env.TEAMS_APP_TYPE,
    tenantId,
    sovereign,
    testCredentials,
    botConfig: config,
    appPassword: env.TEAMS_APP_PASSWORD ?? "",
  };
}
