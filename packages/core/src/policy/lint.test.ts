import { describe, expect, it } from "vitest";
import { type PolicyWarning, policyWarnings } from "./lint.ts";
import type { PolicyFile, Rule } from "./schema.ts";

const SLACK = { channel: "C0123456789" };
const TEAMS = { channel: "19:abc@thread.tacv2" };

/** A loaded policy with two groups and four channels (`idle` is notified by no rule). */
const policy = (...rules: Rule[]): PolicyFile => ({
  version: 1,
  groups: { sre: ["alice@example.com", "bob@example.com", "carol@example.com"], duo: ["dan@example.com", "erin@example.com"] },
  channels: { ops: { slack: SLACK }, sec: { teams: TEAMS }, both: { slack: SLACK, teams: TEAMS }, idle: { slack: SLACK, teams: TEAMS } },
  rules,
  default: "deny",
});
const approval = (id: string, fields: Omit<Rule, "id" | "effect">): Rule => ({ id, effect: "require_approval", ...fields });

const NONE = { slack: false, teams: false };

describe("policyWarnings", () => {
  const example = policy(
    approval("below-quorum", { approvers: ["sre"], approvals: 2, notify: ["both"] }),
    approval("everyone-needed", { approvers: ["duo", "dan+oncall@example.com"], approvals: 2, notify: ["sec", "ops", "both"] }),
    approval("anyone", { approvers: ["*"], approvals: 3, notify: ["ops"] }),
    { id: "reads", effect: "allow" },
  );
  const slack = (name: string): PolicyWarning => ({
    path: `channels.${name}.slack`,
    message: `channel "${name}" has a Slack destination but Slack is not configured, so its cards will not be delivered to Slack (Slack needs SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET)`,
  });
  const teams = (name: string): PolicyWarning => ({
    path: `channels.${name}.teams`,
    message:
      `channel "${name}" has a Teams destination but Microsoft Teams is not configured, so its cards will not be delivered to Teams ` +
      "(Teams needs TEAMS_APP_ID and TEAMS_APP_TYPE, plus TEAMS_APP_PASSWORD for a MultiTenant or SingleTenant app and TEAMS_APP_TENANT_ID for a SingleTenant or UserAssignedMSI app)",
  });
  const everyoneNeeded: PolicyWarning = {
    path: "rules[1].approvals",
    message:
      'needs 2 distinct approvers and its approvers (group "duo" and dan+oncall@example.com) list exactly 2 people: ' +
      "dan@example.com (also listed as dan+oncall@example.com), erin@example.com; every one of them must approve, " +
      "so a request made by or on behalf of one of them can never be approved (separation of duties)",
  };

  it("with no surface: every notified channel's destinations and the all-must-approve quorum, in rule then notify order", () => {
    // Not warned: the channel no rule notifies, a quorum below the group's size, and "*".
    expect(policyWarnings(example, NONE)).toEqual([slack("both"), teams("both"), everyoneNeeded, teams("sec"), slack("ops")]);
  });

  it.each([
    [{ slack: true, teams: false }, [teams("both"), everyoneNeeded, teams("sec")]],
    [{ slack: false, teams: true }, [slack("both"), everyoneNeeded, slack("ops")]],
    [{ slack: true, teams: true }, [everyoneNeeded]],
  ])("a configured surface's destinations are not warned (%o)", (surfaces, expected) => {
    expect(policyWarnings(example, surfaces)).toEqual(expected);
  });

  it("the default quorum of one with a single approver is reported at `approvers`", () => {
    expect(policyWarnings(policy(approval("only-alice", { approvers: ["alice@example.com"] })), NONE)).toEqual([
      {
        path: "rules[0].approvers",
        message:
          "needs 1 distinct approver and its approvers (alice@example.com) list exactly 1 person: alice@example.com; every one of them must approve, " +
          "so a request made by or on behalf of one of them can never be approved (separation of duties)",
      },
    ]);
  });
});
