import type { RequestResource } from "@countersign/services";
import type { ActionsBlock, Button, HeaderBlock, InputBlock, KnownBlock, SectionBlock } from "@slack/types";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ACTION,
  approveModal,
  checkCardLimits,
  denyModal,
  escapeMrkdwn,
  LIMITS,
  paramsForCodeBlock,
  REASON_INPUT,
  renderCard,
  slackDate,
  truncate,
  VIEW,
} from "./card.ts";

const ID = "req_01JD0000000000000000000000";

function request(over: Partial<RequestResource> = {}): RequestResource {
  return {
    object: "approval_request",
    id: ID,
    status: "pending",
    resolution: null,
    action: "db.export",
    summary: "Export the customers table",
    params: { table: "customers", format: "csv" },
    paramsSha256: "0".repeat(64),
    resource: "db/prod/customers",
    environment: "production",
    risk: "high",
    rationale: "Quarterly report for finance",
    onBehalfOf: "bob@example.com",
    callbackUrl: null,
    metadata: null,
    agent: { keyId: "key_1", name: "deploy-bot", owner: "ops-lead@example.com" },
    policy: { ruleId: "prod-exports", effect: "require_approval", approverGroups: ["sre"], requiredApprovals: 2, onExpire: "expire" },
    approvals: { required: 2, received: 0 },
    decisions: [],
    receipt: null,
    expiresAt: "2026-11-21T17:00:00.000Z",
    createdAt: "2026-11-21T16:00:00.000Z",
    updatedAt: "2026-11-21T16:00:00.000Z",
    decidedAt: null,
    deliveries: [],
    links: { self: "", wait: "", decisions: "", cancel: "" },
    ...over,
  };
}

const allText = (blocks: KnownBlock[]) => JSON.stringify(blocks);
const sections = (blocks: KnownBlock[]) => blocks.filter((b): b is SectionBlock => b.type === "section");
const actions = (blocks: KnownBlock[]) => blocks.find((b): b is ActionsBlock => b.type === "actions");

describe("renderCard", () => {
  it("shows everything a reviewer needs at a glance on a pending card", () => {
    const card = renderCard(request());
    expect(checkCardLimits(card)).toBeNull();
    const header = card.blocks[0] as HeaderBlock;
    expect(header).toMatchObject({ type: "header", text: { type: "plain_text", text: "Export the customers table" } });
    const text = allText(card.blocks);
    for (const s of ["`db.export`", "production", "`db/prod/customers`", "high", "`deploy-bot`", "ops-lead@example.com", "bob@example.com"]) {
      expect(text).toContain(s);
    }
    expect(text).toContain("> Quarterly report for finance");
    expect(text).toContain('```\\n{\\n  \\"table\\": \\"customers\\"');
    expect(text).toContain("Policy rule `prod-exports`");
    expect(text).toContain("0 of 2 approvals");
    // The expiry renders in the reader's own time zone, with a UTC fallback.
    expect(text).toContain(`Expires <!date^${Date.parse("2026-11-21T17:00:00Z") / 1000}^{date_short_pretty} at {time}|2026-11-21 17:00 UTC>`);
    expect(card.text).toBe("Approval needed: Export the customers table (db.export in production), 0 of 2 approvals");
  });

  it("has an Approve (primary) and a Deny (danger) button carrying only the request id", () => {
    const buttons = actions(renderCard(request()).blocks)?.elements as Button[];
    const approve = buttons.find((b) => b.action_id === ACTION.approve);
    const deny = buttons.find((b) => b.action_id === ACTION.deny);
    expect(approve).toMatchObject({ style: "primary", value: ID, text: { text: "Approve" } });
    expect(deny).toMatchObject({ style: "danger", value: ID, text: { text: "Deny" } });
    expect(buttons.every((b) => b.value === ID)).toBe(true);
  });

  it("truncates long params with a visible note and stays within the section limit", () => {
    const params = { rows: Array.from({ length: 2000 }, (_, i) => `row-${i}`) };
    const card = renderCard(request({ params }));
    expect(checkCardLimits(card)).toBeNull();
    const block = sections(card.blocks).find((s) => s.text?.text.startsWith("*Params*"));
    const text = block?.text?.text ?? "";
    expect(text.length).toBeLessThanOrEqual(LIMITS.sectionText);
    const total = JSON.stringify(params, null, 2).length;
    const m = /_… ([\d,]+) more characters_$/.exec(text);
    expect(m).not.toBeNull();
    const omitted = Number(m?.[1]?.replace(/,/g, ""));
    const shown = /```\n([\s\S]*)\n```/.exec(text)?.[1] ?? "";
    expect(shown.length).toBeGreaterThan(2000);
    expect(JSON.stringify(params, null, 2).startsWith(shown)).toBe(true);
    expect(shown.length + omitted).toBe(total);
  });

  it("escapes mrkdwn control characters so payload text cannot mention or link", () => {
    const card = renderCard(request({ rationale: "<!channel> see <https://evil.example|docs> & more", environment: "<@U123>" }));
    const text = allText(card.blocks);
    expect(text).not.toContain("<!channel>");
    expect(text).toContain("&lt;!channel&gt;");
    expect(text).toContain("&amp; more");
    expect(text).not.toContain("<@U123>");
  });

  it("keeps backticks in params from closing the code block", () => {
    const { code } = paramsForCodeBlock({ cmd: "echo ```done```" }, 1000);
    expect(code).not.toContain("```");
  });

  it("after a partial approval shows who approved, their reason and when, and keeps the buttons", () => {
    const card = renderCard(
      request({
        approvals: { required: 2, received: 1 },
        decisions: [{ reviewer: "alice@example.com", decision: "approve", reason: "ticket OPS-42", surface: "slack", decidedAt: "2026-11-21T16:05:00.000Z" }],
      }),
    );
    const text = allText(card.blocks);
    expect(text).toContain("1 of 2 approvals");
    expect(text).toContain("*Approved* by alice@example.com");
    expect(text).toContain("> ticket OPS-42");
    expect(text).toContain(slackDate("2026-11-21T16:05:00.000Z"));
    expect(actions(card.blocks)).toBeDefined();
  });

  it.each([
    ["approved", "quorum", ":white_check_mark: *Approved*", "Approved: "],
    ["denied", "denied", ":no_entry: *Denied* by carol@example.com", "Denied: "],
    ["denied", "timeout", "*Denied: expired without a decision*", "Denied: "],
    ["expired", "timeout", "*Expired without a decision*", "Expired: "],
    ["cancelled", "cancelled", "*Cancelled by the requester*", "Cancelled: "],
  ] as const)("in the terminal state %s (%s) removes the buttons and states the outcome plainly", (status, resolution, line, fallback) => {
    const decisions =
      resolution === "denied"
        ? [{ reviewer: "carol@example.com", decision: "deny", reason: "not this quarter", surface: "api", decidedAt: "2026-11-21T16:10:00.000Z" }]
        : [];
    const card = renderCard(request({ status, resolution, decisions, decidedAt: "2026-11-21T16:10:00.000Z" }));
    expect(checkCardLimits(card)).toBeNull();
    expect(actions(card.blocks)).toBeUndefined();
    expect(sections(card.blocks)[0]?.text?.text).toContain(line);
    expect(card.text.startsWith(fallback)).toBe(true);
    if (resolution === "denied") expect(allText(card.blocks)).toContain("> not this quarter");
  });

  it("never breaks a Block Kit limit, whatever the request holds", () => {
    const decision = fc.record({
      reviewer: fc.emailAddress(),
      decision: fc.constantFrom("approve", "deny"),
      reason: fc.option(fc.string({ maxLength: 2000 }), { nil: null }),
      surface: fc.constantFrom("api", "slack", "teams"),
      decidedAt: fc.constant("2026-11-21T16:10:00.000Z"),
    });
    fc.assert(
      fc.property(
        fc.record({
          summary: fc.string({ minLength: 1, maxLength: 150 }),
          rationale: fc.option(fc.string({ maxLength: 2000 }), { nil: null }),
          resource: fc.option(fc.string({ minLength: 1, maxLength: 500 }), { nil: null }),
          environment: fc.option(fc.string({ minLength: 1, maxLength: 100 }), { nil: null }),
          params: fc.dictionary(fc.string({ maxLength: 40 }), fc.jsonValue({ maxDepth: 3 })),
          decisions: fc.array(decision, { maxLength: 60 }),
          status: fc.constantFrom("pending", "approved", "denied", "expired", "cancelled"),
        }),
        (over) => {
          const card = renderCard(request(over as Partial<RequestResource>));
          expect(checkCardLimits(card)).toBeNull();
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe("modals", () => {
  it("deny asks for a required reason and carries only the request id, channel and card message", () => {
    const view = denyModal("Export the customers table", { requestId: ID, channel: "C0123", messageTs: "1700000000.000100" });
    expect(view.callback_id).toBe(VIEW.deny);
    expect(view.title.text.length).toBeLessThanOrEqual(LIMITS.modalTitle);
    expect(JSON.parse(view.private_metadata ?? "")).toEqual({ requestId: ID, channel: "C0123", messageTs: "1700000000.000100" });
    const input = view.blocks.find((b) => b.type === "input") as InputBlock;
    expect(input).toMatchObject({ block_id: REASON_INPUT, optional: false, element: { action_id: REASON_INPUT } });
  });

  it("approve takes an optional comment", () => {
    const view = approveModal("x", { requestId: ID, channel: null, messageTs: null });
    expect(view.callback_id).toBe(VIEW.approve);
    expect((view.blocks.find((b) => b.type === "input") as InputBlock).optional).toBe(true);
  });
});

describe("truncate", () => {
  it("counts UTF-16 units and never splits a surrogate pair", () => {
    const t = truncate("😀".repeat(10), 6);
    expect(t.length).toBeLessThanOrEqual(6);
    expect(t).toBe("😀😀…");
    expect(truncate("short", 10)).toBe("short");
  });
});

describe("escapeMrkdwn", () => {
  it("escapes &, < and >", () => {
    expect(escapeMrkdwn("a & <b> c")).toBe("a &amp; &lt;b&gt; c");
  });
});
