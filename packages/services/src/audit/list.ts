import { type AuditEventRecord, CountersignError } from "@countersign/core";
import type { ServiceCall } from "../context.ts";
import { auditRecord } from "./records.ts";

/** One page of the chain after `after`, for admins and operators. */
export async function listAudit({ ctx, input }: ServiceCall<{ after: number; limit: number }>): Promise<AuditEventRecord[]> {
  if (ctx.actor.type !== "admin" && ctx.actor.type !== "system") throw new CountersignError("forbidden", "reading the audit log needs the admin scope");
  const rows = await ctx.deps.db.prisma.auditEvent.findMany({ where: { seq: { gt: input.after } }, orderBy: { seq: "asc" }, take: input.limit });
  return rows.map(auditRecord);
}
