import { describe, expect, it } from "vitest";
import { type Actor, actorPrincipal, isPrincipal, normalizePrincipal } from "./actor.ts";
import { CountersignError, ERROR_CODES, isCountersignError, REFUSAL_CODES } from "./errors.ts";

describe("actor", () => {
  it("normalizePrincipal gives the canonical form (trimmed, NFKC, case folded, no trailing dot)", () => {
    expect(normalizePrincipal("  Dan@Example.COM ")).toBe("dan@example.com");
    expect(normalizePrincipal("ＤＡＮ@example.com.")).toBe("dan@example.com");
    expect(() => normalizePrincipal("dan\u200b@example.com")).toThrow(/U\+200B/);
  });

  it.each([
    ["alice@example.com", true],
    ["a.b+tag@sub.example.co.uk", true],
    ["alice", false],
    ["alice@example", false],
    ["@example.com", false],
    ["alice@@example.com", false],
    ["al ice@example.com", false],
    [" alice@example.com", true],
    ["carоl@example.com", false],
    ["", false],
  ])("isPrincipal(%j) = %s", (s, expected) => {
    expect(isPrincipal(s)).toBe(expected);
  });

  it("actorPrincipal: agents and admins act as their owner, reviewers as themselves, system as nobody", () => {
    const actors: [Actor, string | undefined][] = [
      [{ type: "agent", keyId: "k1", keyName: "ci", owner: "owner@example.com", scopes: ["requests"] }, "owner@example.com"],
      [{ type: "reviewer", principal: "carol@example.com", surface: "slack", surfaceUserId: "U1" }, "carol@example.com"],
      [{ type: "admin", keyId: "k2", owner: "admin@example.com" }, "admin@example.com"],
      [{ type: "system", name: "expirer" }, undefined],
    ];
    for (const [a, p] of actors) expect(actorPrincipal(a)).toBe(p);
  });
});

describe("errors", () => {
  it("CountersignError carries code, errors, retryAfter and cause", () => {
    const cause = new Error("db down");
    const e = new CountersignError("service_unavailable", "try later", { retryAfter: 5, cause });
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe("CountersignError");
    expect(e.message).toBe("try later");
    expect(e.code).toBe("service_unavailable");
    expect(e.retryAfter).toBe(5);
    expect(e.cause).toBe(cause);
    expect(e.errors).toBeUndefined();

    const v = new CountersignError("invalid_request", "bad", { errors: [{ path: "action", message: "nope" }] });
    expect(v.errors).toEqual([{ path: "action", message: "nope" }]);
  });

  it("the code list is closed and has no duplicates; refusal codes are in it", () => {
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
    for (const c of REFUSAL_CODES) expect(ERROR_CODES).toContain(c);
    for (const c of ERROR_CODES) expect(c).toMatch(/^[a-z]+(_[a-z]+)*$/);
  });

  it("isCountersignError distinguishes its own errors", () => {
    expect(isCountersignError(new CountersignError("not_found", "x"))).toBe(true);
    expect(isCountersignError(new Error("x"))).toBe(false);
    expect(isCountersignError({ code: "not_found" })).toBe(false);
    expect(isCountersignError(undefined)).toBe(false);
  });
});
