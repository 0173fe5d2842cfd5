import type { ServiceCall } from "../context.ts";
import { type ApiKeyView, keyView, requireKeyAdmin } from "./view.ts";

export async function listKeys({ ctx }: ServiceCall<void>): Promise<ApiKeyView[]> {
  requireKeyAdmin(ctx.actor);
  const rows = await ctx.deps.db.prisma.apiKey.findMany({ orderBy: { createdAt: "asc" } });
  return rows.map(keyView);
}
