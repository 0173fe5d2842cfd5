import type { Database } from "@countersign/db";
import type { ClaimedJob } from "./claim.ts";

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
  return db.transaction(async (tx) => {
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
