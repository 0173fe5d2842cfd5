/**
 * Renders docs/api.md from the OpenAPI document the gateway serves at /openapi.json, and
 * the metric list from the gateway's own metrics registry, so the reference cannot drift
 * from the code.
 *
 *   pnpm tsx scripts/render-api-docs.ts           # rewrite docs/api.md
 *   pnpm tsx scripts/render-api-docs.ts --check   # exit 1 if docs/api.md is stale
 */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { ERROR_CODES } from "@countersign/core";
import type { Database } from "@countersign/db";
import { buildOpenApiDocument, type OpenApiDocument } from "../apps/gateway/src/http/openapi.ts";
import { HTTP_ERRORS } from "../apps/gateway/src/http/problem.ts";
import { chatMetricsRegistry, createMetrics } from "../apps/gateway/src/metrics.ts";

type Schema = Record<string, unknown>;
interface MetricInfo {
  name: string;
  type: string;
  help: string;
  labels: string[];
}

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const OUT = fileURLToPath(new URL("../docs/api.md", import.meta.url));
const METHODS = ["get", "post", "put", "patch", "delete"];

const esc = (s: string) => s.replace(/\|/g, "\\|").replace(/\n+/g, " ");
const anchor = (name: string) => `schema-${name.toLowerCase()}`;
const refName = (ref: string) => ref.split("/").pop() as string;

function typeOf(s: Schema | undefined): string {
  if (!s) return "any";
  if (typeof s.$ref === "string") {
    const n = refName(s.$ref);
    return `[${n}](#${anchor(n)})`;
  }
  const alts = (s.anyOf ?? s.oneOf) as Schema[] | undefined;
  if (alts) return alts.map(typeOf).join(" \\| ");
  if (Array.isArray(s.enum)) return s.enum.map((v) => (v === null ? "null" : `\`${JSON.stringify(v)}\``)).join(" \\| ");
  if (s.const !== undefined) return `\`${JSON.stringify(s.const)}\``;
  const types = (Array.isArray(s.type) ? s.type : s.type ? [s.type] : []) as string[];
  const one = (t: string) => {
    if (t === "array") return `${typeOf(s.items as Schema)}[]`;
    if (t === "object" && s.additionalProperties && typeof s.additionalProperties === "object" && !s.properties) {
      return `map of ${typeOf(s.additionalProperties as Schema)}`;
    }
    if (t === "string" && typeof s.format === "string") return `string (${s.format})`;
    return t;
  };
  return types.length ? types.map(one).join(" \\| ") : "any";
}

function constraints(s: Schema): string {
  const out: string[] = [];
  if (s.minLength !== undefined) out.push(`min length ${s.minLength}`);
  if (s.maxLength !== undefined) out.push(`max length ${s.maxLength}`);
  if (s.minimum !== undefined) out.push(`≥ ${s.minimum}`);
  if (s.maximum !== undefined) out.push(`≤ ${s.maximum}`);
  if (typeof s.pattern === "string") out.push(`pattern \`${s.pattern}\``);
  if (s.default !== undefined) out.push(`default \`${JSON.stringify(s.default)}\``);
  const names = s.propertyNames as Schema | undefined;
  if (names?.maxLength !== undefined) out.push(`keys ≤ ${names.maxLength} chars`);
  if (s.maxProperties !== undefined) out.push(`at most ${s.maxProperties} entries`);
  return out.join(", ");
}

function notes(description: unknown, extra: string): string {
  const d = typeof description === "string" ? description.replace(/\.$/, "") : "";
  return [d, extra].filter(Boolean).join("; ");
}

/** Field rows for an object schema; nested inline objects and arrays of objects are flattened with dotted paths. */
function fieldRows(s: Schema, prefix = ""): string[] {
  const props = (s.properties ?? {}) as Record<string, Schema>;
  const required = new Set((s.required ?? []) as string[]);
  const rows: string[] = [];
  for (const [name, p] of Object.entries(props)) {
    const path = `${prefix}${name}`;
    const desc = notes(p.description, constraints(p));
    rows.push(`| \`${path}\` | ${typeOf(p)} | ${required.has(name) ? "yes" : ""} | ${esc(desc)} |`);
    const items = p.items as Schema | undefined;
    if (p.properties) rows.push(...fieldRows(p, `${path}.`));
    else if (items?.properties) rows.push(...fieldRows(items, `${path}[].`));
  }
  return rows;
}

function fieldTable(s: Schema): string[] {
  const rows = fieldRows(s);
  if (rows.length === 0) return [`Type: ${typeOf(s)}.`, ""];
  const extra = s.additionalProperties === false ? ["", "Unknown fields are refused."] : [];
  return ["| field | type | required | notes |", "| --- | --- | --- | --- |", ...rows, ...extra, ""];
}

function renderOperation(path: string, method: string, op: Schema): string[] {
  const lines = [`#### \`${method.toUpperCase()} ${path}\` — ${op.summary}`, ""];
  if (op.description) lines.push(op.description as string, "");
  const security = op.security as Record<string, string[]>[] | undefined;
  const scopes = security?.flatMap((r) => Object.values(r).flat()) ?? [];
  lines.push(
    security && security.length === 0
      ? "**Auth:** none."
      : `**Auth:** \`Authorization: Bearer <API key>\`${scopes.length ? ` with scope ${scopes.map((s) => `\`${s}\``).join(" or ")}` : ""}.`,
    "",
  );
  const params = (op.parameters ?? []) as Schema[];
  if (params.length) {
    lines.push("| parameter | in | type | required | notes |", "| --- | --- | --- | --- | --- |");
    for (const p of params) {
      const schema = p.schema as Schema;
      lines.push(`| \`${p.name}\` | ${p.in} | ${typeOf(schema)} | ${p.required ? "yes" : ""} | ${esc(notes(p.description, constraints(schema)))} |`);
    }
    lines.push("");
  }
  const body = op.requestBody as Schema | undefined;
  if (body) {
    const content = body.content as Record<string, { schema: Schema }>;
    for (const [type, media] of Object.entries(content)) {
      lines.push(`**Body** (\`${type}\`${body.required ? "" : ", optional"}): ${typeOf(media.schema)}`, "");
    }
  }
  lines.push("| status | meaning | body |", "| --- | --- | --- |");
  for (const [status, r] of Object.entries(op.responses as Record<string, Schema>)) {
    const content = (r.content ?? {}) as Record<string, { schema: Schema }>;
    const bodies = Object.entries(content).map(([t, m]) => `${typeOf(m.schema)} (\`${t}\`)`);
    lines.push(`| ${status} | ${esc(r.description as string)} | ${bodies.join(", ") || "—"} |`);
  }
  lines.push("");
  return lines;
}

export function renderApiReference(doc: OpenApiDocument, metrics: MetricInfo[]): string {
  const lines: string[] = [
    "# Countersign API reference",
    "",
    "<!-- Generated by scripts/render-api-docs.ts from the OpenAPI document (GET /openapi.json) and the metrics registry. Do not edit by hand: run `pnpm tsx scripts/render-api-docs.ts`. -->",
    "",
    `${doc.info.description} OpenAPI ${doc.openapi}, API version ${doc.info.version}. The machine-readable document is served at \`GET /openapi.json\`; the request schemas in it are generated from the same zod schemas that validate requests.`,
    "",
    "## Conventions",
    "",
    "- **Authentication.** Every `/v1` call takes an API key from `countersign keys create` as `Authorization: Bearer cs_...`. A key has scopes: `requests` (agents: submit, read and cancel their own requests), `decisions` (reviewers: read and decide, as the key's owner), `admin` (everything, plus the audit log).",
    "- **Errors** are `application/problem+json` ([Problem](#schema-problem)) with a stable `code`, a human `detail`, per-field `errors` for invalid input, and the `requestId` that is also in the `x-request-id` header. Unexpected failures are a generic 500 that carries the request id; the cause is logged, never sent.",
    "- **Idempotency.** `POST /v1/requests` takes an `Idempotency-Key` header: repeating the same key and body returns the original request (200, `Idempotent-Replayed: true`), so a client can retry after a network failure without asking twice.",
    "- **Waiting.** `GET /v1/requests/{id}?wait=N` holds the call up to N seconds (max 60) and answers as soon as the request is decided; re-poll until the status is terminal. Or pass a `callbackUrl` and receive a signed [callback](#webhooks).",
    "- **Receipts.** An approved request carries `receipt`, a compact JWS (EdDSA) whose claims are [ReceiptClaims](#schema-receiptclaims); verify it against `GET /.well-known/jwks.json` before acting (the SDK's `verifyReceipt` does).",
    "",
    "### Error codes",
    "",
    "| code | status | title |",
    "| --- | --- | --- |",
    ...ERROR_CODES.map((code) => `| \`${code}\` | ${HTTP_ERRORS[code].status} | ${HTTP_ERRORS[code].title} |`),
    "",
    "## Endpoints",
    "",
  ];
  const tags = (doc.tags ?? []) as { name: string; description?: string }[];
  for (const tag of tags) {
    lines.push(`### ${tag.name}`, "", ...(tag.description ? [tag.description, ""] : []));
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        if (METHODS.includes(method) && (op.tags as string[] | undefined)?.includes(tag.name)) lines.push(...renderOperation(path, method, op));
      }
    }
  }

  lines.push("## Webhooks", "");
  for (const [name, item] of Object.entries((doc.webhooks ?? {}) as Record<string, Record<string, Schema>>)) {
    const op = item.post as Schema;
    lines.push(`### \`${name}\` — ${op.summary}`, "", op.description as string, "");
    const params = (op.parameters ?? []) as Schema[];
    lines.push("| header | notes |", "| --- | --- |", ...params.map((p) => `| \`${p.name}\` | ${esc((p.description as string | undefined) ?? "")} |`), "");
    const content = (op.requestBody as Schema).content as Record<string, { schema: Schema }>;
    lines.push(
      `**Body:** ${Object.values(content)
        .map((m) => typeOf(m.schema))
        .join(", ")}`,
      "",
    );
  }

  lines.push("## Schemas", "");
  for (const [name, s] of Object.entries(doc.components.schemas).sort(([a], [b]) => a.localeCompare(b))) {
    lines.push(`<a id="${anchor(name)}"></a>`, "", `### ${name}`, "");
    if (s.description) lines.push(s.description as string, "");
    lines.push(...fieldTable(s));
  }

  lines.push(
    "## Metrics",
    "",
    "`GET /metrics` serves Prometheus metrics. It needs an admin key unless `COUNTERSIGN_METRICS_PUBLIC=true`; with `COUNTERSIGN_METRICS_PORT` set it is served only on that port (bound to `HOST`, no authentication) and not on the API port. Besides the standard Node.js process metrics (`process_*`, `nodejs_*`):",
    "",
    "| metric | type | labels | meaning |",
    "| --- | --- | --- | --- |",
    ...metrics.map((m) => `| \`${m.name}\` | ${m.type} | ${m.labels.map((l) => `\`${l}\``).join(", ")} | ${esc(m.help)} |`),
    "",
    "Label notes: `rule` is the policy rule id, or `(default)` when the policy default applied; `action` keeps the first 500 distinct action names and folds the rest into `other`. Request counts are recorded when the transition happens, inside its transaction, so a transition that is rolled back may still be counted.",
    "",
    "Slack and Teams adapters count API trouble outside outbox jobs (for example resolving a reviewer's email on a click) with the helpers exported by `apps/gateway/src/metrics.ts`: `chatApiErrors.inc({ surface, kind })` for a failed call (`kind` is a short token such as the platform's error code) and `chatApiRateLimits.inc({ surface })` for an HTTP 429. Failed `slack.*` and `teams.*` outbox jobs are counted automatically from the relay (`kind` `http_<status>` or `error`; a job result with `httpStatus: 429` counts as a rate limit), so adapters must not count those again.",
    "",
  );
  return `${lines
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trimEnd()}\n`;
}

/** The gateway's metric names, types, labels and help, read from a throwaway registry. */
export function metricCatalogue(): MetricInfo[] {
  const m = createMetrics({ db: {} as Database, log: { debug() {}, info() {}, warn() {}, error() {}, child: () => ({}) as never } });
  const all = [...m.registry.getMetricsAsArray(), ...chatMetricsRegistry.getMetricsAsArray()] as unknown as {
    name: string;
    type: string;
    help: string;
    labelNames?: string[];
  }[];
  return all
    .filter((x) => x.name.startsWith("countersign_"))
    .map((x) => ({ name: x.name, type: String(x.type), help: x.help, labels: [...(x.labelNames ?? [])] }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Formats Markdown the way `biome check` expects (it aligns tables), so the file stays lint-clean. */
function biomeFormat(markdown: string): string {
  const biome = createRequire(import.meta.url).resolve("@biomejs/biome/bin/biome");
  return execFileSync(process.execPath, [biome, "format", "--stdin-file-path=docs/api.md"], { cwd: ROOT, input: markdown, encoding: "utf8" });
}

export function renderDefault(): string {
  return biomeFormat(renderApiReference(buildOpenApiDocument(), metricCatalogue()));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const text = renderDefault();
  if (process.argv.includes("--check")) {
    let current = "";
    try {
      current = readFileSync(OUT, "utf8");
    } catch {}
    if (current !== text) {
      console.error("docs/api.md is stale: run pnpm tsx scripts/render-api-docs.ts");
      process.exit(1);
    }
  } else {
    writeFileSync(OUT, text);
    console.log(`wrote ${OUT}`);
  }
}
