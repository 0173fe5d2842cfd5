import { hostname } from "node:os";
import type { Logger } from "@countersign/core";
import { type Database, REQUEST_EVENTS_CHANNEL } from "@countersign/db";
import {
  type ClaimedJob,
  claimJobs,
  isDatabaseUnavailable,
  type JobKind,
  nextAttemptDelayMs,
  SpanKind,
  SpanStatusCode,
  settleJob,
  startSpan,
  withSpanContext,
} from "@countersign/services";

export type JobResult =
  | { ok: true; httpStatus?: number }
  /** `retryAfterMs` comes from the remote side (Retry-After); `permanent` stops retries. */
  | { ok: false; error: string; httpStatus?: number; retryAfterMs?: number; permanent?: boolean };

export type JobHandler = (job: ClaimedJob) => Promise<JobResult>;

export interface RelayOptions {
  db: Database;
  log: Logger;
  handlers: Partial<Record<JobKind, JobHandler>>;
  /** Test-only multiplier for the retry schedule (outbox/retry-policy.ts); Retry-After is never scaled. */
  retryScale?: number;
  pollMs: number;
  leaseMs?: number;
  batch?: number;
  onSettled?: (job: ClaimedJob, result: JobResult, ms: number) => void;
}

/**
 * Runs outbox jobs. Each job is a row, so a crash at any point leaves it to be claimed
 * again once its lease runs out: delivery is at least once, never zero.
 */
export class Relay {
  readonly worker = `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = false;
  private kickPending = false;
  private inFlight = new Set<Promise<void>>();
  private unlisten: (() => Promise<void>) | undefined;

  constructor(private readonly o: RelayOptions) {}

  async start(): Promise<void> {
    // A state change usually queues work; claim at once rather than waiting for the poll.
    this.unlisten = await this.o.db.listen(REQUEST_EVENTS_CHANNEL, () => this.kick());
    this.schedule(0);
  }

  kick(): void {
    if (this.running) {
      this.kickPending = true;
      return;
    }
    this.schedule(0);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), ms);
    this.timer.unref?.();
  }

  private async tick(): Promise<void> {
    if (this.stopped || this.running) return;
    this.running = true;
    let claimed = 0;
    try {
      const capacity = (this.o.batch ?? 32) - this.inFlight.size;
      if (capacity > 0) {
        const jobs = await claimJobs(this.o.db, this.worker, capacity, this.o.leaseMs ?? 60_000);
        claimed = jobs.length;
        for (const job of jobs) {
          const p = this.run(job).finally(() => {
            this.inFlight.delete(p);
            this.kick();
          });
          this.inFlight.add(p);
        }
      }
    } catch (e) {
      if (!isDatabaseUnavailable(e)) this.o.log.error("relay: claim failed", { err: e as Error });
    } finally {
      this.running = false;
      const again = this.kickPending || claimed > 0;
      this.kickPending = false;
      this.schedule(again ? 0 : this.o.pollMs);
    }
  }

  /**
   * One span per delivery attempt (`countersign.outbox.deliver`), a child of the context the
   * job was queued in, so the attempt lands in its request's trace. Handlers run inside it:
   * the callback's traceparent and the Slack/Teams call spans name this attempt.
   */
  private async run(job: ClaimedJob): Promise<void> {
    const { span, ctx } = startSpan("countersign.outbox.deliver", {
      within: job.traceContext,
      // Never the context that happened to schedule this tick (another request's commit).
      detached: true,
      kind: SpanKind.CONSUMER,
      attributes: {
        "countersign.job.kind": job.kind,
        "countersign.job.id": job.id,
        "countersign.job.attempt": job.attempts,
        "countersign.job.max_attempts": job.maxAttempts,
        ...(job.requestId ? { "countersign.request.id": job.requestId } : {}),
      },
    });
    try {
      await withSpanContext(ctx, async () => {
        const outcome = await this.attempt(job);
        span.setAttribute("countersign.outcome", outcome.state);
        if (outcome.httpStatus !== undefined) span.setAttribute("http.response.status_code", outcome.httpStatus);
        if (outcome.state !== "done") {
          span.setAttribute("error.type", outcome.permanent ? "permanent" : outcome.state === "failed" ? "exhausted" : "retryable");
          span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.error?.slice(0, 200) });
        }
      });
    } finally {
      span.end();
    }
  }

  private async attempt(job: ClaimedJob): Promise<{ state: "done" | "retry" | "failed"; httpStatus?: number; error?: string; permanent?: boolean }> {
    const startedAt = new Date();
    const handler = this.o.handlers[job.kind];
    let result: JobResult;
    try {
      result = handler ? await handler(job) : { ok: false, error: `no handler for ${job.kind}: is that surface configured on this gateway?` };
    } catch (e) {
      result = { ok: false, error: (e as Error).message ?? String(e) };
    }
    const finishedAt = new Date();
    this.o.onSettled?.(job, result, finishedAt.getTime() - startedAt.getTime());
    const exhausted = job.attempts >= job.maxAttempts;
    const next = result.ok
      ? ({ state: "done" } as const)
      : result.permanent || exhausted
        ? ({ state: "failed" } as const)
        : ({
            state: "retry",
            at: new Date(finishedAt.getTime() + nextAttemptDelayMs(job, { scale: this.o.retryScale ?? 1, retryAfterMs: result.retryAfterMs })),
          } as const);
    if (next.state === "failed" && !result.ok) {
      this.o.log.error("outbox job failed for good", { jobId: job.id, kind: job.kind, requestId: job.requestId, attempts: job.attempts, error: result.error });
    } else if (!result.ok) {
      this.o.log.warn("outbox job attempt failed; will retry", { jobId: job.id, kind: job.kind, attempt: job.attempts, error: result.error });
    }
    try {
      await settleJob(
        this.o.db,
        job,
        { worker: this.worker, startedAt, finishedAt, ok: result.ok, httpStatus: result.httpStatus, error: result.ok ? undefined : result.error },
        next,
      );
    } catch (e) {
      // The lease will expire and the job will run again: at least once, never zero.
      this.o.log.warn("relay: could not record job outcome; it will be retried after its lease", { jobId: job.id, err: (e as Error).message });
    }
    return {
      state: next.state,
      ...(result.httpStatus !== undefined ? { httpStatus: result.httpStatus } : {}),
      ...(result.ok ? {} : { error: result.error, permanent: result.permanent === true }),
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.unlisten?.();
    await Promise.allSettled([...this.inFlight]);
  }
}
