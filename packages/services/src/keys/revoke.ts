import { CountersignError } from "@countersign/core";
import { appendAudit } from "../audit/append.ts";
import { type ServiceCall, type ServiceCtx, withTransaction } from "../context.ts";
import { finishRequest } from "../requests/finish.ts";
import { lockRequest } from "../requests/lock.ts";
import { type ApiKeyView, keyView, requireKeyAdmin } from "./view.ts";

/**
 * Revokes a key, then cancels its pending requests (each audited as `request.cancelled`
 * with reason `key_revoked`), so nothing a revoked agent asked for can still be approved
 * and no receipt is ever handed to it. The revocation commits on its own first: it
 * always succeeds, however many requests the key has. Each cancellation is then its own
 * short transaction that locks the request before it writes, in the same order as every
 * other writer. A request caught in between is already out of reach: decide, redeem and
 * the key's own reads refuse a revoked key's requests, and createRequest refuses the key.
 */
export async function revokeKey({ ctx, input }: ServiceCall<{ id: string }>): Promise<ApiKeyView & { cancelledRequests: number }> {
  requireKeyAdmin(ctx.actor);
  const now = ctx.deps.clock();
  const ref = input.id;
  const revoked = await withTransaction(ctx, async ({ tx }) => {
    const row = await tx.apiKey.findFirst({ where: { OR: [{ id: ref }, { prefix: ref }] } });
    if (!row) throw new CountersignError("not_found", `no API key ${ref}`);
    // Conditional, so two concurrent revocations write (and audit) once.
    const changed = await tx.apiKey.updateMany({ where: { id: row.id, revokedAt: null }, data: { revokedAt: now } });
    if (changed.count === 0) return { row: await tx.apiKey.findUniqueOrThrow({ where: { id: row.id } }), fresh: false };
    await appendAudit(tx, { type: "key.revoked", requestId: null, actor: ctx.actor, data: { keyId: row.id, name: row.name } }, now);
    return { row: { ...row, revokedAt: now }, fresh: true };
  });
  const cancelled = await cancelPendingOf(ctx, revoked.row.id, now);
  return { ...keyView(revoked.row), cancelledRequests: cancelled };
}

/** Cancels a revoked key's pending requests, one short transaction each. Safe to run again. */
export async function cancelPendingOf(ctx: ServiceCtx, keyId: string, now: Date): Promise<number> {
  const pending = await ctx.deps.db.prisma.approvalRequest.findMany({
    where: { apiKeyId: keyId, status: "pending" },
    select: { id: true },
    orderBy: { id: "asc" },
  });
  let cancelled = 0;
  for (const { id } of pending) {
    const done = await withTransaction(ctx, async (tctx) => {
      const r = await lockRequest(tctx.tx, id);
      if (r?.status !== "pending") return false;
      await finishRequest({ ctx: tctx, input: { row: r, to: "cancelled", resolution: "key_revoked", now, auditData: { reason: "key_revoked", keyId } } });
      return true;
    });
    if (done) cancelled++;
  }
  return cancelled;
}
