import { CountersignError, REQUEST_STATUSES, type RequestStatus } from "@countersign/core";
import type { ServiceCall } from "../context.ts";
import { invalid } from "../errors.ts";
import { assertRequestId } from "./get.ts";
import { REQUEST_INCLUDE, type RequestResource, toResource } from "./resource.ts";

export interface ListRequestsInput {
  status?: string | undefined;
  action?: string | undefined;
  limit?: number | undefined;
  cursor?: string | undefined;
}

export async function listRequests({ ctx, input }: ServiceCall<ListRequestsInput>): Promise<{ data: RequestResource[]; nextCursor: string | null }> {
  const { actor } = ctx;
  const allowed = actor.type === "admin" || actor.type === "system" || actor.type === "reviewer";
  if (!allowed) throw new CountersignError("forbidden", 'listing requests needs the "decisions" or "admin" scope');
  if (input.status && !REQUEST_STATUSES.includes(input.status as RequestStatus)) {
    throw invalid("unknown status", [{ path: "status", message: `one of ${REQUEST_STATUSES.join(", ")}` }]);
  }
  const limit = input.limit ?? 50;
  if (!Number.isInteger(limit) || limit < 1 || limit > 200) throw invalid("limit must be 1-200", [{ path: "limit", message: "an integer from 1 to 200" }]);
  if (input.cursor) assertRequestId(input.cursor);
  const rows = await ctx.deps.db.prisma.approvalRequest.findMany({
    where: {
      ...(input.status ? { status: input.status as RequestStatus } : {}),
      ...(input.action ? { action: input.action } : {}),
      ...(input.cursor ? { id: { lt: input.cursor } } : {}),
    },
    include: REQUEST_INCLUDE,
    orderBy: { id: "desc" },
    take: limit + 1,
  });
  const page = rows.slice(0, limit);
  return { data: page.map((r) => toResource(r)), nextCursor: rows.length > limit ? (page.at(-1)?.id ?? null) : null };
}
