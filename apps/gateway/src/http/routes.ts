import { type Actor, CountersignError, isStorableText, isUtf8Charset, MAX_BODY_BYTES, parseStrictJson } from "@countersign/core";
import {
  assertRequestId,
  cancelRequest,
  createRequest,
  decide,
  getEvidence,
  getRequest,
  listAudit,
  listCheckpoints,
  listRequests,
  redeemReceipt,
  type ServiceDeps,
} from "@countersign/services";
import express, { type NextFunction, type Request, type Response, Router } from "express";
import { agentActor, readerActor, requireKey, reviewerActor } from "./auth.ts";
import type { RateLimits } from "./rate-limit.ts";
import { toServiceCtx } from "./service-ctx.ts";
import type { Waiters } from "./waiters.ts";

const MAX_WAIT_SECONDS = 60;

/** POST bodies must be declared JSON; anything else is refused before parsing. */
function requireJson(req: Request, _res: Response, next: NextFunction) {
  const len = Number(req.get("content-length") ?? "0");
  if (len > MAX_BODY_BYTES) throw new CountersignError("payload_too_large", "The request body is larger than 64 KB.");
  const hasBody = len > 0 || req.get("transfer-encoding") !== undefined;
  if (hasBody && !req.is("application/json")) {
    throw new CountersignError("unsupported_media_type", "Send the body as application/json.");
  }
  next();
}

const raw = express.raw({ limit: MAX_BODY_BYTES, type: "application/json" });
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/**
 * Parses JSON bodies strictly: UTF-8 only, and no duplicate keys or `__proto__` /
 * `constructor` / `prototype` keys anywhere. Those are refused, never silently resolved
 * (`{"decision":"approve","decision":"deny"}` must not mean deny).
 */
function strictJson(req: Request, res: Response, next: NextFunction) {
  raw(req, res, (err?: unknown) => {
    if (err) return next(err);
    if (!isUtf8Charset(req.get("content-type"))) {
      return next(new CountersignError("unsupported_media_type", "The request body must be UTF-8 JSON (charset=utf-8, or no charset)."));
    }
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    if (body.length === 0) {
      req.body = undefined;
      return next();
    }
    let text: string;
    try {
      text = utf8.decode(body);
    } catch {
      return next(new CountersignError("invalid_request", "The request body is not valid UTF-8.", { errors: [{ path: "", message: "invalid UTF-8" }] }));
    }
    const parsed = parseStrictJson(text);
    if (!parsed.ok) {
      const detail =
        parsed.message === "malformed JSON" ? "The request body is not valid JSON." : `The request body is not acceptable JSON: ${parsed.message}.`;
      return next(new CountersignError("invalid_request", detail, { errors: [{ path: parsed.path, message: parsed.message }] }));
    }
    req.body = parsed.value;
    next();
  });
}
const json = strictJson;

function intParam(value: unknown, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new CountersignError("invalid_request", `${name} must be an integer from ${min} to ${max}.`, {
      errors: [{ path: name, message: `an integer from ${min} to ${max}` }],
    });
  }
  return n;
}

function single(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string")
    throw new CountersignError("invalid_request", `${name} must be given once.`, { errors: [{ path: name, message: "given once" }] });
  // A NUL (%00) reaching a database filter is an error in PostgreSQL, not "no match".
  if (!isStorableText(value)) {
    throw new CountersignError("invalid_request", `${name} contains characters that are not allowed.`, {
      errors: [{ path: name, message: "no NUL characters or unpaired surrogates" }],
    });
  }
  return value;
}

export function apiRouter(deps: ServiceDeps, waiters: Waiters, limits: RateLimits): Router {
  const r = Router();
  const ctx = (req: Request, actor: Actor) => toServiceCtx(deps, req, actor);

  r.post("/requests", requireJson, requireKey(deps, "requests"), limits.intake, json, async (req, res) => {
    const idem = req.get("idempotency-key");
    const result = await createRequest({ ctx: ctx(req, agentActor(req.apiKey!)), input: { body: req.body, idempotencyKey: idem } });
    if (result.replayed) res.setHeader("Idempotent-Replayed", "true");
    res
      .status(result.replayed ? 200 : 201)
      .location(result.resource.links.self)
      .json(result.resource);
  });

  r.get("/requests", requireKey(deps, "decisions", "admin"), async (req, res) => {
    const key = req.apiKey!;
    const actor = key.scopes.includes("admin") ? readerActor(key) : reviewerActor(key);
    const page = await listRequests({
      ctx: ctx(req, actor),
      input: {
        status: single(req.query.status, "status"),
        action: single(req.query.action, "action"),
        limit: intParam(req.query.limit, "limit", 1, 200),
        cursor: single(req.query.cursor, "cursor"),
      },
    });
    res.json({ object: "list", data: page.data, nextCursor: page.nextCursor });
  });

  r.get("/requests/:id", requireKey(deps), async (req, res) => {
    const id = req.params.id as string;
    const wait = intParam(single(req.query.wait, "wait"), "wait", 0, MAX_WAIT_SECONDS);
    const c = ctx(req, readerActor(req.apiKey!));
    assertRequestId(id);
    if (!wait) {
      res.json(await getRequest({ ctx: c, input: { requestId: id } }));
      return;
    }
    limits.openWait(req, res); // 429 past the key's rate of opens or open long-polls; frees its slot when the response ends
    const abort = new AbortController();
    res.on("close", () => abort.abort());
    const deadline = Date.now() + wait * 1000;
    // Waiters holding the same key see the same resource, so they share one read per change.
    const read = () => waiters.read(id, req.apiKey!.id, () => getRequest({ ctx: c, input: { requestId: id } }));
    // Register before reading so a decision committing in between still wakes us.
    let woken = waiters.register(id, wait * 1000, abort.signal);
    let current = await read();
    while (current.status === "pending" && Date.now() < deadline && !abort.signal.aborted) {
      await woken;
      if (abort.signal.aborted) return;
      if (waiters.closing) throw new CountersignError("service_unavailable", "This gateway is shutting down; poll again.", { retryAfter: 1 });
      const left = deadline - Date.now();
      woken = left > 0 ? waiters.register(id, left, abort.signal) : Promise.resolve();
      current = await read();
    }
    abort.abort();
    if (!res.writableEnded && !res.destroyed) res.json(current);
  });

  r.post("/requests/:id/decisions", requireJson, requireKey(deps, "decisions"), json, async (req, res) => {
    const id = req.params.id as string;
    assertRequestId(id);
    const result = await decide({ ctx: ctx(req, reviewerActor(req.apiKey!)), input: { requestId: id, body: req.body } });
    res.status(201).json(result.resource);
  });

  r.post("/requests/:id/cancel", requireJson, requireKey(deps, "requests", "admin"), json, async (req, res) => {
    const id = req.params.id as string;
    assertRequestId(id);
    res.json(await cancelRequest({ ctx: ctx(req, readerActor(req.apiKey!)), input: { requestId: id, body: req.body ?? {} } }));
  });

  // Single-use receipts: only the agent key that made the request; anyone else gets 404.
  r.post("/receipts/:jti/redeem", requireJson, requireKey(deps, "requests"), json, async (req, res) => {
    const jti = req.params.jti as string;
    res.json(await redeemReceipt({ ctx: ctx(req, agentActor(req.apiKey!)), input: { jti } }));
  });

  r.get("/requests/:id/evidence", requireKey(deps), async (req, res) => {
    const id = req.params.id as string;
    assertRequestId(id);
    res.json(await getEvidence({ ctx: ctx(req, readerActor(req.apiKey!)), input: { requestId: id } }));
  });

  r.get("/audit/checkpoints", requireKey(deps, "admin"), async (req, res) => {
    const after = intParam(single(req.query.after, "after"), "after", 0, Number.MAX_SAFE_INTEGER) ?? 0;
    const limit = intParam(single(req.query.limit, "limit"), "limit", 1, 1000) ?? 100;
    const data = await listCheckpoints({ ctx: ctx(req, readerActor(req.apiKey!)), input: { after, limit } });
    res.json({ object: "list", data, nextAfter: data.length === limit ? (data.at(-1)?.seq ?? null) : null });
  });

  r.get("/audit", requireKey(deps, "admin"), async (req, res) => {
    const after = intParam(single(req.query.after, "after"), "after", 0, Number.MAX_SAFE_INTEGER) ?? 0;
    const limit = intParam(single(req.query.limit, "limit"), "limit", 1, 1000) ?? 100;
    const data = await listAudit({ ctx: ctx(req, readerActor(req.apiKey!)), input: { after, limit } });
    res.json({ object: "list", data, nextAfter: data.length === limit ? (data.at(-1)?.seq ?? null) : null });
  });

  return r;
}
