import { canonicalSha256 } from "@countersign/core";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeSlack, startFakeSlack } from "../fakes/fake-slack.ts";
import { blockActionsPayload, formBody, signature, slackUser } from "../fakes/slack-sign.ts";
import { snapshot } from "../support/api-helpers.ts";
import { engines } from "../support/db.ts";
import { type GatewayProcess, startGateway } from "../support/gateway.ts";

const SLACK_SECRET = "faults-slack-signing-secret";
const SEED = process.env.FAULTS_SEED ? Number(process.env.FAULTS_SEED) : undefined;
const runs = (n: number) => ({ numRuns: n, ...(SEED !== undefined ? { seed: SEED } : {}) });

const POLICY = `
version: 1
channels:
  ops: { slack: { channel: C0FAULTS01 } }
rules:
  - id: anyone
    effect: require_approval
    approvers: ["*"]
    notify: [ops]
default: deny
`;

/** A raw HTTP exchange; the body may be any bytes. */
interface Sent {
  path: string;
  body: string | Uint8Array;
  headers: Record<string, string>;
}
interface Got {
  status: number;
  contentType: string;
  text: string;
}

/** Characters that break naive handling: NUL, lone surrogates, BOM, bidi overrides, astral, combining, JSON and SQL metacharacters. */
const edgeChar = fc.oneof(
  fc.constantFrom("\u0000", "\ud800", "\udbff", "\udc00", "\udfff", "\ufeff", "\u202e", "\u200b", "\uffff", "\ufffe", "\u2028", "\u0085"),
  fc.constantFrom("𝕏", "😀", "e\u0301", "\r\n", "\\", '"', "'", "<", "&", "%00", "$" + "{x}", "'; DROP TABLE approval_requests; --", "\u001b[31m"),
  fc.string({ unit: "binary", minLength: 1, maxLength: 2 }),
);
const edgeString = fc.string({ unit: edgeChar, minLength: 1, maxLength: 24 });
/** encodeURIComponent, except that unpaired surrogates go out as the raw (invalid) UTF-8 bytes of one. */
const encodeAny = (s: string) =>
  s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]|[\s\S]/gu, (c) =>
    c.length === 1 && c >= "\ud800" && c <= "\udfff" ? "%ED%A0%80" : encodeURIComponent(c),
  );
const hasUnstorable = (s: string) => s.includes("\u0000") || /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);

const VALID = { action: "db.export", summary: "Export the customers table", params: { table: "customers", limit: 10 } };
const TEXT_FIELDS = ["action", "summary", "resource", "environment", "rationale", "onBehalfOf", "callbackUrl", "risk"] as const;

/** Nested arrays or objects `depth` levels deep, as raw JSON text (no recursion on either side). */
const deepJson = (depth: number, kind: "array" | "object") =>
  kind === "array" ? `${"[".repeat(depth)}${"]".repeat(depth)}` : `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;

/** Bodies that must all be refused: malformed, wrong-typed, oversized, deeply nested or carrying unstorable text. */
function malformedIntake(): fc.Arbitrary<Sent> {
  const json = (body: string, extra: Record<string, string> = {}): Sent => ({
    path: "/v1/requests",
    body,
    headers: { "content-type": "application/json", ...extra },
  });
  const nonString = fc.oneof(
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.array(fc.jsonValue(), { maxLength: 3 }),
    fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 3 }),
  );
  const field = fc.constantFrom(...TEXT_FIELDS);
  return fc.oneof(
    // Any JSON at all (an object that happens to be a valid request is astronomically unlikely).
    fc.jsonValue({ maxDepth: 4 }).map((v) => json(JSON.stringify(v) ?? "null")),
    // A valid body with one field of the wrong type.
    fc.tuple(field, nonString).map(([k, v]) => json(JSON.stringify({ ...VALID, [k]: v }))),
    fc
      .tuple(
        fc.constantFrom("params", "metadata", "expiresIn"),
        fc.oneof(
          fc.string(),
          fc.integer({ max: 9 }),
          // A fraction; 20.0 itself would be a valid expiresIn (seen: seed 1464956650).
          fc.double({ min: 10.5, max: 20 }).filter((x) => !Number.isInteger(x)),
          fc.array(fc.integer()),
          fc.boolean(),
        ),
      )
      .map(([k, v]) => json(JSON.stringify({ ...VALID, [k]: v }))),
    // Missing required fields, unknown fields, server-assigned fields.
    fc.constantFrom("action", "summary").map((k) => json(JSON.stringify({ ...VALID, [k]: undefined }))),
    fc
      .tuple(fc.string({ minLength: 1, maxLength: 12 }), fc.jsonValue({ maxDepth: 2 }))
      .filter(
        ([k]) =>
          !["action", "summary", "params", "resource", "environment", "risk", "rationale", "onBehalfOf", "callbackUrl", "expiresIn", "metadata"].includes(k),
      )
      .map(([k, v]) => json(JSON.stringify({ ...VALID, [k]: v }))),
    // Unstorable text (NUL, unpaired surrogates) anywhere a string goes.
    fc
      .tuple(field, edgeString, edgeString)
      .filter(([, a, b]) => hasUnstorable(a + b))
      .map(([k, a, b]) =>
        json(
          JSON.stringify({ ...VALID, [k]: k === "onBehalfOf" ? `${a}${b}@example.com` : k === "callbackUrl" ? `https://example.com/${a}${b}` : `${a}${b}` }),
        ),
      ),
    fc
      .tuple(edgeString, edgeString)
      .filter(([k, v]) => hasUnstorable(k + v))
      .map(([k, v]) => json(JSON.stringify({ ...VALID, params: { nested: { [k]: [v] } } }))),
    fc
      .tuple(edgeString, edgeString)
      // zod drops a "__proto__" record key, value and all, before validating it (see the round-trip test).
      .filter(([k, v]) => hasUnstorable(k + v) && k !== "__proto__")
      .map(([k, v]) => json(JSON.stringify({ ...VALID, metadata: { [k]: v } }))),
    // Deeply nested: params past the 32-level limit, other fields at any depth, the whole body.
    fc
      .tuple(fc.integer({ min: 33, max: 3_000 }), fc.constantFrom("array" as const, "object" as const))
      .map(([d, kind]) => json(`{"action":"db.export","summary":"deep","params":{"x":${deepJson(d, kind)}}}`)),
    fc
      .tuple(fc.integer({ min: 2, max: 3_000 }), fc.constantFrom("metadata", "summary", "action", "resource"))
      .map(([d, k]) => json(`{"action":"db.export","summary":"deep","${k === "action" ? "resource" : k}":${deepJson(d, "object")}}`)),
    fc.integer({ min: 100, max: 30_000 }).map((d) => json(deepJson(d, "array"))),
    // Oversized: string fields past their limits, and bodies past 64 KB.
    fc
      .tuple(
        fc.constantFrom(["summary", 151], ["action", 201], ["rationale", 2_001], ["resource", 501], ["environment", 101]),
        fc.integer({ min: 1, max: 400 }),
      )
      .map(([[k, n], extra]) =>
        json(JSON.stringify({ ...VALID, [k as string]: k === "action" ? `a.${"b".repeat((n as number) + extra)}` : "x".repeat((n as number) + extra) })),
      ),
    fc.integer({ min: 64 * 1024, max: 600 * 1024 }).map((n) => json(JSON.stringify({ ...VALID, summary: "x".repeat(n) }))),
    fc
      .integer({ min: 51, max: 200 })
      .map((n) => json(JSON.stringify({ ...VALID, metadata: Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "v"])) }))),
    // Not JSON: random bytes (often invalid UTF-8), truncated JSON, JavaScript-isms.
    fc.uint8Array({ minLength: 1, maxLength: 512 }).map((b) => ({ path: "/v1/requests", body: b, headers: { "content-type": "application/json" } })),
    fc.integer({ min: 1, max: JSON.stringify(VALID).length - 1 }).map((n) => json(JSON.stringify(VALID).slice(0, n))),
    fc.constantFrom("NaN", "undefined", "{'action':'db.export'}", '{"action":"db.export",}', "[1,2,", '{"a":1}{"b":2}', "\u0000", "").map((b) => json(b)),
    // Declared as something other than JSON, or encoded in a way the server refuses.
    fc
      .tuple(
        fc.constantFrom(
          "text/plain",
          "application/xml",
          "multipart/form-data; boundary=x",
          "application/x-www-form-urlencoded",
          "application/json; charset=latin1",
          "application/json; charset=utf-16",
          "text/json",
        ),
        fc.constantFrom(JSON.stringify(VALID), "a=b", "<x/>"),
      )
      .map(([ct, b]) => ({ path: "/v1/requests", body: b, headers: { "content-type": ct } })),
    fc
      .tuple(fc.constantFrom("gzip", "deflate", "br", "x-compress", "gzip, gzip"), fc.uint8Array({ minLength: 1, maxLength: 200 }))
      .map(([enc, b]) => ({ path: "/v1/requests", body: b, headers: { "content-type": "application/json", "content-encoding": enc } })),
  );
}

const SLACK_TYPES = [
  "block_actions",
  "view_submission",
  "view_closed",
  "shortcut",
  "message_action",
  "block_suggestion",
  "interactive_message",
  "dialog_submission",
];

/** Signed and unsigned garbage for the Slack request URL. */
function malformedSlack(): fc.Arbitrary<Sent & { sign: "good" | "bad" | "stale" | "none" }> {
  const sign = fc.constantFrom("good" as const, "good" as const, "bad" as const, "stale" as const, "none" as const);
  const form = (raw: string) => ({ "content-type": "application/x-www-form-urlencoded", _raw: raw });
  const click = blockActionsPayload({
    user: slackUser("U0FUZZ001", "fuzz"),
    channel: "C0FAULTS01",
    messageTs: "1.2",
    actionId: "countersign.approve",
    value: "req_x",
  });
  const body = fc.oneof(
    fc.jsonValue({ maxDepth: 3 }).map((v) => `payload=${encodeURIComponent(JSON.stringify(v) ?? "null")}`),
    fc.string({ maxLength: 300 }).map((s) => `payload=${encodeURIComponent(s)}`),
    fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString("latin1")),
    fc.string({ maxLength: 200 }),
    // A click whose user, actions or type is missing or of the wrong shape: no interaction Slack sends looks like this.
    fc
      .oneof(
        fc.constant(undefined),
        fc.constant(null),
        fc.integer(),
        fc.string({ maxLength: 8 }),
        fc.record({ id: fc.oneof(fc.integer(), fc.constant(null), fc.array(fc.string())) }),
      )
      .map((user) => formBody({ ...click, user })),
    fc
      .oneof(
        fc.constant(undefined),
        fc.constant(null),
        fc.string({ maxLength: 8 }),
        fc.constant([]),
        fc.array(fc.oneof(fc.integer(), fc.constant(null), fc.string()), { minLength: 1, maxLength: 3 }),
      )
      .map((actions) => formBody({ ...click, actions })),
    fc
      .oneof(edgeString, fc.string({ maxLength: 20 }), fc.integer(), fc.constant(null))
      .filter((t) => !SLACK_TYPES.includes(t as string))
      .map((type) => formBody({ ...click, type })),
    fc.constantFrom(...SLACK_TYPES).map((type) => formBody({ type, team: { id: "T0FAKE001" }, user: null })),
    fc.integer({ min: 100, max: 20_000 }).map((d) => `payload=${encodeURIComponent(deepJson(d, "array"))}`),
  );
  return fc
    .tuple(body, sign, fc.constantFrom("application/x-www-form-urlencoded", "application/x-www-form-urlencoded", "application/json", "text/plain"))
    .map(([raw, s, ct]) => ({
      path: "/slack/events",
      body: raw,
      headers: { ...form(raw), "content-type": ct },
      sign: s,
    }));
}

describe.each(engines())("bad input is refused cleanly (%s)", (engine) => {
  let gw: GatewayProcess;
  let slack: FakeSlack;
  let agent = "";
  let admin = "";

  beforeAll(async () => {
    slack = await startFakeSlack({ users: [{ id: "U0FUZZ001", name: "fuzz", email: "fuzz@example.com" }] });
    gw = await startGateway({
      engine,
      policy: POLICY,
      env: { COUNTERSIGN_RATE_LIMIT: "0", SLACK_BOT_TOKEN: "xoxb-faults", SLACK_SIGNING_SECRET: SLACK_SECRET, SLACK_API_URL: slack.url },
    });
    agent = (await gw.createKey({ name: "fuzz-bot", owner: "owner@example.com", scopes: ["requests"] })).key;
    admin = (await gw.createKey({ name: "auditor", owner: "auditor@example.com", scopes: ["admin"] })).key;
  }, 120_000);

  afterAll(async () => {
    await gw?.stop();
    await slack?.close();
  });

  const send = async (s: Sent, auth = true): Promise<Got> => {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(s.headers)) if (!k.startsWith("_")) headers[k] = v;
    if (auth) headers.authorization = `Bearer ${agent}`;
    const res = await fetch(`${gw.url}${s.path}`, { method: "POST", headers, body: s.body, signal: AbortSignal.timeout(30_000) });
    return { status: res.status, contentType: res.headers.get("content-type") ?? "", text: await res.text() };
  };
  /** Why `got` is not a clean 4xx problem+json, or null. */
  const notCleanProblem = (got: Got): string | null => {
    if (got.status < 400 || got.status > 499) return `status ${got.status}`;
    if (!got.contentType.startsWith("application/problem+json")) return `${got.status} with content-type "${got.contentType}"`;
    try {
      const p = JSON.parse(got.text) as { status?: unknown; code?: unknown };
      if (p.status !== got.status || typeof p.code !== "string") return `problem body ${got.text.slice(0, 200)}`;
    } catch {
      return `unparseable problem body ${got.text.slice(0, 200)}`;
    }
    if (/\bat .+:\d+:\d+|Prisma|TypeError|stack/.test(got.text)) return `leaks internals: ${got.text.slice(0, 200)}`;
    return null;
  };
  const stillUp = async () => {
    expect(gw.child.exitCode).toBeNull();
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
  };

  it("POST /v1/requests: malformed, wrong-typed, oversized, nested and unicode-edge bodies get a 4xx problem and write nothing", {
    timeout: 300_000,
  }, async () => {
    const before = await snapshot(gw, admin);
    await fc.assert(
      fc.asyncProperty(malformedIntake(), async (s) => {
        const got = await send(s);
        const why = notCleanProblem(got);
        if (why) throw new Error(`${why} for ${JSON.stringify(s.headers)} ${typeof s.body === "string" ? s.body.slice(0, 300) : `bytes[${s.body.length}]`}`);
      }),
      runs(2_000),
    );
    expect(await snapshot(gw, admin)).toEqual(before);
    await stillUp();
  });

  it("POST /v1/requests: unicode-edge text in every field is stored exactly or refused with a 400, never a 5xx", { timeout: 300_000 }, async () => {
    let stored = 0;
    const before = await snapshot(gw, admin);
    await fc.assert(
      fc.asyncProperty(edgeString, edgeString, edgeString, edgeString, async (summary, key, value, meta) => {
        const body = {
          action: "db.export",
          summary,
          params: { [key]: value, list: [value, { [value]: key }] },
          resource: value,
          environment: meta,
          rationale: summary,
          metadata: { [meta]: value },
        };
        const got = await send({ path: "/v1/requests", body: JSON.stringify(body), headers: { "content-type": "application/json" } });
        if (got.status === 201) {
          stored++;
          const r = JSON.parse(got.text) as { id: string; summary: string; params: unknown; paramsSha256: string; resource: string; metadata: unknown };
          const read = (await (await fetch(`${gw.url}/v1/requests/${r.id}`, { headers: { authorization: `Bearer ${agent}` } })).json()) as typeof r;
          expect(read.params).toEqual(body.params);
          expect(read.summary).toBe(summary.trim());
          expect(read.resource).toBe(value);
          // zod drops a "__proto__" record key by design (it would replace the prototype); metadata is not hashed or signed.
          expect(read.metadata).toEqual(meta === "__proto__" ? {} : body.metadata);
          expect(read.paramsSha256).toBe(canonicalSha256(body.params));
          return;
        }
        const why = notCleanProblem(got);
        if (why || got.status !== 400) throw new Error(`${why ?? got.status} for ${JSON.stringify(body)}`);
      }),
      runs(400),
    );
    // Exactly the accepted ones were written.
    expect((await snapshot(gw, admin)).requests.length).toBe(before.requests.length + stored);
    await stillUp();
  });

  it("GET and decision endpoints: garbage ids, query strings and bodies get a 4xx problem", { timeout: 180_000 }, async () => {
    const reviewer = (await gw.createKey({ name: "fuzz-reviewer", owner: "reviewer@example.com", scopes: ["decisions"] })).key;
    const created = (await (await send({ path: "/v1/requests", body: JSON.stringify(VALID), headers: { "content-type": "application/json" } })).text) as string;
    const id = (JSON.parse(created) as { id: string }).id;
    const before = await snapshot(gw, admin);
    const q = fc.oneof(edgeString, fc.string({ maxLength: 30 }), fc.constantFrom("%00", "%ED%A0%80", "%uD800", "%", "%%", "a&a=b", "999999999999999999999"));
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          q.map((v) => `/v1/requests?action=${v.includes("%") ? v : encodeAny(v)}&status=${encodeAny(v)}`),
          q.map((v) => `/v1/requests?action=${encodeAny(v)}`),
          q.map((v) => `/v1/requests?cursor=${encodeAny(v)}&limit=${encodeAny(v)}`),
          q.map((v) => `/v1/requests/${encodeAny(v)}`),
          q.map((v) => `/v1/requests/${id}?wait=${encodeAny(v)}`),
          q.map((v) => `/v1/audit?after=${encodeAny(v)}`),
        ),
        async (path) => {
          const res = await fetch(`${gw.url}${path}`, { headers: { authorization: `Bearer ${path.startsWith("/v1/audit") ? admin : reviewer}` } });
          const got = { status: res.status, contentType: res.headers.get("content-type") ?? "", text: await res.text() };
          if (got.status === 200) return; // a well-formed query that matches nothing is fine
          const why = notCleanProblem(got);
          if (why) throw new Error(`${why} for GET ${path}`);
        },
      ),
      runs(400),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? "null"),
          fc.tuple(fc.constantFrom("approve", "deny"), edgeString.filter(hasUnstorable)).map(([d, reason]) => JSON.stringify({ decision: d, reason })),
          fc.constantFrom('{"decision":"approve","reason":null}', '{"decision":"APPROVE"}', '{"decision":"approve","extra":1}', "{", ""),
        ),
        async (body) => {
          const res = await fetch(`${gw.url}/v1/requests/${id}/decisions`, {
            method: "POST",
            headers: { authorization: `Bearer ${reviewer}`, "content-type": "application/json" },
            body,
          });
          const got = { status: res.status, contentType: res.headers.get("content-type") ?? "", text: await res.text() };
          const why = notCleanProblem(got);
          if (why) throw new Error(`${why} for decision body ${body.slice(0, 200)}`);
        },
      ),
      runs(300),
    );
    expect(await snapshot(gw, admin)).toEqual(before);
    await stillUp();
  });

  it("POST /slack/events: unsigned, forged, stale and malformed deliveries get a 4xx problem and write nothing", { timeout: 300_000 }, async () => {
    const before = await snapshot(gw, admin);
    const slackCalls = slack.calls.length;
    await fc.assert(
      fc.asyncProperty(malformedSlack(), async (s) => {
        const raw = (s.headers as Record<string, string>)._raw as string;
        const ts = s.sign === "stale" ? Math.floor(Date.now() / 1000) - 600 : Math.floor(Date.now() / 1000);
        const headers: Record<string, string> = { "content-type": s.headers["content-type"] as string };
        if (s.sign !== "none") {
          headers["x-slack-request-timestamp"] = String(ts);
          headers["x-slack-signature"] = s.sign === "bad" ? `v0=${"0".repeat(64)}` : signature(SLACK_SECRET, ts, raw);
        }
        const got = await send({ path: "/slack/events", body: raw, headers }, false);
        const why = notCleanProblem(got);
        if (why) throw new Error(`${why} for ${s.sign}-signed ${headers["content-type"]} ${raw.slice(0, 300)}`);
      }),
      runs(1_000),
    );
    expect(await snapshot(gw, admin)).toEqual(before);
    // Nothing it received made it talk to Slack (no replies to forged or broken clicks).
    expect(slack.calls.slice(slackCalls).filter((c) => c.method !== "auth.test")).toEqual([]);
    await stillUp();
  });
});
