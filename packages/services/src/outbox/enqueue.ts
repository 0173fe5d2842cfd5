import type { CoWrite } from "../audit/append.ts";
import { newId } from "../ids.ts";
import type { LockedJob } from "../requests/lock.ts";
import { currentTraceContext } from "../tracing.ts";
import { type JobKind, MAX_ATTEMPTS } from "./retry-policy.ts";

export interface QueuedJob {
  /** The job's INSERT, to run with the audit events of the change it follows (appendAudits' `writes`). */
  write: CoWrite;
  /** What a request's deliveries show of it; every column is known before the insert. */
  view: LockedJob;
}

/**
 * A job for the outbox, written in the transaction of the change it follows, so it exists
 * exactly when that change commits. `now` is its creation time as well as the change's.
 * It keeps the trace context it was queued in (null with tracing off), so each delivery
 * attempt is a span of the change that caused it.
 */
const traceJson = (t: object | null) => (t === null ? null : JSON.stringify(t));

export function queueJob(job: { kind: JobKind; requestId: string | null; payload: object; runAt: Date; id?: string }, now: Date): QueuedJob {
  const id = job.id ?? newId("job");
  const at = now.toISOString();
  return {
    // Times go as ISO text: TIMESTAMP(3) ignores the zone, so it stores the UTC time.
    write: {
      sql: `INSERT INTO outbox_jobs (id, kind, request_id, payload, max_attempts, run_at, created_at, updated_at, trace_context)
        VALUES ($1, $2, $3, $4::jsonb, $5, $6::timestamp(3), $7::timestamp(3), $7::timestamp(3), $8::jsonb)`,
      params: [id, job.kind, job.requestId, JSON.stringify(job.payload), MAX_ATTEMPTS[job.kind], job.runAt.toISOString(), at, traceJson(currentTraceContext())],
    },
    view: { id, kind: job.kind, status: "pending", attempts: 0, lastError: null, createdAt: now },
  };
}
