import type { Logger } from "@countersign/core";
import type { ServiceDeps } from "@countersign/services";
import type { GatewayEnv } from "./env.ts";
import type { ChatSurface } from "./surface.ts";

/** Builds the chat surfaces the environment configures. */
export async function buildSurfaces(_env: GatewayEnv, _deps: ServiceDeps, _log: Logger): Promise<ChatSurface[]> {
  return [];
}
