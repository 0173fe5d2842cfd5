import { describe, expect, it } from "vitest";
import { classifyTeamsError } from "./jobs.ts";

/** The shape botbuilder's connector throws: an @azure/core-rest-pipeline RestError. */
function restError(status: number, retryAfter?: string) {
  const headers = new Map(retryAfter ? [["retry-after", retryAfter]] : []);
  return Object.assign(new Error(`injected ${status}`), { statusCode: status, response: { status, headers: { get: (k: string) => headers.get(k) } } });
}

describe("classifying Bot Connector failures", () => {
  it("retries throttling and gateway errors, honouring Retry-After", () => {
    expect(classifyTeamsError(restError(429, "2"))).toMatchObject({ permanent: false, httpStatus: 429, retryAfterMs: 2000 });
    for (const s of [412, 502, 504, 503, 500, 408]) expect([s, classifyTeamsError(restError(s)).permanent]).toEqual([s, false]);
    const at = new Date(Date.now() + 5000).toUTCString();
    const dated = classifyTeamsError(restError(429, at)).retryAfterMs ?? 0;
    expect(dated).toBeGreaterThan(3000);
    expect(dated).toBeLessThanOrEqual(5000);
  });

  it("gives up on errors Teams will keep answering", () => {
    for (const s of [400, 401, 403, 404, 413]) expect([s, classifyTeamsError(restError(s)).permanent]).toEqual([s, true]);
    expect(classifyTeamsError(restError(404)).message).toBe("Teams answered HTTP 404: injected 404");
  });

  it("retries network errors, which carry no status", () => {
    expect(classifyTeamsError(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }))).toEqual({
      permanent: false,
      message: "connect ECONNREFUSED",
    });
  });
});
