import { ERROR_CODES, isCountersignError, type Logger, REFUSAL_CODES, type RefusalCode } from "@countersign/core";
import type { CardNotice } from "./card.ts";

/**
 * Maps an error from a decision onto the notice shown to the reviewer who clicked. This is
 * the Teams counterpart of the HTTP problem+json mapping: one place, closed set of codes.
 */
export function noticeFor(e: unknown, log: Logger, meta: Record<string, unknown>): CardNotice {
  if (isCountersignError(e)) {
    if ((REFUSAL_CODES as readonly string[]).includes(e.code)) {
      return { tone: "attention", text: `${ERROR_CODES[e.code as RefusalCode].title}: ${e.message}. Your decision was not recorded.` };
    }
    switch (e.code) {
      case "reviewer_unverified":
        return { tone: "attention", text: `${ERROR_CODES.reviewer_unverified.title}: ${e.message}. Your decision was not recorded.` };
      case "invalid_request": {
        const detail = e.errors?.map((f) => `${f.path || "input"}: ${f.message}`).join("; ");
        return { tone: "warning", text: `Your decision was not accepted: ${detail || e.message}` };
      }
      case "not_found":
        return { tone: "attention", text: "This approval request no longer exists." };
      case "service_unavailable":
        return { tone: "warning", text: "Countersign is briefly unavailable. Nothing was recorded; try again in a moment." };
      default:
        break;
    }
  }
  log.error("teams: deciding from a card failed", { ...meta, err: e as Error });
  return {
    tone: "attention",
    text: `Countersign could not process your decision (reference ${String(meta.correlationId ?? "unknown")}). Check the card again before retrying.`,
  };
}

export const REASON_REQUIRED: CardNotice = {
  tone: "warning",
  text: "A reason is required to deny. Type it in the Reason box, then press Deny again.",
};
