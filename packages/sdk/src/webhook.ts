import { WebhookVerificationError as SwVerificationError, Webhook } from "standardwebhooks";
import { WebhookVerificationError } from "./errors.js";
import type { WebhookEvent } from "./types.js";

/** Headers as the Fetch API, Node's `req.headers` or a plain object carry them. */
export type HeadersLike = Headers | Record<string, string | string[] | undefined>;

function headerRecord(headers: HeadersLike): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof (headers as Headers).forEach === "function" && typeof (headers as Headers).get === "function") {
    (headers as Headers).forEach((v, k) => {
      out[k.toLowerCase()] = v;
    });
    return out;
  }
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    out[k.toLowerCase()] = Array.isArray(v) ? v.join(" ") : v;
  }
  return out;
}

/**
 * Verifies a Countersign callback (Standard Webhooks: `webhook-id`, `webhook-timestamp`,
 * `webhook-signature`) against the agent key's `whsec_...` secret, and returns the event.
 * Pass the body exactly as received (before any JSON parsing). Timestamps more than five
 * minutes off are refused, so a captured callback cannot be replayed later; deduplicate
 * retries on `webhook-id`.
 */
export function verifyWebhook(rawBody: string | Uint8Array, headers: HeadersLike, secret: string): WebhookEvent {
  let body: string;
  try {
    body = typeof rawBody === "string" ? rawBody : new TextDecoder("utf-8", { fatal: true }).decode(rawBody);
  } catch (e) {
    throw new WebhookVerificationError("callback body is not UTF-8", { cause: e });
  }
  const h = headerRecord(headers);
  for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature"]) {
    if (!h[name]) throw new WebhookVerificationError(`missing ${name} header`);
  }
  let event: unknown;
  try {
    event = new Webhook(secret).verify(body, h);
  } catch (e) {
    if (e instanceof SwVerificationError) throw new WebhookVerificationError(`callback rejected: ${e.message}`, { cause: e });
    throw new WebhookVerificationError(`callback rejected: ${(e as Error).message}`, { cause: e });
  }
  const ev = event as Partial<WebhookEvent> | null;
  if (!ev || typeof ev.type !== "string" || !ev.type.startsWith("request.") || typeof ev.data !== "object" || ev.data === null) {
    throw new WebhookVerificationError("callback body is not a Countersign request event");
  }
  return ev as WebhookEvent;
}
