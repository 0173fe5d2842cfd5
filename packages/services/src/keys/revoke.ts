import { CountersignError } from "@countersign/core";
import { appendAudit } from "../audit/append.ts";
import { type ServiceCall, withTransaction } from "../context.ts";
import { finishRequest } from "../requests/finish.ts";
import { lockRequest } from "../requests/lock.ts";
import { type ApiKeyView, keyView, requireKeyAdmin } from "./view.ts";

/**
 * Revokes a key. Its pending requests are cancelled in the same transaction (audited as
 * `request.cancelled` with reason `key_revoked`), so nothing a revoked agent asked for can
 * still be approved, and no receipt is ever handed to it.
 */
export async function revokeKey({ ctx, input }: ServiceCall<{ id: string }>): Promise<ApiKeyView & { cancelledRequests: number }> {
  requireKeyAdmin(ctx.actor);
  const now = ctx.deps.clock();
  const ref = input.id;
  return withTransaction(ctx, async (tctx) => {
    const { tx } = tctx;
    const row = await tx.apiKey.findFirst({ where: { OR: [{ id: ref }, { prefix: ref }] } });
    if (!row) throw new CountersignError("not_found", `no API key ${ref}`);
    if (row.revokedAt) return { ...keyView(row), cancelledRequests: 0 };
    const updated = await tx.apiKey.update({ where: { id: row.id }, data: { revokedAt: now } });
    await appendAudit(tx, { type: "key.revoked", requestId: null, actor: ctx.actor, data: { keyId: row.id, name: row.name } }, now);
    const pending = await tx.approvalRequest.findMany({ where: { apiKeyId: row.id, status: "pending" }, select: { id: true }, orderBy: { id: "asc" } });
    let cancelled = 0;
    for (const { id } of pending) {
      // Locked one at a time, in id order, like every other writer of a request.
      const r = await lockRequest(tx, id);
      if (r?.status !== "pending") continue;
      await finishRequest({
        ctx: tctx,
        input: { row: r, to: "cancelled", resolution: "key_revoked", now, auditData: { reason: "key_revoked", keyId: row.id } },
      });
      cancelled++;
    }
    return { ...keyView(updated), cancelledRequests: cancelled };
  });
}
