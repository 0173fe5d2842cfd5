import { chmodSync, existsSync } from "node:fs";
import { createServer, type RequestListener, type Server, type ServerResponse } from "node:http";
import { join, resolve } from "node:path";
import { configuredSurfaces } from "@countersign/config";
import { BUILTIN_POLICY, type Logger, loadPolicyFile, type PolicyFile, policyWarnings as policyWarningsFor } from "@countersign/core";
import { acquireDataDirLock, type Database, DataDirLockedError, databaseConfigFrom, describeConnectFailure, openDatabase, socketPath } from "@countersign/db";
import {
  adminOps,
  createCallbackGuard,
  createReceiptSigner,
  expireDue,
  isDatabaseUnavailable,
  recordStartup,
  type ServiceDeps,
  startCheckpointer,
  systemCtx,
  warmUp,
} from "@countersign/services";
import { startAdminSocket } from "./admin-socket.ts";
import type { GatewayEnv } from "./env.ts";
import { createApp } from "./http/app.ts";
import { RateLimits, rateLimitSettings } from "./http/rate-limit.ts";
import { Waiters } from "./http/waiters.ts";
import { createLogger } from "./logger.ts";
import { McpConfigError, resolveUpstream } from "./mcp/config.ts";
import type { McpGateway } from "./mcp/route.ts";
import { createMetrics, metricsRoute, startMetricsServer } from "./metrics.ts";
import { callbackHandler } from "./relay/callback.ts";
import { Relay } from "./relay/relay.ts";
import type { ChatSurface } from "./surface.ts";
import { startTracing } from "./tracing.ts";

export const VERSION = "0.1.0";

/** How long a shutdown waits for requests in progress (main.ts forces the exit later than this). */
export const SHUTDOWN_GRACE_MS = 8_000;

export interface Gateway {
  url: string;
  port: number;
  db: Database;
  deps: ServiceDeps;
  log: Logger;
  stop(): Promise<void>;
}

export function loadPolicy(env: GatewayEnv, log: Logger): { policy: PolicyFile; source: string } {
  const file = resolve(env.COUNTERSIGN_POLICY_FILE ?? "countersign.yaml");
  if (!env.COUNTERSIGN_POLICY_FILE && !existsSync(file)) {
    log.warn(
      "no policy file found (./countersign.yaml); the built-in policy is in force: every action needs one approval from any reviewer other than the requester",
      { file },
    );
    return { policy: BUILTIN_POLICY, source: "builtin" };
  }
  return { policy: loadPolicyFile(file), source: file };
}

/** A start-up problem the user can fix, already worded as one line that names the setting. */
export class StartupError extends Error {
  override name = "StartupError";
}

function describeListenFailure(e: unknown, host: string, port: number): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === "EADDRINUSE") return `PORT ${port} is already in use on ${host}; stop the process that has it, or set PORT to a free port (PORT=0 picks one)`;
  if (code === "EACCES") return `PORT ${port} needs privileges this process does not have; set PORT to 1024 or above`;
  if (code === "EADDRNOTAVAIL") return `HOST ${host} is not an address of this machine; use 127.0.0.1 (this machine only), 0.0.0.0 or :: (all interfaces)`;
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return `HOST "${host}" cannot be resolved; set HOST to an IP address of this machine, such as 127.0.0.1`;
  return `cannot listen on ${host}:${port} (HOST, PORT): ${(e as Error).message}`;
}

/** A database error at start-up, reworded when it is a connection problem the user can fix. */
function connectFailure(e: unknown, config: ReturnType<typeof databaseConfigFrom>): unknown {
  const why = config.kind === "postgres" ? describeConnectFailure(e, config.url) : undefined;
  return why ? new StartupError(why, { cause: e }) : e;
}

/**
 * Takes the embedded database's lock. A short CLI command (`keys list` run just after
 * `pnpm start`) may hold it for a moment: wait for it, bounded, rather than fail.
 */
async function takeDataDirLock(dataDir: string, info: { role: "gateway"; socket: string }, log: Logger, timeoutMs = 60_000): Promise<() => void> {
  const deadline = Date.now() + timeoutMs;
  let said = false;
  for (;;) {
    try {
      return acquireDataDirLock(dataDir, info);
    } catch (e) {
      if (!(e instanceof DataDirLockedError) || e.holder.role !== "cli" || Date.now() > deadline) throw e;
      if (!said) log.info(`waiting for a countersign command (pid ${e.holder.pid}) to close the embedded database`, { lock: e.lockFile });
      said = true;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function resolveMcpServers(policy: PolicyFile) {
  try {
    return Object.fromEntries(Object.entries(policy.mcp?.servers ?? {}).map(([name, c]) => [name, resolveUpstream(name, c, process.env)]));
  } catch (e) {
    if (e instanceof McpConfigError) throw new StartupError(e.message, { cause: e });
    throw e;
  }
}

export interface StartOptions {
  env: GatewayEnv;
  log?: Logger;
  /** Extra chat surfaces (Slack, Teams) built by the caller; see surfaces.ts. */
  surfaces?: (deps: ServiceDeps, log: Logger) => Promise<ChatSurface[]>;
}

export async function startGateway({ env, log: given, surfaces: buildSurfaces }: StartOptions): Promise<Gateway> {
  const log = given ?? createLogger({ level: env.LOG_LEVEL, format: env.LOG_FORMAT ?? (env.NODE_ENV === "production" ? "json" : "pretty") });
  const { policy, source } = loadPolicy(env, log);
  // A `${NAME}` the environment does not set fails the start, naming it, before anything is touched.
  const mcpServers = resolveMcpServers(policy);
  const dataDir = resolve(env.COUNTERSIGN_DATA_DIR);
  const dbConfig = databaseConfigFrom({ url: env.DATABASE_URL, dataDir });
  if (dbConfig.kind === "postgres") dbConfig.poolSize = env.DATABASE_POOL_SIZE;
  dbConfig.queueLimit = env.DATABASE_QUEUE_LIMIT;

  // Bind the port before anything touches the data: a busy port then changes nothing. With
  // PORT=0 the default public URL (and so the receipt issuer) must name the port actually
  // bound. Until the app is ready, callers get a 503 rather than a refused connection.
  let handler: RequestListener = (_req, res) => {
    res.writeHead(503, { "content-type": "application/problem+json", "retry-after": "1" }).end(
      JSON.stringify({
        type: "https://countersign.dev/errors/service_unavailable",
        title: "Service unavailable",
        status: 503,
        code: "service_unavailable",
        detail: "The gateway is starting.",
      }),
    );
  };
  // Responses in progress, so that a shutdown lets them finish before it closes connections.
  const inFlight = new Set<ServerResponse>();
  let draining = false;
  const idle = new Set<() => void>();
  const server: Server = createServer((req, res) => {
    inFlight.add(res);
    if (draining) res.setHeader("connection", "close");
    res.once("close", () => {
      inFlight.delete(res);
      if (inFlight.size === 0) for (const f of idle) f();
    });
    handler(req, res);
  });
  /**
   * The first step of a shutdown: take no new connections, end long-polls with a retry
   * hint (another replica, or this one restarted, answers the next poll), and give the
   * requests in progress up to SHUTDOWN_GRACE_MS to finish.
   */
  const drainHttp = async (waiters: Waiters | undefined, mcp: McpGateway | undefined) => {
    draining = true;
    // Answers still to be written tell the client this connection ends with them.
    for (const res of inFlight) if (!res.headersSent) res.setHeader("connection", "close");
    server.close();
    server.closeIdleConnections();
    waiters?.drain();
    mcp?.drain();
    if (inFlight.size > 0) {
      await new Promise<void>((done) => {
        const timer = setTimeout(done, SHUTDOWN_GRACE_MS);
        idle.add(() => {
          clearTimeout(timer);
          done();
        });
      });
    }
    server.closeAllConnections();
  };
  await new Promise<void>((resolveListen, reject) => {
    server.once("error", (e) => reject(new StartupError(describeListenFailure(e, env.HOST, env.PORT), { cause: e })));
    server.listen(env.PORT, env.HOST, () => resolveListen());
  });
  // A slow client must not hold a connection: bound header and body time.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  const cleanups: (() => Promise<void> | void)[] = [
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  ];
  // Before anything makes a span; the SDK is only loaded when OTEL_* variables ask for traces.
  // Its shutdown runs last, flushing the spans of everything stopped before it.
  const tracing = await startTracing(env, log, VERSION);
  if (tracing) cleanups.push(() => tracing.shutdown());
  try {
    if (dbConfig.kind === "pglite") {
      cleanups.unshift(await takeDataDirLock(dataDir, { role: "gateway", socket: socketPath(dataDir) }, log));
    }
    const db = await openDatabase(dbConfig, { onProgress: (m) => log.info(m) }).catch((e: unknown) => {
      throw connectFailure(e, dbConfig);
    });
    cleanups.unshift(() => db.close());
    if (db.kind === "pglite") {
      log.info("using the embedded database (PGlite); it does not fsync, so use PostgreSQL where power-loss durability matters", { dataDir: db.location });
    } else {
      log.info("using PostgreSQL", { url: db.location });
    }
    const migrated = await db.migrate().catch((e: unknown) => {
      throw connectFailure(e, dbConfig);
    });
    if (migrated.applied.length) log.info("applied migrations", { applied: migrated.applied });

    const bound = server.address();
    const boundPort = typeof bound === "object" && bound ? bound.port : env.PORT;
    const publicUrl = (env.COUNTERSIGN_PUBLIC_URL ?? `http://localhost:${boundPort}`).replace(/\/$/, "");
    const receipts = await createReceiptSigner({
      issuer: publicUrl,
      ttlSeconds: env.COUNTERSIGN_RECEIPT_TTL,
      keyFile: join(dataDir, "receipt-keys.json"),
      ...(env.COUNTERSIGN_RECEIPT_KEY ? { envKey: env.COUNTERSIGN_RECEIPT_KEY } : {}),
    });
    if (db.kind === "postgres" && !env.COUNTERSIGN_RECEIPT_KEY) {
      log.warn("COUNTERSIGN_RECEIPT_KEY is not set: this replica signs receipts with a key from its own data directory; give every replica the same key");
    }

    const metrics = createMetrics({ db, log });
    const surfaceFlags = configuredSurfaces(env);
    const deps: ServiceDeps = {
      db,
      logger: log,
      policy: () => policy,
      receipts,
      callbackGuard: createCallbackGuard(env.COUNTERSIGN_CALLBACK_ALLOW),
      surfaces: surfaceFlags,
      publicUrl,
      clock: () => new Date(),
      events: metrics.observe,
    };
    log.info("policy loaded", { source, rules: policy.rules.length });
    const policyWarnings = policyWarningsFor(policy, surfaceFlags);
    for (const w of policyWarnings) log.warn(`policy: ${w.path}: ${w.message}`, { source });
    // The evidence says which policy and which signing key were in force, from when.
    await recordStartup({ ctx: systemCtx(deps, "gateway"), input: { policySource: source, policy, signingKid: receipts.kid } });

    const surfaces = buildSurfaces ? await buildSurfaces(deps, log) : [];
    if (!surfaceFlags.slack) log.info("Slack is not configured (SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET); running without Slack");
    if (!surfaceFlags.teams) log.info("Microsoft Teams is not configured (TEAMS_APP_ID...); running without Teams");

    const waiters = new Waiters(db);
    await waiters.start();
    cleanups.unshift(() => waiters.stop());
    metrics.observeWaiters(waiters);

    const limits = new RateLimits(rateLimitSettings(env), { onLimited: metrics.rateLimited });
    metrics.observeRateLimits(limits.settings);
    let mcp: McpGateway | undefined;
    if (Object.keys(mcpServers).length > 0) {
      // The MCP SDK is loaded only when the policy names an MCP server.
      const { McpGateway } = await import("./mcp/route.ts");
      const gateway = new McpGateway({ deps, waiters, log, servers: mcpServers, progressMs: env.COUNTERSIGN_MCP_PROGRESS_MS, limits });
      mcp = gateway;
      metrics.observeMcp(gateway);
      cleanups.unshift(() => gateway.stop());
      log.info("MCP gateway: each server is served at /mcp/<server>", { servers: Object.keys(mcpServers) });
    }

    const relay = new Relay({
      db,
      log,
      pollMs: env.COUNTERSIGN_RELAY_POLL_MS,
      onSettled: metrics.onSettled,
      handlers: {
        callback: callbackHandler(deps, `Countersign/${VERSION}`),
        ...Object.assign({}, ...surfaces.map((s) => s.handlers)),
      },
      // COUNTERSIGN_RETRY_SCALE (test-only; always 1 in production) shrinks the schedule. Retry-After is still honoured in full.
      retryScale: env.COUNTERSIGN_RETRY_SCALE,
    });

    const app = createApp({
      deps,
      waiters,
      log,
      tracing: tracing !== undefined,
      rateLimit: env.COUNTERSIGN_RATE_LIMIT,
      rateBurst: env.COUNTERSIGN_RATE_BURST,
      limits,
      rawRouters: surfaces.flatMap((s) => (s.mount ? [s.mount] : [])),
      ...(mcp ? { mcp: mcp.router() } : {}),
      // With COUNTERSIGN_METRICS_PORT, /metrics lives only on that port.
      metrics: env.COUNTERSIGN_METRICS_PORT ? undefined : metricsRoute(metrics, deps, env.COUNTERSIGN_METRICS_PUBLIC),
      ready: async () => {
        await db.ping();
        const pending = await db.pendingMigrations();
        return { ok: pending.length === 0, detail: { database: db.kind, pendingMigrations: pending, policyWarnings } };
      },
    });

    // Until this returns, callers get the "starting" 503 and /readyz is not green.
    const warming = performance.now();
    await warmUp(deps);
    log.debug("warmed up the hot paths", { ms: Math.round(performance.now() - warming) });
    handler = app;
    if (env.COUNTERSIGN_METRICS_PORT) {
      const metricsServer = await startMetricsServer(metrics, env.HOST, env.COUNTERSIGN_METRICS_PORT, log);
      cleanups.unshift(() => new Promise<void>((r) => metricsServer.close(() => r())));
    }

    for (const s of surfaces) {
      await s.start?.();
      cleanups.unshift(() => s.stop?.());
    }
    await relay.start();
    cleanups.unshift(() => relay.stop());

    const sweep = setInterval(() => {
      expireDue({ ctx: systemCtx(deps, "expiry-sweeper"), input: {} }).catch((e) => {
        if (!isDatabaseUnavailable(e)) log.error("expiry sweep failed", { err: e as Error });
      });
    }, env.COUNTERSIGN_SWEEP_MS);
    sweep.unref();
    cleanups.unshift(() => clearInterval(sweep));

    const checkpointer = startCheckpointer(systemCtx(deps, "checkpointer"), {
      intervalMs: env.COUNTERSIGN_CHECKPOINT_MS,
      maxEvents: env.COUNTERSIGN_CHECKPOINT_MAX_EVENTS,
      onError: (e) => {
        if (!isDatabaseUnavailable(e)) log.error("audit checkpoint failed", { err: e as Error });
      },
    });
    // A clean shutdown seals what it wrote, so a stopped gateway leaves nothing unsealed.
    cleanups.unshift(async () => {
      await checkpointer.stop();
      await checkpointer.flush().catch(() => {});
    });

    if (db.kind === "pglite") {
      const sock = socketPath(dataDir);
      const adminServer = await startAdminSocket(sock, adminOps(deps, "cli-via-gateway"), log);
      chmodSync(sock, 0o600);
      // A backup in progress is cut (its file then lacks a trailer, and restore refuses it) rather than holding up the stop.
      cleanups.unshift(
        () =>
          new Promise<void>((r) => {
            adminServer.close(() => r());
            adminServer.closeAllConnections();
          }),
      );
    }

    const addr = server.address();
    const port = typeof addr === "object" && addr ? addr.port : env.PORT;
    const url = `http://${env.HOST.includes(":") ? `[${env.HOST}]` : env.HOST}:${port}`;
    log.info(`Countersign ${VERSION} listening on ${url}`, { port, database: db.kind });

    let stopping: Promise<void> | undefined;
    return {
      url,
      port,
      db,
      deps,
      log,
      stop() {
        stopping ??= (async () => {
          await drainHttp(waiters, mcp);
          for (const c of cleanups) await Promise.resolve(c()).catch(() => {});
        })();
        return stopping;
      },
    };
  } catch (e) {
    for (const c of cleanups) await Promise.resolve(c()).catch(() => {});
    throw e;
  }
}
