import { CountersignError } from "@countersign/core";
import type { ServiceCall } from "../context.ts";

export interface CallbackTarget {
  url: string;
  /** The requesting agent key's Standard Webhooks secret. */
  signingSecret: string;
}

/**
 * Where a request's callback goes and the secret that signs it, re-checked against the
 * SSRF guard at delivery (a DNS answer may have changed since submit). Null when the
 * request is gone or has no callback; a refused URL throws callback_url_forbidden.
 */
export async function callbackTarget({ ctx, input }: ServiceCall<{ requestId: string }>): Promise<CallbackTarget | null> {
  const req = await ctx.deps.db.prisma.approvalRequest.findUnique({
    where: { id: input.requestId },
    select: { callbackUrl: true, apiKey: { select: { signingSecret: true, revokedAt: true } } },
  });
  if (!req?.callbackUrl) return null;
  // A revoked agent is sent nothing, least of all an approval with its receipt.
  if (req.apiKey.revokedAt)
    throw new CountersignError("unauthorized", "the agent key that made this request was revoked; its callbacks are no longer delivered");
  await ctx.deps.callbackGuard.check(req.callbackUrl);
  return { url: req.callbackUrl, signingSecret: req.apiKey.signingSecret };
}
