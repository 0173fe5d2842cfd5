import { lookup as dnsLookup } from "node:dns";
import { type CallbackGuard, type ClaimedJob, callbackTarget, parseRetryAfter, type ServiceDeps, systemCtx, toCountersignError } from "@countersign/services";
import { Webhook } from "standardwebhooks";
import { Agent, request } from "undici";
import { traceHeaders } from "../tracing.ts";
import type { JobResult } from "./relay.ts";

const TIMEOUT_MS = 15_000;

/** A connection pool whose DNS answers pass the SSRF guard for `port` before any connect. */
function guardedAgent(guard: CallbackGuard, port: number): Agent {
  return new Agent({
    connect: {
      lookup(hostname: string, options: object, cb: (err: Error | null, address: string | { address: string; family: number }[], family?: number) => void) {
        dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
          if (err) return cb(err, "", 0);
          const list = addresses as unknown as { address: string; family: number }[];
          try {
            for (const a of list) guard.checkAddress(hostname.toLowerCase(), a.address, port);
          } catch (e) {
            return cb(e as Error, "", 0);
          }
          const first = list[0];
          if (!first) return cb(new Error(`no address for ${hostname}`), "", 0);
          if ((options as { all?: boolean }).all) return cb(null, list);
          cb(null, first.address, first.family);
        });
      },
    },
    headersTimeout: TIMEOUT_MS,
    bodyTimeout: TIMEOUT_MS,
  });
}

/**
 * Delivers `request.*` events to the requester's callbackUrl, signed with the agent
 * key's own secret. The connection is only opened to addresses the SSRF guard accepts
 * at connect time, so a DNS answer that changed since submit cannot reach inside.
 */
export function callbackHandler(deps: ServiceDeps, userAgent: string) {
  // One connection pool per destination port, because allow-list entries may name a port.
  const agents = new Map<number, Agent>();
  const dispatcherFor = (url: URL) => {
    const port = url.port ? Number(url.port) : url.protocol === "http:" ? 80 : 443;
    const agent = agents.get(port) ?? guardedAgent(deps.callbackGuard, port);
    agents.set(port, agent);
    return agent;
  };

  return async (job: ClaimedJob): Promise<JobResult> => {
    if (!job.requestId) return { ok: false, error: "callback job without a request", permanent: true };
    let target: Awaited<ReturnType<typeof callbackTarget>>;
    try {
      target = await callbackTarget({ ctx: systemCtx(deps, "relay", job.id), input: { requestId: job.requestId } });
    } catch (e) {
      const ce = toCountersignError(e);
      if (ce.code === "callback_url_forbidden") return { ok: false, error: `callback URL refused at delivery: ${ce.message}`, permanent: true };
      if (ce.code === "unauthorized") return { ok: false, error: ce.message, permanent: true };
      throw e;
    }
    if (!target) return { ok: false, error: "request has no callbackUrl", permanent: true };
    const body = JSON.stringify(job.payload);
    const now = new Date();
    const signature = new Webhook(target.signingSecret).sign(job.id, now, body);
    try {
      const res = await request(target.url, {
        method: "POST",
        dispatcher: dispatcherFor(new URL(target.url)),
        body,
        headers: {
          "content-type": "application/json",
          "user-agent": userAgent,
          "webhook-id": job.id,
          "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
          "webhook-signature": signature,
          // The delivery attempt's span (traceparent, tracestate), so the receiver continues the request's trace.
          ...traceHeaders(),
        },
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      await res.body.dump().catch(() => {});
      const s = res.statusCode;
      if (s >= 200 && s < 300) return { ok: true, httpStatus: s };
      if (s === 410) return { ok: false, httpStatus: s, error: "receiver answered 410 Gone; not retrying", permanent: true };
      const retryAfterMs = parseRetryAfter(res.headers["retry-after"]);
      const why = s >= 300 && s < 400 ? `redirect ${s} (redirects are not followed)` : `receiver answered ${s}`;
      return { ok: false, httpStatus: s, error: why, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
    } catch (e) {
      const err = e as Error & { code?: string };
      return { ok: false, error: `${err.code ?? err.name}: ${err.message}` };
    }
  };
}
