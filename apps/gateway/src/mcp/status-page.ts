import { canonicalJson } from "@countersign/core";
import { getRequest, type RequestResource, type ServiceDeps, systemCtx } from "@countersign/services";
import type { Request, Response, Router } from "express";
import express from "express";
import { compactVerify, createLocalJWKSet } from "jose";

/** A link's purpose, signed into it: the receipt key signs checkpoints too, and neither must pass for the other. */
const PURPOSE = "countersign.request-status";
export const STATUS_PATH = "/approval-status";

/**
 * A link to one request's status page, for the person at the agent's keyboard (sent as a
 * URL-mode elicitation while a tool call waits). The link is the credential: a JWS, by
 * the receipt key, naming the request and when the link stops working. Any replica
 * verifies it with the public keys it already serves. The page shows what the agent
 * asked for and how far the approval is, and decides nothing.
 */
export async function statusLink(deps: ServiceDeps, r: RequestResource): Promise<string> {
  // Valid a day past the request's expiry, so the outcome stays readable for a while.
  const exp = Math.floor(new Date(r.expiresAt).getTime() / 1000) + 86_400;
  const { jws } = await deps.receipts.signCheckpoint(canonicalJson({ purpose: PURPOSE, sub: r.id, exp }));
  return `${deps.publicUrl}${STATUS_PATH}/${jws}`;
}

async function requestFor(deps: ServiceDeps, token: string): Promise<RequestResource | null> {
  try {
    const { payload } = await compactVerify(token, createLocalJWKSet(deps.receipts.jwks(deps.clock())));
    const claims = JSON.parse(new TextDecoder().decode(payload)) as { purpose?: unknown; sub?: unknown; exp?: unknown };
    if (claims.purpose !== PURPOSE || typeof claims.sub !== "string" || typeof claims.exp !== "number") return null;
    if (claims.exp * 1000 < deps.clock().getTime()) return null;
    return await getRequest({ ctx: systemCtx(deps, "status-page"), input: { requestId: claims.sub } });
  } catch {
    return null;
  }
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const STATUS_WORDS: Record<string, string> = {
  pending: "Waiting for approval",
  approved: "Approved: the agent goes ahead",
  denied: "Denied: the agent does not go ahead",
  expired: "Expired without a decision: the agent does not go ahead",
  cancelled: "Cancelled",
};

function page(r: RequestResource): string {
  const rows: [string, string][] = [
    ["Action", r.action],
    ["Summary", r.summary],
    ["Agent", `${r.agent.name} (owner ${r.agent.owner})`],
    ...(r.onBehalfOf ? ([["On behalf of", r.onBehalfOf]] as [string, string][]) : []),
    ...(r.environment ? ([["Environment", r.environment]] as [string, string][]) : []),
    ["Rule", r.policy.ruleId ?? "(policy default)"],
    ["Approvals", `${r.approvals.received} of ${r.approvals.required}`],
    ["Expires", r.expiresAt],
    ["Request", r.id],
    ["Params SHA-256", r.paramsSha256],
  ];
  const decisions = r.decisions.map(
    (d) => `<li>${escapeHtml(d.reviewer)}: ${escapeHtml(d.decision)}${d.reason ? ` (${escapeHtml(d.reason)})` : ""}, ${escapeHtml(d.decidedAt)}</li>`,
  );
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
${r.status === "pending" ? '<meta http-equiv="refresh" content="5">' : ""}
<title>${escapeHtml(STATUS_WORDS[r.status] ?? r.status)}: ${escapeHtml(r.action)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;color:#1d1d1f}th{text-align:left;padding-right:1rem;vertical-align:top;color:#555}pre{background:#f5f5f7;padding:1rem;overflow:auto}.s{font-size:1.4rem;font-weight:600}</style>
</head><body>
<p class="s" id="status">${escapeHtml(STATUS_WORDS[r.status] ?? r.status)}</p>
<table>${rows.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join("")}</table>
<h2>Params</h2><pre>${escapeHtml(JSON.stringify(r.params, null, 2))}</pre>
${decisions.length ? `<h2>Decisions</h2><ul>${decisions.join("")}</ul>` : ""}
<p>Reviewers decide in Slack, Microsoft Teams or the API; this page only shows the request${r.status === "pending" ? " and refreshes itself" : ""}.</p>
</body></html>`;
}

export function statusRouter(deps: ServiceDeps): Router {
  const r = express.Router();
  r.get("/:token", async (req: Request, res: Response) => {
    // Nothing on this page may load from elsewhere, be framed, or leak the link onward.
    res.setHeader("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'");
    res.setHeader("cache-control", "no-store");
    res.setHeader("referrer-policy", "no-referrer");
    res.setHeader("x-content-type-options", "nosniff");
    const found = await requestFor(deps, req.params.token as string);
    if (!found) {
      res.status(404).type("text/html").send("<!doctype html><title>Not found</title><p>This link is not valid, or it has expired.</p>");
      return;
    }
    res.type("text/html").send(page(found));
  });
  return r;
}
