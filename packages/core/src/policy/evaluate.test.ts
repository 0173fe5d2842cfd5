import { describe, expect, it } from "vitest";
import { evaluateVote } from "../decision.ts";
import { BUILTIN_POLICY } from "./builtin.ts";
import { parseDuration } from "./duration.ts";
import { DEFAULT_EXPIRES_IN_SECONDS, evaluatePolicy, MAX_EXPIRES_IN_SECONDS, type PolicySubject, ruleMatches } from "./evaluate.ts";
import { parsePolicy } from "./load.ts";
import { PolicyFile, type Rule } from "./schema.ts";

const EXAMPLE_POLICY = `version: 1
groups:
  sre: [alice@example.com, bob@example.com]
  security: [carol@example.com, Dan@Example.com]
channels:
  ops: { slack: { channel: C0123456789 } }
  sec: { teams: { channel: "19:abc@thread.tacv2" } }
rules:
  - id: reads
    match: { action: ["*.read", "*.list"] }
    effect: allow
  - id: prod-iam
    match: { action: "iam.*", environment: production }
    effect: require_approval
    approvers: [security]
    approvals: 2
    notify: [ops, sec]
    expiresIn: 15m
  - id: everything-else
    effect: require_approval
    approvers: [sre]
default: deny
`;

const example = parsePolicy(EXAMPLE_POLICY);

const rule = (match: Rule["match"]): Rule => ({ id: "r", effect: "allow", ...(match ? { match } : {}) });

describe("evaluatePolicy on the example policy", () => {
  it.each([
    ["s3.objects.read", undefined],
    ["ec2.instances.list", undefined],
    ["iam.policies.read", "production"],
  ])("%s (env %s) is allowed by `reads`", (action, environment) => {
    const d = evaluatePolicy(example, { action, environment });
    expect(d.effect).toBe("allow");
    expect(d.ruleId).toBe("reads");
    expect(d).toMatchObject({ approverGroups: [], eligible: [], requiredApprovals: 0, notify: [] });
  });

  it("first match wins: an IAM read in production is allowed by `reads`, not sent to `prod-iam`", () => {
    const subject = { action: "iam.roles.read", environment: "production" };
    // prod-iam would also match this subject on its own:
    expect(ruleMatches(example.rules[1]!, subject)).toBe(true);
    expect(evaluatePolicy(example, subject).ruleId).toBe("reads");
  });

  it("iam.* in production needs 2 approvals from security, notifies ops and sec, expires in 15 minutes", () => {
    const d = evaluatePolicy(example, { action: "iam.role.attach", environment: "production" });
    expect(d).toEqual({
      effect: "require_approval",
      ruleId: "prod-iam",
      approverGroups: ["security"],
      eligible: ["carol@example.com", "dan@example.com"],
      requiredApprovals: 2,
      notify: [
        { name: "ops", channel: { slack: { channel: "C0123456789" } } },
        { name: "sec", channel: { teams: { channel: "19:abc@thread.tacv2" } } },
      ],
      expiresInSeconds: 15 * 60,
      onExpire: "expire",
    });
  });

  it("iam.* outside production falls through to everything-else (1 approval from sre, 1h)", () => {
    const d = evaluatePolicy(example, { action: "iam.role.attach", environment: "staging" });
    expect(d).toMatchObject({
      effect: "require_approval",
      ruleId: "everything-else",
      approverGroups: ["sre"],
      eligible: ["alice@example.com", "bob@example.com"],
      requiredApprovals: 1,
      notify: [],
      expiresInSeconds: 3600,
      onExpire: "expire",
    });
  });

  it.each([undefined, null, ""])("a rule requiring an environment does not match a request without one (%j)", (environment) => {
    expect(evaluatePolicy(example, { action: "iam.role.attach", environment }).ruleId).toBe("everything-else");
  });

  it("environment matching is exact (no prefix, no case folding)", () => {
    expect(evaluatePolicy(example, { action: "iam.role.attach", environment: "Production" }).ruleId).toBe("everything-else");
    expect(evaluatePolicy(example, { action: "iam.role.attach", environment: "production-eu" }).ruleId).toBe("everything-else");
  });

  describe("expiresIn capping", () => {
    const prod = { action: "iam.role.attach", environment: "production" };
    it("a request asking for more than the rule allows is capped", () => {
      expect(evaluatePolicy(example, prod, 3600).expiresInSeconds).toBe(900);
    });
    it("a request asking for less is honoured", () => {
      expect(evaluatePolicy(example, prod, 60).expiresInSeconds).toBe(60);
    });
    it("asking for exactly the cap gives the cap", () => {
      expect(evaluatePolicy(example, prod, 900).expiresInSeconds).toBe(900);
    });
    it("a rule without expiresIn uses the 3600s default as its cap", () => {
      expect(DEFAULT_EXPIRES_IN_SECONDS).toBe(3600);
      expect(evaluatePolicy(example, { action: "x.write" }).expiresInSeconds).toBe(3600);
      expect(evaluatePolicy(example, { action: "x.write" }, 7200).expiresInSeconds).toBe(3600);
      expect(evaluatePolicy(example, { action: "x.write" }, 600).expiresInSeconds).toBe(600);
    });
    it("a rule expiresIn longer than 7 days is capped at 7 days", () => {
      expect(MAX_EXPIRES_IN_SECONDS).toBe(7 * 86400);
      const p = parsePolicy("version: 1\nrules:\n  - id: r\n    effect: require_approval\n    approvers: ['*']\n    expiresIn: 30d\n");
      expect(evaluatePolicy(p, { action: "a.b" }).expiresInSeconds).toBe(7 * 86400);
      expect(evaluatePolicy(p, { action: "a.b" }, 10 * 86400).expiresInSeconds).toBe(7 * 86400);
      expect(evaluatePolicy(p, { action: "a.b" }, 2 * 86400).expiresInSeconds).toBe(2 * 86400);
    });
    it("numeric rule expiresIn is seconds", () => {
      const p = parsePolicy("version: 1\nrules:\n  - id: r\n    effect: require_approval\n    approvers: ['*']\n    expiresIn: 120\n");
      expect(evaluatePolicy(p, { action: "a.b" }).expiresInSeconds).toBe(120);
      expect(evaluatePolicy(p, { action: "a.b" }, 300).expiresInSeconds).toBe(120);
    });
  });
});

describe("evaluatePolicy: defaults when no rule matches", () => {
  const policyWith = (def: "allow" | "deny") =>
    parsePolicy(`version: 1\nrules:\n  - id: only-s3\n    match: { action: "s3.*" }\n    effect: require_approval\n    approvers: ['*']\ndefault: ${def}\n`);

  it.each(["allow", "deny"] as const)("default %s applies with ruleId null", (def) => {
    const d = evaluatePolicy(policyWith(def), { action: "ec2.instance.stop" });
    expect(d).toEqual({
      effect: def,
      ruleId: null,
      approverGroups: [],
      eligible: [],
      requiredApprovals: 0,
      notify: [],
      expiresInSeconds: 0,
      onExpire: "expire",
    });
  });

  it("the rule still applies when it matches", () => {
    expect(evaluatePolicy(policyWith("allow"), { action: "s3.bucket.delete" }).effect).toBe("require_approval");
  });

  it("a policy with no rules and no default denies everything", () => {
    const d = evaluatePolicy(parsePolicy("version: 1\n"), { action: "anything.at.all" });
    expect(d.effect).toBe("deny");
    expect(d.ruleId).toBeNull();
  });

  it("the example policy denies nothing by default because its last rule has no match", () => {
    expect(evaluatePolicy(example, { action: "weird.thing" }).ruleId).toBe("everything-else");
  });

  it("a matching deny rule wins over default allow", () => {
    const p = parsePolicy("version: 1\nrules:\n  - id: no-drop\n    match: { action: '*.drop' }\n    effect: deny\ndefault: allow\n");
    expect(evaluatePolicy(p, { action: "db.table.drop" })).toMatchObject({ effect: "deny", ruleId: "no-drop" });
    expect(evaluatePolicy(p, { action: "db.table.create" })).toMatchObject({ effect: "allow", ruleId: null });
  });
});

describe("ruleMatches: glob semantics for action", () => {
  it.each([
    ["*.read", "s3.objects.read", true],
    ["*.read", "s3.read", true],
    ["*.read", "s3.objects.reader", false],
    ["*.read", "s3.objects.read.all", false],
    ["iam.*", "iam.role.attach", true],
    ["iam.*", "iam.user", true],
    ["iam.*", "iam", false],
    ["iam.*", "iamx.role", false],
    ["iam.*", "aws.iam.role", false],
    ["s3.*.read", "s3.objects.read", true],
    ["iam.{role,user}.*", "iam.user.create", true],
    ["iam.{role,user}.*", "iam.group.create", false],
    ["IAM.*", "iam.role", false],
    ["s3.objects.read", "s3.objects.read", true],
    ["s3.objects.read", "s3.objects.reads", false],
  ])("%s vs %s -> %s", (pattern, action, expected) => {
    expect(ruleMatches(rule({ action: pattern }), { action })).toBe(expected);
  });

  it("a list of globs matches if any matches", () => {
    const r = rule({ action: ["*.read", "*.list"] });
    expect(ruleMatches(r, { action: "s3.objects.list" })).toBe(true);
    expect(ruleMatches(r, { action: "s3.objects.read" })).toBe(true);
    expect(ruleMatches(r, { action: "s3.objects.write" })).toBe(false);
  });

  it("a rule without match matches everything", () => {
    expect(ruleMatches(rule(undefined), { action: "a.b" })).toBe(true);
    expect(ruleMatches(rule({}), { action: "a.b", environment: "prod", risk: "critical" })).toBe(true);
  });
});

describe("ruleMatches: environment, resource and risk", () => {
  it("environment: single value or list, exact", () => {
    expect(ruleMatches(rule({ environment: ["staging", "production"] }), { action: "a.b", environment: "staging" })).toBe(true);
    expect(ruleMatches(rule({ environment: ["staging", "production"] }), { action: "a.b", environment: "dev" })).toBe(false);
    expect(ruleMatches(rule({ environment: "prod" }), { action: "a.b", environment: "prod" })).toBe(true);
  });

  it("resource: globs; a rule requiring a resource does not match a request without one", () => {
    const r = rule({ resource: ["arn:aws:s3:::prod-*", "db/**"] });
    expect(ruleMatches(r, { action: "a.b", resource: "arn:aws:s3:::prod-logs" })).toBe(true);
    expect(ruleMatches(r, { action: "a.b", resource: "arn:aws:s3:::dev-logs" })).toBe(false);
    expect(ruleMatches(r, { action: "a.b", resource: "db/main/users" })).toBe(true);
    expect(ruleMatches(r, { action: "a.b" })).toBe(false);
    expect(ruleMatches(r, { action: "a.b", resource: null })).toBe(false);
  });

  it("resource: * also matches names starting with a dot (picomatch dot: true)", () => {
    expect(ruleMatches(rule({ resource: "config/*" }), { action: "a.b", resource: "config/.env" })).toBe(true);
    expect(ruleMatches(rule({ resource: "**" }), { action: "a.b", resource: ".git/config" })).toBe(true);
  });

  it("resource: a single * does not cross a '/'", () => {
    expect(ruleMatches(rule({ resource: "db/*" }), { action: "a.b", resource: "db/main" })).toBe(true);
    expect(ruleMatches(rule({ resource: "db/*" }), { action: "a.b", resource: "db/main/users" })).toBe(false);
  });

  it("risk: list membership; missing risk does not match", () => {
    const r = rule({ risk: ["high", "critical"] });
    expect(ruleMatches(r, { action: "a.b", risk: "critical" })).toBe(true);
    expect(ruleMatches(r, { action: "a.b", risk: "medium" })).toBe(false);
    expect(ruleMatches(r, { action: "a.b" })).toBe(false);
    expect(ruleMatches(rule({ risk: "low" }), { action: "a.b", risk: "low" })).toBe(true);
  });

  it("all match fields must hold together", () => {
    const r = rule({ action: "db.*", environment: "production", resource: "db/*", risk: "high" });
    const full: PolicySubject = { action: "db.table.drop", environment: "production", resource: "db/users", risk: "high" };
    expect(ruleMatches(r, full)).toBe(true);
    expect(ruleMatches(r, { ...full, action: "s3.bucket.drop" })).toBe(false);
    expect(ruleMatches(r, { ...full, environment: "staging" })).toBe(false);
    expect(ruleMatches(r, { ...full, resource: "cache/users" })).toBe(false);
    expect(ruleMatches(r, { ...full, risk: "low" })).toBe(false);
    expect(ruleMatches(r, { ...full, risk: undefined })).toBe(false);
  });

  it("risk and resource rules route requests through a parsed policy", () => {
    const p = parsePolicy(
      [
        "version: 1",
        "rules:",
        "  - id: critical",
        "    match: { risk: critical }",
        "    effect: deny",
        "  - id: prod-db",
        "    match: { resource: 'db/prod/**' }",
        "    effect: require_approval",
        "    approvers: [dba@example.com]",
        "default: allow",
        "",
      ].join("\n"),
    );
    expect(evaluatePolicy(p, { action: "db.x", resource: "db/prod/users", risk: "critical" }).ruleId).toBe("critical");
    expect(evaluatePolicy(p, { action: "db.x", resource: "db/prod/users", risk: "high" }).ruleId).toBe("prod-db");
    expect(evaluatePolicy(p, { action: "db.x", resource: "db/dev/users" }).ruleId).toBeNull();
  });
});

describe("evaluatePolicy: approvers", () => {
  const policy = parsePolicy(
    [
      "version: 1",
      "groups:",
      "  sre: [bob@example.com, alice@example.com]",
      "  oncall: [Alice@Example.com, zed@example.com]",
      "rules:",
      "  - id: mixed",
      "    match: { action: 'mixed.*' }",
      "    effect: require_approval",
      "    approvers: [sre, Erin@Example.com, oncall, bob@example.com]",
      "  - id: anyone",
      "    match: { action: 'any.*' }",
      "    effect: require_approval",
      "    approvers: [sre, '*']",
      "    onExpire: deny",
      "",
    ].join("\n"),
  );

  it("expands groups, adds direct (lowercased) emails, dedupes and sorts", () => {
    const d = evaluatePolicy(policy, { action: "mixed.op" });
    expect(d.eligible).toEqual(["alice@example.com", "bob@example.com", "erin@example.com", "zed@example.com"]);
    expect(d.approverGroups).toEqual(["sre", "erin@example.com", "oncall", "bob@example.com"]);
  });

  it('"*" among approvers makes eligibility ["*"]', () => {
    const d = evaluatePolicy(policy, { action: "any.op" });
    expect(d.eligible).toEqual(["*"]);
    expect(d.approverGroups).toEqual(["sre", "*"]);
  });

  it("requiredApprovals defaults to 1 and onExpire defaults to expire", () => {
    expect(evaluatePolicy(policy, { action: "mixed.op" })).toMatchObject({ requiredApprovals: 1, onExpire: "expire" });
  });

  it("onExpire: deny is carried through", () => {
    expect(evaluatePolicy(policy, { action: "any.op" }).onExpire).toBe("deny");
  });
});

describe("BUILTIN_POLICY", () => {
  it("is a valid policy file", () => {
    expect(PolicyFile.safeParse(BUILTIN_POLICY).success).toBe(true);
  });

  it.each([{ action: "s3.objects.read" }, { action: "iam.role.attach", environment: "production", risk: "critical" as const, resource: "x" }])(
    "requires one approval from any reviewer for %j",
    (subject) => {
      expect(evaluatePolicy(BUILTIN_POLICY, subject)).toEqual({
        effect: "require_approval",
        ruleId: "builtin-any-reviewer",
        approverGroups: ["*"],
        eligible: ["*"],
        requiredApprovals: 1,
        notify: [],
        expiresInSeconds: 3600,
        onExpire: "expire",
      });
    },
  );

  it("caps requested expiry at 1h and honours shorter", () => {
    expect(evaluatePolicy(BUILTIN_POLICY, { action: "a.b" }, 86400).expiresInSeconds).toBe(3600);
    expect(evaluatePolicy(BUILTIN_POLICY, { action: "a.b" }, 300).expiresInSeconds).toBe(300);
  });

  it("still forbids the agent owner and onBehalfOf from approving, while anyone else can", () => {
    const d = evaluatePolicy(BUILTIN_POLICY, { action: "a.b" });
    const req = {
      status: "pending" as const,
      expiresAt: new Date("2030-01-01T00:00:00Z"),
      agentOwner: "owner@example.com",
      onBehalfOf: "user@example.com",
      eligible: d.eligible,
      requiredApprovals: d.requiredApprovals,
    };
    const now = new Date("2029-01-01T00:00:00Z");
    expect(evaluateVote(req, [], "owner@example.com", "approve", now)).toMatchObject({ ok: false, code: "self_approval_forbidden" });
    expect(evaluateVote(req, [], "user@example.com", "approve", now)).toMatchObject({ ok: false, code: "self_approval_forbidden" });
    expect(evaluateVote(req, [], "someone@example.com", "approve", now)).toMatchObject({ ok: true, status: "approved" });
  });
});

describe("end to end: example policy + decision rules", () => {
  it("prod IAM needs two distinct security approvers; Dan may approve as dan@example.com", () => {
    const d = evaluatePolicy(example, { action: "iam.role.attach", environment: "production" });
    const req = {
      status: "pending" as const,
      expiresAt: new Date(Date.UTC(2030, 0, 1)),
      agentOwner: "alice@example.com",
      onBehalfOf: null,
      eligible: d.eligible,
      requiredApprovals: d.requiredApprovals,
    };
    const now = new Date(Date.UTC(2029, 0, 1));
    expect(evaluateVote(req, [], "bob@example.com", "approve", now)).toMatchObject({ ok: false, code: "not_an_approver" });
    const first = evaluateVote(req, [], "dan@example.com", "approve", now);
    expect(first).toEqual({ ok: true, status: "pending", approvals: 1, resolution: null });
    const second = evaluateVote(req, [{ principal: "dan@example.com", decision: "approve" }], "carol@example.com", "approve", now);
    expect(second).toEqual({ ok: true, status: "approved", approvals: 2, resolution: "quorum" });
  });
});

describe("parseDuration", () => {
  it.each([
    ["90s", 90],
    ["15m", 900],
    ["2h", 7200],
    ["1d", 86400],
    [" 15m ", 900],
    ["15 m", 900],
    [120, 120],
    [1, 1],
  ] as const)("%j -> %d seconds", (input, seconds) => {
    expect(parseDuration(input)).toBe(seconds);
  });

  it.each(["", "15", "m", "0s", "0m", "-5m", "1.5h", "15min", "1w", "15M", "1h30m", 0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])(
    "%j is not a duration",
    (input) => {
      expect(parseDuration(input)).toBeUndefined();
    },
  );
});
