import { describe, expect, it } from "vitest";
import { countApprovals, type DecisionSubject, evaluateVote, isEligible, type PriorVote, type VoteOutcome } from "./decision.ts";
import { ERROR_CODES, REFUSAL_CODES } from "./errors.ts";
import type { RequestStatus } from "./lifecycle.ts";

const OWNER = "owner@example.com";
const BEHALF = "boss@example.com";
const ALICE = "alice@example.com";
const BOB = "bob@example.com";
const CAROL = "carol@example.com";
const MALLORY = "mallory@example.com";

const EXPIRES = new Date("2030-06-01T12:00:00.000Z");
const NOW = new Date("2030-06-01T11:00:00.000Z");

function req(over: Partial<DecisionSubject> = {}): DecisionSubject {
  return {
    status: "pending",
    expiresAt: EXPIRES,
    agentOwner: OWNER,
    onBehalfOf: BEHALF,
    eligible: [ALICE, BOB, CAROL],
    requiredApprovals: 2,
    ...over,
  };
}

const approve = (principal: string): PriorVote => ({ principal, decision: "approve" });
const deny = (principal: string): PriorVote => ({ principal, decision: "deny" });

function refusal(o: VoteOutcome): string {
  if (o.ok) throw new Error(`expected a refusal, got ${JSON.stringify(o)}`);
  return o.code;
}

describe("evaluateVote: request must be pending", () => {
  it.each(["approved", "denied", "expired", "cancelled"] as const)("refuses on a %s request, naming the status", (status) => {
    for (const vote of ["approve", "deny"] as const) {
      const o = evaluateVote(req({ status }), [], ALICE, vote, NOW);
      expect(o).toEqual({ ok: false, code: "request_not_pending", message: expect.stringContaining(status) });
    }
  });

  it("refuses on a pending request whose expiry has passed", () => {
    const o = evaluateVote(req(), [], ALICE, "approve", new Date(EXPIRES.getTime() + 60_000));
    expect(o).toMatchObject({ ok: false, code: "request_not_pending" });
    expect((o as { message: string }).message).toMatch(/expired/);
  });

  it("expiry is inclusive: a vote at exactly expiresAt is refused, 1ms before is accepted", () => {
    expect(refusal(evaluateVote(req(), [], ALICE, "approve", new Date(EXPIRES.getTime())))).toBe("request_not_pending");
    expect(evaluateVote(req(), [], ALICE, "approve", new Date(EXPIRES.getTime() - 1)).ok).toBe(true);
  });
});

describe("evaluateVote: separation of duties", () => {
  it("the agent owner cannot decide even when listed as an eligible approver", () => {
    const r = req({ eligible: [OWNER, ALICE] });
    for (const vote of ["approve", "deny"] as const) {
      const o = evaluateVote(r, [], OWNER, vote, NOW);
      expect(o).toMatchObject({ ok: false, code: "self_approval_forbidden" });
      expect((o as { message: string }).message).toMatch(/own the agent key/);
    }
  });

  it('the agent owner cannot decide with eligible ["*"]', () => {
    expect(refusal(evaluateVote(req({ eligible: ["*"] }), [], OWNER, "approve", NOW))).toBe("self_approval_forbidden");
  });

  it("onBehalfOf cannot decide even when listed as an eligible approver", () => {
    const r = req({ eligible: [BEHALF, ALICE] });
    for (const vote of ["approve", "deny"] as const) {
      const o = evaluateVote(r, [], BEHALF, vote, NOW);
      expect(o).toMatchObject({ ok: false, code: "self_approval_forbidden" });
      expect((o as { message: string }).message).toMatch(/on your behalf/);
    }
  });

  it('onBehalfOf cannot decide with eligible ["*"]', () => {
    expect(refusal(evaluateVote(req({ eligible: ["*"] }), [], BEHALF, "approve", NOW))).toBe("self_approval_forbidden");
  });

  it("with onBehalfOf null, only the owner is excluded", () => {
    const r = req({ onBehalfOf: null, eligible: ["*"], requiredApprovals: 1 });
    expect(refusal(evaluateVote(r, [], OWNER, "approve", NOW))).toBe("self_approval_forbidden");
    expect(evaluateVote(r, [], BEHALF, "approve", NOW)).toMatchObject({ ok: true, status: "approved" });
  });
});

describe("evaluateVote: eligibility and one vote per reviewer", () => {
  it("a reviewer outside the eligible list is not_an_approver", () => {
    const o = evaluateVote(req(), [], MALLORY, "approve", NOW);
    expect(o).toMatchObject({ ok: false, code: "not_an_approver" });
  });

  it("an empty eligible list admits nobody", () => {
    expect(refusal(evaluateVote(req({ eligible: [] }), [], ALICE, "approve", NOW))).toBe("not_an_approver");
  });

  it('"*" admits any reviewer other than owner/onBehalfOf', () => {
    expect(evaluateVote(req({ eligible: ["*"] }), [], MALLORY, "approve", NOW).ok).toBe(true);
  });

  it("already_voted after an approve", () => {
    for (const vote of ["approve", "deny"] as const) {
      expect(refusal(evaluateVote(req(), [approve(ALICE)], ALICE, vote, NOW))).toBe("already_voted");
    }
  });

  it("already_voted after a deny", () => {
    for (const vote of ["approve", "deny"] as const) {
      expect(refusal(evaluateVote(req(), [deny(ALICE)], ALICE, vote, NOW))).toBe("already_voted");
    }
  });

  it("another reviewer's vote does not count as yours", () => {
    expect(evaluateVote(req(), [approve(BOB)], ALICE, "approve", NOW).ok).toBe(true);
  });
});

describe("evaluateVote: order of checks", () => {
  it("not pending beats self-approval, ineligibility and already-voted", () => {
    const prior = [approve(MALLORY)];
    for (const who of [OWNER, BEHALF, MALLORY]) {
      expect(refusal(evaluateVote(req({ status: "approved" }), prior, who, "approve", NOW))).toBe("request_not_pending");
    }
  });

  it("expiry beats self-approval", () => {
    expect(refusal(evaluateVote(req(), [], OWNER, "approve", EXPIRES))).toBe("request_not_pending");
  });

  it("self-approval beats not_an_approver (owner / onBehalfOf not in eligible)", () => {
    const r = req({ eligible: [ALICE] });
    expect(refusal(evaluateVote(r, [], OWNER, "approve", NOW))).toBe("self_approval_forbidden");
    expect(refusal(evaluateVote(r, [], BEHALF, "approve", NOW))).toBe("self_approval_forbidden");
  });

  it("self-approval beats already_voted", () => {
    const r = req({ eligible: ["*"] });
    expect(refusal(evaluateVote(r, [approve(OWNER)], OWNER, "approve", NOW))).toBe("self_approval_forbidden");
  });

  it("not_an_approver beats already_voted", () => {
    expect(refusal(evaluateVote(req(), [approve(MALLORY)], MALLORY, "approve", NOW))).toBe("not_an_approver");
  });

  it("every refusal code is a declared refusal code", () => {
    const codes = new Set([
      refusal(evaluateVote(req({ status: "denied" }), [], ALICE, "approve", NOW)),
      refusal(evaluateVote(req(), [], OWNER, "approve", NOW)),
      refusal(evaluateVote(req(), [], MALLORY, "approve", NOW)),
      refusal(evaluateVote(req(), [approve(ALICE)], ALICE, "approve", NOW)),
    ]);
    expect([...codes].sort()).toEqual([...REFUSAL_CODES].sort());
    for (const c of codes) expect(ERROR_CODES).toContain(c);
  });
});

describe("evaluateVote: outcomes", () => {
  it("a single deny denies, even when approvals are pending toward quorum", () => {
    expect(evaluateVote(req(), [], ALICE, "deny", NOW)).toEqual({ ok: true, status: "denied", approvals: 0, resolution: "denied" });
    expect(evaluateVote(req({ requiredApprovals: 3 }), [approve(BOB), approve(CAROL)], ALICE, "deny", NOW)).toEqual({
      ok: true,
      status: "denied",
      approvals: 2,
      resolution: "denied",
    });
  });

  it("with requiredApprovals 1, the first approval approves", () => {
    expect(evaluateVote(req({ requiredApprovals: 1 }), [], ALICE, "approve", NOW)).toEqual({
      ok: true,
      status: "approved",
      approvals: 1,
      resolution: "quorum",
    });
  });

  it("a quorum of 2 needs two distinct approvers", () => {
    const r = req({ requiredApprovals: 2 });
    const prior: PriorVote[] = [];
    const first = evaluateVote(r, prior, ALICE, "approve", NOW);
    expect(first).toEqual({ ok: true, status: "pending", approvals: 1, resolution: null });
    prior.push(approve(ALICE));
    // The same approver again does not make a quorum.
    expect(refusal(evaluateVote(r, prior, ALICE, "approve", NOW))).toBe("already_voted");
    const second = evaluateVote(r, prior, BOB, "approve", NOW);
    expect(second).toEqual({ ok: true, status: "approved", approvals: 2, resolution: "quorum" });
  });

  it("a quorum of 3 walks pending -> pending -> approved", () => {
    const r = req({ requiredApprovals: 3 });
    const prior: PriorVote[] = [];
    const statuses: RequestStatus[] = [];
    for (const who of [ALICE, BOB, CAROL]) {
      const o = evaluateVote(r, prior, who, "approve", NOW);
      if (!o.ok) throw new Error(o.code);
      statuses.push(o.status);
      prior.push(approve(who));
    }
    expect(statuses).toEqual(["pending", "pending", "approved"]);
  });

  it("duplicate approve rows for one principal count once towards quorum", () => {
    // Two rows for Alice (e.g. a replayed write): Carol's approval is the 2nd distinct one, not the 3rd.
    const prior = [approve(ALICE), approve(ALICE)];
    expect(evaluateVote(req({ requiredApprovals: 3 }), prior, CAROL, "approve", NOW)).toEqual({
      ok: true,
      status: "pending",
      approvals: 2,
      resolution: null,
    });
    expect(evaluateVote(req({ requiredApprovals: 2 }), prior, CAROL, "approve", NOW)).toMatchObject({ status: "approved", approvals: 2 });
  });
});

describe("countApprovals", () => {
  it("counts distinct approving principals and ignores denies", () => {
    expect(countApprovals([])).toBe(0);
    expect(countApprovals([approve(ALICE), approve(ALICE), deny(BOB)])).toBe(1);
    expect(countApprovals([approve(ALICE), approve(BOB), deny(CAROL), approve(ALICE)])).toBe(2);
    expect(countApprovals([deny(ALICE), deny(BOB)])).toBe(0);
  });
});

describe("isEligible", () => {
  it("matches exact principals or '*'", () => {
    expect(isEligible([ALICE], ALICE)).toBe(true);
    expect(isEligible([ALICE], BOB)).toBe(false);
    expect(isEligible(["*"], BOB)).toBe(true);
    expect(isEligible([ALICE, "*"], MALLORY)).toBe(true);
    expect(isEligible([], ALICE)).toBe(false);
  });
});

describe("evaluateVote: one person is one principal, whatever the spelling (issue #11)", () => {
  const canonical = (s: string) => s; // the inputs below are already in canonical form, as stored
  const anyone = (over: Partial<DecisionSubject> = {}) => req({ eligible: ["*"], onBehalfOf: null, ...over });

  it.each([
    ["a +tag", "owner+x@example.com"],
    ["a look-alike local part (skeleton: rn for m, 0 for o)", "0wner@example.com"],
    ["a look-alike domain", "owner@examp1e.com"],
  ])('the agent key\'s owner with %s cannot approve their own request on a "*" rule', (_label, variant) => {
    expect(refusal(evaluateVote(anyone(), [], canonical(variant), "approve", NOW))).toBe("self_approval_forbidden");
  });

  it("onBehalfOf with a +tag is still the person it names", () => {
    const r = anyone({ onBehalfOf: "bob+x@example.com" });
    expect(refusal(evaluateVote(r, [], BOB, "approve", NOW))).toBe("self_approval_forbidden");
    expect(refusal(evaluateVote(anyone({ onBehalfOf: BOB }), [], "bob+agent@example.com", "approve", NOW))).toBe("self_approval_forbidden");
  });

  it("a second spelling of a reviewer who already voted is refused, and never counts toward the quorum", () => {
    expect(refusal(evaluateVote(anyone(), [approve(CAROL)], "carol+x@example.com", "approve", NOW))).toBe("already_voted");
    expect(refusal(evaluateVote(anyone(), [approve("carol+x@example.com")], CAROL, "approve", NOW))).toBe("already_voted");
    expect(countApprovals([approve(CAROL), approve("carol+x@example.com"), approve("caro1@example.com")])).toBe(1);
  });

  it("different people still count separately", () => {
    const o = evaluateVote(anyone(), [approve(CAROL)], ALICE, "approve", NOW);
    expect(o).toMatchObject({ ok: true, status: "approved", approvals: 2 });
  });
});
