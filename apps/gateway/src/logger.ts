import type { Logger } from "@countersign/core";
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

class WinstonLogger implements Logger {
  constructor(private readonly w: winston.Logger) {}
  debug(m: string, meta?: Record<string, unknown>) {
    this.w.debug(m, meta);
  }
  info(m: string, meta?: Record<string, unknown>) {
    this.w.info(m, meta);
  }
  warn(m: string, meta?: Record<string, unknown>) {
    this.w.warn(m, meta);
  }
  error(m: string, meta?: Record<string, unknown>) {
    this.w.error(m, meta);
  }
  child(meta: Record<string, unknown>): Logger {
    return new WinstonLogger(this.w.child(meta));
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
  return new WinstonLogger(winston.createLogger({ level: opts.level, format, transports: [transport] }));
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
