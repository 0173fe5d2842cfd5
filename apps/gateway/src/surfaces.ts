import type { Logger } from "@countersign/core";
import type { ServiceDeps } from "@countersign/services";
import type { GatewayEnv } from "./env.ts";
import type { ChatSurface } from "./surface.ts";
import { teamsSettings } from "./teams/config.ts";

/**
 * Builds the chat surfaces the environment configures. Bolt and botbuilder are imported
 * only for a surface that is configured: together they are most of an idle gateway's heap.
 */
export async function buildSurfaces(env: GatewayEnv, deps: ServiceDeps, log: Logger): Promise<ChatSurface[]> {
  const surfaces: ChatSurface[] = [];
  if (env.SLACK_BOT_TOKEN && env.SLACK_SIGNING_SECRET) {
    const { createSlackSurface } = await import("./slack/surface.ts");
    surfaces.push(
      createSlackSurface(
        { botToken: env.SLACK_BOT_TOKEN, signingSecret: env.SLACK_SIGNING_SECRET, appToken: env.SLACK_APP_TOKEN, apiUrl: env.SLACK_API_URL },
        deps,
        log,
      ),
    );
  }
  if (teamsSettings(env)) {
    const { buildTeamsSurface } = await import("./teams/index.ts");
    const teams = buildTeamsSurface(env, deps, log);
    if (teams) surfaces.push(teams);
  }
  return surfaces;
}
