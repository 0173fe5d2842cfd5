import { createServer, type Server } from "node:http";
import type { Logger } from "@countersign/core";
import type { Database } from "@countersign/db";
import { type ClaimedJob, type OutboxStats, outboxStats, type ServiceDeps, type ServiceEvent } from "@countersign/services";
import type { RequestHandler } from "express";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { requireKey } from "./http/auth.ts";
import type { LimitName, RateLimitSettings } from "./http/rate-limit.ts";
import type { JobResult } from "./relay/relay.ts";

/**
 * Prometheus metrics (prom-client). Names and labels are listed in docs/api.md#metrics.
 *
 * Request, decision and refusal counts come from the services' optional `events`
 * observer; outbox and callback figures from the relay's `onSettled` hook; queue depth
 * and pending requests are read from the database at scrape time.
 */

type ChatSurfaceName = "slack" | "teams";

/** Process-wide, so chat adapters can count API trouble without being handed a metrics object. */
export const chatMetricsRegistry = new Registry();

/**
 * Failed Slack / Teams API calls. Outbox jobs (slack.post, teams.update, ...) that fail
 * are counted here automatically by the relay (kind `http_<status>` or `error`). Adapters
 * call it only for API calls made outside outbox jobs, such as resolving a reviewer's
 * email on a click: `chatApiErrors.inc({ surface: "slack", kind: "users_not_found" })`.
 * For an HTTP 429 use chatApiRateLimits instead.
 */
export const chatApiErrors = new Counter({
  name: "countersign_chat_api_errors_total",
  help: "Failed Slack and Teams API calls (excluding rate limits), by surface and kind of error",
  labelNames: ["surface", "kind"] as const,
  registers: [chatMetricsRegistry],
});

/**
 * Slack / Teams rate limits (HTTP 429 or an equivalent Retry-After). Counted automatically
 * for outbox jobs whose result carries httpStatus 429; adapters call
 * `chatApiRateLimits.inc({ surface })` for other calls, and for 429s their API client
 * retried internally.
 */
export const chatApiRateLimits = new Counter({
  name: "countersign_chat_api_rate_limits_total",
  help: "Slack and Teams API rate limits hit, by surface",
  labelNames: ["surface"] as const,
  registers: [chatMetricsRegistry],
});

/** Distinct `action` label values kept before the rest are folded into "other" (actions are caller-chosen). */
const MAX_ACTIONS = 500;
const DEFAULT_RULE = "(default)";

export interface GatewayMetrics {
  registry: Registry;
  /** The services' `events` observer. */
  observe: (e: ServiceEvent) => void;
  /** The relay's `onSettled` hook. */
  onSettled: (job: ClaimedJob, result: JobResult, ms: number) => void;
  /** Reports the number of open long-polls. */
  observeWaiters(waiters: { readonly size: number }): void;
  /** Reports the MCP gateway's open sessions, per upstream server (mcp/route.ts). */
  observeMcp(mcp: { sessionsByServer(): Record<string, number> }): void;
  /** Reports the configured rate limits (rate-limit.ts). */
  observeRateLimits(settings: RateLimitSettings): void;
  /** Counts a call refused by a rate limit; RateLimits' `onLimited` hook. */
  rateLimited: (limit: LimitName) => void;
  /** The exposition, shared chat counters included. */
  render(): Promise<{ contentType: string; body: string }>;
}

export function createMetrics({ db, log }: { db: Database; log: Logger }): GatewayMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const seenActions = new Set<string>();
  const actionLabel = (action: string) => {
    if (seenActions.has(action)) return action;
    if (seenActions.size >= MAX_ACTIONS) return "other";
    seenActions.add(action);
    return action;
  };

  const requestsCreated = new Counter({
    name: "countersign_requests_created_total",
    help: "Approval requests submitted, by action, matching policy rule and policy effect",
    labelNames: ["action", "rule", "effect"] as const,
    registers,
  });
  const requestsFinished = new Counter({
    name: "countersign_requests_total",
    help: "Approval requests that reached a final status, by action, policy rule and status",
    labelNames: ["action", "rule", "status"] as const,
    registers,
  });
  const decisionSeconds = new Histogram({
    name: "countersign_decision_duration_seconds",
    help: "Time from submission to the final status, by status and resolution (policy, quorum, denied, timeout, cancelled)",
    labelNames: ["status", "resolution"] as const,
    buckets: [0.1, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400, 604800],
    registers,
  });
  const decisions = new Counter({
    name: "countersign_decisions_total",
    help: "Reviewer decisions by surface and outcome (approve, deny, refused)",
    labelNames: ["surface", "outcome"] as const,
    registers,
  });
  const refusals = new Counter({
    name: "countersign_decision_refusals_total",
    help: "Refused decisions by surface and error code (self_approval_forbidden, not_an_approver, already_voted, request_not_pending)",
    labelNames: ["surface", "code"] as const,
    registers,
  });
  const outboxAttempts = new Counter({
    name: "countersign_outbox_attempts_total",
    help: "Outbox job attempts by job kind and outcome (ok, error)",
    labelNames: ["kind", "outcome"] as const,
    registers,
  });
  const outboxFailures = new Counter({
    name: "countersign_outbox_failures_total",
    help: "Outbox jobs that failed for good (retries exhausted or a permanent error), by job kind",
    labelNames: ["kind"] as const,
    registers,
  });
  const attemptSeconds = new Histogram({
    name: "countersign_outbox_attempt_duration_seconds",
    help: "Duration of one outbox job attempt, by job kind",
    labelNames: ["kind"] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30],
    registers,
  });
  const callbackLatency = new Histogram({
    name: "countersign_callback_delivery_seconds",
    help: "Time from a request's final transition to the successful delivery of its callback, retries included",
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200, 86400],
    registers,
  });
  const collectErrors = new Counter({
    name: "countersign_metrics_collect_errors_total",
    help: "Scrapes where database-backed gauges could not be read",
    registers,
  });

  // Database-backed gauges, read once per scrape.
  let snapshot: Promise<OutboxStats | null> | undefined;
  const readDb = () => {
    snapshot ??= (async () => {
      try {
        return await outboxStats(db);
      } catch (e) {
        collectErrors.inc();
        log.warn("metrics: could not read outbox depth or pending requests", { err: (e as Error).message });
        return null;
      } finally {
        setImmediate(() => {
          snapshot = undefined;
        });
      }
    })();
    return snapshot;
  };
  new Gauge({
    name: "countersign_outbox_jobs",
    help: "Outbox jobs waiting (pending), in flight (running) or dead (failed), by job kind",
    labelNames: ["kind", "status"] as const,
    registers,
    async collect() {
      const s = await readDb();
      this.reset();
      for (const j of s?.jobs ?? []) this.set({ kind: j.kind, status: j.status }, j.n);
    },
  });
  // One figure of the scrape's database snapshot each (left unset when it could not be read).
  const fromDb = (name: string, help: string, pick: (s: OutboxStats) => number) =>
    new Gauge({
      name,
      help,
      registers,
      async collect() {
        const s = await readDb();
        if (s) this.set(pick(s));
      },
    });
  fromDb("countersign_requests_pending", "Approval requests waiting for a decision", (s) => s.pending);
  fromDb("countersign_requests_expiring_soon", "Approval requests still waiting for a decision that expire within 15 minutes", (s) => s.expiringSoon);
  fromDb(
    "countersign_outbox_oldest_due_seconds",
    "How long the oldest due, undelivered outbox job has waited: the relay's lag (0 when nothing is due)",
    (s) => s.oldestDueSeconds,
  );
  new Gauge({
    name: "countersign_db_transactions_waiting",
    help: "Transactions queued for a database connection on this replica (DATABASE_QUEUE_LIMIT refuses past its bound)",
    registers,
    collect() {
      this.set(db.admission?.waiting ?? 0);
    },
  });
  let mcp: { sessionsByServer(): Record<string, number> } | undefined;
  new Gauge({
    name: "countersign_mcp_sessions",
    help: "Open MCP gateway sessions on this replica, per upstream server (each stdio session is one upstream process)",
    labelNames: ["server"],
    registers,
    collect() {
      this.reset();
      for (const [server, n] of Object.entries(mcp?.sessionsByServer() ?? {})) this.set({ server }, n);
    },
  });
  let waiters: { readonly size: number } | undefined;
  new Gauge({
    name: "countersign_long_poll_waiters",
    help: "Open long-poll calls (GET /v1/requests/:id?wait=) on this replica",
    registers,
    collect() {
      this.set(waiters?.size ?? 0);
    },
  });

  const limitPerSecond = new Gauge({
    name: "countersign_rate_limit_per_second",
    help: "Configured rate limits: calls per second per API key (intake, wait: long-poll opens) or per client address (unauthenticated); 0 is off",
    labelNames: ["limit"] as const,
    registers,
  });
  const limitBurst = new Gauge({
    name: "countersign_rate_limit_burst",
    help: "Configured rate limit bursts (bucket sizes), by limit (intake, wait, unauthenticated)",
    labelNames: ["limit"] as const,
    registers,
  });
  const waitMaxOpen = new Gauge({
    name: "countersign_long_poll_max_open_per_key",
    help: "Configured cap on long-polls one API key holds open at once on this replica; 0 is off",
    registers,
  });
  const rateLimited = new Counter({
    name: "countersign_rate_limited_total",
    help: "Calls refused with 429 by a rate limit: intake, wait (long-poll opens), wait_open (open long-polls per key), unauthenticated (per address)",
    labelNames: ["limit"] as const,
    registers,
  });
  for (const limit of ["intake", "wait", "wait_open", "unauthenticated"] as const) rateLimited.inc({ limit }, 0);

  const observe = (e: ServiceEvent) => {
    try {
      switch (e.type) {
        case "request.created":
          requestsCreated.inc({ action: actionLabel(e.action), rule: e.rule ?? DEFAULT_RULE, effect: e.effect });
          break;
        case "request.finished":
          requestsFinished.inc({ action: actionLabel(e.action), rule: e.rule ?? DEFAULT_RULE, status: e.status });
          decisionSeconds.observe({ status: e.status, resolution: e.resolution }, Math.max(0, e.decidedAt.getTime() - e.createdAt.getTime()) / 1000);
          break;
        case "decision":
          decisions.inc({ surface: e.surface, outcome: e.refused ? "refused" : e.decision });
          if (e.refused) refusals.inc({ surface: e.surface, code: e.refused });
          break;
      }
    } catch (err) {
      log.warn("metrics: could not record an event", { err: (err as Error).message });
    }
  };

  const onSettled = (job: ClaimedJob, result: JobResult, ms: number) => {
    try {
      outboxAttempts.inc({ kind: job.kind, outcome: result.ok ? "ok" : "error" });
      attemptSeconds.observe({ kind: job.kind }, ms / 1000);
      if (result.ok) {
        if (job.kind === "callback") callbackLatency.observe(Math.max(0, Date.now() - job.createdAt.getTime()) / 1000);
        return;
      }
      if (result.permanent || job.attempts >= job.maxAttempts) outboxFailures.inc({ kind: job.kind });
      const surface = job.kind.split(".")[0] as ChatSurfaceName | "callback";
      if (surface === "slack" || surface === "teams") {
        if (result.httpStatus === 429) chatApiRateLimits.inc({ surface });
        else chatApiErrors.inc({ surface, kind: result.httpStatus ? `http_${result.httpStatus}` : "error" });
      }
    } catch (err) {
      log.warn("metrics: could not record a job outcome", { err: (err as Error).message });
    }
  };

  return {
    registry,
    observe,
    onSettled,
    observeWaiters(w) {
      waiters = w;
    },
    observeMcp(m) {
      mcp = m;
    },
    observeRateLimits(settings) {
      for (const limit of ["intake", "wait", "unauthenticated"] as const) {
        limitPerSecond.set({ limit }, settings[limit].ratePerSecond);
        limitBurst.set({ limit }, settings[limit].burst);
      }
      waitMaxOpen.set(settings.wait.maxOpen);
    },
    rateLimited: (limit) => rateLimited.inc({ limit }),
    async render() {
      const merged = Registry.merge([registry, chatMetricsRegistry]);
      return { contentType: registry.contentType, body: await merged.metrics() };
    },
  };
}

function expose(metrics: GatewayMetrics): RequestHandler {
  return async (_req, res) => {
    const { contentType, body } = await metrics.render();
    res.setHeader("cache-control", "no-store");
    res.type(contentType).send(body);
  };
}

/** GET /metrics on the main app: an admin key is required unless the metrics are public. */
export function metricsRoute(metrics: GatewayMetrics, deps: ServiceDeps, isPublic: boolean): RequestHandler[] {
  return isPublic ? [expose(metrics)] : [requireKey(deps, "admin"), expose(metrics)];
}

/**
 * Serves /metrics alone on its own port (COUNTERSIGN_METRICS_PORT), bound to HOST, without
 * authentication: keep that port reachable only by the scraper.
 */
export async function startMetricsServer(metrics: GatewayMetrics, host: string, port: number, log: Logger): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: this port serves /metrics only\n");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end("method not allowed\n");
      return;
    }
    metrics
      .render()
      .then(({ contentType, body }) => {
        res.writeHead(200, { "content-type": contentType, "cache-control": "no-store" }).end(req.method === "HEAD" ? undefined : body);
      })
      .catch((e: unknown) => {
        log.error("metrics: exposition failed", { err: e as Error });
        res.writeHead(500, { "content-type": "text/plain" }).end("metrics unavailable\n");
      });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const addr = server.address();
  log.info(`metrics on http://${host.includes(":") ? `[${host}]` : host}:${typeof addr === "object" && addr ? addr.port : port}/metrics`);
  return server;
}
