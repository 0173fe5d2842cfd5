import type { Logger } from "@countersign/core";
import { inSpan, SpanKind, SpanStatusCode, startSpan } from "@countersign/services";
import { context, propagation, trace } from "@opentelemetry/api";
import type { NextFunction, Request, RequestHandler, Response } from "express";
import type { GatewayEnv } from "./env.ts";

// OpenTelemetry traces. The gateway and services create spans through @opentelemetry/api,
// which is a no-op until an SDK registers itself. The SDK (tracing-sdk.ts) is loaded, with
// a dynamic import, only when the standard OTEL_* variables configure tracing, so with
// tracing off neither start-up nor memory changes.

export type OtlpProtocol = "http/protobuf" | "http/json";

export interface TracingSettings {
  exporters: ("otlp" | "console")[];
  protocol: OtlpProtocol;
  serviceName: string | undefined;
  sampler: { name: NonNullable<GatewayEnv["OTEL_TRACES_SAMPLER"]>; ratio: number };
  batch: { scheduledDelayMillis?: number; exportTimeoutMillis?: number; maxQueueSize?: number; maxExportBatchSize?: number };
}

export type TracingEnv = Pick<
  GatewayEnv,
  | "OTEL_SDK_DISABLED"
  | "OTEL_TRACES_EXPORTER"
  | "OTEL_EXPORTER_OTLP_ENDPOINT"
  | "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
  | "OTEL_EXPORTER_OTLP_PROTOCOL"
  | "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
  | "OTEL_SERVICE_NAME"
  | "OTEL_TRACES_SAMPLER"
  | "OTEL_TRACES_SAMPLER_ARG"
  | "OTEL_BSP_SCHEDULE_DELAY"
  | "OTEL_BSP_EXPORT_TIMEOUT"
  | "OTEL_BSP_MAX_QUEUE_SIZE"
  | "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"
>;

/**
 * Whether and how to trace. Off by default: on when OTEL_TRACES_EXPORTER names an exporter
 * (otlp, console) or an OTLP endpoint is set; off with OTEL_SDK_DISABLED=true or
 * OTEL_TRACES_EXPORTER=none. (The spec's default exporter is otlp; ours is none, so a
 * gateway never sends spans to localhost:4318 unless asked to.)
 */
export function tracingSettings(env: TracingEnv): TracingSettings | undefined {
  if (env.OTEL_SDK_DISABLED?.toLowerCase() === "true") return undefined;
  const listed = (env.OTEL_TRACES_EXPORTER ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  let exporters: TracingSettings["exporters"];
  if (listed.length > 0) {
    if (listed.includes("none")) return undefined;
    exporters = [...new Set(listed as ("otlp" | "console")[])];
  } else if (env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) {
    exporters = ["otlp"];
  } else {
    return undefined;
  }
  const batch: TracingSettings["batch"] = {};
  if (env.OTEL_BSP_SCHEDULE_DELAY !== undefined) batch.scheduledDelayMillis = env.OTEL_BSP_SCHEDULE_DELAY;
  if (env.OTEL_BSP_EXPORT_TIMEOUT !== undefined) batch.exportTimeoutMillis = env.OTEL_BSP_EXPORT_TIMEOUT;
  if (env.OTEL_BSP_MAX_QUEUE_SIZE !== undefined) batch.maxQueueSize = env.OTEL_BSP_MAX_QUEUE_SIZE;
  if (env.OTEL_BSP_MAX_EXPORT_BATCH_SIZE !== undefined) batch.maxExportBatchSize = env.OTEL_BSP_MAX_EXPORT_BATCH_SIZE;
  return {
    exporters,
    protocol: env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? "http/protobuf",
    serviceName: env.OTEL_SERVICE_NAME,
    sampler: { name: env.OTEL_TRACES_SAMPLER ?? "parentbased_always_on", ratio: env.OTEL_TRACES_SAMPLER_ARG ?? 1 },
    batch,
  };
}

export interface Tracing {
  /** Flushes buffered spans and unregisters the SDK. */
  shutdown(): Promise<void>;
}

/** Starts the SDK when the settings ask for it; undefined (and nothing loaded) otherwise. */
export async function startTracing(env: TracingEnv, log: Logger, version: string): Promise<Tracing | undefined> {
  const settings = tracingSettings(env);
  if (!settings) return undefined;
  try {
    const { startTracingSdk } = await import("./tracing-sdk.ts");
    const t = startTracingSdk(settings, log, version);
    log.info("tracing: OpenTelemetry spans are exported", { exporters: settings.exporters, protocol: settings.protocol, sampler: settings.sampler.name });
    return t;
  } catch (e) {
    // Traces are diagnostics: a broken exporter set-up must not keep the gateway down.
    log.error("tracing: could not start OpenTelemetry; running without traces", { err: e as Error });
    return undefined;
  }
}

// Probes and scrapes would be most of the spans and tell nothing.
const UNTRACED = new Set(["/healthz", "/readyz", "/metrics"]);

/**
 * An HTTP server span per request (`GET /v1/requests/:id`: the route, never the URL),
 * continuing the caller's `traceparent`. Mounted only when tracing is on.
 */
export function httpServerSpans(): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    if (UNTRACED.has(req.path)) return next();
    const caller = propagation.extract(context.active(), req.headers);
    const { span, ctx } = context.with(caller, () =>
      startSpan(req.method, { kind: SpanKind.SERVER, attributes: { "http.request.method": req.method, "url.scheme": req.protocol } }),
    );
    // Body parsers and `finish` listeners run from the socket's events: bind them to the span.
    context.bind(ctx, req);
    context.bind(ctx, res);
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      const route = (req.route as { path?: unknown } | undefined)?.path;
      if (typeof route === "string") {
        const full = `${req.baseUrl}${route}`;
        span.updateName(`${req.method} ${full}`);
        span.setAttribute("http.route", full);
      }
      span.setAttribute("http.response.status_code", res.statusCode);
      if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      if (!res.writableFinished) span.setAttribute("error.type", "aborted");
      span.end();
    };
    res.once("finish", end);
    res.once("close", end);
    context.with(ctx, next);
  };
}

/** The W3C headers (`traceparent`, `tracestate`) for the active span; empty with tracing off. */
export function traceHeaders(): Record<string, string> {
  const headers: Record<string, string> = {};
  if (trace.getSpanContext(context.active())) propagation.inject(context.active(), headers);
  return headers;
}

/** A client span around one call to Slack or Teams (`slack.chat.update`), inside the delivery attempt's span. */
export function clientSpan<T>(name: string, fn: () => Promise<T>): Promise<T> {
  return inSpan(name, { kind: SpanKind.CLIENT }, fn);
}
