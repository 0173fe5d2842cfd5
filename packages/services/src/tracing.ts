import { CountersignError } from "@countersign/core";
import {
  type Attributes,
  type Context,
  context,
  type Link,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TimeInput,
  trace,
} from "@opentelemetry/api";

// Spans through the OpenTelemetry API only. Until the gateway starts the SDK (it does so only
// when OTEL_* variables configure tracing), every call here is the API's no-op: no context
// manager, no propagator, non-recording spans, and currentTraceContext() is always null.

export const tracer = trace.getTracer("countersign");

/**
 * A W3C trace context as it is stored with a request and with each outbox job: the
 * `traceparent` header, and `tracestate` when there is one. The same shape is a carrier
 * for `propagation.extract`.
 */
export interface StoredTraceContext {
  traceparent: string;
  tracestate?: string;
}

/** The active span's context as a carrier to store, or null when there is none (always, with tracing off). */
export function currentTraceContext(ctx: Context = context.active()): StoredTraceContext | null {
  if (!trace.getSpanContext(ctx)) return null;
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  if (!carrier.traceparent) return null;
  return carrier.tracestate ? { traceparent: carrier.traceparent, tracestate: carrier.tracestate } : { traceparent: carrier.traceparent };
}

/** A stored carrier (a Json column) back to a context; undefined when it holds no valid traceparent. */
export function storedContext(stored: unknown): Context | undefined {
  if (!stored || typeof stored !== "object" || typeof (stored as { traceparent?: unknown }).traceparent !== "string") return undefined;
  const ctx = propagation.extract(ROOT_CONTEXT, stored as Record<string, string>);
  return trace.getSpanContext(ctx) ? ctx : undefined;
}

export interface SpanOptions {
  attributes?: Attributes;
  kind?: SpanKind;
  startTime?: TimeInput;
  /**
   * The request's stored trace context. The span joins that trace: as a child of the active
   * span when that is already in it (decide → transition), else as a child of the stored
   * context, linked both ways with the active span (a reviewer's HTTP request, which is a
   * trace of its own).
   */
  within?: unknown;
  /** Ignore the active context: the span's parent is `within`, or none (a new trace). */
  detached?: boolean;
}

/** Starts (does not activate) a span; returns it and the context to run its work in. */
export function startSpan(name: string, opts: SpanOptions = {}): { span: Span; ctx: Context } {
  const active = opts.detached ? ROOT_CONTEXT : context.active();
  let parent = active;
  const links: Link[] = [];
  const stored = opts.within === undefined ? undefined : storedContext(opts.within);
  const here = trace.getSpanContext(active);
  if (stored) {
    const there = trace.getSpanContext(stored);
    if (!here || here.traceId !== there?.traceId) {
      parent = stored;
      if (here) links.push({ context: here, attributes: { "countersign.link": "caller" } });
    }
  }
  const span = tracer.startSpan(
    name,
    {
      kind: opts.kind ?? SpanKind.INTERNAL,
      ...(opts.attributes ? { attributes: opts.attributes } : {}),
      ...(opts.startTime ? { startTime: opts.startTime } : {}),
      links,
    },
    parent,
  );
  // The caller's span points at the work it caused in the request's trace.
  if (links.length > 0) trace.getSpan(active)?.addLink({ context: span.spanContext(), attributes: { "countersign.link": "request" } });
  return { span, ctx: trace.setSpan(parent, span) };
}

/** Marks a span failed by `e`. Only the error's code and class go on the span, never its inputs. */
export function failSpan(span: Span, e: unknown): void {
  const code = e instanceof CountersignError ? e.code : (e as Error)?.name || "Error";
  span.setAttribute("error.type", code);
  span.setStatus({ code: SpanStatusCode.ERROR, message: code });
}

/** Runs `fn` in a new active span, ended when it settles; a throw marks the span failed. */
export async function inSpan<T>(name: string, opts: SpanOptions, fn: (span: Span) => Promise<T>): Promise<T> {
  const { span, ctx } = startSpan(name, opts);
  try {
    return await context.with(ctx, () => fn(span));
  } catch (e) {
    failSpan(span, e);
    throw e;
  } finally {
    span.end();
  }
}

/** inSpan for synchronous work. */
export function inSpanSync<T>(name: string, opts: SpanOptions, fn: (span: Span) => T): T {
  const { span, ctx } = startSpan(name, opts);
  try {
    return context.with(ctx, () => fn(span));
  } catch (e) {
    failSpan(span, e);
    throw e;
  } finally {
    span.end();
  }
}

/** Runs `fn` with `ctx` (from startSpan) active. */
export function withSpanContext<T>(ctx: Context, fn: () => T): T {
  return context.with(ctx, fn);
}

/** Now, in epoch milliseconds with sub-millisecond precision, for a span's startTime. */
export const spanClock = (): number => performance.timeOrigin + performance.now();

export type { Span };
export { SpanKind, SpanStatusCode };
