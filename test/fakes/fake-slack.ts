import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";

/**
 * A local fake of the Slack Web API for offline tests. Point the gateway's SLACK_API_URL
 * at `url`. It parses the form body the way Slack does (JSON-valued fields such as
 * `blocks` and `view` arrive as JSON strings), enforces the Block Kit limits, answers
 * `ok: true` on success, records every call, and can inject 429s with Retry-After.
 */

export interface FakeUser {
  id: string;
  name: string;
  /** Omit for a profile with no email. */
  email?: string;
  deleted?: boolean;
  isBot?: boolean;
  teamId?: string;
}

export interface RecordedCall {
  method: string;
  args: Record<string, unknown>;
  token: string | undefined;
  contentType: string | undefined;
  at: number;
  status: number;
  response: Record<string, unknown>;
}

export const TEAM_ID = "T0FAKE001";
export const BOT_USER_ID = "U0BOT0001";
export const BOT_ID = "B0BOT0001";

export const LIMITS = {
  blocksPerMessage: 50,
  blocksPerModal: 100,
  headerText: 150,
  sectionText: 3000,
  fieldText: 2000,
  fields: 10,
  contextElements: 10,
  actionsElements: 25,
  buttonText: 75,
  buttonValue: 2000,
  blockId: 255,
  actionId: 255,
  modalTitle: 24,
  privateMetadata: 3000,
  messageText: 40_000,
} as const;

/** JSON-valued arguments that @slack/web-api serialises as strings inside the form body. */
const JSON_FIELDS = ["blocks", "attachments", "view", "metadata"];

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const textOf = (t: unknown): string | undefined => (isObj(t) && typeof t.text === "string" ? t.text : undefined);

function checkText(t: unknown, p: string, max: number, errs: string[], plainOnly = false) {
  const s = textOf(t);
  if (s === undefined) return void errs.push(`missing text [json-pointer:${p}]`);
  if (isObj(t) && plainOnly && t.type !== "plain_text") errs.push(`must be plain_text [json-pointer:${p}/type]`);
  if (s.length < 1) errs.push(`must be more than 0 characters [json-pointer:${p}/text]`);
  if (s.length > max) errs.push(`must be less than ${max + 1} characters [json-pointer:${p}/text]`);
}

function checkElement(e: unknown, p: string, errs: string[]) {
  if (!isObj(e)) return void errs.push(`invalid element [json-pointer:${p}]`);
  if (typeof e.action_id === "string" && e.action_id.length > LIMITS.actionId) errs.push(`action_id too long [json-pointer:${p}/action_id]`);
  if (e.type === "button") {
    checkText(e.text, `${p}/text`, LIMITS.buttonText, errs, true);
    if (typeof e.value === "string" && e.value.length > LIMITS.buttonValue) errs.push(`value too long [json-pointer:${p}/value]`);
    if (e.style !== undefined && e.style !== "primary" && e.style !== "danger") errs.push(`invalid style [json-pointer:${p}/style]`);
  }
}

/** Slack-style error strings ("... [json-pointer:/blocks/0/text/text]"), or [] when valid. */
export function validateBlocks(blocks: unknown, maxBlocks: number = LIMITS.blocksPerMessage): string[] {
  const errs: string[] = [];
  if (!Array.isArray(blocks)) return ["must be an array [json-pointer:/blocks]"];
  if (blocks.length > maxBlocks) errs.push(`no more than ${maxBlocks} items allowed [json-pointer:/blocks]`);
  const ids = new Set<string>();
  for (const [i, b] of (blocks as unknown[]).entries()) {
    const p = `/blocks/${i}`;
    if (!isObj(b) || typeof b.type !== "string") {
      errs.push(`missing required field: type [json-pointer:${p}]`);
      continue;
    }
    if (b.block_id !== undefined) {
      const id = String(b.block_id);
      if (id.length > LIMITS.blockId) errs.push(`block_id too long [json-pointer:${p}/block_id]`);
      if (ids.has(id)) errs.push(`duplicate block_id [json-pointer:${p}/block_id]`);
      ids.add(id);
    }
    switch (b.type) {
      case "header":
        checkText(b.text, `${p}/text`, LIMITS.headerText, errs, true);
        break;
      case "section":
        if (b.text === undefined && b.fields === undefined) errs.push(`must provide either text or fields [json-pointer:${p}]`);
        if (b.text !== undefined) checkText(b.text, `${p}/text`, LIMITS.sectionText, errs);
        if (b.fields !== undefined) {
          if (!Array.isArray(b.fields) || b.fields.length > LIMITS.fields) errs.push(`no more than ${LIMITS.fields} items allowed [json-pointer:${p}/fields]`);
          else for (const [j, f] of (b.fields as unknown[]).entries()) checkText(f, `${p}/fields/${j}`, LIMITS.fieldText, errs);
        }
        if (b.accessory !== undefined) checkElement(b.accessory, `${p}/accessory`, errs);
        break;
      case "actions":
        if (!Array.isArray(b.elements) || b.elements.length === 0) errs.push(`must provide elements [json-pointer:${p}/elements]`);
        else {
          if (b.elements.length > LIMITS.actionsElements) errs.push(`too many elements [json-pointer:${p}/elements]`);
          for (const [j, e] of (b.elements as unknown[]).entries()) checkElement(e, `${p}/elements/${j}`, errs);
        }
        break;
      case "context":
        if (!Array.isArray(b.elements) || b.elements.length === 0) errs.push(`must provide elements [json-pointer:${p}/elements]`);
        else if (b.elements.length > LIMITS.contextElements) errs.push(`too many elements [json-pointer:${p}/elements]`);
        else for (const [j, e] of (b.elements as unknown[]).entries()) checkText(e, `${p}/elements/${j}`, LIMITS.sectionText, errs);
        break;
      case "input":
        if (!isObj(b.label) || !isObj(b.element)) errs.push(`missing required field: label/element [json-pointer:${p}]`);
        break;
      case "divider":
        break;
      default:
        errs.push(`unsupported block type ${String(b.type)} [json-pointer:${p}/type]`);
    }
  }
  return errs;
}

let tsCounter = 0;
function nextTs(): string {
  tsCounter = (tsCounter + 1) % 1_000_000;
  return `${Math.floor(Date.now() / 1000)}.${String(tsCounter).padStart(6, "0")}`;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => {
      body += c;
    });
    req.on("end", () => resolve(body));
    req.on("error", reject);
  });
}

export async function startFakeSlack(opts: { users?: FakeUser[]; token?: string } = {}) {
  const users = new Map<string, FakeUser>((opts.users ?? []).map((u) => [u.id, u]));
  const calls: RecordedCall[] = [];
  /** Calls that broke a Slack rule; a correct client causes none. */
  const violations: { method: string; errors: string[] }[] = [];
  const messages = new Map<string, Obj>();
  const injected = new Map<string, { status: number; retryAfter?: string; error?: string }[]>();
  const listeners = new Set<() => void>();

  const messageErrors = (a: Obj): Obj | undefined => {
    const hasText = typeof a.text === "string" && a.text.trim().length > 0;
    if (a.blocks === undefined && !hasText) return { ok: false, error: "no_text" };
    if (typeof a.text === "string" && a.text.length > LIMITS.messageText) return { ok: false, error: "msg_too_long" };
    const errors = a.blocks !== undefined ? validateBlocks(a.blocks) : [];
    // Slack itself only warns; Countersign promises a fallback for notifications.
    if (a.blocks !== undefined && !hasText) errors.push("a plain-text fallback `text` is required with blocks [json-pointer:/text]");
    return errors.length ? { ok: false, error: "invalid_blocks", errors, response_metadata: { messages: errors.map((e) => `[ERROR] ${e}`) } } : undefined;
  };

  const userJson = (u: FakeUser) => ({
    id: u.id,
    team_id: u.teamId ?? TEAM_ID,
    name: u.name,
    deleted: Boolean(u.deleted),
    real_name: u.name,
    tz: "Europe/Berlin",
    is_bot: Boolean(u.isBot),
    is_app_user: false,
    profile: { real_name: u.name, display_name: u.name, ...(u.email ? { email: u.email } : {}), team: u.teamId ?? TEAM_ID },
  });

  const handlers: Record<string, (a: Obj) => Obj> = {
    "auth.test": () => ({
      ok: true,
      url: "https://fake.slack.com/",
      team: "Fake",
      user: "countersign",
      team_id: TEAM_ID,
      user_id: BOT_USER_ID,
      bot_id: BOT_ID,
    }),
    "users.info": (a) => {
      if (typeof a.user !== "string") return { ok: false, error: "invalid_arguments" };
      const u = users.get(a.user);
      return u ? { ok: true, user: userJson(u) } : { ok: false, error: "user_not_found" };
    },
    "chat.postMessage": (a) => {
      const err = messageErrors(a);
      if (err) return err;
      if (typeof a.channel !== "string" || !/^[CGD][A-Z0-9]+$/.test(a.channel)) return { ok: false, error: "channel_not_found" };
      const ts = nextTs();
      const message = { type: "message", subtype: "bot_message", text: a.text, blocks: a.blocks, ts, user: BOT_USER_ID, bot_id: BOT_ID };
      messages.set(`${a.channel}:${ts}`, message);
      return { ok: true, channel: a.channel, ts, message };
    },
    "chat.update": (a) => {
      const err = messageErrors(a);
      if (err) return err;
      const key = `${String(a.channel)}:${String(a.ts)}`;
      const prev = messages.get(key);
      if (!prev) return { ok: false, error: "message_not_found" };
      const message = { ...prev, text: a.text, blocks: a.blocks, edited: { user: BOT_USER_ID, ts: nextTs() } };
      messages.set(key, message);
      return { ok: true, channel: a.channel, ts: a.ts, text: a.text, message };
    },
    "chat.postEphemeral": (a) => {
      const err = messageErrors(a);
      if (err) return err;
      if (typeof a.channel !== "string") return { ok: false, error: "channel_not_found" };
      if (typeof a.user !== "string") return { ok: false, error: "user_not_in_channel" };
      return { ok: true, message_ts: nextTs() };
    },
    "views.open": (a) => {
      if (typeof a.trigger_id !== "string" || !/^\d+\.\d+\.[0-9a-f]+$/.test(a.trigger_id)) return { ok: false, error: "invalid_trigger_id" };
      const v = a.view;
      if (!isObj(v)) return { ok: false, error: "invalid_arguments" };
      const errors = validateBlocks(v.blocks ?? [], LIMITS.blocksPerModal);
      if (v.type !== "modal") errors.push("must be modal [json-pointer:/view/type]");
      if ((textOf(v.title) ?? "").length > LIMITS.modalTitle) errors.push("title too long [json-pointer:/view/title/text]");
      if (typeof v.private_metadata === "string" && v.private_metadata.length > LIMITS.privateMetadata)
        errors.push("too long [json-pointer:/view/private_metadata]");
      if (Array.isArray(v.blocks) && v.blocks.some((b: unknown) => isObj(b) && b.type === "input") && !v.submit)
        errors.push("submit is required [json-pointer:/view/submit]");
      if (errors.length) return { ok: false, error: "invalid_arguments", response_metadata: { messages: errors.map((e) => `[ERROR] ${e}`) } };
      return { ok: true, view: { id: `V${Math.random().toString(36).slice(2, 12).toUpperCase()}`, ...v, state: { values: {} }, hash: `${Date.now()}.abc` } };
    },
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const method = (req.url ?? "").replace(/^\/api\//, "").split("?")[0] ?? "";
    const raw = await readBody(req);
    const contentType = req.headers["content-type"];
    let args: Obj = {};
    if (contentType?.startsWith("application/json")) {
      args = raw ? (JSON.parse(raw) as Obj) : {};
    } else {
      args = Object.fromEntries(new URLSearchParams(raw));
      for (const f of JSON_FIELDS) {
        if (typeof args[f] === "string") {
          try {
            args[f] = JSON.parse(args[f] as string);
          } catch {
            // Left as a string, so validation reports it.
          }
        }
      }
    }
    const auth = req.headers.authorization;
    const token = auth?.startsWith("Bearer ") ? auth.slice(7) : typeof args.token === "string" ? args.token : undefined;
    const rec: RecordedCall = { method, args, token, contentType, at: Date.now(), status: 0, response: {} };
    const send = (status: number, body: Obj, headers: Record<string, string> = {}) => {
      rec.status = status;
      rec.response = body;
      if (body.ok === false && (body.error === "invalid_blocks" || body.error === "invalid_arguments" || body.error === "no_text")) {
        violations.push({ method, errors: (body.errors as string[] | undefined) ?? [String(body.error)] });
      }
      calls.push(rec);
      res.writeHead(status, { "content-type": "application/json; charset=utf-8", ...headers }).end(JSON.stringify(body));
      for (const l of listeners) l();
    };
    const inj = injected.get(method)?.shift();
    if (inj) {
      if (inj.status === 429) return send(429, { ok: false, error: "ratelimited" }, inj.retryAfter ? { "retry-after": inj.retryAfter } : {});
      return send(inj.status, { ok: false, error: inj.error ?? "fatal_error" });
    }
    if (!token) return send(200, { ok: false, error: "not_authed" });
    if (opts.token ? token !== opts.token : !/^xox[bp]-/.test(token)) return send(200, { ok: false, error: "invalid_auth" });
    const h = handlers[method];
    if (!h) return send(200, { ok: false, error: "unknown_method" });
    send(200, h(args));
  };

  const server: Server = createServer((req, res) => {
    if (req.method !== "POST" || !req.url?.startsWith("/api/")) {
      res.writeHead(404).end();
      return;
    }
    handle(req, res).catch((e: Error) => {
      res.writeHead(500).end(e.message);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;

  const callsTo = (method: string) => calls.filter((c) => c.method === method);

  return {
    /** Pass as SLACK_API_URL. */
    url: `http://127.0.0.1:${port}/api/`,
    calls,
    violations,
    callsTo,
    setUser: (u: FakeUser) => users.set(u.id, u),
    /** The next `times` calls to `method` get HTTP 429 with `Retry-After: retryAfterSec`. */
    rateLimitNext(method: string, times = 1, retryAfterSec = 1) {
      const q = injected.get(method) ?? [];
      for (let i = 0; i < times; i++) q.push({ status: 429, retryAfter: String(retryAfterSec) });
      injected.set(method, q);
    },
    failNext(method: string, status = 500, error = "fatal_error") {
      const q = injected.get(method) ?? [];
      q.push({ status, error });
      injected.set(method, q);
    },
    message: (channel: string, ts: string) => messages.get(`${channel}:${ts}`),
    /** Resolves with the first successful call to `method` that matches `pred`. */
    async waitFor(method: string, pred: (c: RecordedCall) => boolean = () => true, timeoutMs = 15_000): Promise<RecordedCall> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hit = calls.find((c) => c.method === method && c.response.ok === true && pred(c));
        if (hit) return hit;
        const left = deadline - Date.now();
        if (left <= 0) {
          throw new Error(
            `fake Slack: no matching ${method} within ${timeoutMs} ms; saw ${calls.map((c) => `${c.method}(${c.status})`).join(", ") || "nothing"}`,
          );
        }
        await new Promise<void>((r) => {
          const t = setTimeout(done, Math.min(left, 200));
          function done() {
            clearTimeout(t);
            listeners.delete(done);
            r();
          }
          listeners.add(done);
        });
      }
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export type FakeSlack = Awaited<ReturnType<typeof startFakeSlack>>;

/** Every mrkdwn and plain text in a list of blocks, joined: handy for assertions. */
export function blocksText(blocks: unknown): string {
  const out: string[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (isObj(v)) {
      if (typeof v.text === "string") out.push(v.text);
      for (const [k, x] of Object.entries(v)) if (k !== "text" || typeof x !== "string") walk(x);
    }
  };
  walk(blocks);
  return out.join("\n");
}
