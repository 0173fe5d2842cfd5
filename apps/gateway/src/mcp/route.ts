import { CountersignError, type Logger, type McpServerConfig, parseStrictJson } from "@countersign/core";
import { randomToken, type ServiceDeps } from "@countersign/services";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import express, { type Request, type Response, Router } from "express";
import { requireKey } from "../http/auth.ts";
import type { RateLimits } from "../http/rate-limit.ts";
import type { Waiters } from "../http/waiters.ts";
import { JsonRpcError, rpcErrorBody, toJsonRpcError } from "./errors.ts";
import { McpSession } from "./session.ts";

/** A tool call's arguments are stored with its request; this bounds one JSON-RPC message. */
export const MAX_MCP_BODY_BYTES = 1024 * 1024;
/** Each session may hold a process (a stdio upstream) of its own, so one key may not open without bound. */
export const MAX_SESSIONS_PER_KEY = 16;
/** A session with nothing in progress for this long is closed, and its upstream with it. */
export const SESSION_IDLE_MS = 30 * 60_000;

export interface McpGatewayParts {
  deps: ServiceDeps;
  waiters: Waiters;
  log: Logger;
  /** The policy's mcp.servers, with every `${NAME}` resolved. */
  servers: Record<string, McpServerConfig>;
  progressMs: number;
  /** The API's limits: a tools/call is an intake and draws on the key's intake rate. */
  limits: RateLimits;
}

const HTTP_STATUS: Record<string, number> = {
  invalid_request: 400,
  method_not_allowed: 405,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  payload_too_large: 413,
  rate_limited: 429,
  service_unavailable: 503,
};

/**
 * `/mcp/<server>`: the gateway as an MCP server (Streamable HTTP) in front of each
 * upstream the policy names. The caller is an agent key; every tools/call is an intake.
 * Refusals before a session exists (unknown server or session, bad key, malformed or
 * oversized JSON) are JSON-RPC errors with an HTTP status that says the same.
 */
export class McpGateway {
  private readonly sessions = new Map<string, McpSession>();
  /** Sessions being opened (their upstream starting), per key. */
  private readonly opening = new Map<string, number>();
  private stopped = false;
  private readonly reaper: NodeJS.Timeout;

  constructor(private readonly parts: McpGatewayParts) {
    this.reaper = setInterval(() => this.reap(), 60_000);
    this.reaper.unref();
  }

  /** Open sessions per configured server, every server named (a 0 is a figure too). */
  sessionsByServer(): Record<string, number> {
    const counts = Object.fromEntries(Object.keys(this.parts.servers).map((name) => [name, 0]));
    for (const s of this.sessions.values()) counts[s.upstreamName] = (counts[s.upstreamName] ?? 0) + 1;
    return counts;
  }

  router(): Router {
    const r = Router();
    const auth = requireKey(this.parts.deps, "requests");
    const raw = express.raw({ type: () => true, limit: MAX_MCP_BODY_BYTES });
    r.all("/:server", async (req: Request, res: Response) => {
      let id: unknown = null;
      try {
        const name = req.params.server as string;
        if (!["GET", "POST", "DELETE"].includes(req.method)) {
          res.setHeader("Allow", "GET, POST, DELETE");
          throw new CountersignError("method_not_allowed", `${req.method} is not part of MCP's Streamable HTTP; use POST, GET or DELETE.`);
        }
        // The key first: which servers exist is for the agents that may use them.
        await new Promise<void>((done, fail) => {
          auth(req, res, () => done()).catch(fail);
        });
        const config = Object.hasOwn(this.parts.servers, name) ? this.parts.servers[name] : undefined;
        if (!config) {
          const known = Object.keys(this.parts.servers);
          throw new CountersignError(
            "not_found",
            `No MCP server named "${name}" is configured (mcp.servers in the policy file)${known.length ? `; configured: ${known.join(", ")}` : ""}.`,
          );
        }
        const body = req.method === "POST" ? await readBody(req, res, raw) : undefined;
        id = body && typeof body === "object" && !Array.isArray(body) ? (body as { id?: unknown }).id : null;
        const sessionId = req.get("mcp-session-id");
        if (sessionId) {
          const session = this.sessions.get(sessionId);
          // Another key's session is reported as unknown, like any id that is not the caller's.
          if (!session || session.keyId !== req.apiKey?.id) {
            throw new JsonRpcError(-32001, "Session not found; initialize a new session.", { code: "not_found" });
          }
          session.lastUsed = Date.now();
          await session.transport.handleRequest(req, res, body);
          return;
        }
        if (req.method !== "POST" || !isInitializeRequest(body)) {
          throw new JsonRpcError(-32000, "Send an initialize request first, or the Mcp-Session-Id header of an open session.", { code: "invalid_request" });
        }
        const key = req.apiKey!;
        // Sessions still starting count too: many initializes at once must not start more upstreams than the cap.
        const open = [...this.sessions.values()].filter((s) => s.keyId === key.id).length + (this.opening.get(key.id) ?? 0);
        if (open >= MAX_SESSIONS_PER_KEY) {
          throw new CountersignError("rate_limited", `This API key already has ${open} open MCP sessions; close one (DELETE with its Mcp-Session-Id) first.`, {
            retryAfter: 60,
          });
        }
        this.opening.set(key.id, (this.opening.get(key.id) ?? 0) + 1);
        const session = await McpSession.open(
          {
            ...this.parts,
            key,
            server: name,
            config,
            onClosed: (s) => {
              if (this.sessions.get(s.id) === s) this.sessions.delete(s.id);
            },
          },
          body,
          `mcps_${randomToken(24)}`,
        )
          .catch((e: unknown) => {
            throw new JsonRpcError(-32000, (e as Error).message, { code: "upstream_failed" });
          })
          .finally(() => {
            const n = (this.opening.get(key.id) ?? 1) - 1;
            if (n > 0) this.opening.set(key.id, n);
            else this.opening.delete(key.id);
          });
        if (this.stopped) {
          await session.close();
          throw new CountersignError("service_unavailable", "The gateway is shutting down.", { retryAfter: 1 });
        }
        this.sessions.set(session.id, session);
        await session.transport.handleRequest(req, res, body);
        // The transport refused the initialize (a wrong Accept header, an unsupported version): no session, so no upstream either.
        if (session.transport.sessionId === undefined) await session.close();
      } catch (e) {
        const err = toJsonRpcError(e);
        if (err.data?.code === "internal_error") this.parts.log.error("MCP request failed", { requestId: req.id, err: e as Error });
        if (res.headersSent) return;
        const status =
          HTTP_STATUS[String(err.data?.code)] ?? (err.code === -32700 || err.code === -32600 || err.code === -32602 ? 400 : err.code === -32001 ? 404 : 502);
        if (status === 401) res.setHeader("WWW-Authenticate", 'Bearer realm="countersign"');
        const retryAfter = err.data?.retryAfter;
        if (typeof retryAfter === "number") res.setHeader("Retry-After", String(Math.ceil(retryAfter)));
        res.status(status).json(rpcErrorBody(err, id));
      }
    });
    return r;
  }

  private reap() {
    const now = Date.now();
    for (const s of this.sessions.values()) if (s.idle && now - s.lastUsed > SESSION_IDLE_MS) void s.close();
  }

  /** At shutdown: the listening streams (GET) end, so they do not hold up the drain; calls in progress finish. */
  drain(): void {
    for (const s of this.sessions.values()) s.transport.closeStandaloneSSEStream();
  }

  /** Ends every session: open streams end, and each upstream process is stopped. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.reaper);
    await Promise.all([...this.sessions.values()].map((s) => s.close()));
    this.sessions.clear();
  }
}

/** The body, parsed strictly (no duplicate keys, UTF-8 only), as the REST API parses its own. */
function readBody(req: Request, res: Response, raw: express.RequestHandler): Promise<unknown> {
  return new Promise((resolve, reject) => {
    raw(req, res, (err?: unknown) => {
      if (err) {
        const type = (err as { type?: string }).type;
        return reject(
          type === "entity.too.large"
            ? new CountersignError("payload_too_large", `The JSON-RPC message is larger than ${MAX_MCP_BODY_BYTES / 1024 / 1024} MB.`)
            : new JsonRpcError(-32700, "The request body could not be read.", { code: "invalid_request" }),
        );
      }
      const buf = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      let text: string;
      try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(buf);
      } catch {
        return reject(new JsonRpcError(-32700, "Parse error: the body is not valid UTF-8.", { code: "invalid_request" }));
      }
      const parsed = parseStrictJson(text);
      if (!parsed.ok) return reject(new JsonRpcError(-32700, `Parse error: ${parsed.message}.`, { code: "invalid_request" }));
      resolve(parsed.value);
    });
  });
}
