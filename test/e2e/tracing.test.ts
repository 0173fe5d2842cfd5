import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CreatedKey } from "../../packages/services/src/index.ts";
import { startCallbackReceiver } from "../fakes/callback-receiver.ts";
import { eventually } from "../support/api-helpers.ts";
import { type GatewayProcess, startGateway } from "../support/gateway.ts";

// OpenTelemetry end to end: the real, compiled gateway exports OTLP/HTTP JSON to a receiver
// in this process, and one request's whole life (intake with the agent's traceparent,
// a reviewer's decision, the signed callback, retried once) shows as one trace.

const POLICY = `
version: 1
rules:
  - id: anyone
    effect: require_approval
    approvers: ["*"]
default: deny
`;

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, string | number | boolean>;
  status: { code?: number; message?: string };
  links: { traceId: string; spanId: string }[];
  service: string;
}

type AnyValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number };
const value = (v: AnyValue) => v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.boolValue ?? v.doubleValue ?? ""));
const attrs = (list: { key: string; value: AnyValue }[] = []) => Object.fromEntries(list.map((a) => [a.key, value(a.value)]));

/** A minimal OTLP/HTTP collector: POST /v1/traces with JSON bodies (OTEL_EXPORTER_OTLP_PROTOCOL=http/json). */
async function startOtlpReceiver() {
  const spans: OtlpSpan[] = [];
  const server: Server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== "/v1/traces" || !String(req.headers["content-type"]).startsWith("application/json")) {
        res.writeHead(404).end();
        return;
      }
      const doc = JSON.parse(body) as {
        resourceSpans: {
          resource: { attributes: { key: string; value: AnyValue }[] };
          scopeSpans: {
            spans: (Omit<OtlpSpan, "attributes" | "links" | "service"> & { attributes?: never[]; links?: { traceId: string; spanId: string }[] })[];
          }[];
        }[];
      };
      for (const rs of doc.resourceSpans) {
        const service = String(attrs(rs.resource.attributes)["service.name"]);
        for (const ss of rs.scopeSpans) {
          for (const s of ss.spans) {
            spans.push({
              ...s,
              parentSpanId: s.parentSpanId ?? "",
              attributes: attrs(s.attributes),
              links: (s.links ?? []).map((l) => ({ traceId: l.traceId, spanId: l.spanId })),
              service,
            });
          }
        }
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, spans, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/**
 * A module-resolution hook (node --import) that records every @opentelemetry module the
 * gateway process resolves, to tell whether the SDK was loaded.
 */
function moduleRecorder(dir: string, name: string) {
  const out = join(dir, `${name}.log`);
  writeFileSync(out, "");
  const hooks = join(dir, "hooks.mjs");
  writeFileSync(
    hooks,
    `import { appendFileSync } from "node:fs";
let out;
export function initialize(data) { out = data.out; }
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (r.url.includes("@opentelemetry")) appendFileSync(out, r.url + "\\n");
  return r;
}
`,
  );
  const register = join(dir, `${name}-register.mjs`);
  writeFileSync(
    register,
    `import { register } from "node:module";
register(${JSON.stringify(pathToFileURL(hooks).href)}, { data: { out: ${JSON.stringify(out)} } });
`,
  );
  return { nodeOptions: `--import=${pathToFileURL(register).href}`, loaded: () => readFileSync(out, "utf8").split("\n").filter(Boolean) };
}

const SDK_MODULE = /@opentelemetry\/(sdk-|exporter-|context-async-hooks|resources|otlp-)/;
const hex = (bytes: number) => randomBytes(bytes).toString("hex");
const jsonLines = (logs: string[]) =>
  logs
    .join("")
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe("OpenTelemetry traces from the real gateway", () => {
  const dir = mkdtempSync(join(tmpdir(), "cs-otel-"));
  const closers: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of closers.reverse()) await c();
    rmSync(dir, { recursive: true, force: true });
  });

  describe("with OTLP export configured", () => {
    let gw: GatewayProcess;
    let otlp: Awaited<ReturnType<typeof startOtlpReceiver>>;
    let agent: CreatedKey;
    let reviewerKey: string;
    const modules = moduleRecorder(dir, "on");

    beforeAll(async () => {
      otlp = await startOtlpReceiver();
      closers.push(otlp.close);
      gw = await startGateway({
        engine: "pglite",
        policy: POLICY,
        env: {
          OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
          OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
          OTEL_SERVICE_NAME: "countersign-e2e",
          OTEL_BSP_SCHEDULE_DELAY: "50",
          LOG_LEVEL: "debug",
          COUNTERSIGN_RETRY_SCALE: "0.00002",
          NODE_OPTIONS: modules.nodeOptions,
        },
      });
      closers.push(() => gw.stop());
      agent = await gw.createKey({ name: "deploy-bot", owner: "owner@example.com", scopes: ["requests"] });
      reviewerKey = (await gw.createKey({ name: "alice", owner: "alice@example.com", scopes: ["decisions"] })).key;
    });

    it("shows a request's whole life, from the agent's traceparent to the callback, as one trace", async () => {
      const rx = await startCallbackReceiver(() => agent.webhookSecret as string);
      closers.push(rx.close);
      rx.failFirst(1); // two delivery attempts: one span each

      const traceId = hex(16);
      const agentSpan = hex(8);
      const secretParam = `hunter2-${hex(4)}`;
      const created = await gw.api("/v1/requests", {
        method: "POST",
        key: agent.key,
        headers: { traceparent: `00-${traceId}-${agentSpan}-01`, tracestate: "agent=1" },
        json: { action: "deploy.service", summary: "Deploy", params: { password: secretParam }, callbackUrl: rx.url },
      });
      expect(created.status).toBe(201);
      const { id } = (await created.json()) as { id: string };

      // The reviewer's client has a trace of its own; the decision joins the request's and links to it.
      const reviewerTrace = hex(16);
      const decided = await gw.api(`/v1/requests/${id}/decisions`, {
        method: "POST",
        key: reviewerKey,
        headers: { traceparent: `00-${reviewerTrace}-${hex(8)}-01` },
        json: { decision: "approve" },
      });
      expect(decided.status).toBe(201);

      const delivered = await rx.waitFor((c) => c.event.data.id === id && c.verified);
      const spans = await eventually(async () => {
        const deliveries = otlp.spans.filter((s) => s.name === "countersign.outbox.deliver" && s.attributes["countersign.request.id"] === id);
        return deliveries.length >= 2 ? otlp.spans : undefined;
      }, 20_000);

      const named = (name: string) => spans.filter((s) => s.name === name && s.attributes["countersign.request.id"] === id);
      const one = (name: string) => {
        const found = named(name);
        expect(found, name).toHaveLength(1);
        return found[0] as OtlpSpan;
      };

      // Intake: the HTTP server span continues the agent's span; intake and policy are under it.
      const intakeHttp = spans.find((s) => s.name === "POST /v1/requests" && s.traceId === traceId) as OtlpSpan;
      expect(intakeHttp).toBeDefined();
      expect(intakeHttp.parentSpanId).toBe(agentSpan);
      expect(intakeHttp.kind).toBe(2); // SERVER
      expect(intakeHttp.attributes["http.route"]).toBe("/v1/requests");
      expect(intakeHttp.attributes["http.response.status_code"]).toBe(201);
      expect(intakeHttp.service).toBe("countersign-e2e");
      const intake = one("countersign.intake");
      expect(intake.parentSpanId).toBe(intakeHttp.spanId);
      expect(intake.attributes).toMatchObject({ "countersign.action": "deploy.service", "countersign.policy.effect": "require_approval" });
      const policy = spans.find((s) => s.name === "countersign.policy.evaluate" && s.parentSpanId === intake.spanId) as OtlpSpan;
      expect(policy?.attributes).toMatchObject({ "countersign.policy.rule": "anyone", "countersign.policy.effect": "require_approval" });

      // The decision: a child of the stored intake context, linked both ways with the reviewer's HTTP span.
      const decide = one("countersign.decide");
      expect(decide.parentSpanId).toBe(intake.spanId);
      expect(decide.attributes).toMatchObject({ "countersign.decision": "approve", "countersign.outcome": "approved", "countersign.surface": "api" });
      const decideHttp = spans.find((s) => s.name === "POST /v1/requests/:id/decisions") as OtlpSpan;
      expect(decideHttp.traceId).toBe(reviewerTrace);
      expect(decide.links).toContainEqual({ traceId: reviewerTrace, spanId: decideHttp.spanId });
      expect(decideHttp.links).toContainEqual({ traceId, spanId: decide.spanId });
      const transition = one("countersign.transition");
      expect(transition.parentSpanId).toBe(decide.spanId);
      expect(transition.attributes).toMatchObject({ "countersign.transition.to": "approved", "countersign.resolution": "quorum" });

      // One span per delivery attempt, under the transition that queued the callback.
      const attempts = named("countersign.outbox.deliver").sort(
        (a, b) => Number(a.attributes["countersign.job.attempt"]) - Number(b.attributes["countersign.job.attempt"]),
      );
      expect(
        attempts.map((a) => [
          a.attributes["countersign.job.kind"],
          a.attributes["countersign.job.attempt"],
          a.attributes["countersign.outcome"],
          a.attributes["http.response.status_code"],
        ]),
      ).toEqual([
        ["callback", 1, "retry", 503],
        ["callback", 2, "done", 200],
      ]);
      for (const a of attempts) expect(a.parentSpanId).toBe(transition.spanId);
      expect(attempts[0]?.status.code).toBe(2); // ERROR
      expect(attempts[1]?.status.code ?? 0).not.toBe(2);

      // Every Countersign span of the request is in the agent's trace.
      const ofRequest = spans.filter((s) => s.attributes["countersign.request.id"] === id);
      expect(ofRequest.map((s) => s.name).sort()).toEqual([
        "countersign.decide",
        "countersign.intake",
        "countersign.outbox.deliver",
        "countersign.outbox.deliver",
        "countersign.transition",
      ]);
      expect(new Set([...ofRequest, intakeHttp, policy].map((s) => s.traceId))).toEqual(new Set([traceId]));
      // Names are low-cardinality: no request id in any of them.
      expect(spans.filter((s) => s.name.includes(id))).toEqual([]);

      // Each callback POST carried its attempt's own span, so the agent's receiver continues the trace.
      const hits = rx.received.filter((c) => c.event.data.id === id);
      expect(hits).toHaveLength(2);
      hits.forEach((hit, i) => {
        const tp = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(hit.headers.traceparent ?? "");
        expect(tp?.[1]).toBe(traceId);
        expect(tp?.[2]).toBe(attempts[i]?.spanId);
        // The agent's tracestate travelled with the stored context.
        expect(hit.headers.tracestate).toBe("agent=1");
      });
      expect(delivered.verified).toBe(true);

      // Neither params nor keys reach a span.
      const exported = JSON.stringify(otlp.spans);
      expect(exported).not.toContain(secretParam);
      expect(exported).not.toContain(agent.key);
      expect(exported).not.toContain(reviewerKey);

      // Logs carry the trace: the intake's request log and the failed attempt's warning.
      const lines = jsonLines(gw.logs);
      const traced = lines.filter((l) => l.trace_id === traceId);
      expect(traced.find((l) => l.message === "http" && l.path === "/v1/requests")).toMatchObject({ span_id: intakeHttp.spanId });
      expect(traced.find((l) => l.message === "outbox job attempt failed; will retry")).toMatchObject({ span_id: attempts[0]?.spanId });

      // Tracing on really loads the SDK (the recorder works).
      expect(modules.loaded().some((u) => SDK_MODULE.test(u))).toBe(true);
    });

    it("flushes buffered spans when the gateway stops", async () => {
      const before = otlp.spans.length;
      const res = await gw.api("/v1/requests", {
        method: "POST",
        key: agent.key,
        json: { action: "deploy.service", summary: "Deploy", params: {} },
      });
      expect(res.status).toBe(201);
      const { id } = (await res.json()) as { id: string };
      await gw.stop();
      expect(otlp.spans.slice(before).some((s) => s.name === "countersign.intake" && s.attributes["countersign.request.id"] === id)).toBe(true);
    });
  });

  it("with no OTEL_* variables, loads no SDK, sends no traceparent and logs no trace ids", async () => {
    const modules = moduleRecorder(dir, "off");
    const gw = await startGateway({ engine: "pglite", policy: POLICY, env: { LOG_LEVEL: "debug", NODE_OPTIONS: modules.nodeOptions } });
    closers.push(() => gw.stop());
    const agent = await gw.createKey({ name: "deploy-bot", owner: "owner@example.com", scopes: ["requests"] });
    const reviewer = await gw.createKey({ name: "alice", owner: "alice@example.com", scopes: ["decisions"] });
    const rx = await startCallbackReceiver(() => agent.webhookSecret as string);
    closers.push(rx.close);
    const traceId = hex(16);
    const created = await gw.api("/v1/requests", {
      method: "POST",
      key: agent.key,
      headers: { traceparent: `00-${traceId}-${hex(8)}-01` },
      json: { action: "deploy.service", summary: "Deploy", params: {}, callbackUrl: rx.url },
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    expect((await gw.api(`/v1/requests/${id}/decisions`, { method: "POST", key: reviewer.key, json: { decision: "approve" } })).status).toBe(201);
    const delivered = await rx.waitFor((c) => c.event.data.id === id && c.verified);

    expect(delivered.headers.traceparent).toBeUndefined();
    expect(jsonLines(gw.logs).filter((l) => "trace_id" in l || "span_id" in l)).toEqual([]);
    const loaded = modules.loaded();
    // The API (a no-op without an SDK) is loaded; nothing of the SDK is.
    expect(loaded.some((u) => u.includes("@opentelemetry/api"))).toBe(true);
    expect(loaded.filter((u) => SDK_MODULE.test(u))).toEqual([]);
  });
});
