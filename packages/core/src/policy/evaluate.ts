import picomatch from "picomatch";
import { parseDuration } from "./duration.ts";
import type { Channel, Effect, PolicyFile, Risk, Rule } from "./schema.ts";

export const DEFAULT_EXPIRES_IN_SECONDS = 3600;
export const MAX_EXPIRES_IN_SECONDS = 7 * 86400;
/** The quorum of a require_approval rule that does not set `approvals`. */
export const DEFAULT_APPROVALS = 1;

export interface PolicySubject {
  action: string;
  environment?: string | null | undefined;
  resource?: string | null | undefined;
  risk?: Risk | null | undefined;
}

export interface PolicyDecision {
  effect: Effect;
  /** null when no rule matched and the policy default applied. */
  ruleId: string | null;
  approverGroups: string[];
  /** Eligible principals, or ["*"] for any verified reviewer. */
  eligible: string[];
  requiredApprovals: number;
  notify: { name: string; channel: Channel }[];
  expiresInSeconds: number;
  onExpire: "deny" | "expire";
}

const globCache = new Map<string, (s: string) => boolean>();
function glob(pattern: string): (s: string) => boolean {
  let m = globCache.get(pattern);
  if (!m) {
    m = picomatch(pattern, { dot: true, nocase: false });
    globCache.set(pattern, m);
  }
  return m;
}

const list = <T>(v: T | T[] | undefined): T[] | undefined => (v === undefined ? undefined : Array.isArray(v) ? v : [v]);

export function ruleMatches(rule: Rule, s: PolicySubject): boolean {
  const m = rule.match;
  if (!m) return true;
  const actions = list(m.action);
  if (actions && !actions.some((g) => glob(g)(s.action))) return false;
  const envs = list(m.environment);
  if (envs && !(s.environment && envs.includes(s.environment))) return false;
  const resources = list(m.resource);
  if (resources && !(s.resource && resources.some((g) => glob(g)(s.resource as string)))) return false;
  const risks = list(m.risk);
  if (risks && !(s.risk && risks.includes(s.risk))) return false;
  return true;
}

/** First matching rule wins; no match falls back to the policy's default effect. */
export function evaluatePolicy(policy: PolicyFile, s: PolicySubject, requestedExpiresIn?: number): PolicyDecision {
  const rule = policy.rules.find((r) => ruleMatches(r, s));
  if (!rule) {
    return {
      effect: policy.default,
      ruleId: null,
      approverGroups: [],
      eligible: [],
      requiredApprovals: 0,
      notify: [],
      expiresInSeconds: 0,
      onExpire: "expire",
    };
  }
  if (rule.effect !== "require_approval") {
    return {
      effect: rule.effect,
      ruleId: rule.id,
      approverGroups: [],
      eligible: [],
      requiredApprovals: 0,
      notify: [],
      expiresInSeconds: 0,
      onExpire: "expire",
    };
  }
  const approvers = rule.approvers ?? [];
  const eligible = approvers.includes("*")
    ? ["*"]
    : [...new Set(approvers.flatMap((a) => (Object.hasOwn(policy.groups, a) ? (policy.groups[a] as string[]) : [a])))].sort();
  const cap = rule.expiresIn !== undefined ? (parseDuration(rule.expiresIn) ?? DEFAULT_EXPIRES_IN_SECONDS) : DEFAULT_EXPIRES_IN_SECONDS;
  // The agent may ask for less time than the rule allows, never more.
  const expiresInSeconds = Math.min(requestedExpiresIn ?? cap, cap, MAX_EXPIRES_IN_SECONDS);
  return {
    effect: "require_approval",
    ruleId: rule.id,
    approverGroups: approvers,
    eligible,
    requiredApprovals: rule.approvals ?? DEFAULT_APPROVALS,
    notify: (rule.notify ?? []).flatMap((name) => {
      const channel = Object.hasOwn(policy.channels, name) ? policy.channels[name] : undefined;
      return channel ? [{ name, channel }] : [];
    }),
    expiresInSeconds,
    onExpire: rule.onExpire ?? "expire",
  };
}
