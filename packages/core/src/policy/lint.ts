import { parsePrincipal } from "../principal.ts";
import { DEFAULT_APPROVALS } from "./evaluate.ts";
import type { PolicyFile } from "./schema.ts";

/** Something in a valid policy that will not work as its author probably expects. */
export interface PolicyWarning {
  /** YAML path such as `rules[1].approvals` or `channels.ops.slack`. */
  path: string;
  message: string;
}

/** One person a rule's approvers name: the first spelling met, and any other spelling of the same person. */
export interface ApproverPerson {
  principal: string;
  alsoListedAs: string[];
}

/**
 * The distinct people a rule's approvers name, groups expanded, in order of first
 * appearance. Two addresses are one person when separation of duties treats them as one
 * (the same SoD key: case, `+tag` and look-alike variants), as the quorum count does at
 * decision time. Returns null when the set is open ("*") or not known (an approver or
 * group member that is not a valid address, which is reported on its own).
 */
export function approverPeople(approvers: readonly string[], groups: Readonly<Record<string, readonly string[]>>): ApproverPerson[] | null {
  if (approvers.includes("*")) return null;
  const people = new Map<string, ApproverPerson>();
  for (const a of approvers) {
    for (const address of Object.hasOwn(groups, a) ? (groups[a] as readonly string[]) : [a]) {
      const r = parsePrincipal(address);
      if (!r.ok) return null;
      const person = people.get(r.sod);
      if (!person) people.set(r.sod, { principal: r.canonical, alsoListedAs: [] });
      else if (person.principal !== r.canonical && !person.alsoListedAs.includes(r.canonical)) person.alsoListedAs.push(r.canonical);
    }
  }
  return [...people.values()];
}

/** `group "sre", erin@example.com and group "security"`. */
export function describeApprovers(approvers: readonly string[], groups: Readonly<Record<string, readonly string[]>>): string {
  const items = approvers.map((a) => {
    if (Object.hasOwn(groups, a)) return `group "${a}"`;
    const r = parsePrincipal(a);
    return r.ok ? r.canonical : a;
  });
  return items.length <= 1 ? items.join("") : `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`;
}

/** `1 distinct approver`, `3 distinct approvers`. */
export function distinctApprovers(n: number): string {
  return `${n} distinct ${n === 1 ? "approver" : "approvers"}`;
}

/** `2 people: alice@example.com (also listed as alice+ops@example.com), bob@example.com`. */
export function listPeople(people: readonly ApproverPerson[]): string {
  const names = people.map((p) => (p.alsoListedAs.length > 0 ? `${p.principal} (also listed as ${p.alsoListedAs.join(", ")})` : p.principal));
  return `${people.length === 1 ? "1 person" : `${people.length} people`}: ${names.join(", ")}`;
}

const SLACK_SETUP = "Slack needs SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET";
const TEAMS_SETUP =
  "Teams needs TEAMS_APP_ID and TEAMS_APP_TYPE, plus TEAMS_APP_PASSWORD for a MultiTenant or SingleTenant app and TEAMS_APP_TENANT_ID for a SingleTenant or UserAssignedMSI app";

/**
 * Warnings for a policy that loaded (see parsePolicy), given which chat surfaces the
 * gateway has configured. Pure and deterministic: in rule order, and within a rule its
 * quorum first, then the channels it notifies in `notify` order (each channel once, at
 * the first rule that notifies it; Slack before Teams). A channel no rule notifies is
 * not a warning.
 */
export function policyWarnings(policy: PolicyFile, surfaces: { slack: boolean; teams: boolean }): PolicyWarning[] {
  const out: PolicyWarning[] = [];
  const seen = new Set<string>();
  policy.rules.forEach((rule, i) => {
    if (rule.effect !== "require_approval") return;
    const people = rule.approvers ? approverPeople(rule.approvers, policy.groups) : null;
    const needed = rule.approvals ?? DEFAULT_APPROVALS;
    if (rule.approvers && people && needed === people.length) {
      out.push({
        path: `rules[${i}].${rule.approvals === undefined ? "approvers" : "approvals"}`,
        message:
          `needs ${distinctApprovers(needed)} and its approvers (${describeApprovers(rule.approvers, policy.groups)}) ` +
          `list exactly ${listPeople(people)}; every one of them must approve, so a request made by or on behalf of one of them ` +
          "can never be approved (separation of duties)",
      });
    }
    for (const name of rule.notify ?? []) {
      if (seen.has(name) || !Object.hasOwn(policy.channels, name)) continue;
      seen.add(name);
      const channel = policy.channels[name];
      if (channel?.slack && !surfaces.slack) {
        out.push({
          path: `channels.${name}.slack`,
          message: `channel "${name}" has a Slack destination but Slack is not configured, so its cards will not be delivered to Slack (${SLACK_SETUP})`,
        });
      }
      if (channel?.teams && !surfaces.teams) {
        out.push({
          path: `channels.${name}.teams`,
          message: `channel "${name}" has a Teams destination but Microsoft Teams is not configured, so its cards will not be delivered to Teams (${TEAMS_SETUP})`,
        });
      }
    }
  });
  return out;
}
