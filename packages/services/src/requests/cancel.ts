import { CancelInput, CountersignError } from "@countersign/core";
import { type ServiceCall, withTransaction } from "../context.ts";
import { fromZod } from "../errors.ts";
import { finishRequest } from "./finish.ts";
import { lockRequest } from "./lock.ts";
import { loadDeliveries, type RequestResource, toResource } from "./resource.ts";

/** The requesting key (or an admin) withdraws a pending request. */
export async function cancelRequest({ ctx, input }: ServiceCall<{ requestId: string; body: unknown }>): Promise<RequestResource> {
  const { actor, deps } = ctx;
  const parsed = CancelInput.safeParse(input.body ?? {});
  if (!parsed.success) throw fromZod(parsed.error);
  const now = deps.clock();
  const row = await withTransaction(ctx, async (tctx) => {
    const r = await lockRequest(tctx.tx, input.requestId);
    const mine = r && ((actor.type === "agent" && actor.keyId === r.apiKeyId && actor.scopes.includes("requests")) || actor.type === "admin");
    // Another key's request is reported as missing, so ids cannot be probed.
    if (!r || !mine) throw new CountersignError("not_found", `no request ${input.requestId}`);
    if (r.status !== "pending") throw new CountersignError("request_not_pending", `this request is already ${r.status}`);
    return finishRequest({ ctx: tctx, input: { row: r, to: "cancelled", resolution: "cancelled", now, auditData: { reason: parsed.data.reason ?? null } } });
  });
  return toResource(row, await loadDeliveries(deps.db.prisma, row.id));
}
