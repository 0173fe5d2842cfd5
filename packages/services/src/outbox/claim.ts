import type { Database } from "@countersign/db";
import type { StoredTraceContext } from "../tracing.ts";
import type { JobKind } from "./retry-policy.ts";

export interface ClaimedJob {
  id: string;
  kind: JobKind;
  requestId: string | null;
  payload: Record<string, unknown>;
  attempts: number;
  maxAttempts: number;
  createdAt: Date;
  /** The W3C trace context the job was queued in, else its request's; null with tracing off. */
  traceContext?: StoredTraceContext | null;
}

/**
 * Claims due jobs for this worker. SKIP LOCKED lets any number of replicas claim
 * concurrently without blocking on or double-taking each other's rows; a running job
 * whose lease ran out (its worker died) is due again.
 */
export async function claimJobs(db: Database, worker: string, limit: number, leaseMs: number): Promise<ClaimedJob[]> {
  const rows = await db.prisma.$queryRawUnsafe<
    {
      id: string;
      kind: JobKind;
      request_id: string | null;
      payload: Record<string, unknown>;
      attempts: number;
      max_attempts: number;
      created_at: Date;
      trace_context: StoredTraceContext | null;
    }[]
  >(
    `UPDATE outbox_jobs SET status = 'running', attempts = attempts + 1, locked_by = $1,
            lease_until = now() + ($2 || ' milliseconds')::interval, updated_at = now()
      WHERE id IN (
        SELECT id FROM outbox_jobs
         WHERE (status = 'pending' AND run_at <= now()) OR (status = 'running' AND lease_until < now())
         ORDER BY run_at
         LIMIT $3
         FOR UPDATE SKIP LOCKED)
      RETURNING id, kind, request_id, payload, attempts, max_attempts, created_at,
                COALESCE(trace_context, (SELECT r.trace_context FROM approval_requests r WHERE r.id = outbox_jobs.request_id)) AS trace_context`,
    worker,
    String(leaseMs),
    limit,
  );
  return rows.map((r) => ({
    id: r.id,
    kind: r.kind,
    requestId: r.request_id,
    payload: r.payload,
    attempts: r.attempts,
    maxAttempts: r.max_attempts,
    createdAt: r.created_at,
    traceContext: r.trace_context,
  }));
}
