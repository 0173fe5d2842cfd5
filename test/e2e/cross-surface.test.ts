import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkAdaptiveCard } from "../../apps/gateway/src/teams/adaptive-card-check.ts";
import { startCallbackReceiver } from "../fakes/callback-receiver.ts";
import {
  BOT_FRAMEWORK_SCOPE,
  type FakeConnector,
  type FakeIdentity,
  type StoredActivity,
  startFakeConnector,
  startFakeIdentity,
} from "../fakes/fake-bot-framework.ts";
import { blocksText, type FakeSlack, type RecordedCall, startFakeSlack } from "../fakes/fake-slack.ts";
import { blockActionsPayload, type SlackUserRef, sendSigned, slackUser } from "../fakes/slack-sign.ts";
import { type GatewayProcess, startGateway } from "../support/gateway.ts";

/**
 * One gateway with both chat surfaces at once: a rule notifies a Slack channel and a Teams
 * channel, and a decision taken on either surface must show up on the other one.
 */

// -- Slack ------------------------------------------------------------------------------
const SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5";
const SLACK_TOKEN = "xoxb-1111-2222-countersign-test";
const SLACK_CH = "C0XSURFACE";

// -- Teams ------------------------------------------------------------------------------
const APP_ID = "0b5e0c3c-5d0e-4b8a-9d77-3f0b5c1a2e10";
const PASSWORD = "fake-client-secret-value";
const TENANT = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
const TEAM = "19:team-x@thread.tacv2";
const TEAMS_CH = "19:approvals-x@thread.tacv2";

/** The same three people on both surfaces; the Teams directory spells emails in mixed case. */
const SLACK = {
  alice: slackUser("U0ALICE01", "alice"),
  bob: slackUser("U0BOB0001", "bob"),
  carol: slackUser("U0CAROL01", "carol"),
};
interface TeamsUser {
  id: string;
  name: string;
  aadObjectId: string;
  email: string;
}
const TEAMS = {
  alice: { id: "29:1alice", name: "Alice", aadObjectId: "a11ce000-0000-4000-8000-000000000001", email: "Alice@Example.com" },
  bob: { id: "29:1bob", name: "Bob", aadObjectId: "b0b00000-0000-4000-8000-000000000002", email: "bob@example.com" },
  carol: { id: "29:1carol", name: "Carol", aadObjectId: "ca201000-0000-4000-8000-000000000003", email: "carol@example.com" },
} satisfies Record<string, TeamsUser>;

const POLICY = `
version: 1
groups:
  reviewers: [alice@example.com, bob@example.com, carol@example.com]
channels:
  slackops: { slack: { channel: ${SLACK_CH} } }
  teamsops: { teams: { channel: "${TEAMS_CH}", team: "${TEAM}" } }
rules:
  - id: two-person
    effect: require_approval
    approvers: [reviewers]
    approvals: 2
    notify: [slackops, teamsops]
default: deny
`;

interface SlackCard {
  id: string;
  channel: string;
  ts: string;
  blocks: unknown[];
}
interface CardJson {
  body: unknown[];
  actions?: { type: string; verb: string; data: { requestId: string } }[];
}
interface InvokeBody {
  statusCode: number;
  type: string;
  value: CardJson;
}
interface Resource {
  status: string;
  approvals: { received: number; required: number };
  decisions: { reviewer: string; decision: string; reason: string | null; surface: string; decidedAt: string }[];
  deliveries: { kind: string; status: string; attempts: number; destination?: string }[];
}
interface AuditEvent {
  type: string;
  requestId: string | null;
  actor: { principal?: string | null; surface?: string | null; surfaceUserId?: string | null };
  data: Record<string, unknown>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Every text in an Adaptive Card, flattened. */
function cardText(card: unknown): string {
  const out: string[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === "object") {
      for (const [k, x] of Object.entries(v)) {
        if ((k === "text" || k === "title") && typeof x === "string") out.push(x);
        else walk(x);
      }
    }
  };
  walk(card);
  return out.join("\n");
}
/** RichTextBlocks split a line into runs; this joins each block's runs so a line reads as one string. */
function cardLines(card: unknown): string[] {
  const out: string[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === "object") {
      const o = v as { type?: string; inlines?: { text: string }[] };
      if (o.type === "RichTextBlock" && o.inlines) out.push(o.inlines.map((i) => i.text).join(""));
      else for (const x of Object.values(o)) walk(x);
    }
  };
  walk(card);
  return out;
}

const contentOf = (a: Record<string, unknown>) => (a.attachments as { contentType: string; content: CardJson }[] | undefined)?.[0]?.content;

describe("Slack and Microsoft Teams on one gateway: a decision on either surface reaches the other", () => {
  let gw: GatewayProcess;
  let slack: FakeSlack;
  let identity: FakeIdentity;
  let connector: FakeConnector;
  let receiver: Awaited<ReturnType<typeof startCallbackReceiver>>;
  let agentKey: string;
  let webhookSecret: string;
  let adminKey: string;
  let seq = 0;
  const out: string[] = [];

  beforeAll(async () => {
    slack = await startFakeSlack({
      token: SLACK_TOKEN,
      users: [
        { id: SLACK.alice.id, name: "alice", email: "alice@example.com" },
        { id: SLACK.bob.id, name: "bob", email: "bob@example.com" },
        { id: SLACK.carol.id, name: "carol", email: "carol@example.com" },
      ],
    });
    identity = await startFakeIdentity({ appId: APP_ID, password: PASSWORD, tenant: TENANT });
    connector = await startFakeConnector({ isValidToken: (t) => identity.isIssued(t) });
    for (const u of Object.values(TEAMS) as TeamsUser[]) {
      connector.members.set(u.id, { id: u.id, name: u.name, aadObjectId: u.aadObjectId, email: u.email, tenantId: TENANT });
    }
    gw = await startGateway({
      engine: "pglite",
      policy: POLICY,
      env: {
        SLACK_BOT_TOKEN: SLACK_TOKEN,
        SLACK_SIGNING_SECRET: SLACK_SECRET,
        SLACK_API_URL: slack.url,
        TEAMS_APP_ID: APP_ID,
        TEAMS_APP_PASSWORD: PASSWORD,
        TEAMS_APP_TYPE: "SingleTenant",
        TEAMS_APP_TENANT_ID: TENANT,
        TEAMS_OPENID_METADATA_URL: identity.metadataUrl,
        TEAMS_TOKEN_ISSUER: identity.issuer,
        TEAMS_LOGIN_URL: identity.loginUrl,
        TEAMS_OAUTH_SCOPE: BOT_FRAMEWORK_SCOPE,
        TEAMS_CALLER_ID: "urn:botframework:azure",
        TEAMS_OAUTH_API_URL: `${identity.baseUrl}/oauth-api`,
      },
    });
    gw.child.stdout?.on("data", (c: Buffer) => out.push(c.toString()));
    // The agent's owner is not a reviewer, so every reviewer may decide its requests.
    const agent = await gw.createKey({ name: "deploy-bot", owner: "agent-owner@example.com", scopes: ["requests"] });
    agentKey = agent.key;
    webhookSecret = agent.webhookSecret as string;
    adminKey = (await gw.createKey({ name: "auditor", owner: "auditor@example.com", scopes: ["admin"] })).key;
    receiver = await startCallbackReceiver(() => webhookSecret);

    // The Teams app is installed in the team that owns the channel (conversationUpdate).
    const installed = await sendTeams({
      type: "conversationUpdate",
      id: `f:${Math.random().toString(36).slice(2)}`,
      channelId: "msteams",
      serviceUrl: connector.serviceUrl,
      timestamp: new Date().toISOString(),
      from: { id: TEAMS.alice.id, aadObjectId: TEAMS.alice.aadObjectId },
      recipient: { id: `28:${APP_ID}`, name: "Countersign" },
      conversation: { id: TEAM, conversationType: "channel", isGroup: true, tenantId: TENANT },
      membersAdded: [{ id: `28:${APP_ID}` }],
      channelData: { tenant: { id: TENANT }, team: { id: TEAM, name: "Team X" }, eventType: "teamMemberAdded" },
    });
    expect(installed.status).toBe(200);
  });

  afterAll(async () => {
    await receiver?.close();
    await gw?.stop();
    await connector?.close();
    await identity?.close();
    await slack?.close();
  });

  // -- helpers ---------------------------------------------------------------------------

  async function submit(summary: string): Promise<string> {
    seq++;
    const res = await gw.api("/v1/requests", {
      method: "POST",
      key: agentKey,
      json: { action: "iam.role.attach", summary, params: { n: seq }, callbackUrl: receiver.url },
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  }

  async function get(id: string): Promise<Resource> {
    return (await (await gw.api(`/v1/requests/${id}`, { key: agentKey })).json()) as Resource;
  }

  async function audit(id: string): Promise<AuditEvent[]> {
    const res = await gw.api("/v1/audit?limit=1000", { key: adminKey });
    return ((await res.json()) as { data: AuditEvent[] }).data.filter((e) => e.requestId === id);
  }

  // Slack

  async function slackCard(id: string): Promise<SlackCard> {
    const c = await slack.waitFor("chat.postMessage", (x) => x.args.channel === SLACK_CH && blocksText(x.args.blocks).includes(id));
    return { id, channel: SLACK_CH, ts: c.response.ts as string, blocks: c.args.blocks as unknown[] };
  }
  const slackUpdates = (card: SlackCard) =>
    slack.callsTo("chat.update").filter((c) => c.args.channel === card.channel && c.args.ts === card.ts && c.response.ok === true);
  const waitSlackUpdate = (card: SlackCard, pred: (text: string, call: RecordedCall) => boolean) =>
    slack.waitFor("chat.update", (c) => c.args.channel === card.channel && c.args.ts === card.ts && pred(blocksText(c.args.blocks), c));
  const hasButtons = (c: RecordedCall) => (c.args.blocks as { type: string }[]).some((b) => b.type === "actions");

  async function slackClick(user: SlackUserRef, card: SlackCard, actionId: string) {
    const payload = blockActionsPayload({ user, channel: card.channel, messageTs: card.ts, blocks: card.blocks, actionId, value: card.id });
    const res = await sendSigned(`${gw.url}/slack/events`, payload, { secret: SLACK_SECRET });
    expect(res.status).toBe(200);
  }
  async function ephemeral(user: SlackUserRef, pred: (text: string) => boolean): Promise<string> {
    const c = await slack.waitFor("chat.postEphemeral", (x) => x.args.user === user.id && pred(String(x.args.text)));
    return String(c.args.text);
  }

  // Teams

  async function sendTeams(activity: object) {
    const bearer = await identity.signActivityToken({ appId: APP_ID, serviceUrl: connector.serviceUrl });
    const res = await fetch(`${gw.url}/api/messages`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${bearer}` },
      body: JSON.stringify(activity),
    });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {}
    return { status: res.status, body };
  }

  /** An Action.Execute click on the card in TEAMS_CH; returns the card Teams shows the clicker. */
  async function teamsClick(user: TeamsUser, verb: string, requestId: string, reason?: string): Promise<CardJson> {
    const r = await sendTeams({
      type: "invoke",
      name: "adaptiveCard/action",
      id: `f:${Math.random().toString(36).slice(2)}`,
      channelId: "msteams",
      serviceUrl: connector.serviceUrl,
      timestamp: new Date().toISOString(),
      from: { id: user.id, name: user.name, aadObjectId: user.aadObjectId },
      recipient: { id: `28:${APP_ID}`, name: "Countersign" },
      conversation: { id: `${TEAMS_CH};messageid=1700000000000`, conversationType: "channel", isGroup: true, tenantId: TENANT },
      channelData: { tenant: { id: TENANT }, team: { id: TEAM }, channel: { id: TEAMS_CH } },
      replyToId: "1700000000000",
      value: {
        action: { type: "Action.Execute", id: verb, verb, data: { requestId, ...(reason !== undefined ? { reason } : {}) } },
        trigger: "manual",
      },
    });
    expect(r.status).toBe(200);
    const body = r.body as InvokeBody;
    expect(body.statusCode).toBe(200);
    expect(body.type).toBe("application/vnd.microsoft.card.adaptive");
    expect(checkAdaptiveCard(body.value, { targetVersion: "1.5" })).toEqual([]);
    return body.value;
  }

  function teamsPosted(requestId: string): StoredActivity | undefined {
    return [...connector.activities.values()].find(
      (a) => a.conversationId.startsWith(`${TEAMS_CH};`) && JSON.stringify(a.versions[0]).includes(`"requestId":"${requestId}"`),
    );
  }
  const waitTeamsPosted = (requestId: string) => waitFor(`Teams card for ${requestId}`, () => teamsPosted(requestId));
  /** Waits until the card the connector holds for `requestId` satisfies `pred`; returns that card. */
  const waitTeamsCard = (requestId: string, pred: (text: string, card: CardJson) => boolean) =>
    waitFor(`Teams card update for ${requestId}`, () => {
      const a = teamsPosted(requestId);
      const c = a && contentOf(a.activity);
      return c && pred(cardText(c), c) ? { stored: a as StoredActivity, card: c } : undefined;
    });
  const updateActivityCalls = (a: StoredActivity) =>
    connector.callsOf("updateActivity").filter((c) => c.params.conversationId === a.conversationId && c.params.activityId === a.activityId);

  // -- tests -----------------------------------------------------------------------------

  it("boots with both surfaces enabled", async () => {
    await waitFor("Slack start-up line", () => (gw.logs.join("").includes("Slack enabled (interactivity at /slack/events)") ? true : undefined));
    expect(gw.logs.join("")).toContain("Microsoft Teams is enabled");
  });

  it("approve in Slack, then approve in Teams: both cards follow, both decisions count, one callback", async () => {
    const id = await submit("Attach admin role to ci-runner");
    const [card, teams] = await Promise.all([slackCard(id), waitTeamsPosted(id)]);
    expect(blocksText(card.blocks)).toContain("0 of 2 approvals");
    expect(cardText(contentOf(teams.versions[0] as Record<string, unknown>))).toContain("0 of 2 received");

    // 1. First approval, in Slack.
    await slackClick(SLACK.alice, card, "countersign.approve");
    expect(await ephemeral(SLACK.alice, (t) => t.includes("Attach admin role to ci-runner"))).toContain("1 of 2 approvals, waiting for 1 more");

    // The Teams card is updated in place (updateActivity) to show the Slack reviewer and 1 of 2.
    const progress = await waitTeamsCard(id, (t) => t.includes("1 of 2 received") && t.includes("alice@example.com"));
    const progressPut = updateActivityCalls(progress.stored).find(
      (c) => c.status === 200 && cardText(contentOf(c.body as Record<string, unknown>)).includes("1 of 2 received"),
    );
    expect(progressPut, "the connector recorded no updateActivity carrying the 1 of 2 card").toBeDefined();
    expect(cardLines(contentOf(progressPut?.body as Record<string, unknown>))).toContain("✔ alice@example.com approved via Slack");
    expect(cardLines(progress.card)).toContain("✔ alice@example.com approved via Slack");
    expect(progress.card.actions?.map((a) => [a.type, a.verb, a.data.requestId])).toEqual([
      ["Action.Execute", "approve", id],
      ["Action.Execute", "deny", id],
    ]);
    expect(checkAdaptiveCard(progress.card, { targetVersion: "1.5" })).toEqual([]);
    // The Slack card also moved to 1 of 2 and still has its buttons.
    const slackProgress = await waitSlackUpdate(card, (t) => t.includes("1 of 2 approvals") && t.includes("alice@example.com"));
    expect(hasButtons(slackProgress)).toBe(true);
    expect((await get(id)).status).toBe("pending");

    // 2. Second approval, in Teams: the invoke response is the refreshed, terminal card.
    const answered = await teamsClick(TEAMS.bob, "approve", id);
    expect(cardText(answered)).toContain("You approved this request.");
    expect(cardText(answered)).toContain("Approved by alice@example.com, bob@example.com.");
    expect(cardLines(answered)).toEqual(expect.arrayContaining(["✔ alice@example.com approved via Slack", "✔ bob@example.com approved via Teams"]));
    expect(answered.actions ?? []).toEqual([]);

    // The Slack card is updated through chat.update: final state, no buttons, both reviewers.
    const final = await waitSlackUpdate(card, (t) => t.includes(":white_check_mark: *Approved* · 2 of 2 approvals"));
    expect(hasButtons(final)).toBe(false);
    expect(String(final.args.text)).toMatch(/^Approved: Attach admin role to ci-runner/);
    const finalText = blocksText(final.args.blocks);
    expect(finalText).toMatch(/\*Approved\* by alice@example\.com · .* · via Slack/);
    expect(finalText).toMatch(/\*Approved\* by bob@example\.com · .* · via Teams/);

    // The Teams card everyone else sees is final too.
    const teamsFinal = await waitTeamsCard(id, (t, c) => t.includes("Approved by alice@example.com, bob@example.com.") && !c.actions?.length);
    expect(checkAdaptiveCard(teamsFinal.card, { targetVersion: "1.5" })).toEqual([]);

    // The request holds both decisions, each with the surface it came from.
    const r = await get(id);
    expect(r.status).toBe("approved");
    expect(r.approvals).toEqual({ received: 2, required: 2 });
    expect(r.decisions).toEqual([
      expect.objectContaining({ reviewer: "alice@example.com", decision: "approve", surface: "slack" }),
      expect.objectContaining({ reviewer: "bob@example.com", decision: "approve", surface: "teams" }),
    ]);
    const recorded = (await audit(id)).filter((e) => e.type === "decision.recorded");
    expect(recorded.map((e) => [e.actor.principal, e.actor.surface, e.actor.surfaceUserId])).toEqual([
      ["alice@example.com", "slack", SLACK.alice.id],
      ["bob@example.com", "teams", TEAMS.bob.aadObjectId],
    ]);

    // Exactly one verified request.approved callback.
    const cb = await receiver.waitFor((c) => c.event.data.id === id);
    expect(cb.verified).toBe(true);
    expect(cb.event.type).toBe("request.approved");
    await expect.poll(async () => (await get(id)).deliveries.filter((d) => d.kind === "callback").map((d) => d.status), { timeout: 10_000 }).toEqual(["done"]);
    expect(receiver.received.filter((c) => c.event.data.id === id).map((c) => [c.event.type, c.verified])).toEqual([["request.approved", true]]);
  });

  it("deny in Teams with a reason: the Slack card shows the denial, a later Slack click is refused and changes nothing", async () => {
    const id = await submit("Grant prod DB write to analytics");
    const [card, teams] = await Promise.all([slackCard(id), waitTeamsPosted(id)]);

    const answered = await teamsClick(TEAMS.carol, "deny", id, "  Not during the change freeze ");
    expect(cardText(answered)).toContain("You denied this request.");
    expect(cardText(answered)).toContain("Denied by carol@example.com.");
    expect(answered.actions ?? []).toEqual([]);

    // The Slack card shows who denied it, from Teams, with the reason; the buttons are gone.
    const denied = await waitSlackUpdate(card, (t) => t.includes("*Denied* by carol@example.com"));
    expect(hasButtons(denied)).toBe(false);
    expect(String(denied.args.text)).toMatch(/^Denied: Grant prod DB write to analytics/);
    const deniedText = blocksText(denied.args.blocks);
    expect(deniedText).toMatch(/:no_entry: \*Denied\* by carol@example\.com · .* · via Teams\n> Not during the change freeze/);
    await waitTeamsCard(id, (t, c) => t.includes("Denied by carol@example.com.") && !c.actions?.length);

    const cb = await receiver.waitFor((c) => c.event.data.id === id);
    expect(cb.event.type).toBe("request.denied");
    await expect.poll(async () => (await get(id)).deliveries.filter((d) => d.kind === "callback").map((d) => d.status), { timeout: 10_000 }).toEqual(["done"]);

    // Snapshot everything observable, then click the (stale) Slack card.
    const before = await get(id);
    expect(before.status).toBe("denied");
    expect(before.decisions).toEqual([
      expect.objectContaining({ reviewer: "carol@example.com", decision: "deny", reason: "Not during the change freeze", surface: "teams" }),
    ]);
    const slackUpdatesBefore = slackUpdates(card).length;
    const teamsVersionsBefore = teams.versions.length;
    const callbacksBefore = receiver.received.filter((c) => c.event.data.id === id).length;

    await slackClick(SLACK.bob, card, "countersign.approve");
    const refusal = await ephemeral(SLACK.bob, (t) => t.includes("no longer pending"));
    expect(refusal).toBe(":information_source: This request is no longer pending. This request is already denied. Nothing changed.");
    const refused = (await audit(id)).filter((e) => e.type === "decision.refused");
    expect(refused.map((e) => [e.actor.principal, e.actor.surface, e.data.code])).toEqual([["bob@example.com", "slack", "request_not_pending"]]);

    await sleep(500);
    const after = await get(id);
    expect(after.status).toBe("denied");
    expect(after.decisions).toEqual(before.decisions);
    expect(slackUpdates(card).length).toBe(slackUpdatesBefore);
    expect(teams.versions.length).toBe(teamsVersionsBefore);
    expect(receiver.received.filter((c) => c.event.data.id === id).length).toBe(callbacksBefore);
  });

  it("one person, two surfaces, one vote: approving in Slack then in Teams is refused as already voted", async () => {
    const id = await submit("Rotate the root signing key");
    const [card] = await Promise.all([slackCard(id), waitTeamsPosted(id)]);

    await slackClick(SLACK.alice, card, "countersign.approve");
    expect(await ephemeral(SLACK.alice, (t) => t.includes("Rotate the root signing key"))).toContain("1 of 2 approvals, waiting for 1 more");
    await waitTeamsCard(id, (t) => t.includes("1 of 2 received") && t.includes("alice@example.com"));

    // Same email (Alice@Example.com in the Teams directory): the Teams click is the same reviewer.
    const again = await teamsClick(TEAMS.alice, "approve", id);
    const text = cardText(again);
    expect(text).toContain("Already voted");
    expect(text).toContain("Your decision was not recorded.");
    expect(again.actions?.map((a) => a.verb)).toEqual(["approve", "deny"]);

    const r = await get(id);
    expect(r.status).toBe("pending");
    expect(r.approvals).toEqual({ received: 1, required: 2 });
    expect(r.decisions).toEqual([expect.objectContaining({ reviewer: "alice@example.com", decision: "approve", surface: "slack" })]);
    const refused = (await audit(id)).filter((e) => e.type === "decision.refused");
    expect(refused.map((e) => [e.actor.principal, e.actor.surface, e.actor.surfaceUserId, e.data.code])).toEqual([
      ["alice@example.com", "teams", TEAMS.alice.aadObjectId, "already_voted"],
    ]);
    expect(receiver.received.filter((c) => c.event.data.id === id)).toEqual([]);
  });

  it("broke no Slack or Adaptive Card rule and logged no errors", () => {
    expect(slack.violations).toEqual([]);
    expect(slack.calls.every((c) => c.token === SLACK_TOKEN)).toBe(true);
    for (const a of connector.activities.values()) {
      for (const v of a.versions) expect(checkAdaptiveCard(contentOf(v), { targetVersion: "1.5" })).toEqual([]);
    }
    const errors = out
      .join("")
      .split("\n")
      .filter((l) => l.includes('"level":"error"'));
    expect(errors).toEqual([]);
  });
});
