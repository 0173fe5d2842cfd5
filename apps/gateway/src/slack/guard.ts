import { createHmac, timingSafeEqual } from "node:crypto";
import { CountersignError } from "@countersign/core";
import express, { type NextFunction, type Request, type RequestHandler, type Response, Router } from "express";
import { sendProblem } from "../http/problem.ts";
import { ACTION, VIEW } from "./card.ts";

const MAX_SLACK_BODY = 1024 * 1024;
const MAX_SKEW_SECONDS = 300;
const ACTIONS = new Set<string>(Object.values(ACTION));
const VIEWS = new Set<string>(Object.values(VIEW));

/** Slack's v0 signature over the raw body, checked in constant time. */
export function validSlackSignature(secret: string, timestamp: string, raw: Buffer, signature: string): boolean {
  const expected = Buffer.from(`v0=${createHmac("sha256", secret).update(`v0:${timestamp}:`).update(raw).digest("hex")}`);
  const given = Buffer.from(signature);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** What the payload must look like for one of our listeners to handle it; otherwise why not. */
export function slackPayloadProblem(contentType: string, raw: string): string | null {
  if (contentType === "application/json") {
    let body: { type?: unknown; challenge?: unknown };
    try {
      body = JSON.parse(raw);
    } catch {
      return "the body is not valid JSON";
    }
    return body?.type === "url_verification" && typeof body.challenge === "string" ? null : "only url_verification is accepted as JSON";
  }
  if (contentType !== "application/x-www-form-urlencoded") return "expected application/x-www-form-urlencoded";
  const payload = new URLSearchParams(raw).get("payload");
  if (!payload) return "the form has no payload field";
  let p: { type?: unknown; actions?: unknown; view?: { callback_id?: unknown; private_metadata?: unknown } };
  try {
    p = JSON.parse(payload);
  } catch {
    return "payload is not valid JSON";
  }
  if (!p || typeof p !== "object" || Array.isArray(p)) return "payload is not an object";
  const user = (p as { user?: { id?: unknown } }).user;
  if (typeof user?.id !== "string") return "payload has no user id";
  if (p.type === "block_actions") {
    const actions = Array.isArray(p.actions) ? (p.actions as { action_id?: unknown; value?: unknown }[]) : [];
    if (actions.length !== 1) return "block_actions must carry exactly one action";
    const a = actions[0];
    if (typeof a?.action_id !== "string" || !ACTIONS.has(a.action_id)) return "unknown action_id";
    if (typeof a.value !== "string") return "the action has no value";
    return null;
  }
  if (p.type === "view_submission") {
    if (typeof p.view?.callback_id !== "string" || !VIEWS.has(p.view.callback_id)) return "unknown view callback_id";
    if (typeof p.view.private_metadata !== "string") return "the view has no private_metadata";
    return null;
  }
  return `unsupported interaction type ${JSON.stringify(String(p.type ?? "")).slice(0, 64)}`;
}

/**
 * Sits in front of Bolt's receiver. Bolt answers bad signatures with an empty 401 and
 * payloads no listener handles with an empty 404 after a 3 s wait; this refuses both at
 * once with problem+json, so every rejected delivery is a clear 4xx and nothing runs.
 * Verified deliveries pass through with the raw body Bolt re-verifies (`req.rawBody`).
 */
export function guardedSlackRouter(signingSecret: string, bolt: RequestHandler, now: () => number = Date.now): Router {
  const r = Router();
  r.use(express.raw({ type: () => true, limit: MAX_SLACK_BODY }));
  r.use((req: Request, res: Response, next: NextFunction) => {
    const fail = (code: "unauthorized" | "invalid_request" | "method_not_allowed" | "unsupported_media_type", why: string) =>
      sendProblem(res, req, new CountersignError(code, why));
    if (req.method !== "POST") return fail("method_not_allowed", "Slack deliveries are POSTed.");
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const ts = req.get("x-slack-request-timestamp");
    const sig = req.get("x-slack-signature");
    if (!ts || !sig) return fail("unauthorized", "Missing Slack signature headers.");
    if (!/^\d{1,12}$/.test(ts) || Math.abs(now() / 1000 - Number(ts)) > MAX_SKEW_SECONDS)
      return fail("unauthorized", "Stale or invalid Slack request timestamp.");
    if (!validSlackSignature(signingSecret, ts, raw, sig)) return fail("unauthorized", "Invalid Slack signature.");
    const problem = slackPayloadProblem(req.get("content-type") ?? "", raw.toString("utf8"));
    if (problem) return fail("invalid_request", `Unrecognised Slack delivery: ${problem}.`);
    (req as Request & { rawBody?: Buffer }).rawBody = raw;
    next();
  });
  r.use(bolt);
  return r;
}
