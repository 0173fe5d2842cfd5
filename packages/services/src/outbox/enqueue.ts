import type { Tx } from "@countersign/db";
import { newId } from "../ids.ts";
import { type JobKind, MAX_ATTEMPTS } from "./retry-policy.ts";

/**
 * Queues a job in the caller's transaction, so it exists exactly when the change it follows
 * commits. Returns what a request's deliveries show of it.
 */
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
    select: { id: true, kind: true, status: true, attempts: true, lastError: true, createdAt: true },
  });
}
