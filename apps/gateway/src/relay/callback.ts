import { lookup as dnsLookup } from "node:dns";
import type { Database } from "@countersign/db";
import { CALLBACK_SCHEDULE, type CallbackGuard, type ClaimedJob } from "@countersign/services";
import { Webhook } from "standardwebhooks";
import { Agent, request } from "undici";
import type { JobResult } from "./relay.ts";

const TIMEOUT_MS = 15_000;

/** Standard Webhooks schedule with ±20% jitter, so receivers recovering from an outage are not stampeded. */
export function callbackBackoffMs(job: ClaimedJob): number {
  const base = (CALLBACK_SCHEDULE[job.attempts] ?? CALLBACK_SCHEDULE.at(-1) ?? 86400) * 1000;
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

/**
 * Delivers `request.*` events to the requester's callbackUrl, signed with the agent
 * key's own secret. The connection is only opened to addresses the SSRF guard accepts
 * at connect time, so a DNS answer that changed since submit cannot reach inside.
 */
export function callbackHandler(db: Database, guard: CallbackGuard, userAgent: string) {
  const dispatcher = new Agent({
    connect: {
      lookup(hostname: string, options: object, cb: (err: Error | null, address: string | { address: string; family: number }[], family?: number) => void) {
        dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
          if (err) return cb(err, "", 0);
          const list = addresses as unknown as { address: string; family: number }[];
          try {
            for (const a of list) guard.checkAddress(hostname.toLowerCase(), a.address);
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

  return async (job: ClaimedJob): Promise<JobResult> => {
    if (!job.requestId) return { ok: false, error: "callback job without a request", permanent: true };
    const req = await db.prisma.approvalRequest.findUnique({
      where: { id: job.requestId },
      select: { callbackUrl: true, apiKey: { select: { signingSecret: true } } },
    });
    if (!req?.callbackUrl) return { ok: false, error: "request has no callbackUrl", permanent: true };
    try {
      await guard.check(req.callbackUrl);
    } catch (e) {
      return { ok: false, error: `callback URL refused at delivery: ${(e as Error).message}`, permanent: true };
    }
    const body = JSON.stringify(job.payload);
    const now = new Date();
    const signature = new Webhook(req.apiKey.signingSecret).sign(job.id, now, body);
    try {
      const res = await request(req.callbackUrl, {
        method: "POST",
        dispatcher,
        body,
        headers: {
          "content-type": "application/json",
          "user-agent": userAgent,
          "webhook-id": job.id,
          "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
          "webhook-signature": signature,
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
