import { CountersignError, REFUSAL_CODES } from "@countersign/core";
import { describe, expect, it } from "vitest";
import { errorMessage } from "./messages.ts";

describe("errorMessage", () => {
  it.each(REFUSAL_CODES)("explains the refusal %s and says nothing else changed", (code) => {
    const text = errorMessage(new CountersignError(code, "you own the agent key that made this request, so you cannot decide it"), "rq_1");
    expect(text).toMatch(/nothing (else )?changed|changed nothing/i);
  });

  it("passes the core reason through, escaped", () => {
    const text = errorMessage(new CountersignError("self_approval_forbidden", "the agent acts on your behalf <here>"), "rq_1");
    expect(text).toContain("The agent acts on your behalf &lt;here&gt;.");
  });

  it("never shows an unknown error's message, only a reference", () => {
    const text = errorMessage(new Error("connection string postgres://secret@db"), "rq_abc");
    expect(text).not.toContain("postgres");
    expect(text).toContain("rq_abc");
  });
});
