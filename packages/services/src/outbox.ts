import type { Database, Tx } from "@countersign/db";
import { newId } from "./ids.ts";

export type JobKind = "callback" | "slack.post" | "slack.update" | "teams.post" | "teams.update";

/** Standard Webhooks retry schedule, in seconds after the previous attempt. */
export const CALLBACK_SCHEDULE = [0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400];

/** Chat APIs recover within seconds; back off exponentially from 1 s to 10 min. */
export function chatBackoffSeconds(attempt: number): number {
  return Math.min(600, 2 ** Math.max(0, attempt - 1));
}

export const MAX_ATTEMPTS: Record<JobKind, number> = {
  callback: CALLBACK_SCHEDULE.length,
  "slack.post": 12,
  "slack.update": 12,
  "teams.post": 12,
  "teams.update": 12,
};

export function enqueue(tx: Tx, job: { kind: JobKind; requestId: string | null; payload: object; runAt: Date; id?: string }) {
  return tx.outboxJob.create({
    data: {
      id: job.id ?? newId("job"),
      kind: job.kind,
      requestId: job.requestId,
      payload: job.payload,
      maxAttempts: MAX_ATTEMPTS[job.kind],
      runAt: job.runAt,
    },
  });
}

export interface ClaimedJob {
  id: string;
  kind: JobKind;
  requestId: string | null;
  payload: Record<string, unknown>;
  attempts: number;
  maxAttempts: number;
  createdAt: Date;
}

/**
 * Claims due jobs for this worker. SKIP LOCKED lets any number of replicas claim
 * concurrently without blocking on or double-taking each other's rows; a running job
 * whose lease ran out (its worker died) is due again.
 */
export async function claimJobs(db: Database, worker: string, limit: number, leaseMs: number): Promise<ClaimedJob[]> {
  const rows = await db.prisma.$queryRawUnsafe<
    { id: string; kind: JobKind; request_id: string | null; payload: Record<string, unknown>; attempts: number; max_attempts: number; created_at: Date }[]
  >(
    `UPDATE outbox_jobs SET status = 'running', attempts = attempts + 1, locked_by = $1,
            lease_until = now() + ($2 || ' milliseconds')::interval, updated_at = now()
      WHERE id IN (
        SELECT id FROM outbox_jobs
         WHERE (status = 'pending' AND run_at <= now()) OR (status = 'running' AND lease_until < now())
         ORDER BY run_at
         LIMIT $3
         FOR UPDATE SKIP LOCKED)
      RETURNING id, kind, request_id, payload, attempts, max_attempts, created_at`,
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
  }));
}

export interface AttemptRecord {
  worker: string;
  startedAt: Date;
  finishedAt: Date;
  ok: boolean;
  httpStatus?: number | undefined;
  error?: string | undefined;
}

/** Records an attempt and moves the job on: done, retry at `retryAt`, or failed for good. */
export async function settleJob(
  db: Database,
  job: ClaimedJob,
  attempt: AttemptRecord,
  next: { state: "done" } | { state: "retry"; at: Date } | { state: "failed" },
): Promise<boolean> {
  return db.prisma.$transaction(async (tx) => {
    // Only the worker holding the lease may settle; a worker whose lease expired and was
    // re-claimed elsewhere must not overwrite the newer attempt's outcome.
    const owned = await tx.outboxJob.updateMany({
      where: { id: job.id, lockedBy: attempt.worker, status: "running", attempts: job.attempts },
      data:
        next.state === "done"
          ? { status: "done", completedAt: attempt.finishedAt, leaseUntil: null, lockedBy: null, lastError: null }
          : next.state === "retry"
            ? { status: "pending", runAt: next.at, leaseUntil: null, lockedBy: null, lastError: attempt.error ?? null }
            : { status: "failed", completedAt: attempt.finishedAt, leaseUntil: null, lockedBy: null, lastError: attempt.error ?? null },
    });
    await tx.outboxAttempt.create({
      data: {
        jobId: job.id,
        attempt: job.attempts,
        worker: attempt.worker,
        startedAt: attempt.startedAt,
        finishedAt: attempt.finishedAt,
        ok: attempt.ok,
        httpStatus: attempt.httpStatus ?? null,
        error: attempt.error?.slice(0, 2000) ?? null,
      },
    });
    return owned.count === 1;
  });
}

/** Queue depth by kind and status, and the number of pending requests: for metrics. */
export async function outboxStats(db: Database): Promise<{ jobs: { kind: string; status: string; n: number }[]; pending: number }> {
  const [jobs, pending] = await Promise.all([
    db.prisma.outboxJob.groupBy({ by: ["kind", "status"], where: { status: { in: ["pending", "running", "failed"] } }, _count: { _all: true } }),
    db.prisma.approvalRequest.count({ where: { status: "pending" } }),
  ]);
  return { jobs: jobs.map((j) => ({ kind: j.kind, status: j.status, n: j._count._all })), pending };
}
