import { type AuditEventRecord, type CheckpointRecord, CountersignError } from "@countersign/core";
import type { ServiceCall } from "../context.ts";
import { auditRecord, checkpointRecord } from "./records.ts";

function requireAdmin(ctx: ServiceCall<unknown>["ctx"], what: string): void {
  if (ctx.actor.type !== "admin" && ctx.actor.type !== "system") throw new CountersignError("forbidden", `${what} needs the admin scope`);
}

/** One page of events after `after`, in storage (seq) order, for admins and operators. */
export async function listAudit({ ctx, input }: ServiceCall<{ after: number; limit: number }>): Promise<AuditEventRecord[]> {
  requireAdmin(ctx, "reading the audit log");
  const rows = await ctx.deps.db.prisma.auditEvent.findMany({ where: { seq: { gt: input.after } }, orderBy: { seq: "asc" }, take: input.limit });
  return rows.map(auditRecord);
}

/** One page of signed checkpoints after `after`, by seq. */
export async function listCheckpoints({ ctx, input }: ServiceCall<{ after: number; limit: number }>): Promise<CheckpointRecord[]> {
  requireAdmin(ctx, "reading the audit checkpoints");
  const rows = await ctx.deps.db.prisma.auditCheckpoint.findMany({ where: { seq: { gt: input.after } }, orderBy: { seq: "asc" }, take: input.limit });
  return rows.map(checkpointRecord);
}

/** The newest checkpoint, or null before the first: what `audit anchor` keeps. */
export async function latestCheckpoint({ ctx }: ServiceCall<unknown>): Promise<CheckpointRecord | null> {
  requireAdmin(ctx, "reading the audit checkpoints");
  const row = await ctx.deps.db.prisma.auditCheckpoint.findFirst({ orderBy: { seq: "desc" } });
  return row ? checkpointRecord(row) : null;
}
