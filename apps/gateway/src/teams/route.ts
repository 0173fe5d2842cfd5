import { CountersignError, type Logger } from "@countersign/core";
import { type Activity, CloudAdapter, type ConfigurationBotFrameworkAuthentication, type InvokeResponse, type TurnContext } from "botbuilder";
import type { AuthenticateRequestResult } from "botframework-connector";
import express, { type Request, type Response, type Router } from "express";
import { sendProblem } from "../http/problem.ts";
import { CORRELATION_ID, type CountersignTeamsBot } from "./bot.ts";
import { activityTenant } from "./identity.ts";

/**
 * CloudAdapter with authentication split from the turn. CloudAdapter.process() answers 500
 * when jsonwebtoken rejects a signature (its error is not an AuthenticationError) and
 * prints every failure to the console; doing the two steps here lets every authentication
 * failure answer 401 and go through the gateway's logger.
 */
export class GatewayCloudAdapter extends CloudAdapter {
  constructor(auth: ConfigurationBotFrameworkAuthentication) {
    super(auth);
    // Errors reach our callers (the route, the outbox handlers), which log and map them.
    this.onTurnError = async (_ctx, err) => {
      throw err;
    };
  }

  authenticate(activity: Activity, authHeader: string): Promise<AuthenticateRequestResult> {
    return this.botFrameworkAuthentication.authenticateRequest(activity, authHeader);
  }

  runTurn(auth: AuthenticateRequestResult, activity: Activity, logic: (ctx: TurnContext) => Promise<void>): Promise<InvokeResponse | undefined> {
    return this.processActivity(auth, activity, logic);
  }
}

/** Timestamps arrive as strings; botbuilder expects Dates (as its own validator does). */
function toActivity(body: Record<string, unknown>): Activity {
  const a = { ...body } as Record<string, unknown>;
  for (const k of ["timestamp", "localTimestamp", "expiration"] as const) {
    if (typeof a[k] === "string") a[k] = new Date(a[k] as string);
  }
  return a as unknown as Activity;
}

export function teamsRoute(o: { adapter: GatewayCloudAdapter; bot: CountersignTeamsBot; tenantId: string | null; log: Logger }): Router {
  const log = o.log.child({ component: "teams" });
  const router = express.Router();
  router.use(express.json({ limit: "256kb" }));
  router.post("/", async (req: Request, res: Response) => {
    const body = req.body as unknown;
    if (!body || typeof body !== "object" || Array.isArray(body) || typeof (body as { type?: unknown }).type !== "string") {
      sendProblem(res, req, new CountersignError("invalid_request", "The body must be a Bot Framework activity."));
      return;
    }
    const activity = toActivity(body as Record<string, unknown>);
    const meta = { correlationId: req.id, activityType: activity.type, name: activity.name, serviceUrl: activity.serviceUrl };

    let auth: AuthenticateRequestResult;
    try {
      auth = await o.adapter.authenticate(activity, req.get("authorization") ?? "");
    } catch (e) {
      log.warn("teams: rejected an activity that failed Bot Framework authentication", { ...meta, reason: (e as Error).message });
      sendProblem(res, req, new CountersignError("unauthorized", "The Bot Framework token is missing or invalid."));
      return;
    }

    // botbuilder never looks at the tenant; a single-tenant deployment must.
    const tenant = activityTenant(activity);
    if (o.tenantId && tenant !== o.tenantId) {
      log.warn("teams: refused an activity from another tenant", { ...meta, tenant: tenant ?? null, expected: o.tenantId });
      sendProblem(res, req, new CountersignError("forbidden", "This bot serves a different Microsoft Entra tenant."));
      return;
    }

    try {
      const invoke = await o.adapter.runTurn(auth, activity, async (ctx) => {
        ctx.turnState.set(CORRELATION_ID, req.id);
        await o.bot.run(ctx);
      });
      res.status(invoke?.status ?? 200);
      if (invoke?.body !== undefined) res.json(invoke.body);
      else res.end();
    } catch (e) {
      log.error("teams: handling an activity failed", { ...meta, err: e as Error });
      if (!res.headersSent)
        sendProblem(res, req, new CountersignError("internal_error", "An internal error occurred. Quote the request id when reporting it."));
    }
  });
  return router;
}
