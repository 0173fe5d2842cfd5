import type { Logger } from "@countersign/core";
import { chatCards, type ServiceDeps, teamsConversations } from "@countersign/services";
import { ConfigurationBotFrameworkAuthentication } from "botbuilder";
import type { GatewayEnv } from "../env.ts";
import type { ChatSurface } from "../surface.ts";
import { CountersignTeamsBot } from "./bot.ts";
import { teamsSettings } from "./config.ts";
import { ClientCredentialsFactory } from "./credentials.ts";
import { TeamsIdentity } from "./identity.ts";
import { TeamsMessenger, teamsJobHandlers } from "./jobs.ts";
import { GatewayCloudAdapter, teamsRoute } from "./route.ts";

export const TEAMS_ENDPOINT = "/api/messages";

/**
 * The Microsoft Teams surface: botbuilder's CloudAdapter on POST /api/messages, plus the
 * outbox handlers that post and update cards. Null when Teams is not configured.
 */
export function buildTeamsSurface(env: GatewayEnv, deps: ServiceDeps, log: Logger): ChatSurface | null {
  const settings = teamsSettings(env);
  if (!settings) return null;
  const teamsLog = log.child({ component: "teams" });

  if (settings.mode === "emulator") {
    teamsLog.warn(
      "TEAMS_DEV_NO_AUTH=true: Bot Framework Emulator mode. /api/messages accepts UNAUTHENTICATED activities, so anyone who can reach it " +
        "can approve as any reviewer. Use it only on a development machine; it is refused when NODE_ENV=production.",
    );
  }
  if (settings.testCredentials) {
    teamsLog.warn("TEAMS_LOGIN_URL is a plain-http loopback endpoint: outbound Bot Framework tokens come from it (test-only setting)");
  }

  const auth = settings.testCredentials
    ? new ConfigurationBotFrameworkAuthentication(settings.botConfig, new ClientCredentialsFactory(settings.appId, settings.appPassword))
    : new ConfigurationBotFrameworkAuthentication(settings.botConfig);
  const adapter = new GatewayCloudAdapter(auth);
  const cards = chatCards(deps.db);
  const conversations = teamsConversations(deps.db);
  const identity = new TeamsIdentity(log, { emulator: settings.mode === "emulator" });
  const bot = new CountersignTeamsBot({ deps, log, identity, conversations, cards });
  const messenger = new TeamsMessenger(adapter, settings.appId);

  teamsLog.info("Microsoft Teams is enabled", {
    endpoint: TEAMS_ENDPOINT,
    appId: settings.appId || null,
    appType: settings.appType ?? null,
    tenant: settings.tenantId ?? "any",
    cloud: settings.sovereign ? "custom endpoints (TEAMS_OPENID_METADATA_URL...)" : "public",
  });

  return {
    name: "teams",
    mount: { path: TEAMS_ENDPOINT, router: teamsRoute({ adapter, bot, tenantId: settings.tenantId, log }) },
    handlers: teamsJobHandlers({ messenger, cards, conversations, log }),
  };
}
