import { CountersignError, REQUEST_ID } from "@countersign/core";
import { canRead } from "../authz.ts";
import type { ServiceCall } from "../context.ts";
import { loadDeliveries, loadRequest, type RequestResource, toResource } from "./resource.ts";

export function assertRequestId(id: string): void {
  if (!REQUEST_ID.test(id)) throw new CountersignError("not_found", `no request ${id.slice(0, 64)}: not a request id`);
}

/**
 * Reads a request. The agent key that made it is re-checked in the same read, so a
 * long-poll that was opened before its key was revoked ends with 401 and no receipt.
 */
export async function getRequest({ ctx, input }: ServiceCall<{ requestId: string }>): Promise<RequestResource> {
  assertRequestId(input.requestId);
  const row = await loadRequest(ctx.deps.db.prisma, input.requestId);
  if (!row || !canRead(ctx.actor, row.apiKeyId)) throw new CountersignError("not_found", `no request ${input.requestId}`);
  if (ctx.actor.type === "agent" && row.apiKey.revokedAt) {
    throw new CountersignError("unauthorized", "The API key is missing, malformed, unknown or revoked.");
  }
  return toResource(row, await loadDeliveries(ctx.deps.db.prisma, row.id));
}
