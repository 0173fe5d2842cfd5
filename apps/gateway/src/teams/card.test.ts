import type { RequestResource } from "@countersign/services";
import { describe, expect, it } from "vitest";
import { checkAdaptiveCard } from "./adaptive-card-check.ts";
import { type AdaptiveCard, CARD_VERSION, type CardNotice, cardBytes, MAX_CARD_BYTES, renderCard, renderNoticeCard, truncate } from "./card.ts";

const TEAMS_LIMIT = 28 * 1024;

function request(over: Partial<RequestResource> = {}): RequestResource {
  const id = "req_01JD6Q8W9X0Y1Z2A3B4C5D6E7F";
  return {
    object: "approval_request",
    id,
    status: "pending",
    resolution: null,
    action: "db.export",
    summary: "Export the customers table",
    params: { table: "customers", format: "csv" },
    paramsSha256: "a".repeat(64),
    resource: "postgres://prod/customers",
    environment: "production",
    risk: "high",
    rationale: "Quarterly audit asked for it",
    onBehalfOf: "dana@example.com",
    callbackUrl: null,
    metadata: null,
    agent: { keyId: "key_1", name: "deploy-bot", owner: "ops-lead@example.com" },
    policy: { ruleId: "prod-data", effect: "require_approval", approverGroups: ["sre"], requiredApprovals: 2, onExpire: "expire" },
    approvals: { required: 2, received: 0 },
    decisions: [],
    receipt: null,
    expiresAt: "2026-11-21T17:00:00.000Z",
    createdAt: "2026-11-21T16:45:00.000Z",
    updatedAt: "2026-11-21T16:45:00.000Z",
    decidedAt: null,
    deliveries: [],
    links: { self: `/v1/requests/${id}`, wait: "", decisions: "", cancel: "" },
    ...over,
  };
}

const decision = (reviewer: string, d: "approve" | "deny", reason: string | null = null, surface = "teams") => ({
  reviewer,
  decision: d,
  reason,
  surface,
  decidedAt: "2026-11-21T16:50:00.000Z",
});

/** Every string a reader sees, with the element type that carries it. */
function texts(card: unknown): { type: string; text: string }[] {
  const out: { type: string; text: string }[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) return v.forEach(walk);
    if (!v || typeof v !== "object") return;
    const o = v as Record<string, unknown>;
    if ((o.type === "TextBlock" || o.type === "TextRun") && typeof o.text === "string") out.push({ type: o.type, text: o.text });
    Object.values(o).forEach(walk);
  };
  walk(card);
  return out;
}
const allText = (card: unknown) =>
  texts(card)
    .map((t) => t.text)
    .join("\n");

const NOTICES: CardNotice[] = [
  { tone: "good", text: "You approved this request." },
  { tone: "warning", text: "A reason is required to deny." },
  { tone: "attention", text: "Self-approval is forbidden: you own the agent key that made this request." },
  { tone: "accent", text: "FYI" },
];

const VARIANTS: [string, RequestResource][] = [
  ["pending", request()],
  [
    "pending, minimal",
    request({ environment: null, resource: null, risk: null, rationale: null, onBehalfOf: null, params: {}, policy: { ...request().policy, ruleId: null } }),
  ],
  ["pending, quorum in progress", request({ approvals: { required: 2, received: 1 }, decisions: [decision("alice@example.com", "approve", "ok")] })],
  [
    "approved",
    request({
      status: "approved",
      resolution: "quorum",
      decidedAt: "2026-11-21T16:51:00.000Z",
      approvals: { required: 2, received: 2 },
      decisions: [decision("alice@example.com", "approve"), decision("bob@example.com", "approve", "fine", "slack")],
    }),
  ],
  [
    "denied",
    request({
      status: "denied",
      resolution: "denied",
      decidedAt: "2026-11-21T16:51:00.000Z",
      decisions: [decision("carol@example.com", "deny", "not during the freeze")],
    }),
  ],
  ["denied on expiry", request({ status: "denied", resolution: "timeout", decidedAt: "2026-11-21T17:00:00.000Z" })],
  ["expired", request({ status: "expired", resolution: "timeout", decidedAt: "2026-11-21T17:00:00.000Z" })],
  ["cancelled", request({ status: "cancelled", resolution: "cancelled", decidedAt: "2026-11-21T16:55:00.000Z" })],
];

describe("Teams approval card", () => {
  for (const [name, r] of VARIANTS) {
    for (const notice of [undefined, ...NOTICES]) {
      it(`${name}${notice ? ` with a ${notice.tone} notice` : ""}: valid Adaptive Card ${CARD_VERSION}, no unknown elements or properties, under 28 KB`, () => {
        const card = renderCard(r, notice ? { notice } : {});
        expect(card.version).toBe("1.5");
        expect(checkAdaptiveCard(card, { targetVersion: "1.5" })).toEqual([]);
        expect(cardBytes(card)).toBeLessThan(TEAMS_LIMIT);
        if (notice) expect(allText(card)).toContain(notice.text);
      });
    }
  }

  it("a bare notice card is valid too", () => {
    for (const n of NOTICES) expect(checkAdaptiveCard(renderNoticeCard(n), { targetVersion: "1.5" })).toEqual([]);
  });

  it("the checker itself catches unknown elements and properties", () => {
    const card = renderCard(request()) as AdaptiveCard;
    const broken = { ...card, body: [...card.body, { type: "TextBlock", text: "x", colour: "red" }, { type: "Input.Txt", id: "q" }] };
    const problems = checkAdaptiveCard(broken);
    expect(problems.some((p) => p.includes("unknown-property") && p.endsWith(".colour"))).toBe(true);
    expect(problems.some((p) => p.includes("Input.Txt"))).toBe(true);
  });

  it("shows what the Slack card shows: summary, action, environment, resource, risk, agent, on-behalf-of, rationale, params, rule, expiry, quorum", () => {
    const r = request({ approvals: { required: 2, received: 1 }, decisions: [decision("alice@example.com", "approve", "ok")] });
    const t = allText(renderCard(r));
    for (const s of [
      "Approval needed",
      "Export the customers table",
      "db.export",
      "production",
      "postgres://prod/customers",
      "HIGH",
      "deploy-bot",
      "ops-lead@example.com",
      "dana@example.com",
      "Quarterly audit asked for it",
      '"table": "customers"',
      "prod-data",
      "{{DATE(2026-11-21T17:00:00Z, SHORT)}} {{TIME(2026-11-21T17:00:00Z)}}",
      "1 of 2 received",
      "alice@example.com",
      r.id,
    ]) {
      expect(t).toContain(s);
    }
  });

  it("a pending card has Approve and Deny (Action.Execute) and a reason input; a closed one has neither", () => {
    const pending = renderCard(request());
    expect(pending.actions).toEqual([
      { type: "Action.Execute", title: "Approve", verb: "approve", style: "positive", data: { requestId: request().id } },
      { type: "Action.Execute", title: "Deny", verb: "deny", style: "destructive", data: { requestId: request().id } },
    ]);
    expect(pending.body.filter((e) => e.type === "Input.Text").map((e) => e.id)).toEqual(["reason"]);
    for (const [name, r] of VARIANTS.filter(([, v]) => v.status !== "pending")) {
      const card = renderCard(r);
      expect([name, card.actions]).toEqual([name, undefined]);
      expect(JSON.stringify(card)).not.toContain("Input.Text");
    }
  });

  it("says how each request ended", () => {
    const outcome = (name: string) => allText(renderCard(VARIANTS.find(([n]) => n === name)?.[1] as RequestResource));
    expect(outcome("approved")).toContain("Approved by alice@example.com, bob@example.com.");
    expect(outcome("approved")).toMatch(/bob@example\.com\n approved via Slack/);
    expect(outcome("denied")).toContain("Denied by carol@example.com.");
    expect(outcome("denied")).toContain(": not during the freeze");
    expect(outcome("denied on expiry")).toContain("Denied: nobody decided before the request expired.");
    expect(outcome("expired")).toContain("Expired: nobody decided in time. Nothing was approved.");
    expect(outcome("cancelled")).toContain("Cancelled by the requester.");
  });

  it("never puts requester-controlled text where Teams renders markdown", () => {
    const evil = "[click me](https://evil.example) **urgent**";
    const r = request({
      summary: evil,
      rationale: evil,
      resource: evil,
      environment: evil,
      params: { note: evil },
      agent: { keyId: "k", name: evil, owner: "o@example.com" },
      decisions: [decision("alice@example.com", "approve", evil)],
      approvals: { required: 2, received: 1 },
    });
    const withEvil = texts(renderCard(r)).filter((t) => t.text.includes("evil.example"));
    expect(withEvil.length).toBeGreaterThanOrEqual(6);
    expect(withEvil.every((t) => t.type === "TextRun")).toBe(true);
  });

  it("truncates long params with a note that names the full params' hash", () => {
    const params = { rows: Array.from({ length: 400 }, (_, i) => ({ id: i, email: `user${i}@example.com` })) };
    const full = JSON.stringify(params, null, 2);
    const card = renderCard(request({ params }));
    const t = allText(card);
    expect(t).toMatch(/Parameters truncated: showing [\d,]+ of [\d,]+ characters\./);
    expect(t).toContain(full.length.toLocaleString("en-US"));
    expect(t).toContain(`sha256 is ${"a".repeat(64)}`);
    expect(t).not.toContain(full);
    expect(checkAdaptiveCard(card, { targetVersion: "1.5" })).toEqual([]);
  });

  it("stays under the size limit whatever the request holds (multi-byte text, every field at its maximum)", () => {
    // Sliced by code point, so the input itself is well formed.
    const wide = "界🔐".repeat(1000);
    const cut = (s: string, n: number) => Array.from(s).slice(0, n).join("");
    const r = request({
      summary: "🔐".repeat(75),
      action: `a.${"b".repeat(198)}`,
      resource: cut(wide, 500),
      environment: cut(wide, 100),
      rationale: cut(wide, 2000),
      agent: { keyId: "k", name: cut(wide, 200), owner: `${"o".repeat(300)}@example.com` },
      onBehalfOf: `${"p".repeat(300)}@example.com`,
      params: { blob: wide, nested: { more: wide } },
      approvals: { required: 10, received: 9 },
      decisions: Array.from({ length: 9 }, (_, i) => decision(`${"r".repeat(300)}${i}@example.com`, "approve", cut(wide, 2000))),
    });
    const card = renderCard(r, { notice: { tone: "attention", text: wide } });
    expect(cardBytes(card)).toBeLessThanOrEqual(MAX_CARD_BYTES);
    expect(checkAdaptiveCard(card, { targetVersion: "1.5" })).toEqual([]);
    // JSON round trip: truncation never splits a surrogate pair.
    expect(JSON.stringify(card)).not.toMatch(/\\ud[89ab][0-9a-f]{2}(?!\\udc)/i);
  });

  it("rendering is deterministic, so a job can tell a stale card from a current one", () => {
    expect(JSON.stringify(renderCard(request()))).toBe(JSON.stringify(renderCard(request())));
  });

  it("truncate() keeps surrogate pairs whole", () => {
    expect(truncate("abc", 5)).toBe("abc");
    expect(truncate("abcdef", 4)).toBe("abc…");
    expect(truncate("a🔐b", 3)).toBe("a…");
    expect(truncate("abc", 0)).toBe("");
  });
});
