import type { Logger } from "@countersign/core";
import type { ChatCards, ClaimedJob, PostedCard, RequestResource } from "@countersign/services";
import { describe, expect, it } from "vitest";
import type { SlackCard } from "./card.ts";
import { type CardSender, slackJobHandlers } from "./jobs.ts";

const ID = "req_01JD0000000000000000000000";
const log: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => log };

function resource(over: Partial<RequestResource> = {}): RequestResource {
  return {
    object: "approval_request",
    id: ID,
    status: "pending",
    resolution: null,
    action: "db.export",
    summary: "Export",
    params: {},
    paramsSha256: "",
    resource: null,
    environment: null,
    risk: null,
    rationale: null,
    onBehalfOf: null,
    callbackUrl: null,
    metadata: null,
    agent: { keyId: "k", name: "bot", owner: "o@example.com" },
    policy: { ruleId: "r", effect: "require_approval", approverGroups: ["sre"], requiredApprovals: 1, onExpire: "expire" },
    approvals: { required: 1, received: 0 },
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

const approved = resource({
  status: "approved",
  resolution: "quorum",
  approvals: { required: 1, received: 1 },
  decidedAt: "2026-11-21T16:01:00.000Z",
  decisions: [{ reviewer: "a@example.com", decision: "approve", reason: null, surface: "api", decidedAt: "2026-11-21T16:01:00.000Z" }],
});

function harness(states: RequestResource[], existing: PostedCard[] = []) {
  let reads = 0;
  const store = [...existing];
  const marks: { id: string; state: string; error: string | null }[] = [];
  const undeliverable: unknown[] = [];
  const cards = {
    // Each read returns the next state, so tests can change the request mid-job.
    loadRequest: async () => states[Math.min(reads++, states.length - 1)] ?? null,
    find: async (_r: string, _s: string, channel: string) => store.find((c) => c.channel === channel) ?? null,
    list: async () => store,
    recordPosted: async (c: { requestId: string; destination: string; channel: string; messageId: string | null }) => {
      const card: PostedCard = { id: "msg_1", surface: "slack", conversationId: null, state: "posted", error: null, ...c };
      store.push(card);
      return card;
    },
    recordUndeliverable: async (c: unknown) => {
      undeliverable.push(c);
    },
    markState: async (id: string, state: string, error: string | null = null) => {
      marks.push({ id, state, error });
    },
  } as unknown as ChatCards;
  const sent: { op: "post" | "update"; card: SlackCard }[] = [];
  const failures: unknown[] = [];
  const sender: CardSender = {
    post: async (channel, card) => {
      const f = failures.shift();
      if (f) throw f;
      sent.push({ op: "post", card });
      return { channel, ts: "1700000000.000100" };
    },
    update: async (_channel, _ts, card) => {
      const f = failures.shift();
      if (f) throw f;
      sent.push({ op: "update", card });
    },
  };
  const h = slackJobHandlers({ cards, sender, log });
  const job = (kind: "slack.post" | "slack.update", payload: Record<string, unknown>): ClaimedJob => ({
    id: "job_1",
    kind,
    requestId: ID,
    payload,
    attempts: 1,
    maxAttempts: 12,
    createdAt: new Date(),
  });
  return {
    sent,
    failures,
    marks,
    undeliverable,
    post: () => h["slack.post"]?.(job("slack.post", { requestId: ID, destination: "ops", channel: "C0OPS" })),
    update: () => h["slack.update"]?.(job("slack.update", { requestId: ID })),
  };
}

const hasButtons = (c: SlackCard) => c.blocks.some((b) => b.type === "actions");

describe("slack.post", () => {
  it("posts the card and stops when nothing changed meanwhile", async () => {
    const t = harness([resource()]);
    expect(await t.post()).toEqual({ ok: true });
    expect(t.sent.map((s) => s.op)).toEqual(["post"]);
  });

  it("updates the card at once when the request was decided while it was being posted", async () => {
    const t = harness([resource(), approved]);
    expect(await t.post()).toEqual({ ok: true });
    expect(t.sent.map((s) => s.op)).toEqual(["post", "update"]);
    expect(hasButtons(t.sent[0]?.card as SlackCard)).toBe(true);
    expect(hasButtons(t.sent[1]?.card as SlackCard)).toBe(false);
  });

  it("does not post a second card when a retried job finds one already posted", async () => {
    const existing: PostedCard = {
      id: "msg_1",
      requestId: ID,
      surface: "slack",
      destination: "ops",
      channel: "C0OPS",
      messageId: "1.2",
      conversationId: null,
      state: "posted",
      error: null,
    };
    const t = harness([resource()], [existing]);
    expect(await t.post()).toEqual({ ok: true });
    expect(t.sent.map((s) => s.op)).toEqual(["update"]);
  });

  it("hands a 429's Retry-After to the outbox", async () => {
    const t = harness([resource()]);
    t.failures.push({ code: "slack_webapi_rate_limited_error", retryAfter: 7, message: "rate limited" });
    expect(await t.post()).toMatchObject({ ok: false, httpStatus: 429, retryAfterMs: 7000 });
  });

  it("marks a channel the app cannot post to as undeliverable, for good", async () => {
    const t = harness([resource()]);
    t.failures.push({ code: "slack_webapi_platform_error", data: { error: "not_in_channel" } });
    expect(await t.post()).toMatchObject({ ok: false, permanent: true, error: expect.stringContaining("/invite @Countersign") });
    expect(t.undeliverable).toHaveLength(1);
  });

  it("does not retry a payload Slack rejected, and retries server errors", async () => {
    const bad = harness([resource()]);
    bad.failures.push({ code: "slack_webapi_platform_error", data: { error: "invalid_blocks" } });
    expect(await bad.post()).toMatchObject({ ok: false, permanent: true });
    const down = harness([resource()]);
    down.failures.push({ code: "slack_webapi_http_error", statusCode: 503, message: "503" });
    const r = await down.post();
    expect(r).toMatchObject({ ok: false, httpStatus: 503 });
    expect(r).not.toHaveProperty("permanent", true);
  });
});

describe("slack.update", () => {
  const posted: PostedCard = {
    id: "msg_1",
    requestId: ID,
    surface: "slack",
    destination: "ops",
    channel: "C0OPS",
    messageId: "1.2",
    conversationId: null,
    state: "posted",
    error: null,
  };

  it("re-renders every posted card from the database", async () => {
    const t = harness([approved], [posted, { ...posted, id: "msg_2", channel: "C0SEC" }]);
    expect(await t.update()).toEqual({ ok: true });
    expect(t.sent.map((s) => s.op)).toEqual(["update", "update"]);
  });

  it("notes a deleted message and carries on", async () => {
    const t = harness([approved], [posted]);
    t.failures.push({ code: "slack_webapi_platform_error", data: { error: "message_not_found" } });
    expect(await t.update()).toEqual({ ok: true });
    expect(t.marks).toEqual([{ id: "msg_1", state: "undeliverable", error: expect.stringContaining("message_not_found") }]);
  });
});
