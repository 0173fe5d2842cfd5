import type { Logger } from "@countersign/core";
import { context, trace } from "@opentelemetry/api";
import winston from "winston";

const SECRET_KEY = /authorization|api[-_]?key|token|secret|password|passwd|cookie|signature|^key$|private|credential/i;
// Values that look like credentials, wherever they appear: API keys, webhook secrets,
// Slack tokens, bearer headers, JWTs.
const SECRET_VALUE =
  /(cs_[A-Za-z0-9]{12}_[A-Za-z0-9_-]+|whsec_[A-Za-z0-9+/=]+|xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|Bearer\s+[A-Za-z0-9._~+/=-]+|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)/g;

export function redact(value: unknown, depth = 0): unknown {
  if (depth > 8) return "[depth]";
  if (typeof value === "string") return value.replace(SECRET_VALUE, "[redacted]");
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value instanceof Error) return { name: value.name, message: redact(value.message), stack: redact(value.stack) };
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEY.test(k) ? "[redacted]" : redact(v, depth + 1);
    return out;
  }
  return value;
}

const redactFormat = winston.format((info) => {
  for (const k of Object.keys(info)) {
    const v = (info as Record<string, unknown>)[k];
    (info as Record<string, unknown>)[k] = SECRET_KEY.test(k) ? "[redacted]" : redact(v);
  }
  return info;
});

/**
 * `trace_id` and `span_id` of the active span, added to a line's meta when it is logged.
 * They are read here, in the caller, not in a winston format: formats run in the logger's
 * stream, which under back-pressure transforms a line later, outside the caller's context.
 * With tracing off there is never an active span, so this adds nothing.
 */
function withTrace(meta: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  const sc = trace.getSpanContext(context.active());
  if (!sc) return meta;
  return { ...meta, trace_id: sc.traceId, span_id: sc.spanId };
}

/**
 * A child is made only when it first logs (most per-call loggers never do), and a line
 * below the configured level is dropped before it is formatted (winston formats every
 * line and leaves the level to its transports).
 */
class WinstonLogger implements Logger {
  #w: winston.Logger | undefined;
  constructor(
    /** The root logger: its level and transports decide what is written. */
    private readonly root: winston.Logger,
    private readonly make: () => winston.Logger,
  ) {}
  private get w(): winston.Logger {
    this.#w ??= this.make();
    return this.#w;
  }
  debug(m: string, meta?: Record<string, unknown>) {
    if (this.root.isLevelEnabled("debug")) this.w.debug(m, withTrace(meta));
  }
  info(m: string, meta?: Record<string, unknown>) {
    if (this.root.isLevelEnabled("info")) this.w.info(m, withTrace(meta));
  }
  warn(m: string, meta?: Record<string, unknown>) {
    if (this.root.isLevelEnabled("warn")) this.w.warn(m, withTrace(meta));
  }
  error(m: string, meta?: Record<string, unknown>) {
    if (this.root.isLevelEnabled("error")) this.w.error(m, withTrace(meta));
  }
  child(meta: Record<string, unknown>): Logger {
    return new WinstonLogger(this.root, () => this.w.child(meta));
  }
}

export function createLogger(opts: { level: string; format: "json" | "pretty"; stream?: NodeJS.WritableStream }): Logger {
  const base = [redactFormat(), winston.format.timestamp()];
  const format =
    opts.format === "json"
      ? winston.format.combine(...base, winston.format.json())
      : winston.format.combine(
          ...base,
          winston.format.colorize(),
          winston.format.printf(({ level, message, timestamp, ...rest }) => {
            const extra = Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : "";
            return `${timestamp} ${level} ${message}${extra}`;
          }),
        );
  const transport = opts.stream ? new winston.transports.Stream({ stream: opts.stream }) : new winston.transports.Console({ stderrLevels: [] });
  const root = winston.createLogger({ level: opts.level, format, transports: [transport] });
  return new WinstonLogger(root, () => root);
}

/** Adapts our logger to Bolt's Logger interface (and anything else with the same shape). */
export function boltLogger(log: Logger) {
  let level = "info";
  const fmt = (msgs: unknown[]) => msgs.map((m) => (typeof m === "string" ? m : JSON.stringify(redact(m)))).join(" ");
  return {
    debug: (...m: unknown[]) => log.debug(fmt(m), { component: "slack" }),
    info: (...m: unknown[]) => log.info(fmt(m), { component: "slack" }),
    warn: (...m: unknown[]) => log.warn(fmt(m), { component: "slack" }),
    error: (...m: unknown[]) => log.error(fmt(m), { component: "slack" }),
    setLevel: (l: string) => {
      level = l;
    },
    getLevel: () => level,
    setName: () => {},
  };
}
