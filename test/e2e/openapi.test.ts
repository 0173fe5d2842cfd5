import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CreateRequestInput, DecisionInput, type Logger } from "@countersign/core";
import type { Database } from "@countersign/db";
import type { ServiceDeps } from "@countersign/services";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseEnv } from "../../apps/gateway/src/env.ts";
import { createApp } from "../../apps/gateway/src/http/app.ts";
import { fixPattern, type OpenApiDocument } from "../../apps/gateway/src/http/openapi.ts";
import { Waiters } from "../../apps/gateway/src/http/waiters.ts";
import { buildSurfaces } from "../../apps/gateway/src/surfaces.ts";
import { renderDefault } from "../../scripts/render-api-docs.ts";
import { type GatewayProcess, ROOT, startGateway } from "../support/gateway.ts";

type Json = Record<string, unknown>;
type Express = ReturnType<typeof createApp>;
const METHODS = new Set(["get", "put", "post", "delete", "options", "head", "patch", "trace"]);

// ---------- a small JSON Schema 2020-12 validator for the keywords the document uses ----------
// Any keyword it does not know fails the test, so nothing in the document goes unchecked.

const ANNOTATIONS = new Set(["description", "title", "default", "example", "examples", "deprecated", "readOnly", "writeOnly", "$schema", "id"]);
const FORMATS: Record<string, (s: string) => boolean> = {
  "date-time": (s) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(s) && !Number.isNaN(Date.parse(s)),
  email: (s) => /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(s),
  uri: (s) => URL.canParse(s),
};
const TYPES = new Set(["string", "number", "integer", "boolean", "object", "array", "null"]);

function jsonType(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

function resolveRef(doc: Json, ref: string): Json {
  expect(ref.startsWith("#/"), `only local $refs: ${ref}`).toBe(true);
  let node: unknown = doc;
  for (const part of ref.slice(2).split("/")) node = (node as Json | undefined)?.[part.replace(/~1/g, "/").replace(/~0/g, "~")];
  expect(node, `$ref ${ref} resolves`).toBeTypeOf("object");
  return node as Json;
}

/** Problems with `value` against `schema`, as "path: message" strings. */
function validate(doc: Json, schema: Json | boolean, value: unknown, path = "$"): string[] {
  if (schema === true) return [];
  if (schema === false) return [`${path}: no value allowed`];
  const errs: string[] = [];
  for (const [k, s] of Object.entries(schema)) {
    switch (k) {
      case "$ref":
        errs.push(...validate(doc, resolveRef(doc, s as string), value, path));
        break;
      case "type": {
        const types = (Array.isArray(s) ? s : [s]) as string[];
        const t = jsonType(value);
        if (!types.includes(t) && !(t === "integer" && types.includes("number"))) errs.push(`${path}: expected ${types.join("|")}, got ${t}`);
        break;
      }
      case "enum":
        if (!(s as unknown[]).some((e) => JSON.stringify(e) === JSON.stringify(value))) errs.push(`${path}: ${JSON.stringify(value)} not in enum`);
        break;
      case "const":
        if (JSON.stringify(s) !== JSON.stringify(value)) errs.push(`${path}: expected const ${JSON.stringify(s)}`);
        break;
      case "properties":
        if (jsonType(value) === "object") {
          for (const [name, sub] of Object.entries(s as Json)) {
            if (name in (value as Json)) errs.push(...validate(doc, sub as Json, (value as Json)[name], `${path}.${name}`));
          }
        }
        break;
      case "required":
        if (jsonType(value) === "object") for (const name of s as string[]) if (!(name in (value as Json))) errs.push(`${path}: missing ${name}`);
        break;
      case "additionalProperties":
        if (jsonType(value) === "object") {
          const known = new Set(Object.keys((schema.properties ?? {}) as Json));
          for (const [name, v] of Object.entries(value as Json)) {
            if (!known.has(name)) errs.push(...validate(doc, s as Json | boolean, v, `${path}.${name}`));
          }
        }
        break;
      case "propertyNames":
        if (jsonType(value) === "object") for (const name of Object.keys(value as Json)) errs.push(...validate(doc, s as Json, name, `${path}[key ${name}]`));
        break;
      case "maxProperties":
        if (jsonType(value) === "object" && Object.keys(value as Json).length > (s as number)) errs.push(`${path}: more than ${s} properties`);
        break;
      case "items":
        if (Array.isArray(value)) {
          value.forEach((v, i) => {
            errs.push(...validate(doc, s as Json, v, `${path}[${i}]`));
          });
        }
        break;
      case "anyOf":
      case "oneOf": {
        const passing = (s as Json[]).filter((alt) => validate(doc, alt, value, path).length === 0).length;
        if (k === "anyOf" ? passing === 0 : passing !== 1) errs.push(`${path}: ${k} matched ${passing}`);
        break;
      }
      case "allOf":
        for (const alt of s as Json[]) errs.push(...validate(doc, alt, value, path));
        break;
      case "minLength":
        if (typeof value === "string" && [...value].length < (s as number)) errs.push(`${path}: shorter than ${s}`);
        break;
      case "maxLength":
        if (typeof value === "string" && [...value].length > (s as number)) errs.push(`${path}: longer than ${s}`);
        break;
      case "pattern":
        if (typeof value === "string" && !new RegExp(s as string, "u").test(value)) errs.push(`${path}: does not match ${s}`);
        break;
      case "format":
        if (typeof value === "string" && FORMATS[s as string] && !FORMATS[s as string]?.(value)) errs.push(`${path}: not a ${s}`);
        break;
      case "minimum":
        if (typeof value === "number" && value < (s as number)) errs.push(`${path}: below ${s}`);
        break;
      case "maximum":
        if (typeof value === "number" && value > (s as number)) errs.push(`${path}: above ${s}`);
        break;
      default:
        if (!ANNOTATIONS.has(k)) errs.push(`${path}: schema keyword "${k}" is not understood by this validator`);
    }
  }
  return errs;
}

/** Checks a schema object itself: known keywords, valid types, compilable patterns, required ⊆ properties. */
function checkSchema(doc: Json, s: unknown, where: string, out: string[]): void {
  if (typeof s === "boolean") return;
  if (!s || typeof s !== "object") return void out.push(`${where}: schema is not an object`);
  const o = s as Json;
  if (typeof o.$ref === "string") {
    resolveRef(doc, o.$ref);
    return;
  }
  for (const t of (Array.isArray(o.type) ? o.type : o.type ? [o.type] : []) as string[]) if (!TYPES.has(t)) out.push(`${where}: bad type ${t}`);
  if (typeof o.pattern === "string") {
    try {
      new RegExp(o.pattern, "u");
    } catch (e) {
      out.push(`${where}: pattern does not compile: ${(e as Error).message}`);
    }
  }
  if (o.enum !== undefined && (!Array.isArray(o.enum) || o.enum.length === 0)) out.push(`${where}: empty enum`);
  if (Array.isArray(o.required) && o.properties) {
    for (const r of o.required as string[]) if (!(r in (o.properties as Json))) out.push(`${where}: required "${r}" is not a property`);
  }
  for (const k of Object.keys(o)) {
    if (
      ![
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "propertyNames",
        "maxProperties",
        "items",
        "anyOf",
        "oneOf",
        "allOf",
      ].includes(k)
    ) {
      if (!["minLength", "maxLength", "pattern", "format", "minimum", "maximum"].includes(k) && !ANNOTATIONS.has(k)) out.push(`${where}: unknown keyword ${k}`);
    }
  }
  for (const [name, sub] of Object.entries((o.properties ?? {}) as Json)) checkSchema(doc, sub, `${where}.${name}`, out);
  for (const k of ["items", "additionalProperties", "propertyNames"]) if (o[k] !== undefined) checkSchema(doc, o[k], `${where}/${k}`, out);
  for (const k of ["anyOf", "oneOf", "allOf"]) for (const [i, alt] of ((o[k] ?? []) as unknown[]).entries()) checkSchema(doc, alt, `${where}/${k}/${i}`, out);
}

/** Structural rules of OpenAPI 3.1 that matter to clients and code generators. */
function checkDocument(doc: Json): string[] {
  const out: string[] = [];
  if (typeof doc.openapi !== "string" || !/^3\.1\.\d+$/.test(doc.openapi)) out.push("openapi must be 3.1.x");
  const info = doc.info as Json | undefined;
  if (typeof info?.title !== "string" || typeof info?.version !== "string") out.push("info.title and info.version are required");
  const components = (doc.components ?? {}) as Json;
  const schemes = (components.securitySchemes ?? {}) as Json;
  const tagNames = new Set(((doc.tags ?? []) as { name: string }[]).map((t) => t.name));
  const operationIds = new Set<string>();
  for (const [name, s] of Object.entries((components.schemas ?? {}) as Json)) checkSchema(doc, s, `#/components/schemas/${name}`, out);

  const checkSecurity = (sec: unknown, where: string) => {
    for (const req of (sec ?? []) as Json[]) for (const name of Object.keys(req)) if (!(name in schemes)) out.push(`${where}: unknown security scheme ${name}`);
  };
  checkSecurity(doc.security, "root");

  const checkOperation = (op: Json, where: string, pathParams: string[]) => {
    if (typeof op.operationId !== "string") out.push(`${where}: operationId missing`);
    else if (operationIds.has(op.operationId)) out.push(`${where}: duplicate operationId ${op.operationId}`);
    else operationIds.add(op.operationId);
    for (const t of (op.tags ?? []) as string[]) if (!tagNames.has(t)) out.push(`${where}: undeclared tag ${t}`);
    checkSecurity(op.security, where);
    const seen = new Set<string>();
    for (const p of (op.parameters ?? []) as Json[]) {
      const key = `${p.in}:${String(p.name).toLowerCase()}`;
      if (seen.has(key)) out.push(`${where}: duplicate parameter ${key}`);
      seen.add(key);
      if (!["query", "header", "path", "cookie"].includes(p.in as string)) out.push(`${where}: parameter ${p.name} has bad "in"`);
      if (p.in === "path" && p.required !== true) out.push(`${where}: path parameter ${p.name} must be required`);
      if (!p.schema && !p.content) out.push(`${where}: parameter ${p.name} has no schema`);
      checkSchema(doc, p.schema, `${where} parameter ${p.name}`, out);
    }
    const declared = ((op.parameters ?? []) as Json[]).filter((p) => p.in === "path").map((p) => p.name as string);
    if ([...declared].sort().join() !== [...pathParams].sort().join())
      out.push(`${where}: path parameters ${declared} do not match the template ${pathParams}`);
    const body = op.requestBody as Json | undefined;
    if (body) for (const [type, m] of Object.entries((body.content ?? {}) as Json)) checkSchema(doc, (m as Json).schema, `${where} body ${type}`, out);
    const responses = (op.responses ?? {}) as Json;
    if (Object.keys(responses).length === 0) out.push(`${where}: no responses`);
    for (const [status, r] of Object.entries(responses)) {
      if (!/^([1-5](\d\d|XX)|default)$/.test(status)) out.push(`${where}: bad response key ${status}`);
      const res = ((r as Json).$ref ? resolveRef(doc, (r as Json).$ref as string) : r) as Json;
      if (typeof res.description !== "string") out.push(`${where} ${status}: description is required`);
      for (const [type, m] of Object.entries((res.content ?? {}) as Json)) checkSchema(doc, (m as Json).schema, `${where} ${status} ${type}`, out);
      for (const [name, h] of Object.entries((res.headers ?? {}) as Json)) checkSchema(doc, (h as Json).schema, `${where} ${status} header ${name}`, out);
    }
  };

  for (const [path, item] of Object.entries((doc.paths ?? {}) as Json)) {
    if (!path.startsWith("/")) out.push(`path ${path} must start with /`);
    const params = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1] as string);
    for (const [method, op] of Object.entries(item as Json)) {
      if (!METHODS.has(method)) out.push(`${path}: unexpected key ${method}`);
      else checkOperation(op as Json, `${method.toUpperCase()} ${path}`, params);
    }
  }
  for (const [name, item] of Object.entries((doc.webhooks ?? {}) as Json)) {
    for (const [method, op] of Object.entries(item as Json)) checkOperation(op as Json, `webhook ${name} ${method}`, []);
  }
  return out;
}

// ---------- every route the app serves, read from express itself ----------

function appRoutes(app: Express): string[] {
  const out: string[] = [];
  type Layer = { route?: { path: string; methods: Record<string, boolean> }; handle?: { stack?: Layer[] }; rawPath?: string };
  const walk = (stack: Layer[], prefix: string) => {
    for (const layer of stack) {
      if (layer.route) for (const m of Object.keys(layer.route.methods)) out.push(`${m.toUpperCase()} ${prefix}${layer.route.path}`);
      else if (layer.handle?.stack) walk(layer.handle.stack, `${prefix}${layer.rawPath === "/" ? "" : (layer.rawPath ?? "")}`);
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack, "");
  return out.map((r) => r.replace(/:(\w+)/g, "{$1}").replace(/(.)\/$/, "$1")).sort();
}

function documentedRoutes(doc: OpenApiDocument): string[] {
  return Object.entries(doc.paths)
    .flatMap(([path, item]) => Object.keys(item).map((m) => `${m.toUpperCase()} ${path}`))
    .sort();
}

describe("OpenAPI document", () => {
  let gw: GatewayProcess;
  let doc: OpenApiDocument;
  let agentKey: string;
  let reviewerKey: string;
  let adminKey: string;

  beforeAll(async () => {
    gw = await startGateway({ engine: "pglite" });
    agentKey = (await gw.createKey({ name: "agent", owner: "owner@example.com", scopes: ["requests"] })).key;
    reviewerKey = (await gw.createKey({ name: "alice", owner: "alice@example.com", scopes: ["decisions"] })).key;
    adminKey = (await gw.createKey({ name: "admin", owner: "admin@example.com", scopes: ["admin"] })).key;
    const res = await gw.api("/openapi.json");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    doc = (await res.json()) as OpenApiDocument;
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it("is a valid OpenAPI 3.1 document", () => {
    expect(doc.openapi).toBe("3.1.0");
    expect(checkDocument(doc as unknown as Json)).toEqual([]);
    expect(doc.components.securitySchemes.apiKey).toMatchObject({ type: "http", scheme: "bearer" });
  });

  it("documents every route the gateway serves, and nothing else", async () => {
    // The app as the gateway builds it with every optional part on: metrics on the API port,
    // and the Slack (HTTP mode) and Teams surfaces. Building it touches neither a database nor a platform.
    const stubDb = { listen: async () => async () => {} } as unknown as Database;
    const deps = { db: stubDb, publicUrl: "http://localhost", receipts: { jwks: () => ({ keys: [] }) }, clock: () => new Date() } as unknown as ServiceDeps;
    const log: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => log };
    const env = parseEnv({ SLACK_BOT_TOKEN: "xoxb-1", SLACK_SIGNING_SECRET: "s", SLACK_API_URL: "http://127.0.0.1:9/api/", TEAMS_DEV_NO_AUTH: "true" });
    const surfaces = await buildSurfaces(env, deps, log);
    const app = createApp({
      deps,
      waiters: new Waiters(stubDb),
      log,
      rateLimit: 0,
      rateBurst: 1,
      rawRouters: surfaces.flatMap((s) => (s.mount ? [s.mount] : [])),
      metrics: [(_req, res) => void res.end()],
      ready: async () => ({ ok: true, detail: {} }),
    });
    const served = appRoutes(app);
    expect(served.length).toBeGreaterThanOrEqual(10);
    expect(documentedRoutes(doc)).toEqual(served);
  });

  it("takes its request bodies from the zod schemas that validate them", () => {
    const schemas = doc.components.schemas;
    const body = (path: string, method: string) =>
      ((((doc.paths[path]?.[method] ?? {}) as Json).requestBody as Json).content as Record<string, { schema: { $ref: string } }>)["application/json"]?.schema
        .$ref;
    expect(body("/v1/requests", "post")).toBe("#/components/schemas/CreateRequestInput");
    expect(body("/v1/requests/{id}/decisions", "post")).toBe("#/components/schemas/DecisionInput");
    expect(body("/v1/requests/{id}/cancel", "post")).toBe("#/components/schemas/CancelInput");
    expect(Object.keys((schemas.CreateRequestInput as { properties: Json }).properties).sort()).toEqual(Object.keys(CreateRequestInput.shape).sort());
    expect(Object.keys((schemas.DecisionInput as { properties: Json }).properties).sort()).toEqual(Object.keys(DecisionInput.shape).sort());

    // The document accepts and refuses what the server does.
    const samples: unknown[] = [
      { action: "db.export", summary: "Export" },
      { action: "IAM.Role.Attach", summary: "Attach", params: { role: "admin", nested: { a: [1, { b: null }] } }, risk: "high", expiresIn: 600 },
      { action: "db.export", summary: "x", metadata: { ticket: "OPS-42" }, onBehalfOf: "Bob@Example.com", callbackUrl: "https://agent.example.com/cb" },
      { action: "export", summary: "x" },
      { action: "db export", summary: "x" },
      { action: "db.export", summary: "" },
      { action: "db.export", summary: "x", unknown: 1 },
      { action: "db.export", summary: "x", risk: "extreme" },
      { action: "db.export", summary: "x", expiresIn: 5 },
      { action: "db.export", summary: "x", params: [1, 2] },
      { action: "db.export", summary: "x", onBehalfOf: "not an email" },
      { action: "db.export", summary: "x", metadata: { [`k${"x".repeat(100)}`]: "v" } },
      { summary: "x" },
    ];
    for (const sample of samples) {
      const byZod = CreateRequestInput.safeParse(sample).success;
      const byDoc = validate(doc as unknown as Json, schemas.CreateRequestInput as Json, sample).length === 0;
      expect({ sample, byDoc }).toEqual({ sample, byDoc: byZod });
    }
  });

  it("turns regex flags into valid JSON Schema patterns", () => {
    expect(fixPattern("^[a-z0-9_-]+(\\.[a-z0-9_-]+)+$/i")).toBe("^[a-zA-Z0-9_-]+(\\.[a-zA-Z0-9_-]+)+$");
    expect(fixPattern("^abc\\d$/i")).toBe("^[aA][bB][cC]\\d$");
    expect(fixPattern("^a\\/i$")).toBe("^a\\/i$");
    expect(() => fixPattern("^a$/m")).toThrow(/cannot be expressed/);
  });

  describe("matches what the gateway really answers", () => {
    const documented = (path: string, method: string, status: number) => {
      const op = doc.paths[path]?.[method] as Json | undefined;
      expect(op, `${method} ${path} is documented`).toBeDefined();
      const responses = op?.responses as Json | undefined;
      const r = responses?.[String(status)] as Json | undefined;
      expect(r, `${method.toUpperCase()} ${path} documents ${status}`).toBeDefined();
      return r as Json;
    };
    async function check(res: Response, path: string, method: string) {
      const r = documented(path, method, res.status);
      const type = (res.headers.get("content-type") ?? "").split(";")[0] as string;
      const content = (r.content ?? {}) as Record<string, { schema: Json }>;
      const media = Object.entries(content).find(([t]) => t.split(";")[0] === type);
      expect(media, `${method.toUpperCase()} ${path} ${res.status} documents ${type}`).toBeDefined();
      const text = await res.text();
      const body = type.endsWith("json") ? JSON.parse(text) : text;
      expect(validate(doc as unknown as Json, media?.[1].schema ?? {}, body)).toEqual([]);
      return body;
    }
    const call = (path: string, init: Parameters<GatewayProcess["api"]>[1] = {}) => gw.api(path, init);

    it("for requests: create, replay, read, long-poll, list, decide, cancel, and their errors", async () => {
      const created = await check(
        await call("/v1/requests", {
          method: "POST",
          key: agentKey,
          headers: { "idempotency-key": "oa-1" },
          json: { action: "db.export", summary: "Export", params: { t: "x" }, metadata: { ticket: "T-1" } },
        }),
        "/v1/requests",
        "post",
      );
      await check(
        await call("/v1/requests", {
          method: "POST",
          key: agentKey,
          headers: { "idempotency-key": "oa-1" },
          json: { action: "db.export", summary: "Export", params: { t: "x" }, metadata: { ticket: "T-1" } },
        }),
        "/v1/requests",
        "post",
      );
      await check(await call(`/v1/requests/${created.id}`, { key: agentKey }), "/v1/requests/{id}", "get");
      await check(await call(`/v1/requests/${created.id}?wait=1`, { key: agentKey }), "/v1/requests/{id}", "get");
      await check(await call("/v1/requests?status=pending&limit=5", { key: reviewerKey }), "/v1/requests", "get");
      await check(
        await call(`/v1/requests/${created.id}/decisions`, { method: "POST", key: reviewerKey, json: { decision: "approve", reason: "ok" } }),
        "/v1/requests/{id}/decisions",
        "post",
      );
      await check(
        await call(`/v1/requests/${created.id}/decisions`, { method: "POST", key: reviewerKey, json: { decision: "approve" } }),
        "/v1/requests/{id}/decisions",
        "post",
      );
      const other = await (await call("/v1/requests", { method: "POST", key: agentKey, json: { action: "db.export", summary: "Other" } })).json();
      await check(await call(`/v1/requests/${other.id}/cancel`, { method: "POST", key: agentKey, json: { reason: "no" } }), "/v1/requests/{id}/cancel", "post");
      await check(await call(`/v1/requests/${other.id}/cancel`, { method: "POST", key: agentKey }), "/v1/requests/{id}/cancel", "post");
      await check(await call("/v1/requests", { method: "POST", key: agentKey, json: { action: "nope", summary: "" } }), "/v1/requests", "post");
      await check(await call("/v1/requests", { method: "POST", key: agentKey, headers: { "content-type": "text/plain" }, body: "x" }), "/v1/requests", "post");
      await check(await call("/v1/requests", { method: "POST", json: {} }), "/v1/requests", "post");
      await check(await call("/v1/requests", { key: agentKey }), "/v1/requests", "get");
      await check(await call(`/v1/requests/req_${"0".repeat(26)}`, { key: agentKey }), "/v1/requests/{id}", "get");
      await check(await call(`/v1/requests/${created.id}?wait=99`, { key: agentKey }), "/v1/requests/{id}", "get");
    });

    it("for receipt redemption and its errors", async () => {
      const created = await (await call("/v1/requests", { method: "POST", key: agentKey, json: { action: "db.export", summary: "Redeem me" } })).json();
      const path = `/v1/receipts/${created.id}/redeem`;
      await check(await call(path, { method: "POST", key: agentKey }), "/v1/receipts/{jti}/redeem", "post");
      await call(`/v1/requests/${created.id}/decisions`, { method: "POST", key: reviewerKey, json: { decision: "approve" } });
      expect((await check(await call(path, { method: "POST", key: agentKey }), "/v1/receipts/{jti}/redeem", "post")).object).toBe("receipt_redemption");
      expect((await check(await call(path, { method: "POST", key: agentKey }), "/v1/receipts/{jti}/redeem", "post")).code).toBe("receipt_already_redeemed");
      await check(await call(path, { method: "POST", key: reviewerKey }), "/v1/receipts/{jti}/redeem", "post");
      await check(await call(path, { method: "POST" }), "/v1/receipts/{jti}/redeem", "post");
      await check(await call(`/v1/receipts/req_${"0".repeat(26)}/redeem`, { method: "POST", key: agentKey }), "/v1/receipts/{jti}/redeem", "post");
    });

    it("for the audit log, keys, health, readiness, this document and metrics", async () => {
      await check(await call("/v1/audit?limit=3", { key: adminKey }), "/v1/audit", "get");
      await check(await call("/v1/audit", { key: agentKey }), "/v1/audit", "get");
      await check(await call("/.well-known/jwks.json"), "/.well-known/jwks.json", "get");
      await check(await call("/healthz"), "/healthz", "get");
      await check(await call("/readyz"), "/readyz", "get");
      await check(await call("/openapi.json"), "/openapi.json", "get");
      await check(await call("/metrics", { key: adminKey }), "/metrics", "get");
      await check(await call("/metrics"), "/metrics", "get");
      await check(await call("/metrics", { key: agentKey }), "/metrics", "get");
    });
  });

  it("is rendered into docs/api.md, which is up to date", () => {
    const current = readFileSync(join(ROOT, "docs/api.md"), "utf8");
    expect(current, "docs/api.md is stale: run pnpm tsx scripts/render-api-docs.ts").toBe(renderDefault());
    for (const route of documentedRoutes(doc)) {
      const [method, path] = route.split(" ");
      expect(current).toContain(`\`${method} ${path}\``);
    }
  });
});
