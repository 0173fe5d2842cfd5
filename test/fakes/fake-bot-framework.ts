import { randomBytes, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type CryptoKey, exportJWK, generateKeyPair, type KeyObject, SignJWT } from "jose";

/**
 * Offline fakes of the Microsoft side of a Teams bot, good enough for the real botbuilder:
 *
 * - `startFakeIdentity()`: the Bot Framework's OpenID metadata + JWKS (inbound activity
 *   tokens are signed here, as the channel would sign them) and a Microsoft identity
 *   platform token endpoint for the bot's outbound client-credentials grant.
 * - `startFakeConnector()`: the Bot Connector service (serviceUrl) that records posted and
 *   updated activities, answers getMember, and can inject throttling faults. It only
 *   accepts bearer tokens the fake identity issued.
 *
 * Both listen on 127.0.0.1 on random ports.
 */

type PrivateKey = CryptoKey | KeyObject;
type Handler = (req: IncomingMessage & { body?: unknown; rawBody?: string }, res: ServerResponse, params: Record<string, string>) => void | Promise<void>;
interface Route {
  method: string;
  pattern: RegExp;
  keys: string[];
  handler: Handler;
}

function router() {
  const routes: Route[] = [];
  const add = (method: string, path: string, handler: Handler) => {
    const keys: string[] = [];
    const pattern = new RegExp(
      `^${path.replace(/:([A-Za-z]+)/g, (_m, k: string) => {
        keys.push(k);
        return "([^/]+)";
      })}$`,
    );
    routes.push({ method, pattern, keys, handler });
  };
  let fallback: Handler = (_req, res) => json(res, 404, { error: { code: "NoRoute", message: "no route" } });
  const server = createServer((req, res) => {
    let raw = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => {
      raw += c;
    });
    req.on("end", () => {
      const r = req as IncomingMessage & { body?: unknown; rawBody?: string };
      r.rawBody = raw;
      const type = req.headers["content-type"] ?? "";
      try {
        r.body = raw && type.includes("json") ? JSON.parse(raw) : raw && type.includes("urlencoded") ? Object.fromEntries(new URLSearchParams(raw)) : undefined;
      } catch {
        r.body = undefined;
      }
      const path = (req.url ?? "/").split("?")[0] as string;
      for (const route of routes) {
        const m = route.method === req.method ? route.pattern.exec(path) : null;
        if (!m) continue;
        const params = Object.fromEntries(route.keys.map((k, i) => [k, decodeURIComponent(m[i + 1] as string)]));
        void Promise.resolve(route.handler(r, res, params)).catch((e: Error) => json(res, 500, { error: { code: "FakeCrashed", message: e.message } }));
        return;
      }
      void fallback(r, res, {});
    });
  });
  return {
    server,
    get: (p: string, h: Handler) => add("GET", p, h),
    post: (p: string, h: Handler) => add("POST", p, h),
    put: (p: string, h: Handler) => add("PUT", p, h),
    otherwise: (h: Handler) => {
      fallback = h;
    },
  };
}

function json(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
  if (body === undefined) {
    res.writeHead(status, headers).end();
    return;
  }
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", ...headers }).end(JSON.stringify(body));
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

// ---------------------------------------------------------------------------------------
// Identity: OpenID metadata + JWKS for inbound tokens, and the outbound token endpoint.
// ---------------------------------------------------------------------------------------

export const BOT_FRAMEWORK_ISSUER = "https://api.botframework.com";
export const BOT_FRAMEWORK_SCOPE = "https://api.botframework.com";

export interface SignOptions {
  /** Becomes `aud` unless `audience` is given. */
  appId: string;
  /** The lower-case `serviceurl` claim botbuilder compares with activity.serviceUrl. */
  serviceUrl: string;
  issuer?: string;
  audience?: string;
  /** Seconds from now; negative means already expired. Default 3600. */
  expiresIn?: number;
  /** Seconds relative to now for nbf. Default -60. */
  notBefore?: number;
  /** Another signing key, for the bad-signature case. */
  key?: PrivateKey;
  kid?: string;
}

export interface TokenRequest {
  tenantPath: string;
  grantType: string | undefined;
  clientId: string | undefined;
  scope: string | undefined;
  ok: boolean;
}

export interface FakeIdentity {
  /** TEAMS_OPENID_METADATA_URL */
  metadataUrl: string;
  /** TEAMS_TOKEN_ISSUER */
  issuer: string;
  /** TEAMS_LOGIN_URL: the token endpoint is `${loginUrl}/oauth2/v2.0/token`. */
  loginUrl: string;
  baseUrl: string;
  tokenRequests: TokenRequest[];
  isIssued(token: string): boolean;
  signActivityToken(o: SignOptions): Promise<string>;
  close(): Promise<void>;
}

export async function generateRogueKey(): Promise<PrivateKey> {
  return (await generateKeyPair("RS256", { modulusLength: 2048 })).privateKey;
}

export async function startFakeIdentity(o: { appId: string; password: string; tenant: string; issuer?: string }): Promise<FakeIdentity> {
  const issuer = o.issuer ?? BOT_FRAMEWORK_ISSUER;
  const kid = `fake-${randomUUID().slice(0, 8)}`;
  const { publicKey, privateKey } = await generateKeyPair("RS256", { modulusLength: 2048, extractable: true });
  // Real Bot Framework keys carry endorsements; botbuilder checks activity.channelId against them.
  const jwk = { ...(await exportJWK(publicKey)), kid, use: "sig", alg: "RS256", endorsements: ["msteams", "webchat", "emulator"] };
  const issued = new Set<string>();
  const tokenRequests: TokenRequest[] = [];
  const r = router();
  let base = "";
  r.get("/v1/.well-known/openidconfiguration", (_req, res) =>
    json(res, 200, {
      issuer,
      authorization_endpoint: `${base}/authorize`,
      jwks_uri: `${base}/v1/.well-known/keys`,
      id_token_signing_alg_values_supported: ["RS256"],
      token_endpoint_auth_methods_supported: ["private_key_jwt"],
    }),
  );
  r.get("/v1/.well-known/keys", (_req, res) => json(res, 200, { keys: [jwk] }));
  r.post("/:tenant/oauth2/v2.0/token", (req, res, params) => {
    const f = (req.body ?? {}) as Record<string, string | undefined>;
    const ok =
      params.tenant === o.tenant &&
      f.grant_type === "client_credentials" &&
      f.client_id === o.appId &&
      f.client_secret === o.password &&
      f.scope === `${BOT_FRAMEWORK_SCOPE}/.default`;
    tokenRequests.push({ tenantPath: params.tenant ?? "", grantType: f.grant_type, clientId: f.client_id, scope: f.scope, ok });
    if (!ok) return json(res, 401, { error: "invalid_client", error_description: "bad client credentials, tenant or scope" });
    const token = `fake-at-${randomBytes(16).toString("hex")}`;
    issued.add(token);
    json(res, 200, { token_type: "Bearer", expires_in: 3599, access_token: token });
  });
  base = await listen(r.server);

  return {
    baseUrl: base,
    metadataUrl: `${base}/v1/.well-known/openidconfiguration`,
    issuer,
    loginUrl: `${base}/${o.tenant}`,
    tokenRequests,
    isIssued: (t) => issued.has(t),
    signActivityToken: async (s) => {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ serviceurl: s.serviceUrl })
        .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: s.kid ?? kid })
        .setIssuer(s.issuer ?? issuer)
        .setAudience(s.audience ?? s.appId)
        .setIssuedAt(now)
        .setNotBefore(now + (s.notBefore ?? -60))
        .setExpirationTime(now + (s.expiresIn ?? 3600))
        .sign(s.key ?? privateKey);
    },
    close: () => close(r.server),
  };
}

// ---------------------------------------------------------------------------------------
// Bot Connector service.
// ---------------------------------------------------------------------------------------

export type CallKind = "createConversation" | "sendToConversation" | "replyToActivity" | "updateActivity" | "getMember" | "unknown";

export interface RecordedCall {
  kind: CallKind;
  method: string;
  /** Raw (encoded) path. */
  path: string;
  params: Record<string, string>;
  authorization: string | undefined;
  body: unknown;
  status: number;
  at: number;
}

export interface Fault {
  status: number;
  retryAfter?: string | number;
  /** Only calls whose decoded conversation id starts with this (default: any call). */
  conversation?: string;
}

export interface FakeMember {
  id?: string;
  name?: string;
  aadObjectId?: string;
  email?: string;
  userPrincipalName?: string;
  tenantId?: string;
}

export interface StoredActivity {
  conversationId: string;
  activityId: string;
  activity: Record<string, unknown>;
  versions: Record<string, unknown>[];
}

export interface FakeConnector {
  /** Ends with "/", like https://smba.trafficmanager.net/emea/ */
  serviceUrl: string;
  calls: RecordedCall[];
  callsOf(kind: CallKind): RecordedCall[];
  /** Card activities by `${conversationId}|${activityId}`, with every version. */
  activities: Map<string, StoredActivity>;
  /** Members by Teams user id (29:...). */
  members: Map<string, FakeMember>;
  /** The next `count` calls of `kind` (to `fault.conversation`, if given) fail with `fault`. */
  injectFaults(kind: CallKind, count: number, fault: Fault): void;
  close(): Promise<void>;
}

/**
 * `isValidToken` checks the bot's outbound bearer token, as the Bot Connector does;
 * `anonymous: true` accepts calls without one, as the Bot Framework Emulator does.
 */
export async function startFakeConnector(o: { isValidToken: (token: string) => boolean } | { anonymous: true }): Promise<FakeConnector> {
  const calls: RecordedCall[] = [];
  const activities = new Map<string, StoredActivity>();
  const members = new Map<string, FakeMember>();
  const faults = new Map<CallKind, Fault[]>();
  let seq = 1_700_000_000_000;
  const nextId = () => String(seq++);
  let serviceUrl = "";

  const route =
    (kind: CallKind, handler: (body: Record<string, unknown>, params: Record<string, string>) => { status: number; body?: unknown }): Handler =>
    (req, res, params) => {
      const call: RecordedCall = {
        kind,
        method: req.method ?? "",
        path: req.url ?? "",
        params,
        authorization: req.headers.authorization,
        body: req.body,
        status: 0,
        at: Date.now(),
      };
      calls.push(call);
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
      if (!("anonymous" in o) && (!token || !o.isValidToken(token))) {
        call.status = 401;
        return json(res, 401, { error: { code: "Unauthorized", message: "missing or unknown bearer token" } });
      }
      const queue = faults.get(kind) ?? [];
      const at = queue.findIndex((f) => !f.conversation || (params.conversationId ?? "").startsWith(f.conversation));
      const fault = at >= 0 ? queue.splice(at, 1)[0] : undefined;
      if (fault) {
        call.status = fault.status;
        const headers: Record<string, string> = fault.retryAfter !== undefined ? { "retry-after": String(fault.retryAfter) } : {};
        const code = fault.status === 429 ? "TooManyRequests" : fault.status === 412 ? "PreconditionFailed" : "ServiceError";
        return json(res, fault.status, { error: { code, message: `injected ${fault.status}` } }, headers);
      }
      const out = handler((req.body ?? {}) as Record<string, unknown>, params);
      call.status = out.status;
      json(res, out.status, out.body);
    };

  const r = router();
  // TeamsInfo.sendMessageToTeamsChannel: a new thread in a channel. Teams answers with the
  // thread's conversation id "<channel>;messageid=<root id>" and the root activity id.
  r.post(
    "/v3/conversations",
    route("createConversation", (body) => {
      const channelId = (body.channelData as { channel?: { id?: string } } | undefined)?.channel?.id;
      if (!channelId) return { status: 400, body: { error: { code: "BadArgument", message: "channelData.channel.id is required" } } };
      const activityId = nextId();
      const conversationId = `${channelId};messageid=${activityId}`;
      const activity = { ...((body.activity as Record<string, unknown>) ?? {}), id: activityId };
      activities.set(`${conversationId}|${activityId}`, { conversationId, activityId, activity, versions: [activity] });
      return { status: 201, body: { id: conversationId, activityId, serviceUrl } };
    }),
  );
  r.post(
    "/v3/conversations/:conversationId/activities",
    route("sendToConversation", () => ({ status: 201, body: { id: nextId() } })),
  );
  r.post(
    "/v3/conversations/:conversationId/activities/:activityId",
    route("replyToActivity", () => ({ status: 201, body: { id: nextId() } })),
  );
  r.put(
    "/v3/conversations/:conversationId/activities/:activityId",
    route("updateActivity", (body, p) => {
      const key = `${p.conversationId}|${p.activityId}`;
      const stored = activities.get(key);
      if (!stored) return { status: 404, body: { error: { code: "NotFound", message: `unknown activity ${key}` } } };
      stored.activity = { ...body, id: p.activityId };
      stored.versions.push(stored.activity);
      return { status: 200, body: { id: p.activityId } };
    }),
  );
  // TeamsInfo.getMember: in a team, botbuilder asks with the team id as the conversation.
  r.get(
    "/v3/conversations/:conversationId/members/:memberId",
    route("getMember", (_b, p) => {
      const m = members.get(p.memberId ?? "");
      if (!m) return { status: 404, body: { error: { code: "MemberNotFoundInConversation", message: "not found" } } };
      return { status: 200, body: { id: p.memberId, userRole: "user", ...m } };
    }),
  );
  r.otherwise((req, res) => {
    calls.push({
      kind: "unknown",
      method: req.method ?? "",
      path: req.url ?? "",
      params: {},
      authorization: req.headers.authorization,
      body: req.body,
      status: 404,
      at: Date.now(),
    });
    json(res, 404, { error: { code: "NoRoute", message: `${req.method} ${req.url}` } });
  });
  serviceUrl = `${await listen(r.server)}/`;

  return {
    serviceUrl,
    calls,
    callsOf: (kind) => calls.filter((c) => c.kind === kind),
    activities,
    members,
    injectFaults: (kind, count, fault) => {
      const q = faults.get(kind) ?? [];
      for (let i = 0; i < count; i++) q.push(fault);
      faults.set(kind, q);
    },
    close: () => close(r.server),
  };
}
