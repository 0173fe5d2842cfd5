import type { Actor, ErrorCode } from "@countersign/core";
import { type RequestResource, type ServiceCtx, type ServiceDeps, serviceCtx, toCountersignError } from "@countersign/services";
import { escapeMrkdwn } from "./card.ts";

/** The Slack surface's ctx: the reviewer resolved from the signed payload, under the click's correlation id. */
export function toServiceCtx(deps: ServiceDeps, actor: Actor, correlationId: string): ServiceCtx {
  // A click is never refused because other transactions are queued (see ServiceCtx.admission).
  return { ...serviceCtx(deps, actor, correlationId), admission: "always" };
}

const sentence = (s: string) => {
  const t = s.trim().replace(/\.$/, "");
  return `${t.charAt(0).toUpperCase()}${t.slice(1)}.`;
};

/**
 * The one place Countersign error codes become Slack words. Refusals come from decide()
 * (which has already audited them); every message says that nothing else changed.
 */
export function errorMessage(err: unknown, correlationId: string): string {
  const e = toCountersignError(err);
  if (e.code === "internal_error") {
    return `:warning: Countersign could not confirm your decision because of an internal error (reference \`${correlationId}\`). Check the card before trying again.`;
  }
  const why = escapeMrkdwn(sentence(e.message));
  const byCode: Partial<Record<ErrorCode, string>> = {
    self_approval_forbidden: `:no_entry_sign: You can't decide this request. ${why} Your click was recorded in the audit log; nothing else changed.`,
    not_an_approver: `:no_entry_sign: You are not an approver for this request. ${why} Your click was recorded in the audit log; nothing else changed.`,
    already_voted: ":information_source: You have already decided on this request. Each reviewer counts once, so this click changed nothing.",
    request_not_pending: `:information_source: This request is no longer pending. ${why} Nothing changed.`,
    reviewer_unverified: `:no_entry_sign: ${why} Your click was recorded in the audit log; nothing else changed.`,
    forbidden: `:no_entry_sign: ${why} Your click was recorded in the audit log; nothing else changed.`,
    not_found: ":warning: This request does not exist on this Countersign gateway. Nothing changed.",
    invalid_request: `:warning: Countersign could not read that decision. ${why} Nothing changed.`,
    service_unavailable: ":warning: Countersign is unavailable right now. Nothing was recorded; try again in a minute.",
  };
  return (
    byCode[e.code] ?? `:warning: Countersign could not record your decision (${e.code}, reference \`${correlationId}\`). Check the card before trying again.`
  );
}

/** What the reviewer is told once their vote has committed. */
export function successMessage(vote: "approve" | "deny", r: RequestResource): string {
  const what = `*${escapeMrkdwn(r.summary)}*`;
  if (vote === "deny") return `:no_entry: You denied ${what}. The requester has been told.`;
  if (r.status === "approved") return `:white_check_mark: You approved ${what}. It is now approved and the requester has been released.`;
  const left = r.approvals.required - r.approvals.received;
  return `:white_check_mark: You approved ${what}: ${r.approvals.received} of ${r.approvals.required} approvals, waiting for ${left} more.`;
}
