import { type ErrorCode, REQUEST_ID } from "@countersign/core";
import { type ServiceCall, withTransaction } from "../context.ts";
import { appendAudit } from "./append.ts";

export interface RefusalInput {
  /** The request the click named, when it named one; it need not exist. */
  requestId: string | null;
  code: ErrorCode;
  message: string;
  decision?: "approve" | "deny" | undefined;
  /** Surface facts worth keeping (channel, message, team), never secrets. */
  detail?: Record<string, unknown>;
}

/**
 * Audits a decision a surface refused before it reached decide(): an unverifiable
 * clicker (bot, deleted user, stranger, another organisation), a click on a card that
 * is not the request's, or a request that does not exist. decide() audits its own
 * refusals. Written in the named request's chain when it exists, else in the system stream.
 */
export async function recordRefusal({ ctx, input }: ServiceCall<RefusalInput>): Promise<void> {
  const now = ctx.deps.clock();
  await withTransaction(ctx, async ({ tx }) => {
    const named = input.requestId && REQUEST_ID.test(input.requestId) ? input.requestId : null;
    // The request's row lock orders this event in its chain, as for every other append to it.
    const exists = named ? (await tx.$queryRawUnsafe<{ id: string }[]>(`SELECT id FROM approval_requests WHERE id = $1 FOR UPDATE`, named))[0] : undefined;
    await appendAudit(
      tx,
      {
        type: "decision.refused",
        requestId: exists?.id ?? null,
        actor: ctx.actor,
        data: {
          code: input.code,
          reason: input.message,
          decision: input.decision ?? null,
          ...(exists ? {} : { namedRequest: input.requestId?.slice(0, 64) ?? null }),
          ...input.detail,
        },
      },
      now,
    );
  });
}
