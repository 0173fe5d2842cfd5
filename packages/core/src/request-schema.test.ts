import { describe, expect, it } from "vitest";
import { CancelInput, CreateRequestInput, DecisionInput, jsonDepth, MAX_BODY_BYTES, MAX_PARAMS_DEPTH } from "./request-schema.ts";

const full = {
  action: "iam.role.attach",
  summary: "  Attach AdminAccess to deploy-bot  ",
  params: { role: "deploy-bot", policyArn: "arn:aws:iam::aws:policy/AdministratorAccess", nested: { list: [1, null, "x", true] } },
  resource: "arn:aws:iam::123456789012:role/deploy-bot",
  environment: "production",
  risk: "high",
  rationale: "Needed for the release pipeline",
  onBehalfOf: "Alice@Example.COM",
  callbackUrl: "https://hooks.example.com/countersign?x=1",
  expiresIn: 900,
  metadata: { ticket: "OPS-123", source: "ci" },
};

const minimal = { action: "s3.objects.read", summary: "read" };

/** Paths of the issues for `body`, asserting it is rejected. */
function rejectedPaths(body: unknown): string[] {
  const r = CreateRequestInput.safeParse(body);
  if (r.success) throw new Error(`expected rejection, got ${JSON.stringify(r.data)}`);
  return r.error.issues.map((i) => i.path.join("."));
}

describe("CreateRequestInput: accepted bodies", () => {
  it("accepts a full valid body, trimming summary and lowercasing onBehalfOf", () => {
    const r = CreateRequestInput.safeParse(full);
    expect(r.success).toBe(true);
    expect(r.data).toEqual({ ...full, summary: "Attach AdminAccess to deploy-bot", onBehalfOf: "alice@example.com" });
  });

  it("accepts a minimal body and defaults params to {}", () => {
    expect(CreateRequestInput.parse(minimal)).toEqual({ ...minimal, params: {} });
  });

  it.each(["a.b", "iam.role.attach", "S3.Objects.Read", "my-svc.do_thing.v2", "a1.b2.c3.d4"])("accepts action %j", (action) => {
    expect(CreateRequestInput.safeParse({ ...minimal, action }).success).toBe(true);
  });

  it.each(["http://localhost:8080/cb", "https://example.com"])("accepts callbackUrl %j", (callbackUrl) => {
    expect(CreateRequestInput.safeParse({ ...minimal, callbackUrl }).success).toBe(true);
  });

  it.each([10, 3600, 7 * 86400])("accepts expiresIn %d", (expiresIn) => {
    expect(CreateRequestInput.safeParse({ ...minimal, expiresIn }).success).toBe(true);
  });

  it.each(["low", "medium", "high", "critical"])("accepts risk %s", (risk) => {
    expect(CreateRequestInput.safeParse({ ...minimal, risk }).success).toBe(true);
  });
});

describe("CreateRequestInput: rejected bodies", () => {
  it("rejects unknown fields (including server-assigned ones)", () => {
    expect(rejectedPaths({ ...minimal, colour: "red" })).toEqual([""]);
    expect(rejectedPaths({ ...minimal, status: "approved" })).toEqual([""]);
    expect(rejectedPaths({ ...minimal, id: "req_01" })).toEqual([""]);
  });

  it("requires action and summary", () => {
    expect(rejectedPaths({ summary: "x" })).toEqual(["action"]);
    expect(rejectedPaths({ action: "a.b" })).toEqual(["summary"]);
  });

  it.each(["iam", "", ".iam.role", "iam.role.", "iam..role", "iam.role attach", "iam/role.attach", "iam.*", "iàm.role"])("rejects action %j", (action) => {
    expect(rejectedPaths({ ...minimal, action })).toEqual(["action"]);
  });

  it("rejects an action longer than 200 characters", () => {
    expect(rejectedPaths({ ...minimal, action: `a.${"b".repeat(199)}` })).toEqual(["action"]);
    expect(CreateRequestInput.safeParse({ ...minimal, action: `a.${"b".repeat(198)}` }).success).toBe(true);
  });

  it.each(["   ", "", "x".repeat(151)])("rejects summary %j", (summary) => {
    expect(rejectedPaths({ ...minimal, summary })).toEqual(["summary"]);
  });

  it.each(["severe", "HIGH", "", 3])("rejects risk %j", (risk) => {
    expect(rejectedPaths({ ...minimal, risk })).toEqual(["risk"]);
  });

  it.each(["alice", "alice@", "@example.com", "alice example@example.com", "alice@example"])("rejects onBehalfOf %j", (onBehalfOf) => {
    expect(rejectedPaths({ ...minimal, onBehalfOf })).toEqual(["onBehalfOf"]);
  });

  it.each(["ftp://example.com/cb", "javascript:alert(1)", "file:///etc/passwd", "example.com/cb", "not a url"])("rejects callbackUrl %j", (callbackUrl) => {
    expect(rejectedPaths({ ...minimal, callbackUrl })).toEqual(["callbackUrl"]);
  });

  it.each([9, 0, -1, 7 * 86400 + 1, 60.5, "60"])("rejects expiresIn %j", (expiresIn) => {
    expect(rejectedPaths({ ...minimal, expiresIn })).toEqual(["expiresIn"]);
  });

  it.each([[[]], [null], ["x"], [42], [[1, 2]]])("rejects params that are not an object: %j", (params) => {
    expect(rejectedPaths({ ...minimal, params })).toEqual(["params"]);
  });

  it("rejects params values that are not JSON", () => {
    expect(rejectedPaths({ ...minimal, params: { a: undefined } })[0]).toMatch(/^params/);
    expect(rejectedPaths({ ...minimal, params: { f: () => 1 } })[0]).toMatch(/^params/);
  });

  it.each([{ a: 1 }, { a: true }, { a: null }, { a: { b: "c" } }, { a: ["x"] }])("rejects metadata with a non-string value %j", (metadata) => {
    expect(rejectedPaths({ ...minimal, metadata })).toEqual(["metadata.a"]);
  });

  it("rejects metadata that is not an object", () => {
    expect(rejectedPaths({ ...minimal, metadata: ["a"] })).toEqual(["metadata"]);
  });

  it("limits metadata to 50 entries, keys to 100 and values to 500 characters", () => {
    const fifty = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, "v"]));
    expect(CreateRequestInput.safeParse({ ...minimal, metadata: fifty }).success).toBe(true);
    expect(rejectedPaths({ ...minimal, metadata: { ...fifty, k50: "v" } })).toEqual(["metadata"]);
    expect(rejectedPaths({ ...minimal, metadata: { ["k".repeat(101)]: "v" } })[0]).toMatch(/^metadata/);
    expect(rejectedPaths({ ...minimal, metadata: { k: "v".repeat(501) } })).toEqual(["metadata.k"]);
  });

  it("rejects empty or oversized resource / environment and an oversized rationale", () => {
    expect(rejectedPaths({ ...minimal, resource: "" })).toEqual(["resource"]);
    expect(rejectedPaths({ ...minimal, environment: "" })).toEqual(["environment"]);
    expect(rejectedPaths({ ...minimal, environment: "e".repeat(101) })).toEqual(["environment"]);
    expect(rejectedPaths({ ...minimal, rationale: "r".repeat(2001) })).toEqual(["rationale"]);
  });

  it("rejects a body that is not an object", () => {
    expect(CreateRequestInput.safeParse(null).success).toBe(false);
    expect(CreateRequestInput.safeParse([minimal]).success).toBe(false);
  });

  it("reports every bad field at once", () => {
    expect(rejectedPaths({ action: "bad", summary: "x", risk: "extreme", expiresIn: 1 }).sort()).toEqual(["action", "expiresIn", "risk"]);
  });

  it("MAX_BODY_BYTES is 64 KiB", () => {
    expect(MAX_BODY_BYTES).toBe(65536);
  });
});

describe("DecisionInput", () => {
  it("accepts approve/deny with an optional trimmed reason", () => {
    expect(DecisionInput.parse({ decision: "approve" })).toEqual({ decision: "approve" });
    expect(DecisionInput.parse({ decision: "deny", reason: "  too broad  " })).toEqual({ decision: "deny", reason: "too broad" });
  });

  it("rejects other decisions, unknown fields and long reasons", () => {
    expect(DecisionInput.safeParse({ decision: "abstain" }).success).toBe(false);
    expect(DecisionInput.safeParse({ decision: "Approve" }).success).toBe(false);
    expect(DecisionInput.safeParse({ decision: "approve", principal: "x@example.com" }).success).toBe(false);
    expect(DecisionInput.safeParse({ decision: "approve", reason: "r".repeat(2001) }).success).toBe(false);
    expect(DecisionInput.safeParse({}).success).toBe(false);
  });
});

describe("CancelInput", () => {
  it("accepts an empty body or a reason, rejects unknown fields", () => {
    expect(CancelInput.parse({})).toEqual({});
    expect(CancelInput.parse({ reason: " done " })).toEqual({ reason: "done" });
    expect(CancelInput.safeParse({ force: true }).success).toBe(false);
  });
});

describe("params nesting limit", () => {
  const nest = (depth: number) => {
    const root: Record<string, unknown> = {};
    let cur = root;
    for (let i = 1; i < depth; i++) {
      const next: Record<string, unknown> = {};
      cur.a = next;
      cur = next;
    }
    return root;
  };

  it("accepts params nested exactly MAX_PARAMS_DEPTH levels", () => {
    expect(jsonDepth(nest(MAX_PARAMS_DEPTH))).toBe(MAX_PARAMS_DEPTH);
    expect(CreateRequestInput.safeParse({ action: "a.b", summary: "s", params: nest(MAX_PARAMS_DEPTH) }).success).toBe(true);
  });

  it("refuses one level deeper, and hostile depth without exhausting the stack", () => {
    for (const depth of [MAX_PARAMS_DEPTH + 1, 100_000]) {
      const r = CreateRequestInput.safeParse({ action: "a.b", summary: "s", params: nest(depth) });
      expect(r.success).toBe(false);
      expect(r.error?.issues[0]?.path).toEqual(["params"]);
    }
  });
});
