// The OpenTelemetry SDK, loaded by tracing.ts (dynamic import) only when tracing is
// configured. Nothing else imports this file.
import type { Logger } from "@countersign/core";
import { context, DiagLogLevel, diag, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter as OtlpJsonExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPTraceExporter as OtlpProtoExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { detectResources, envDetector, resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  type Sampler,
  type SpanExporter,
  type SpanProcessor,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";
import type { Tracing, TracingSettings } from "./tracing.ts";

function sampler(s: TracingSettings["sampler"]): Sampler {
  switch (s.name) {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
      return new TraceIdRatioBasedSampler(s.ratio);
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(s.ratio) });
    default:
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

/**
 * Registers a tracer provider (batching exporters from the settings; the OTLP exporter reads
 * its endpoint, headers, timeout and compression from the OTEL_EXPORTER_OTLP_* variables),
 * AsyncLocalStorage context and W3C tracecontext propagation.
 */
export function startTracingSdk(settings: TracingSettings, log: Logger, version: string): Tracing {
  // The SDK's own problems (an unreachable collector) are warnings in our log, not crashes.
  diag.setLogger(
    {
      error: (m, ...a) => log.warn(`tracing: ${m}`, a.length ? { detail: a.map(String).join(" ") } : undefined),
      warn: (m, ...a) => log.warn(`tracing: ${m}`, a.length ? { detail: a.map(String).join(" ") } : undefined),
      info: () => {},
      debug: () => {},
      verbose: () => {},
    },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  );
  const exporters: SpanExporter[] = settings.exporters.map((name) =>
    name === "console" ? new ConsoleSpanExporter() : settings.protocol === "http/json" ? new OtlpJsonExporter() : new OtlpProtoExporter(),
  );
  const spanProcessors: SpanProcessor[] = exporters.map((exporter) => new BatchSpanProcessor({ exporter, ...settings.batch }));
  // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (the env detector) override the defaults.
  const resource = resourceFromAttributes({ [ATTR_SERVICE_NAME]: settings.serviceName ?? "countersign", [ATTR_SERVICE_VERSION]: version }).merge(
    detectResources({ detectors: [envDetector] }),
  );
  const provider = new TracerProvider({ resource, sampler: sampler(settings.sampler), spanProcessors });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);

  let stopping: Promise<void> | undefined;
  return {
    shutdown() {
      stopping ??= (async () => {
        await provider.shutdown().catch((e: unknown) => log.warn("tracing: could not flush spans at shutdown", { err: (e as Error).message }));
        trace.disable();
        propagation.disable();
        context.disable();
        diag.disable();
      })();
      return stopping;
    },
  };
}
