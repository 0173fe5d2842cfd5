import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ACTION, VIEW } from "./card.ts";
import { slackPayloadProblem, validSlackSignature } from "./guard.ts";

const form = (p: unknown) => `payload=${encodeURIComponent(JSON.stringify(p))}`;
const FORM = "application/x-www-form-urlencoded";
const user = { id: "U1" };

describe("slackPayloadProblem", () => {
  it("accepts our block actions and view submissions", () => {
    expect(slackPayloadProblem(FORM, form({ type: "block_actions", user, actions: [{ action_id: ACTION.approve, value: "req_x" }] }))).toBeNull();
    expect(slackPayloadProblem(FORM, form({ type: "view_submission", user, view: { callback_id: VIEW.deny, private_metadata: "{}" } }))).toBeNull();
    expect(slackPayloadProblem("application/json", JSON.stringify({ type: "url_verification", challenge: "c" }))).toBeNull();
  });

  it.each([
    ["empty type", form({ type: "", user, actions: [{ action_id: ACTION.approve, value: "v" }] }), /unsupported interaction type/],
    ["no actions", form({ type: "block_actions", user }), /exactly one action/],
    ["foreign action", form({ type: "block_actions", user, actions: [{ action_id: "other", value: "v" }] }), /unknown action_id/],
    ["no value", form({ type: "block_actions", user, actions: [{ action_id: ACTION.deny }] }), /no value/],
    ["no user", form({ type: "block_actions", actions: [{ action_id: ACTION.deny, value: "v" }] }), /no user id/],
    ["foreign view", form({ type: "view_submission", user, view: { callback_id: "x", private_metadata: "" } }), /unknown view/],
    ["not JSON", "payload=%7Bnope", /not valid JSON/],
    ["no payload", "a=b", /no payload/],
  ])("refuses %s", (_name, body, why) => {
    expect(slackPayloadProblem(FORM, body)).toMatch(why);
  });

  it("refuses other content types", () => {
    expect(slackPayloadProblem("text/plain", "x")).toMatch(/expected application\/x-www-form-urlencoded/);
    expect(slackPayloadProblem(`${FORM}; charset=utf-8`, "payload=%7B%7D")).toMatch(/expected/);
  });
});

describe("validSlackSignature", () => {
  const raw = Buffer.from("payload=%7B%7D");
  const sign = (secret: string, ts: string) => `v0=${createHmac("sha256", secret).update(`v0:${ts}:${raw}`).digest("hex")}`;
  it("accepts Slack's v0 HMAC and refuses any other secret, timestamp or length", () => {
    expect(validSlackSignature("s3cret", "1700000000", raw, sign("s3cret", "1700000000"))).toBe(true);
    expect(validSlackSignature("s3cret", "1700000001", raw, sign("s3cret", "1700000000"))).toBe(false);
    expect(validSlackSignature("s3cret", "1700000000", raw, sign("other", "1700000000"))).toBe(false);
    expect(validSlackSignature("s3cret", "1700000000", raw, "v0=short")).toBe(false);
  });
});
