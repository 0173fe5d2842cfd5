import { randomUUID } from "node:crypto";
import { CountersignError, type Logger } from "@countersign/core";
import type { ServiceDeps } from "@countersign/services";
import express, { type Express, type NextFunction, type Request, type RequestHandler, type Response, type Router } from "express";
import { STATUS_PATH, statusRouter } from "../mcp/status-page.ts";
import { httpServerSpans } from "../tracing.ts";
import { openApiHandler } from "./openapi.ts";
import { errorHandler, sendProblem } from "./problem.ts";
import { RateLimits } from "./rate-limit.ts";
import { apiRouter } from "./routes.ts";
import type { Waiters } from "./waiters.ts";

export interface AppParts {
  deps: ServiceDeps;
  waiters: Waiters;
  log: Logger;
  /** An HTTP server span per request (tracing.ts); only when the OpenTelemetry SDK is started. */
  tracing?: boolean;
  rateLimit: number;
  rateBurst: number;
  /** The intake, long-poll and unauthenticated limits (rate-limit.ts); absent: only intake, from rateLimit/rateBurst. */
  limits?: RateLimits;
  /** Routers that must see the raw body (Slack signature checks, Bot Framework), mounted first. */
  rawRouters?: { path: string; router: Router | express.RequestHandler }[];
  extraRoutes?: (app: Express) => void;
  /** The MCP gateway's routes (`/mcp/<server>`), when the policy names MCP servers. */
  mcp?: Router;
  /** GET /metrics (auth, then exposition); absent when metrics have their own port. */
  metrics?: RequestHandler[];
  ready: () => Promise<{ ok: boolean; detail: Record<string, unknown> }>;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function createApp(parts: AppParts): Express {
  const { deps, log } = parts;
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  app.set("query parser", "simple");
  const limits = parts.limits ?? new RateLimits({ intake: { ratePerSecond: parts.rateLimit, burst: parts.rateBurst } });
  if (limits.settings.trustProxy !== undefined) app.set("trust proxy", limits.settings.trustProxy);
  if (parts.tracing) app.use(httpServerSpans());
  app.use(limits.attach);

  app.use((req: Request, res: Response, next: NextFunction) => {
    const incoming = req.get("x-request-id");
    req.id = incoming && REQUEST_ID.test(incoming) ? incoming : `rq_${randomUUID()}`;
    res.setHeader("x-request-id", req.id);
    const started = process.hrtime.bigint();
    res.on("finish", () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      // originalUrl, not req.path: routers rewrite req.url, and the query string is never logged.
      log.debug("http", { requestId: req.id, method: req.method, path: req.originalUrl.split("?")[0], status: res.statusCode, ms: Math.round(ms * 10) / 10 });
    });
    next();
  });

  for (const { path, router } of parts.rawRouters ?? []) app.use(path, router);

  app.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  app.get("/readyz", async (_req, res) => {
    const r = await parts.ready().catch((e: Error) => ({ ok: false, detail: { error: e.message } }));
    res.status(r.ok ? 200 : 503).json({ status: r.ok ? "ready" : "unavailable", ...r.detail });
  });
  app.get("/.well-known/jwks.json", (_req, res) => {
    res.setHeader("cache-control", "public, max-age=300");
    res.json(deps.receipts.jwks(deps.clock()));
  });
  app.get("/openapi.json", openApiHandler({ serverUrl: deps.publicUrl }));
  if (parts.metrics) app.get("/metrics", ...parts.metrics);

  parts.extraRoutes?.(app);
  if (parts.mcp) {
    app.use("/mcp", parts.mcp);
    app.use(STATUS_PATH, statusRouter(deps));
  }
  app.use("/v1", apiRouter(deps, parts.waiters, limits));

  app.use((req: Request, res: Response) => {
    sendProblem(res, req, new CountersignError("not_found", `No route for ${req.method} ${req.path}.`));
  });
  app.use(errorHandler(log));
  return app;
}
