import { describe, expect, it } from "vitest";
import { canTransition, isTerminal, REQUEST_STATUSES, type RequestStatus } from "./lifecycle.ts";

describe("lifecycle", () => {
  it("has exactly the five statuses", () => {
    expect([...REQUEST_STATUSES].sort()).toEqual(["approved", "cancelled", "denied", "expired", "pending"]);
  });

  it("only pending is non-terminal", () => {
    expect(REQUEST_STATUSES.filter((s) => !isTerminal(s))).toEqual(["pending"]);
  });

  // Full truth table: rows are `from`, columns are `to` in REQUEST_STATUSES order
  // (pending, approved, denied, expired, cancelled).
  const table: Record<RequestStatus, [boolean, boolean, boolean, boolean, boolean]> = {
    pending: [false, true, true, true, true],
    approved: [false, false, false, false, false],
    denied: [false, false, false, false, false],
    expired: [false, false, false, false, false],
    cancelled: [false, false, false, false, false],
  };
  const cases = REQUEST_STATUSES.flatMap((from) => REQUEST_STATUSES.map((to, j) => [from, to, table[from][j]] as const));

  it("the truth table covers all 25 pairs", () => {
    expect(cases).toHaveLength(25);
  });

  it.each(cases)("canTransition(%s -> %s) = %s", (from, to, expected) => {
    expect(canTransition(from, to)).toBe(expected);
  });
});
