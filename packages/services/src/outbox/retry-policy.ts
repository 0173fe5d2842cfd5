/**
 * How often and how long every kind of outbox job is retried: the one place that says so.
 * The relay asks `nextAttemptDelayMs` after a failed attempt; `enqueue` stamps
 * `maxAttempts` from `MAX_ATTEMPTS`; handlers turn a remote `Retry-After` into ms with
 * `parseRetryAfter`.
 */
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

export interface RetryOptions {
  /** Test-only multiplier for our own backoff (COUNTERSIGN_RETRY_SCALE); never applied to Retry-After. */
  scale?: number;
  /** The remote side's Retry-After, in ms, which is always honoured in full. */
  retryAfterMs?: number | undefined;
  random?: () => number;
}

/**
 * Delay before the next attempt, given the attempt just made (1-based `attempts`), with
 * ±20% jitter so receivers recovering from an outage are not stampeded.
 */
export function nextAttemptDelayMs(job: { kind: JobKind; attempts: number }, o: RetryOptions = {}): number {
  const seconds = job.kind === "callback" ? (CALLBACK_SCHEDULE[job.attempts] ?? CALLBACK_SCHEDULE.at(-1) ?? 86400) : chatBackoffSeconds(job.attempts);
  const jitter = 0.8 + (o.random ?? Math.random)() * 0.4;
  const ours = Math.round(seconds * 1000 * jitter * (o.scale ?? 1));
  return Math.max(ours, o.retryAfterMs ?? 0);
}

/** A Retry-After header value (delta-seconds or an HTTP date) in ms from `now`. */
export function parseRetryAfter(value: string | readonly string[] | null | undefined, now = Date.now()): number | undefined {
  const v = (typeof value === "string" ? value : value?.[0])?.trim();
  if (!v) return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}
