import { CountersignError } from "@countersign/core";
import { appendAudit } from "../audit/append.ts";
import { type ServiceCall, withTransaction } from "../context.ts";
import { assertRequestId } from "../requests/get.ts";
import { lockRequest } from "../requests/lock.ts";

/** `exp` of a receipt we signed ourselves, in ms; it is read, not verified, since the row holds our own JWS. */
function receiptExpiry(jws: string): number {
  try {
    const payload = JSON.parse(Buffer.from(jws.split(".")[1] ?? "", "base64url").toString("utf8")) as { exp?: unknown };
    return typeof payload.exp === "number" ? payload.exp * 1000 : 0;
  } catch {
    return 0;
  }
}

/** The answer to a successful redemption (`POST /v1/receipts/:jti/redeem`). */
export interface ReceiptRedemption {
  object: "receipt_redemption";
  /** The receipt's `jti`, which is the request id. */
  jti: string;
  action: string;
  redeemedAt: string;
}

/**
 * Marks an approved request's receipt as used, once. Only the agent key that made the
 * request may redeem it (any other key is told the request does not exist, so ids cannot
 * be probed). The request row is locked for the transaction, so of two concurrent
 * redemptions exactly one succeeds; the redemption and its `receipt.redeemed` audit
 * event commit together. A refused redemption of the key's own request (already redeemed,
 * or not approved) is audited as `receipt.redeem_refused` and then thrown: a replayed
 * receipt is worth knowing about.
 */
export async function redeemReceipt({ ctx, input }: ServiceCall<{ jti: string }>): Promise<ReceiptRedemption> {
  const { actor, deps } = ctx;
  assertRequestId(input.jti);
  const now = deps.clock();
  const outcome = await withTransaction(ctx, async ({ tx }) => {
    const row = await lockRequest(tx, input.jti);
    const mine = row && actor.type === "agent" && actor.keyId === row.apiKeyId && actor.scopes.includes("requests");
    if (!row || !mine) throw new CountersignError("not_found", `no request ${input.jti}`);
    // Authenticated a moment ago, but revoked before this transaction: still refused.
    if (row.apiKey.revokedAt) throw new CountersignError("unauthorized", "The API key is missing, malformed, unknown or revoked.");
    const refuse = async (code: "request_not_approved" | "receipt_already_redeemed", message: string) => {
      await appendAudit(
        tx,
        { type: "receipt.redeem_refused", requestId: row.id, actor, data: { code, status: row.status, redeemedAt: row.redeemedAt?.toISOString() ?? null } },
        now,
      );
      return { refused: { code, message } } as const;
    };
    if (row.status !== "approved" || !row.receipt) {
      return refuse("request_not_approved", `this request is ${row.status}; only an approved request's receipt can be redeemed`);
    }
    if (row.redeemedAt) return refuse("receipt_already_redeemed", `this receipt was already redeemed at ${row.redeemedAt.toISOString()}`);
    if (receiptExpiry(row.receipt) <= now.getTime()) return refuse("request_not_approved", "this receipt has expired; ask for approval again");
    // The row lock already serialises redeemers; the condition keeps this single-use even without it.
    const changed = await tx.approvalRequest.updateMany({ where: { id: row.id, status: "approved", redeemedAt: null }, data: { redeemedAt: now } });
    if (changed.count !== 1) return refuse("receipt_already_redeemed", "this receipt was already redeemed");
    await appendAudit(tx, { type: "receipt.redeemed", requestId: row.id, actor, data: { action: row.action, redeemedAt: now.toISOString() } }, now);
    return { redemption: { object: "receipt_redemption", jti: row.id, action: row.action, redeemedAt: now.toISOString() } } as const;
  });
  if ("refused" in outcome) throw new CountersignError(outcome.refused.code, outcome.refused.message);
  return outcome.redemption;
}
