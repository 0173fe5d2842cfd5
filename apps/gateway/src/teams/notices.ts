import { type Actor, type Logger, REFUSAL_CODES, type RefusalCode } from "@countersign/core";
import { type ServiceCtx, type ServiceDeps, serviceCtx, toCountersignError } from "@countersign/services";
import type { CardNotice } from "./card.ts";

/** The Teams surface's ctx: the reviewer resolved from the JWT-validated activity, under the turn's correlation id. */
export function toServiceCtx(deps: ServiceDeps, actor: Actor, correlationId: string): ServiceCtx {
  // A click is never refused because other transactions are queued (see ServiceCtx.admission).
  return { ...serviceCtx(deps, actor, correlationId), admission: "always" };
}

const REFUSAL_TITLES: Record<RefusalCode | "reviewer_unverified", string> = {
  self_approval_forbidden: "Self-approval is forbidden",
  not_an_approver: "Not an approver",
  already_voted: "Already voted",
  request_not_pending: "Request is no longer pending",
  reviewer_unverified: "Reviewer identity could not be verified",
};

/**
 * Maps an error from a decision onto the notice shown to the reviewer who clicked. This is
 * the Teams counterpart of the HTTP problem+json mapping: one place, closed set of codes.
 */
export function noticeFor(err: unknown, log: Logger, meta: Record<string, unknown>): CardNotice {
  const e = toCountersignError(err);
  if (e.code !== "internal_error") {
    if ((REFUSAL_CODES as readonly string[]).includes(e.code)) {
      return { tone: "attention", text: `${REFUSAL_TITLES[e.code as RefusalCode]}: ${e.message}. Your decision was not recorded.` };
    }
    switch (e.code) {
      case "reviewer_unverified":
        return { tone: "attention", text: `${REFUSAL_TITLES.reviewer_unverified}: ${e.message}. Your decision was not recorded.` };
      case "invalid_request": {
        const detail = e.errors?.map((f) => `${f.path || "input"}: ${f.message}`).join("; ");
        return { tone: "warning", text: `Your decision was not accepted: ${detail || e.message}` };
      }
      case "not_found":
        return { tone: "attention", text: "This approval request no longer exists." };
      case "service_unavailable":
        return { tone: "warning", text: "Countersign is briefly unavailable. Nothing was recorded; try again in a moment." };
      default:
        return { tone: "attention", text: `Your decision was not recorded (${e.code}): ${e.message}` };
    }
  }
  log.error("teams: deciding from a card failed", { ...meta, err: err as Error });
  return {
    tone: "attention",
    text: `Countersign could not process your decision (reference ${String(meta.correlationId ?? "unknown")}). Check the card again before retrying.`,
  };
}

export const REASON_REQUIRED: CardNotice = {
  tone: "warning",
  text: "A reason is required to deny. Type it in the Reason box, then press Deny again.",
};
