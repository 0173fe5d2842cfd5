import { posix } from "node:path";
import picomatch from "picomatch";
import { canonicalJson } from "../canonical.ts";
import { parseDuration } from "./duration.ts";
import type { Channel, Effect, ParamCondition, PolicyFile, Risk, Rule } from "./schema.ts";

export const DEFAULT_EXPIRES_IN_SECONDS = 3600;
export const MAX_EXPIRES_IN_SECONDS = 7 * 86400;
/** The quorum of a require_approval rule that does not set `approvals`. */
export const DEFAULT_APPROVALS = 1;

export interface PolicySubject {
  action: string;
  environment?: string | null | undefined;
  resource?: string | null | undefined;
  risk?: Risk | null | undefined;
  /** The request's params; rules with `match.params` look at its top-level keys. */
  params?: unknown;
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

/** Strings that name filesystem paths; only these are normalised (a URL or a command is matched as written). */
const PATH_LIKE = /^(?:\/|\.\.?\/|~\/)/;

/**
 * A glob is matched against the path a path-like string names: `.` and `..` segments and
 * repeated slashes are resolved first, so `/srv/docs/../secrets/key` is not "under"
 * `/srv/docs/**` and `/etc//passwd` is under `/etc/**`. (Relative paths, `~` and symbolic
 * links are the upstream's to resolve: write deny globs as `**\/secrets/**`.)
 */
function namedPath(s: string): string {
  return PATH_LIKE.test(s) ? posix.normalize(s) : s;
}

/**
 * A glob condition over an argument that holds a string or a list of strings. Where the
 * value is unclear, the stricter rule wins: a list matches a deny or require_approval rule
 * when any of its strings does, and an allow rule only when all of them do; a value that is
 * not a string at all matches deny and require_approval rules, never allow.
 */
function globMatches(globs: string[], value: unknown, effect: Effect): boolean {
  const strings = typeof value === "string" ? [value] : Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === "string") ? value : null;
  if (!strings) return effect !== "allow";
  const hit = (v: string) => globs.some((g) => glob(g)(namedPath(v)));
  return effect === "allow" ? strings.every(hit) : strings.some(hit);
}

function paramMatches(cond: ParamCondition, value: unknown, effect: Effect): boolean {
  if (value === undefined) return false;
  if (typeof cond === "string" || Array.isArray(cond)) return globMatches(list(cond) as string[], value, effect);
  if (cond !== null && typeof cond === "object") return canonicalJson(cond.equals) === canonicalJson(value);
  return cond === value;
}

function paramsMatch(conds: Record<string, ParamCondition>, params: unknown, effect: Effect): boolean {
  if (params === null || typeof params !== "object" || Array.isArray(params)) return false;
  const p = params as Record<string, unknown>;
  return Object.entries(conds).every(([key, cond]) => paramMatches(cond, Object.hasOwn(p, key) ? p[key] : undefined, effect));
}

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
  if (m.params && !paramsMatch(m.params, s.params, rule.effect)) return false;
  return true;
}

/**
 * What the policy can do with an action whatever its params: the effects of every rule
 * that may match it, up to the first that matches it unconditionally (or the default).
 * `tools/list` hides a tool whose only possible effect is deny.
 */
export function possibleEffects(policy: PolicyFile, s: Omit<PolicySubject, "params">): Set<Effect> {
  const effects = new Set<Effect>();
  for (const rule of policy.rules) {
    const withoutParams: Rule = rule.match?.params ? { ...rule, match: { ...rule.match, params: undefined } } : rule;
    if (!ruleMatches(withoutParams, s)) continue;
    effects.add(rule.effect);
    if (!rule.match?.params) return effects;
  }
  effects.add(policy.default);
  return effects;
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
