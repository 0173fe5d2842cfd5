-- OpenTelemetry: the W3C trace context ({"traceparent", "tracestate"?}) a request was made
-- in, and the one each outbox job was queued in, so later work for the request (the
-- decision, the transition, every delivery attempt) joins the same trace. Null when
-- tracing is off. Expand-only: nullable, no default, no rewrite.
-- AlterTable
ALTER TABLE "approval_requests" ADD COLUMN "trace_context" JSONB;
-- AlterTable
ALTER TABLE "outbox_jobs" ADD COLUMN "trace_context" JSONB;
