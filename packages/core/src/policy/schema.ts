import { z } from "zod";
import { RISKS } from "../constants.ts";
import { parsePrincipal } from "../principal.ts";
import { parseDuration } from "./duration.ts";
import { DEFAULT_APPROVALS } from "./evaluate.ts";
import { approverPeople, describeApprovers, distinctApprovers, listPeople } from "./lint.ts";
import { McpSection } from "./mcp.ts";

export { RISKS };
export const Risk = z.enum(RISKS);
export type Risk = z.infer<typeof Risk>;

const oneOrMany = <T extends z.ZodType>(t: T) => z.union([t, z.array(t).min(1)]);
const Glob = z.string().min(1);
const Duration = z.union([z.string(), z.number()]).refine((v) => parseDuration(v) !== undefined, {
  message: 'expected a duration such as "90s", "15m", "2h" or "1d"',
});

export const SlackDestination = z.strictObject({ channel: z.string().regex(/^[CGD][A-Z0-9]{2,}$/, "expected a Slack channel id such as C0123456789") });
export const TeamsDestination = z.strictObject({
  channel: z.string().regex(/^19:.+@thread\.(tacv2|skype)$/, 'expected a Teams channel id such as "19:abc@thread.tacv2"'),
  team: z.string().min(1).optional(),
});
export const Channel = z
  .strictObject({ slack: SlackDestination.optional(), teams: TeamsDestination.optional() })
  .refine((c) => c.slack || c.teams, { message: "a channel needs a slack or a teams destination" });
export type Channel = z.infer<typeof Channel>;

/**
 * A condition on one argument (a top-level key of `params`): a glob or a list of globs
 * for a string, a literal for a number, boolean or null, or `{ equals: value }` for any
 * JSON value, compared canonically.
 */
export const ParamCondition = z.union([oneOrMany(Glob), z.number(), z.boolean(), z.null(), z.strictObject({ equals: z.json() })]);
export type ParamCondition = z.infer<typeof ParamCondition>;

export const RuleMatch = z.strictObject({
  action: oneOrMany(Glob).optional(),
  params: z
    .record(z.string().min(1), ParamCondition)
    .refine((p) => Object.keys(p).length > 0, "name at least one argument")
    .optional(),
  environment: oneOrMany(z.string().min(1)).optional(),
  resource: oneOrMany(Glob).optional(),
  risk: oneOrMany(Risk).optional(),
});
export type RuleMatch = z.infer<typeof RuleMatch>;

const Approvals = z.number().int().min(1).max(10);

export const Effect = z.enum(["allow", "deny", "require_approval"]);
export type Effect = z.infer<typeof Effect>;

export const Rule = z
  .strictObject({
    id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "rule ids use letters, digits, '.', '_' and '-'"),
    description: z.string().optional(),
    match: RuleMatch.optional(),
    effect: Effect,
    approvers: z.array(z.string().min(1)).min(1).optional(),
    approvals: Approvals.optional(),
    notify: z.array(z.string().min(1)).optional(),
    expiresIn: Duration.optional(),
    onExpire: z.enum(["deny", "expire"]).optional(),
  })
  .superRefine((r, ctx) => {
    if (r.effect === "require_approval" && !r.approvers) {
      ctx.addIssue({ code: "custom", path: ["approvers"], message: 'require_approval needs approvers (group names, emails, or "*")' });
    }
    if (r.effect !== "require_approval") {
      for (const k of ["approvers", "approvals", "notify", "expiresIn", "onExpire"] as const) {
        if (r[k] !== undefined) ctx.addIssue({ code: "custom", path: [k], message: `${k} only applies to effect require_approval` });
      }
    }
  });
export type Rule = z.infer<typeof Rule>;

export const PolicyFile = z
  .strictObject({
    version: z.literal(1),
    groups: z.record(z.string().regex(/^[A-Za-z0-9._-]+$/, "group names use letters, digits, '.', '_' and '-'"), z.array(z.string()).min(1)).default({}),
    channels: z.record(z.string().min(1), Channel).default({}),
    rules: z.array(Rule).default([]),
    default: z.enum(["allow", "deny"]).default("deny"),
    mcp: McpSection.optional(),
  })
  .superRefine((p, ctx) => {
    for (const [name, members] of Object.entries(p.groups)) {
      members.forEach((m, i) => {
        const r = parsePrincipal(m);
        if (!r.ok) ctx.addIssue({ code: "custom", path: ["groups", name, i], message: r.message });
      });
    }
    const seen = new Set<string>();
    p.rules.forEach((r, i) => {
      if (seen.has(r.id)) ctx.addIssue({ code: "custom", path: ["rules", i, "id"], message: `duplicate rule id "${r.id}"` });
      seen.add(r.id);
      r.approvers?.forEach((a, j) => {
        if (a === "*" || Object.hasOwn(p.groups, a)) return;
        const r = parsePrincipal(a);
        if (!r.ok) {
          const message = a.includes("@") ? r.message : `"${a}" is neither a group nor an email address`;
          ctx.addIssue({ code: "custom", path: ["rules", i, "approvers", j], message });
        }
      });
      r.notify?.forEach((c, j) => {
        if (!Object.hasOwn(p.channels, c)) ctx.addIssue({ code: "custom", path: ["rules", i, "notify", j], message: `unknown channel "${c}"` });
      });
      // A quorum larger than the people who may approve can never be reached. (Not checked
      // while approvers or approvals are themselves invalid: those are reported already.)
      const needed = r.approvals ?? DEFAULT_APPROVALS;
      if (r.effect === "require_approval" && r.approvers && r.approvers.length > 0 && Approvals.safeParse(needed).success) {
        const people = approverPeople(r.approvers, p.groups);
        if (people && needed > people.length) {
          ctx.addIssue({
            code: "custom",
            path: ["rules", i, r.approvals === undefined ? "approvers" : "approvals"],
            message: `needs ${distinctApprovers(needed)} but its approvers (${describeApprovers(r.approvers, p.groups)}) list only ${listPeople(people)}`,
          });
        }
      }
    });
  });
export type PolicyFile = z.infer<typeof PolicyFile>;
