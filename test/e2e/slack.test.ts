import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCallbackReceiver } from "../fakes/callback-receiver.ts";
import { blocksText, type FakeSlack, type RecordedCall, startFakeSlack } from "../fakes/fake-slack.ts";
import { blockActionsPayload, formBody, type SlackUserRef, sendSigned, signature, slackUser, viewSubmissionPayload } from "../fakes/slack-sign.ts";
import { engines } from "../support/db.ts";
import { type GatewayProcess, startGateway } from "../support/gateway.ts";

const SECRET = "8f742231b10e8888abcd99yyyzzz85a5";
const TOKEN = "xoxb-1111-2222-countersign-test";
const OPS = "C0APPROVALS";
const SEC = "C0SECOPS";

const ALICE = slackUser("U0ALICE01", "alice");
const BOB = slackUser("U0BOB0001", "bob");
const CAROL = slackUser("U0CAROL01", "carol");
const DAVE = slackUser("U0DAVE001", "dave");
const GONE = slackUser("U0GONE001", "gone");
const ROBOT = slackUser("U0ROBOT01", "robot");
const NOMAIL = slackUser("U0NOMAIL1", "nomail");
// carol again, under a profile email that reaches her own mailbox (issue #11, reproduction 1).
const CAROL_TAGGED = slackUser("U0CAROLX1", "carol-x");
const CAROL_LOOKALIKE = slackUser("U0CAROLY1", "carol-y");

async function eventually<T>(fn: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 100));
  }
}

const POLICY = `
version: 1
groups:
  sre: [alice@example.com, bob@example.com, carol@example.com]
channels:
  ops: { slack: { channel: ${OPS} } }
  sec: { slack: { channel: ${SEC} } }
rules:
  - id: two-person-iam
    match: { action: "iam.*" }
    effect: require_approval
    approvers: [sre]
    approvals: 2
    notify: [ops, sec]
  - id: short-lived
    match: { action: "tmp.*" }
    effect: require_approval
    approvers: [sre]
    expiresIn: 2s
    notify: [ops]
  - id: anyone
    match: { action: "anyone.*" }
    effect: require_approval
    approvers: ["*"]
    notify: [ops]
  - id: one-approval
    effect: require_approval
    approvers: [sre]
    notify: [ops]
`;

interface Card {
  id: string;
  channel: string;
  ts: string;
  blocks: unknown[];
  text: string;
}

describe.each(engines())("Slack approval cards through Bolt (%s gateway)", (engine) => {
  let gw: GatewayProcess;
  let fake: FakeSlack;
  let receiver: Awaited<ReturnType<typeof startCallbackReceiver>>;
  let agentKey: string;
  let webhookSecret: string;
  let bobKey: string;
  let adminKey: string;
  let events: string;
  let seq = 0;
  /** The gateway's log lines after start-up. */
  const out: string[] = [];

  beforeAll(async () => {
    fake = await startFakeSlack({
      token: TOKEN,
      users: [
        { id: ALICE.id, name: "alice", email: "Alice@Example.com" },
        { id: BOB.id, name: "bob", email: "bob@example.com" },
        { id: CAROL.id, name: "carol", email: "carol@example.com" },
        { id: DAVE.id, name: "dave", email: "dave@example.com" },
        { id: CAROL_TAGGED.id, name: "carol-x", email: "carol+slack@example.com" },
        { id: CAROL_LOOKALIKE.id, name: "carol-y", email: "carоl@example.com" },
        { id: GONE.id, name: "gone", email: "gone@example.com", deleted: true },
        { id: ROBOT.id, name: "robot", email: "robot@example.com", isBot: true },
        { id: NOMAIL.id, name: "nomail" },
      ],
    });
    gw = await startGateway({
      engine,
      policy: POLICY,
      env: { SLACK_BOT_TOKEN: TOKEN, SLACK_SIGNING_SECRET: SECRET, SLACK_API_URL: fake.url },
    });
    gw.child.stdout?.on("data", (c: Buffer) => out.push(c.toString()));
    events = `${gw.url}/slack/events`;
    // carol owns the agent key, so she can never decide its requests.
    const agent = await gw.createKey({ name: "deploy-bot", owner: "carol@example.com", scopes: ["requests"] });
    agentKey = agent.key;
    webhookSecret = agent.webhookSecret as string;
    bobKey = (await gw.createKey({ name: "bob-api", owner: "bob@example.com", scopes: ["decisions"] })).key;
    adminKey = (await gw.createKey({ name: "auditor", owner: "admin@example.com", scopes: ["admin"] })).key;
    receiver = await startCallbackReceiver(() => webhookSecret);
  });

  afterAll(async () => {
    await receiver?.close();
    await gw?.stop();
    await fake?.close();
  });

  async function submit(body: Record<string, unknown>): Promise<string> {
    seq++;
    const res = await gw.api("/v1/requests", {
      method: "POST",
      key: agentKey,
      json: { action: "db.export", summary: `Export #${seq}`, params: { table: "customers" }, ...body },
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  }

  /** Waits for the card posted for `id` in `channel`. */
  async function cardFor(id: string, channel = OPS): Promise<Card> {
    const c = await fake.waitFor("chat.postMessage", (x) => x.args.channel === channel && blocksText(x.args.blocks).includes(id));
    return { id, channel, ts: c.response.ts as string, blocks: c.args.blocks as unknown[], text: c.args.text as string };
  }

  const updatesOf = (card: Card) =>
    fake.callsTo("chat.update").filter((c) => c.args.channel === card.channel && c.args.ts === card.ts && c.response.ok === true);

  async function waitForUpdate(card: Card, pred: (text: string, call: RecordedCall) => boolean): Promise<RecordedCall> {
    return fake.waitFor("chat.update", (c) => c.args.channel === card.channel && c.args.ts === card.ts && pred(blocksText(c.args.blocks), c));
  }

  const hasButtons = (c: RecordedCall) => (c.args.blocks as { type: string }[]).some((b) => b.type === "actions");

  function click(user: SlackUserRef, card: Card, actionId: string, opts: { actionTs?: string; retryNum?: number } = {}) {
    const payload = blockActionsPayload({
      user,
      channel: card.channel,
      messageTs: card.ts,
      blocks: card.blocks,
      actionId,
      value: card.id,
      actionTs: opts.actionTs,
    });
    return sendSigned(events, payload, { secret: SECRET, retryNum: opts.retryNum });
  }

  const ephemeralsTo = (user: SlackUserRef) => fake.callsTo("chat.postEphemeral").filter((c) => c.args.user === user.id);

  async function ephemeral(user: SlackUserRef, pred: (text: string) => boolean): Promise<string> {
    const c = await fake.waitFor("chat.postEphemeral", (x) => x.args.user === user.id && pred(String(x.args.text)));
    return String(c.args.text);
  }

  async function request(id: string) {
    return (await (await gw.api(`/v1/requests/${id}`, { key: agentKey })).json()) as {
      status: string;
      approvals: { received: number; required: number };
      decisions: { reviewer: string; decision: string; reason: string | null; surface: string }[];
      deliveries: { kind: string; status: string; attempts: number }[];
    };
  }

  async function audit(id: string) {
    const res = await gw.api("/v1/audit?limit=1000", { key: adminKey });
    const all = (
      (await res.json()) as {
        data: {
          type: string;
          requestId: string;
          actor: Record<string, unknown>;
          data: Record<string, unknown>;
          sealedIn: number | null;
          leafIndex: number | null;
        }[];
      }
    ).data;
    return all.filter((e) => e.requestId === id);
  }

  it("approve round trip: the card has everything, the click is acked at once, the requester is released and the card is final", async () => {
    expect(out.join("")).toContain("Slack enabled (interactivity at /slack/events)");
    const id = await submit({
      summary: "Export the customers table",
      environment: "production",
      resource: "db/prod/customers",
      risk: "high",
      rationale: "Quarterly report for finance",
      onBehalfOf: "dan@example.com",
      params: { table: "customers", format: "csv" },
      callbackUrl: receiver.url,
    });
    const card = await cardFor(id);
    const text = blocksText(card.blocks);
    expect((card.blocks[0] as { type: string; text: { text: string } }).text.text).toBe("Export the customers table");
    for (const s of [
      "`db.export`",
      "production",
      "db/prod/customers",
      "high",
      "deploy-bot",
      "dan@example.com",
      "Quarterly report",
      "one-approval",
      "0 of 1 approval",
      "<!date^",
    ]) {
      expect(text).toContain(s);
    }
    expect(text).toContain('"format": "csv"');
    expect(card.text).toContain("Approval needed: Export the customers table");

    const res = await click(ALICE, card, "countersign.approve");
    expect(res.status).toBe(200);
    expect(res.ms).toBeLessThan(3000);

    const cb = await receiver.waitFor((c) => c.event.data.id === id);
    expect(cb.verified).toBe(true);
    expect(cb.event.type).toBe("request.approved");
    const final = await waitForUpdate(card, (t) => t.includes("*Approved*") && t.includes("alice@example.com"));
    expect(hasButtons(final)).toBe(false);
    expect(String(final.args.text)).toMatch(/^Approved: /);
    expect(await ephemeral(ALICE, (t) => t.includes("Export the customers table"))).toMatch(/You approved .* It is now approved/);

    const r = await request(id);
    expect(r.status).toBe("approved");
    expect(r.decisions).toEqual([expect.objectContaining({ reviewer: "alice@example.com", decision: "approve", surface: "slack" })]);
    const recorded = (await audit(id)).find((e) => e.type === "decision.recorded");
    expect(recorded?.actor).toMatchObject({ type: "reviewer", principal: "alice@example.com", surface: "slack", surfaceUserId: ALICE.id });
  });

  it("deny round trip: Deny opens a modal that requires a reason; the reason reaches the card and the callback", async () => {
    const id = await submit({ summary: "Drop the staging database", callbackUrl: receiver.url });
    const card = await cardFor(id);
    const res = await click(BOB, card, "countersign.deny");
    expect(res.status).toBe(200);
    const opened = await fake.waitFor("views.open", (c) => String((c.args.view as { private_metadata: string }).private_metadata).includes(id));
    const view = opened.args.view as { callback_id: string; private_metadata: string; blocks: { type: string; block_id?: string }[] };
    expect(view.callback_id).toBe("countersign.deny_modal");
    expect(JSON.parse(view.private_metadata)).toEqual({ requestId: id, channel: OPS, messageTs: card.ts });

    const submitReason = (reason: string | null) =>
      sendSigned(
        events,
        viewSubmissionPayload({
          user: BOB,
          callbackId: view.callback_id,
          privateMetadata: view.private_metadata,
          values: { reason: { reason: { type: "plain_text_input", value: reason } } },
        }),
        { secret: SECRET },
      );
    // An empty reason keeps the modal open with an error under the input; nothing is recorded.
    const empty = await submitReason("   ");
    expect(empty.status).toBe(200);
    expect(JSON.parse(empty.text)).toEqual({ response_action: "errors", errors: { reason: "A reason is required to deny a request." } });
    expect((await request(id)).decisions).toEqual([]);

    const ok = await submitReason("Staging is in use for the release test");
    expect(ok.status).toBe(200);
    const cb = await receiver.waitFor((c) => c.event.data.id === id);
    expect(cb.event.type).toBe("request.denied");
    expect((cb.event.data as unknown as { decisions: { reason: string }[] }).decisions[0]?.reason).toBe("Staging is in use for the release test");
    const final = await waitForUpdate(card, (t) => t.includes("*Denied* by bob@example.com"));
    expect(blocksText(final.args.blocks)).toContain("> Staging is in use for the release test");
    expect(hasButtons(final)).toBe(false);
    expect(await ephemeral(BOB, (t) => t.includes("Drop the staging database"))).toMatch(/You denied/);
  });

  it("Approve with comment records the optional comment", async () => {
    const id = await submit({ summary: "Rotate the API secret" });
    const card = await cardFor(id);
    await click(BOB, card, "countersign.approve_with_comment");
    const opened = await fake.waitFor("views.open", (c) => String((c.args.view as { private_metadata: string }).private_metadata).includes(id));
    const view = opened.args.view as { callback_id: string; private_metadata: string };
    expect(view.callback_id).toBe("countersign.approve_modal");
    await sendSigned(
      events,
      viewSubmissionPayload({
        user: BOB,
        callbackId: view.callback_id,
        privateMetadata: view.private_metadata,
        values: { reason: { reason: { type: "plain_text_input", value: "ticket OPS-42" } } },
      }),
      { secret: SECRET },
    );
    await waitForUpdate(card, (t) => t.includes("*Approved* by bob@example.com") && t.includes("> ticket OPS-42"));
    expect((await request(id)).decisions[0]).toMatchObject({ reviewer: "bob@example.com", reason: "ticket OPS-42", surface: "slack" });
  });

  it("two-person quorum: the first approval updates every card to 1 of 2, the second approves from the other channel", async () => {
    const id = await submit({ action: "iam.role.attach", summary: "Attach admin role to ci-runner" });
    const [ops, sec] = await Promise.all([cardFor(id, OPS), cardFor(id, SEC)]);
    expect(blocksText(ops.blocks)).toContain("0 of 2 approvals");

    await click(ALICE, ops, "countersign.approve");
    for (const card of [ops, sec]) {
      const u = await waitForUpdate(card, (t) => t.includes("1 of 2 approvals") && t.includes("alice@example.com"));
      expect(hasButtons(u)).toBe(true);
    }
    expect(await ephemeral(ALICE, (t) => t.includes("Attach admin role"))).toContain("1 of 2 approvals, waiting for 1 more");
    expect((await request(id)).status).toBe("pending");

    await click(BOB, sec, "countersign.approve");
    for (const card of [ops, sec]) {
      const u = await waitForUpdate(card, (t) => t.includes(":white_check_mark: *Approved* · 2 of 2 approvals"));
      expect(hasButtons(u)).toBe(false);
    }
    const r = await request(id);
    expect(r.status).toBe("approved");
    expect(r.decisions.map((d) => d.reviewer).sort()).toEqual(["alice@example.com", "bob@example.com"]);
    // Identity lookups are cached: alice has clicked several times by now.
    expect(fake.callsTo("users.info").filter((c) => c.args.user === ALICE.id)).toHaveLength(1);
  });

  it("self-approval is refused with an ephemeral reason and an audit event, and nothing else changes", async () => {
    const id = await submit({ summary: "Self-serve export" });
    const card = await cardFor(id);
    const res = await click(CAROL, card, "countersign.approve");
    expect(res.status).toBe(200);
    expect(await ephemeral(CAROL, (t) => t.includes("can't decide"))).toContain("You own the agent key that made this request");
    const refused = (await audit(id)).filter((e) => e.type === "decision.refused");
    expect(refused).toEqual([
      expect.objectContaining({
        actor: expect.objectContaining({ principal: "carol@example.com", surface: "slack", surfaceUserId: CAROL.id }),
        data: expect.objectContaining({ code: "self_approval_forbidden" }),
      }),
    ]);
    const r = await request(id);
    expect(r.status).toBe("pending");
    expect(r.decisions).toEqual([]);
    await new Promise((x) => setTimeout(x, 300));
    expect(updatesOf(card)).toEqual([]);
  });

  it("a reviewer who is not an approver is refused the same way", async () => {
    const id = await submit({ summary: "Outsider export" });
    const card = await cardFor(id);
    await click(DAVE, card, "countersign.approve");
    expect(await ephemeral(DAVE, (t) => t.includes("not an approver"))).toContain("nothing else changed");
    expect((await audit(id)).filter((e) => e.type === "decision.refused").map((e) => e.data.code)).toEqual(["not_an_approver"]);
    expect((await request(id)).decisions).toEqual([]);
  });

  it("deleted users, bots and users without an email are refused before any decision", async () => {
    const id = await submit({ summary: "Unverifiable clickers" });
    const card = await cardFor(id);
    for (const u of [GONE, ROBOT, NOMAIL]) expect((await click(u, card, "countersign.approve")).status).toBe(200);
    expect(await ephemeral(GONE, () => true)).toMatch(/deactivated/);
    expect(await ephemeral(ROBOT, () => true)).toMatch(/Bots and apps cannot decide/);
    expect(await ephemeral(NOMAIL, () => true)).toMatch(/no email address/);
    expect((await request(id)).decisions).toEqual([]);
    // Every refused click is audited, with who Slack says clicked and why it was refused (issue #11, reproduction 10).
    const refused = await eventually(async () => {
      const events = (await audit(id)).filter((e) => e.type === "decision.refused");
      return events.length === 3 ? events : undefined;
    });
    expect((await audit(id)).map((e) => e.type)).toEqual(["request.created", "decision.refused", "decision.refused", "decision.refused"]);
    expect(refused.map((e) => [e.actor.type, e.actor.surface, e.actor.surfaceUserId, e.data.code]).sort()).toEqual(
      [GONE, ROBOT, NOMAIL].map((u) => ["unverified", "slack", u.id, "reviewer_unverified"]).sort(),
    );
  });

  it('the agent owner, under a +tag profile email, cannot approve their own agent\'s request on a "*" rule; a look-alike email is refused (issue #11)', async () => {
    const id = await submit({ action: "anyone.export", summary: "Own agent, other spelling" });
    const card = await cardFor(id);
    expect((await click(CAROL_TAGGED, card, "countersign.approve")).status).toBe(200);
    expect(await ephemeral(CAROL_TAGGED, () => true)).toMatch(/You can't decide this request/);
    expect((await click(CAROL_LOOKALIKE, card, "countersign.approve")).status).toBe(200);
    expect(await ephemeral(CAROL_LOOKALIKE, () => true)).toMatch(/mixes Latin and Cyrillic/);
    const r = await request(id);
    expect(r.status).toBe("pending");
    expect(r.decisions).toEqual([]);
    const codes = await eventually(async () => {
      const c = (await audit(id)).filter((e) => e.type === "decision.refused").map((e) => e.data.code);
      return c.length === 2 ? c : undefined;
    });
    expect(codes.sort()).toEqual(["reviewer_unverified", "self_approval_forbidden"]);
  });

  it("a signed click whose button names request B, on the card of request A, is refused and audited (issue #11, reproduction 6)", async () => {
    const a = await submit({ summary: "Card A: harmless" });
    const b = await submit({ summary: "Request B: dangerous" });
    const cardA = await cardFor(a);
    await cardFor(b);
    const res = await click(ALICE, { ...cardA, id: b }, "countersign.approve");
    expect(res.status).toBe(200);
    expect(await ephemeral(ALICE, (t) => t.includes("does not belong to the approval card"))).toMatch(/recorded in the audit log; nothing else changed/);
    expect((await request(b)).decisions).toEqual([]);
    expect((await request(a)).decisions).toEqual([]);
    const refused = await eventually(async () => (await audit(b)).find((e) => e.type === "decision.refused"));
    expect(refused).toMatchObject({
      actor: { type: "unverified", surface: "slack", surfaceUserId: ALICE.id },
      data: { code: "forbidden", messageTs: cardA.ts },
    });
  });

  it("forged signatures, stale timestamps and missing headers get 401 and write nothing", async () => {
    const id = await submit({ summary: "Forgery target" });
    const card = await cardFor(id);
    const before = fake.calls.length;
    const auditBefore = await audit(id);
    const payload = blockActionsPayload({ user: ALICE, channel: OPS, messageTs: card.ts, actionId: "countersign.approve", value: id });
    const forged = await sendSigned(events, payload, { secret: SECRET, forgeSignature: `v0=${"0".repeat(64)}` });
    const wrongSecret = await sendSigned(events, payload, { secret: "not-the-secret" });
    const stale = await sendSigned(events, payload, { secret: SECRET, ts: Math.floor(Date.now() / 1000) - 6 * 60 });
    const missing = await sendSigned(events, payload, { secret: SECRET, omitHeaders: true });
    // A body changed after signing (bob swapped in for alice) fails too.
    const ts = Math.floor(Date.now() / 1000);
    const tampered = await fetch(events, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": String(ts),
        "x-slack-signature": signature(SECRET, ts, formBody(payload)),
      },
      body: formBody({ ...payload, user: BOB }),
    });
    expect([forged.status, wrongSecret.status, stale.status, missing.status, tampered.status]).toEqual([401, 401, 401, 401, 401]);
    await new Promise((x) => setTimeout(x, 300));
    expect(fake.calls.slice(before)).toEqual([]);
    // Nothing written: the same events, wherever the checkpointer has sealed them meanwhile.
    const unsealed = (events: Awaited<ReturnType<typeof audit>>) => events.map(({ sealedIn: _s, leafIndex: _l, ...e }) => e);
    expect(unsealed(await audit(id))).toEqual(unsealed(auditBefore));
    const r = await request(id);
    expect(r.status).toBe("pending");
    expect(r.decisions).toEqual([]);
  });

  it("a double click and a Slack retry of the same action count once", async () => {
    const id = await submit({ action: "iam.user.create", summary: "Create break-glass user" });
    const card = await cardFor(id, OPS);
    await cardFor(id, SEC);
    const actionTs = `${Math.floor(Date.now() / 1000)}.999001`;
    const [a, b] = await Promise.all([click(ALICE, card, "countersign.approve", { actionTs }), click(ALICE, card, "countersign.approve")]);
    expect([a.status, b.status]).toEqual([200, 200]);
    // Slack redelivers the first click (same action_ts) as if our ack had been lost.
    const retry = await click(ALICE, card, "countersign.approve", { actionTs, retryNum: 1 });
    expect(retry.status).toBe(200);
    await ephemeral(ALICE, (t) => t.includes("Create break-glass user"));
    await ephemeral(ALICE, (t) => t.includes("already decided"));
    await new Promise((x) => setTimeout(x, 500));
    const r = await request(id);
    expect(r.status).toBe("pending");
    expect(r.approvals.received).toBe(1);
    expect(r.decisions).toHaveLength(1);
    const events_ = await audit(id);
    expect(events_.filter((e) => e.type === "decision.recorded")).toHaveLength(1);
    // The retry was recognised and dropped: two clicks, two replies, not three.
    const replies = ephemeralsTo(ALICE).filter((c) => String(c.args.text).includes("break-glass") || String(c.args.text).includes("already decided"));
    expect(replies.length).toBe(2);
  });

  it("a decision made through the API updates the posted card", async () => {
    const id = await submit({ summary: "Open port 443 on the bastion" });
    const card = await cardFor(id);
    const d = await gw.api(`/v1/requests/${id}/decisions`, { method: "POST", key: bobKey, json: { decision: "approve", reason: "change CHG-7" } });
    expect(d.status).toBe(201);
    const u = await waitForUpdate(card, (t) => t.includes("*Approved* by bob@example.com") && t.includes("via the API"));
    expect(blocksText(u.args.blocks)).toContain("> change CHG-7");
    expect(hasButtons(u)).toBe(false);
  });

  it("a card is updated when its request expires", async () => {
    const id = await submit({ action: "tmp.grant", summary: "Temporary grant" });
    const card = await cardFor(id);
    const u = await waitForUpdate(card, (t) => t.includes("*Expired without a decision*"));
    expect(hasButtons(u)).toBe(false);
    expect(String(u.args.text)).toMatch(/^Expired: Temporary grant/);
    expect((await request(id)).status).toBe("expired");
  });

  it("a card update after cancellation shows the cancellation", async () => {
    const id = await submit({ summary: "Cancelled export" });
    const card = await cardFor(id);
    const res = await gw.api(`/v1/requests/${id}/cancel`, { method: "POST", key: agentKey, json: {} });
    expect(res.status).toBe(200);
    const u = await waitForUpdate(card, (t) => t.includes("*Cancelled by the requester*"));
    expect(hasButtons(u)).toBe(false);
  });

  it("a 429 on chat.postMessage is retried through the outbox, honouring Retry-After, and delivered", async () => {
    fake.rateLimitNext("chat.postMessage", 1, 2);
    const id = await submit({ summary: "Rate limited export" });
    const card = await cardFor(id);
    const limited = fake.callsTo("chat.postMessage").find((c) => c.status === 429 && String(c.args.text).includes("Rate limited export"));
    expect(limited).toBeDefined();
    const delivered = fake.callsTo("chat.postMessage").find((c) => c.response.ts === card.ts);
    expect((delivered?.at ?? 0) - (limited?.at ?? 0)).toBeGreaterThanOrEqual(1900);
    // The job settles just after the call that delivered it.
    await expect
      .poll(async () => (await request(id)).deliveries.find((x) => x.kind === "slack.post"), { timeout: 5000 })
      .toMatchObject({ status: "done", attempts: 2 });
  });

  it("broke no Slack rule (Block Kit limits, text fallback, token) and logged no listener or job errors", () => {
    expect(fake.violations).toEqual([]);
    expect(fake.calls.every((c) => c.token === TOKEN)).toBe(true);
    const errors = out
      .join("")
      .split("\n")
      .filter((l) => l.includes('"level":"error"'));
    expect(errors).toEqual([]);
  });
});
