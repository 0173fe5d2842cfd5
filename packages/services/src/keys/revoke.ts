import { CountersignError } from "@countersign/core";
import { appendAudit } from "../audit/append.ts";
import { type ServiceCall, withTransaction } from "../context.ts";
import { type ApiKeyView, keyView, requireKeyAdmin } from "./view.ts";

export async function revokeKey({ ctx, input }: ServiceCall<{ id: string }>): Promise<ApiKeyView> {
  requireKeyAdmin(ctx.actor);
  const now = ctx.deps.clock();
  const ref = input.id;
  return withTransaction(ctx, async ({ tx }) => {
    const row = await tx.apiKey.findFirst({ where: { OR: [{ id: ref }, { prefix: ref }] } });
    if (!row) throw new CountersignError("not_found", `no API key ${ref}`);
    if (row.revokedAt) return keyView(row);
    const updated = await tx.apiKey.update({ where: { id: row.id }, data: { revokedAt: now } });
    await appendAudit(tx, { type: "key.revoked", requestId: null, actor: ctx.actor, data: { keyId: row.id, name: row.name } }, now);
    return keyView(updated);
  });
}
