import type { Logger } from "@countersign/core";
import type { ServiceDeps } from "@countersign/services";
import type { GatewayEnv } from "./env.ts";
import { createSlackSurface } from "./slack/surface.ts";
import type { ChatSurface } from "./surface.ts";
import { buildTeamsSurface } from "./teams/index.ts";

/** Builds the chat surfaces the environment configures. */
export async function buildSurfaces(env: GatewayEnv, deps: ServiceDeps, log: Logger): Promise<ChatSurface[]> {
  const surfaces: ChatSurface[] = [];
  if (env.SLACK_BOT_TOKEN && env.SLACK_SIGNING_SECRET) {
    surfaces.push(
      createSlackSurface(
        { botToken: env.SLACK_BOT_TOKEN, signingSecret: env.SLACK_SIGNING_SECRET, appToken: env.SLACK_APP_TOKEN, apiUrl: env.SLACK_API_URL },
        deps,
        log,
      ),
    );
  }
  const teams = buildTeamsSurface(env, deps, log);
  if (teams) surfaces.push(teams);
  return surfaces;
}
