import type { RefusalCode } from "./errors.ts";
import type { RequestStatus } from "./lifecycle.ts";
import { samePerson, sodPrincipal } from "./principal.ts";

export type Vote = "approve" | "deny";

/** What the decision rules need to know about a request. */
export interface DecisionSubject {
  status: RequestStatus;
  expiresAt: Date;
  agentOwner: string;
  onBehalfOf: string | null;
  eligible: readonly string[];
  requiredApprovals: number;
}

export interface PriorVote {
  principal: string;
  decision: Vote;
}

export type VoteOutcome =
  | { ok: false; code: RefusalCode; message: string }
  | { ok: true; status: RequestStatus; approvals: number; resolution: "quorum" | "denied" | null };

/** Eligibility is by the exact canonical address the policy names: a +tag or look-alike is another address. */
export function isEligible(eligible: readonly string[], principal: string): boolean {
  return eligible.includes("*") || eligible.includes(principal);
}

/**
 * The decision rules every surface shares. Order matters: a closed request is reported
 * as such, then separation of duties, then eligibility, then one vote per reviewer.
 * A single eligible deny denies; approval needs `requiredApprovals` distinct approvers.
 * "The same person" is decided on the separation-of-duties form (no +tags, TR39
 * skeleton), so `ops-lead+x@` and a look-alike of `ops-lead@` are ops-lead, for
 * self-approval, for one vote each and for the quorum count alike.
 */
export function evaluateVote(req: DecisionSubject, prior: readonly PriorVote[], reviewer: string, vote: Vote, now: Date): VoteOutcome {
  if (req.status !== "pending") {
    return { ok: false, code: "request_not_pending", message: `this request is already ${req.status}` };
  }
  if (now.getTime() >= req.expiresAt.getTime()) {
    return { ok: false, code: "request_not_pending", message: "this request has expired" };
  }
  if (samePerson(reviewer, req.agentOwner)) {
    return { ok: false, code: "self_approval_forbidden", message: "you own the agent key that made this request, so you cannot decide it" };
  }
  if (req.onBehalfOf && samePerson(reviewer, req.onBehalfOf)) {
    return { ok: false, code: "self_approval_forbidden", message: "the agent acts on your behalf in this request, so you cannot decide it" };
  }
  if (!isEligible(req.eligible, reviewer)) {
    return { ok: false, code: "not_an_approver", message: "you are not an eligible approver for this request's policy rule" };
  }
  if (prior.some((p) => samePerson(p.principal, reviewer))) {
    return { ok: false, code: "already_voted", message: "you have already decided on this request" };
  }
  if (vote === "deny") return { ok: true, status: "denied", approvals: countApprovals(prior), resolution: "denied" };
  const approvals = countApprovals(prior) + 1;
  return approvals >= req.requiredApprovals
    ? { ok: true, status: "approved", approvals, resolution: "quorum" }
    : { ok: true, status: "pending", approvals, resolution: null };
}

export function countApprovals(prior: readonly PriorVote[]): number {
  return new Set(prior.filter((p) => p.decision === "approve").map((p) => sodPrincipal(p.principal))).size;
}
