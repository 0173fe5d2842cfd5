import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkAdaptiveCard } from "../../apps/gateway/src/teams/adaptive-card-check.ts";
import {
  BOT_FRAMEWORK_SCOPE,
  type FakeConnector,
  type FakeIdentity,
  generateRogueKey,
  type SignOptions,
  type StoredActivity,
  startFakeConnector,
  startFakeIdentity,
} from "../fakes/fake-bot-framework.ts";
import { type GatewayProcess, startGateway } from "../support/gateway.ts";

const APP_ID = "0b5e0c3c-5d0e-4b8a-9d77-3f0b5c1a2e10";
const PASSWORD = "fake-client-secret-value";
const TENANT = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
const OTHER_TENANT = "deadbeef-0000-4000-8000-000000000000";

const TEAM_A = "19:team-a@thread.tacv2";
const APPROVALS = "19:approvals@thread.tacv2";
const TEAM_B = "19:team-b@thread.tacv2";
const OPS = "19:ops@thread.tacv2";
const NEVER = "19:never-installed@thread.tacv2";
const EVIL_TEAM = "19:evil-team@thread.tacv2";
const TEAM_C = "19:team-c@thread.tacv2";
const GONE = "19:gone@thread.tacv2";
const MENTIONED = "19:mentioned@thread.tacv2";

interface User {
  id: string;
  name: string;
  aadObjectId: string;
  email?: string;
  userPrincipalName?: string;
}
const USERS = {
  alice: {
    id: "29:1alice",
    name: "Alice",
    aadObjectId: "a11ce000-0000-4000-8000-000000000001",
    email: "Alice@Contoso.com",
    userPrincipalName: "alice@contoso.onmicrosoft.com",
  },
  // No email: the UPN is the principal.
  bob: { id: "29:1bob", name: "Bob", aadObjectId: "b0b00000-0000-4000-8000-000000000002", userPrincipalName: "Bob@Contoso.com" },
  carol: { id: "29:1carol", name: "Carol", aadObjectId: "ca201000-0000-4000-8000-000000000003", email: "carol@contoso.com" },
  mallory: { id: "29:1mallory", name: "Mallory", aadObjectId: "3a110000-0000-4000-8000-000000000004", email: "mallory@contoso.com" },
} satisfies Record<string, User>;

const POLICY = `
version: 1
groups:
  approvers: [alice@contoso.com, bob@contoso.com, carol@contoso.com]
channels:
  approvals: { teams: { channel: "${APPROVALS}", team: "${TEAM_A}" } }
  ops: { teams: { channel: "${OPS}", team: "${TEAM_B}" } }
  nowhere: { teams: { channel: "${NEVER}" } }
  evil: { teams: { channel: "${EVIL_TEAM}" } }
  gone: { teams: { channel: "${GONE}", team: "${TEAM_C}" } }
  mentioned: { teams: { channel: "${MENTIONED}" } }
rules:
  - id: iam-two-approvals
    match: { action: "iam.*" }
    effect: require_approval
    approvers: [approvers]
    approvals: 2
    notify: [approvals, ops]
  - id: lost
    match: { action: "lost.*" }
    effect: require_approval
    approvers: [approvers]
    notify: [nowhere]
  - id: evil
    match: { action: "evil.*" }
    effect: require_approval
    approvers: [approvers]
    notify: [evil]
  - id: gone
    match: { action: "gone.*" }
    effect: require_approval
    approvers: [approvers]
    notify: [gone]
  - id: mentioned
    match: { action: "mentioned.*" }
    effect: require_approval
    approvers: [approvers]
    notify: [mentioned]
  - id: one-approval
    effect: require_approval
    approvers: [approvers]
    notify: [approvals]
default: deny
`;

interface CardJson {
  body: { type: string; text?: string; inlines?: { text: string }[]; items?: unknown[] }[];
  actions?: { type: string; verb: string; data: { requestId: string } }[];
}
interface InvokeBody {
  statusCode: number;
  type: string;
  value: CardJson;
}
interface Resource {
  id: string;
  status: string;
  approvals: { required: number; received: number };
  decisions: { reviewer: string; decision: string; reason: string | null; surface: string }[];
  deliveries: { kind: string; status: string; attempts: number; lastError: string | null; destination?: string }[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Every text in a card, flattened, so tests can look for what a reviewer reads. */
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

const contentOf = (a: Record<string, unknown>) => (a.attachments as { contentType: string; content: CardJson }[] | undefined)?.[0];

describe("Microsoft Teams: Adaptive Cards with Universal Actions through botbuilder", () => {
  let gw: GatewayProcess;
  let identity: FakeIdentity;
  let connector: FakeConnector;
  let agentKey: string;
  let reviewerKey: string;
  let adminKey: string;
  let expiring: { id: string };
  const logs: string[] = [];

  beforeAll(async () => {
    identity = await startFakeIdentity({ appId: APP_ID, password: PASSWORD, tenant: TENANT });
    connector = await startFakeConnector({ isValidToken: (t) => identity.isIssued(t) });
    for (const u of Object.values(USERS) as User[]) {
      connector.members.set(u.id, {
        id: u.id,
        name: u.name,
        aadObjectId: u.aadObjectId,
        email: u.email,
        userPrincipalName: u.userPrincipalName,
        tenantId: TENANT,
      });
    }
    gw = await startGateway({
      engine: "pglite",
      policy: POLICY,
      env: {
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
    // The harness stops reading stdout once the gateway listens; keep the log lines.
    gw.child.stdout?.on("data", (c: Buffer) => logs.push(c.toString()));
    agentKey = (await gw.createKey({ name: "deploy-bot", owner: "agent-owner@contoso.com", scopes: ["requests"] })).key;
    reviewerKey = (await gw.createKey({ name: "carol-api", owner: "carol@contoso.com", scopes: ["decisions"] })).key;
    adminKey = (await gw.createKey({ name: "auditor", owner: "auditor@contoso.com", scopes: ["admin"] })).key;

    // Installed in team A (conversationUpdate) and team B (installationUpdate).
    expect(
      (
        await send(
          membership("conversationUpdate", TEAM_A, { membersAdded: [{ id: `28:${APP_ID}` }], channelData: teamData(TEAM_A, { eventType: "teamMemberAdded" }) }),
        )
      ).status,
    ).toBe(200);
    expect((await send(membership("installationUpdate", TEAM_B, { action: "add", channelData: teamData(TEAM_B) }))).status).toBe(200);
    // Started now, checked at the end: the sweeper expires it meanwhile.
    expiring = await submit({ action: "deploy.expiring", summary: "Expires unanswered", expiresIn: 10 });
  });

  afterAll(async () => {
    await gw?.stop();
    await connector?.close();
    await identity?.close();
  });

  // -- helpers ---------------------------------------------------------------------------

  function teamData(team: string, extra: Record<string, unknown> = {}, tenant = TENANT) {
    return { tenant: { id: tenant }, team: { id: team, name: `Team ${team}` }, ...extra };
  }

  function membership(type: string, team: string, extra: Record<string, unknown>, tenant = TENANT) {
    return {
      type,
      id: `f:${Math.random().toString(36).slice(2)}`,
      channelId: "msteams",
      serviceUrl: connector.serviceUrl,
      timestamp: new Date().toISOString(),
      from: { id: USERS.alice.id, aadObjectId: USERS.alice.aadObjectId },
      recipient: { id: `28:${APP_ID}`, name: "Countersign" },
      conversation: { id: team, conversationType: "channel", isGroup: true, tenantId: tenant },
      ...extra,
    };
  }

  function invoke(user: User, verb: string, requestId: string, o: { reason?: string; channel?: string; tenant?: string } = {}) {
    const channel = o.channel ?? APPROVALS;
    const tenant = o.tenant ?? TENANT;
    return {
      type: "invoke",
      name: "adaptiveCard/action",
      id: `f:${Math.random().toString(36).slice(2)}`,
      channelId: "msteams",
      serviceUrl: connector.serviceUrl,
      timestamp: new Date().toISOString(),
      from: { id: user.id, name: user.name, aadObjectId: user.aadObjectId },
      recipient: { id: `28:${APP_ID}`, name: "Countersign" },
      conversation: { id: `${channel};messageid=1700000000000`, conversationType: "channel", isGroup: true, tenantId: tenant },
      channelData: { tenant: { id: tenant }, team: { id: channel === OPS ? TEAM_B : TEAM_A }, channel: { id: channel } },
      replyToId: "1700000000000",
      value: {
        action: { type: "Action.Execute", id: verb, verb, data: { requestId, ...(o.reason !== undefined ? { reason: o.reason } : {}) } },
        trigger: "manual",
      },
    };
  }

  async function send(activity: object, token?: string | null, tokenOptions: Partial<SignOptions> = {}) {
    const bearer = token === undefined ? await identity.signActivityToken({ appId: APP_ID, serviceUrl: connector.serviceUrl, ...tokenOptions }) : token;
    const res = await fetch(`${gw.url}/api/messages`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
      body: JSON.stringify(activity),
    });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {}
    return { status: res.status, type: res.headers.get("content-type"), body };
  }

  async function click(user: User, verb: string, requestId: string, o: { reason?: string; channel?: string } = {}) {
    const r = await send(invoke(user, verb, requestId, o));
    expect(r.status).toBe(200);
    const body = r.body as InvokeBody;
    expect(body.statusCode).toBe(200);
    expect(body.type).toBe("application/vnd.microsoft.card.adaptive");
    expect(checkAdaptiveCard(body.value, { targetVersion: "1.5" })).toEqual([]);
    return body.value;
  }

  async function submit(body: Record<string, unknown>): Promise<{ id: string }> {
    const res = await gw.api("/v1/requests", { method: "POST", key: agentKey, json: { params: { n: 1 }, ...body } });
    expect(res.status).toBe(201);
    return (await res.json()) as { id: string };
  }

  async function get(id: string): Promise<Resource> {
    return (await (await gw.api(`/v1/requests/${id}`, { key: agentKey })).json()) as Resource;
  }

  /** The card Countersign posted for `requestId` into `channel`, as the connector holds it now. */
  function posted(requestId: string, channel = APPROVALS): StoredActivity | undefined {
    return [...connector.activities.values()].find(
      (a) => a.conversationId.startsWith(`${channel};`) && JSON.stringify(a.versions[0]).includes(`"requestId":"${requestId}"`),
    );
  }
  const waitPosted = (requestId: string, channel = APPROVALS) => waitFor(`card for ${requestId} in ${channel}`, () => posted(requestId, channel));
  const waitCard = (requestId: string, channel: string, pred: (text: string, card: CardJson) => boolean) =>
    waitFor(`card update for ${requestId} in ${channel}`, () => {
      const a = posted(requestId, channel);
      const c = a && contentOf(a.activity)?.content;
      return c && pred(cardText(c), c) ? a : undefined;
    });

  // -- tests -----------------------------------------------------------------------------

  it("posts a valid Universal Actions card proactively, with outbound tokens from the login endpoint", async () => {
    const r = await submit({
      action: "db.export",
      summary: "Export the customers table",
      environment: "production",
      risk: "high",
      rationale: "quarterly audit",
    });
    const a = await waitPosted(r.id);
    const att = contentOf(a.versions[0] as Record<string, unknown>);
    expect(att?.contentType).toBe("application/vnd.microsoft.card.adaptive");
    expect(checkAdaptiveCard(att?.content, { targetVersion: "1.5" })).toEqual([]);
    expect(Buffer.byteLength(JSON.stringify(a.versions[0]))).toBeLessThan(28 * 1024);
    const text = cardText(att?.content);
    for (const s of [
      "Approval needed",
      "Export the customers table",
      "db.export",
      "production",
      "HIGH",
      "deploy-bot",
      "agent-owner@contoso.com",
      "quarterly audit",
      "one-approval",
      "0 of 1",
    ]) {
      expect(text).toContain(s);
    }
    expect(att?.content.actions?.map((x) => [x.type, x.verb, x.data.requestId])).toEqual([
      ["Action.Execute", "approve", r.id],
      ["Action.Execute", "deny", r.id],
    ]);
    // Posted through team A's reference into the configured channel, with a real client-credentials token.
    const create = connector.callsOf("createConversation").find((c) => JSON.stringify(c.body).includes(r.id));
    expect((create?.body as { channelData?: { channel?: { id?: string } } } | undefined)?.channelData?.channel?.id).toBe(APPROVALS);
    expect(identity.isIssued(create?.authorization?.replace("Bearer ", "") ?? "")).toBe(true);
    expect(identity.tokenRequests.length).toBeGreaterThan(0);
    expect(identity.tokenRequests.every((t) => t.ok && t.clientId === APP_ID && t.scope === "https://api.botframework.com/.default")).toBe(true);
    expect(gw.logs.join("")).toContain("Microsoft Teams is enabled");
  });

  it("approves in the card: the decision commits, the clicker gets the refreshed card, every card is updated", async () => {
    const r = await submit({ action: "deploy.service", summary: "Deploy api v2" });
    await waitPosted(r.id);
    const memberCalls = connector.callsOf("getMember").length;

    const card = await click(USERS.alice, "approve", r.id, { reason: "  looks good " });
    expect(cardText(card)).toContain("You approved this request.");
    expect(cardText(card)).toContain("Approved by alice@contoso.com.");
    expect(card.actions ?? []).toEqual([]);

    const now = await get(r.id);
    expect(now.status).toBe("approved");
    expect(now.decisions).toEqual([
      { reviewer: "alice@contoso.com", decision: "approve", reason: "looks good", surface: "teams", decidedAt: expect.any(String) },
    ]);

    // The reviewer was looked up through getMember, in the team (botbuilder asks with the team id).
    const lookups = connector.callsOf("getMember").slice(memberCalls);
    expect(lookups.map((c) => [c.params.conversationId, c.params.memberId])).toEqual([[TEAM_A, USERS.alice.id]]);

    // Everyone else sees the outcome: the posted card is updated in place (updateActivity).
    const updated = await waitCard(r.id, APPROVALS, (t, c) => t.includes("Approved by alice@contoso.com.") && !c.actions?.length);
    const put = connector.callsOf("updateActivity").find((c) => c.params.conversationId === updated.conversationId);
    expect(put?.params.activityId).toBe(updated.activityId);
    expect(checkAdaptiveCard(contentOf(updated.activity)?.content, { targetVersion: "1.5" })).toEqual([]);

    // A second lookup for the same user comes from the cache.
    const r2 = await submit({ action: "deploy.service", summary: "Deploy api v3" });
    await waitPosted(r2.id);
    const before = connector.callsOf("getMember").length;
    await click(USERS.alice, "approve", r2.id);
    expect(connector.callsOf("getMember").length).toBe(before);
  });

  it("answers a redelivered invoke with the outcome of the first delivery, deciding once", async () => {
    const r = await submit({ action: "deploy.service", summary: "Deploy api v4" });
    await waitPosted(r.id);
    const activity = invoke(USERS.carol, "approve", r.id);
    const [a, b] = await Promise.all([send(activity), send(activity)]);
    for (const res of [a, b]) expect(cardText((res.body as InvokeBody).value)).toContain("You approved this request.");
    expect((await get(r.id)).decisions).toHaveLength(1);
  });

  it("an @mention registers its channel and tells the admin the ids for the policy", async () => {
    const mention = {
      ...membership("message", MENTIONED, { channelData: teamData(TEAM_B, { channel: { id: MENTIONED } }) }),
      conversation: { id: `${MENTIONED};messageid=1700000000123`, conversationType: "channel", isGroup: true, tenantId: TENANT },
      text: "<at>Countersign</at> where",
    };
    expect((await send(mention)).status).toBe(200);
    const reply = connector.callsOf("replyToActivity").at(-1);
    expect((reply?.body as { text?: string } | undefined)?.text).toContain(`channel "${MENTIONED}" and team "${TEAM_B}"`);
    // Registered without a team in the policy: the channel is now reachable.
    const r = await submit({ action: "mentioned.thing", summary: "Posted where the bot was mentioned" });
    await waitPosted(r.id, MENTIONED);
  });

  it("forgets a team the app was removed from: its channels become undeliverable", async () => {
    expect((await send(membership("installationUpdate", TEAM_C, { action: "add", channelData: teamData(TEAM_C) }))).status).toBe(200);
    expect((await send(membership("installationUpdate", TEAM_C, { action: "remove", channelData: teamData(TEAM_C) }))).status).toBe(200);
    const r = await submit({ action: "gone.thing", summary: "Posted after the app was removed" });
    const card = await waitFor("undeliverable card", async () => (await get(r.id)).deliveries.find((x) => x.kind === "teams.card"));
    expect(card).toMatchObject({ status: "undeliverable", destination: "gone" });
    expect(card.lastError).toContain(`(team ${TEAM_C})`);
  });

  it("deny needs a reason; with one it denies, and a UPN stands in for a missing email", async () => {
    const r = await submit({ action: "db.drop", summary: "Drop the staging database" });
    await waitPosted(r.id);

    const refused = await click(USERS.bob, "deny", r.id, { reason: "   " });
    expect(cardText(refused)).toContain("A reason is required to deny");
    expect(refused.actions?.map((a) => a.verb)).toEqual(["approve", "deny"]);
    expect((await get(r.id)).decisions).toEqual([]);

    const card = await click(USERS.bob, "deny", r.id, { reason: "not during the freeze" });
    expect(cardText(card)).toContain("You denied this request.");
    const now = await get(r.id);
    expect(now.status).toBe("denied");
    expect(now.decisions[0]).toMatchObject({ reviewer: "bob@contoso.com", decision: "deny", reason: "not during the freeze", surface: "teams" });
    await waitCard(r.id, APPROVALS, (t) => t.includes("Denied by bob@contoso.com.") && t.includes("not during the freeze"));
  });

  it("counts a quorum across reviewers and keeps every card in step", async () => {
    const r = await submit({ action: "iam.role.attach", summary: "Attach AdministratorAccess", environment: "production" });
    await waitPosted(r.id, APPROVALS);
    await waitPosted(r.id, OPS);

    const first = await click(USERS.alice, "approve", r.id);
    expect(cardText(first)).toContain("1 of 2 approvals so far");
    expect(first.actions?.map((a) => a.verb)).toEqual(["approve", "deny"]);
    expect((await get(r.id)).status).toBe("pending");
    for (const ch of [APPROVALS, OPS]) await waitCard(r.id, ch, (t) => t.includes("1 of 2") && t.includes("alice@contoso.com"));

    // Refused: a second vote by the same reviewer.
    const again = await click(USERS.alice, "approve", r.id);
    expect(cardText(again)).toContain("Already voted");

    const second = await click(USERS.bob, "approve", r.id, { channel: OPS });
    expect(cardText(second)).toContain("Approved by alice@contoso.com, bob@contoso.com.");
    const now = await get(r.id);
    expect(now.status).toBe("approved");
    expect(now.decisions.map((d) => d.reviewer)).toEqual(["alice@contoso.com", "bob@contoso.com"]);
    for (const ch of [APPROVALS, OPS]) await waitCard(r.id, ch, (t, c) => t.includes("Approved by alice@contoso.com, bob@contoso.com.") && !c.actions?.length);

    // Refused: the request is no longer pending.
    const late = await click(USERS.carol, "approve", r.id);
    expect(cardText(late)).toContain("Request is no longer pending");
  });

  it("refuses self-approval and non-approvers with a card that says why, and audits the refusal", async () => {
    const r = await submit({ action: "secrets.rotate", summary: "Rotate the signing key", onBehalfOf: "alice@contoso.com" });
    await waitPosted(r.id);

    const self = await click(USERS.alice, "approve", r.id);
    expect(cardText(self)).toContain("Self-approval is forbidden");
    expect(cardText(self)).toContain("Your decision was not recorded.");
    const outsider = await click(USERS.mallory, "approve", r.id);
    expect(cardText(outsider)).toContain("Not an approver");

    const now = await get(r.id);
    expect(now.status).toBe("pending");
    expect(now.decisions).toEqual([]);
    const audit = await auditFor(r.id);
    const refusals = audit.filter((e) => e.type === "decision.refused");
    expect(refusals.map((e) => [e.actor.principal, e.actor.surface, e.actor.surfaceUserId, (e.data as { code: string }).code])).toEqual([
      ["alice@contoso.com", "teams", USERS.alice.aadObjectId, "self_approval_forbidden"],
      ["mallory@contoso.com", "teams", USERS.mallory.aadObjectId, "not_an_approver"],
    ]);
  });

  it("audits a click from someone Teams cannot vouch for (no member record), as an unverified actor (issue #11)", async () => {
    const r = await submit({ action: "secrets.rotate", summary: "Rotate by a stranger" });
    await waitPosted(r.id);
    const stranger: User = { id: "29:1stranger", name: "Stranger", aadObjectId: "5a7a4000-0000-4000-8000-000000000099" };
    const card = await click(stranger, "approve", r.id);
    expect(cardText(card)).toContain("Your decision was not recorded.");
    expect((await get(r.id)).decisions).toEqual([]);
    const refused = (await auditFor(r.id)).filter((e) => e.type === "decision.refused");
    expect(refused.map((e) => [e.actor.type, e.actor.surface, e.actor.surfaceUserId, (e.data as { code: string }).code])).toEqual([
      ["unverified", "teams", stranger.aadObjectId, "reviewer_unverified"],
    ]);
  });

  it("rejects activities that fail Bot Framework authentication with 401 and writes nothing", async () => {
    const r = await submit({ action: "net.firewall.open", summary: "Open port 22" });
    await waitPosted(r.id);
    const rogue = await generateRogueKey();
    const base = { appId: APP_ID, serviceUrl: connector.serviceUrl };
    const cases: [string, () => Promise<string | null>][] = [
      ["wrong audience", () => identity.signActivityToken({ ...base, audience: "some-other-bot" })],
      ["wrong issuer", () => identity.signActivityToken({ ...base, issuer: "https://evil.example.com" })],
      ["expired token", () => identity.signActivityToken({ ...base, expiresIn: -600, notBefore: -3600 })],
      ["serviceUrl mismatch", () => identity.signActivityToken({ ...base, serviceUrl: "https://smba.trafficmanager.net/emea/" })],
      ["bad signature", () => identity.signActivityToken({ ...base, key: rogue })],
      ["no token", async () => null],
    ];
    const callsBefore = connector.calls.length;
    const auditBefore = (await auditFor(r.id)).length;
    for (const [name, token] of cases) {
      const res = await send(invoke(USERS.alice, "approve", r.id), await token());
      expect([name, res.status]).toEqual([name, 401]);
      expect(res.type).toContain("application/problem+json");
      // An installation with a bad token is not stored either.
      const install = await send(membership("conversationUpdate", EVIL_TEAM, { channelData: teamData(EVIL_TEAM) }), await token());
      expect([name, install.status]).toEqual([name, 401]);
    }
    expect(connector.calls.length).toBe(callsBefore);
    const now = await get(r.id);
    expect(now.status).toBe("pending");
    expect(now.decisions).toEqual([]);
    expect((await auditFor(r.id)).length).toBe(auditBefore);
    expect(logs.join("")).toContain("failed Bot Framework authentication");
  });

  it("refuses a validly signed activity from another tenant with 403 and writes nothing", async () => {
    const r = await submit({ action: "net.firewall.open", summary: "Open port 3389" });
    await waitPosted(r.id);
    const callsBefore = connector.calls.length;
    const auditBefore = (await auditFor(r.id)).length;

    const click = await send(invoke(USERS.alice, "approve", r.id, { tenant: OTHER_TENANT }));
    expect(click.status).toBe(403);
    const install = await send(membership("conversationUpdate", EVIL_TEAM, { channelData: teamData(EVIL_TEAM, {}, OTHER_TENANT) }, OTHER_TENANT));
    expect(install.status).toBe(403);

    expect(connector.calls.length).toBe(callsBefore);
    expect((await get(r.id)).decisions).toEqual([]);
    expect((await auditFor(r.id)).length).toBe(auditBefore);
    // The refused installation stored nothing: that team's channel is still undeliverable.
    const evil = await submit({ action: "evil.thing", summary: "Post into the other tenant" });
    const d = await waitFor("undeliverable evil card", async () => (await get(evil.id)).deliveries.find((x) => x.kind === "teams.card"));
    expect(d.status).toBe("undeliverable");
  });

  it("reports a channel the bot was never installed in as undeliverable, on the request and in the logs", async () => {
    const r = await submit({ action: "lost.thing", summary: "Nobody will see this card" });
    const card = await waitFor("undeliverable card", async () =>
      (await get(r.id)).deliveries.find((x) => x.kind === "teams.card" && x.status === "undeliverable"),
    );
    expect(card.destination).toBe("nowhere");
    expect(card.lastError).toContain(`never installed where it can post to channel ${NEVER}`);
    const job = await waitFor("failed post job", async () => (await get(r.id)).deliveries.find((x) => x.kind === "teams.post" && x.status === "failed"));
    expect(job.attempts).toBe(1);
    const line = logs
      .join("")
      .split("\n")
      .find((l) => l.includes('"message":"teams: approval card is undeliverable"') && l.includes(r.id));
    expect(line).toContain('"level":"error"');
    expect(line).toContain(NEVER);
    expect(connector.callsOf("createConversation").some((c) => JSON.stringify(c.body).includes(r.id))).toBe(false);
  });

  it("updates the card after a decision from another surface (API; a Slack decision takes the same path) and on cancellation", async () => {
    const viaApi = await submit({ action: "deploy.service", summary: "Deploy web v9" });
    await waitPosted(viaApi.id);
    const d = await gw.api(`/v1/requests/${viaApi.id}/decisions`, { method: "POST", key: reviewerKey, json: { decision: "approve", reason: "ticket OPS-42" } });
    expect(d.status).toBe(201);
    await waitCard(viaApi.id, APPROVALS, (t, c) => t.includes("Approved by carol@contoso.com.") && t.includes("via API") && !c.actions?.length);

    const cancelled = await submit({ action: "deploy.service", summary: "Deploy web v10" });
    await waitPosted(cancelled.id);
    expect((await gw.api(`/v1/requests/${cancelled.id}/cancel`, { method: "POST", key: agentKey, json: {} })).status).toBe(200);
    await waitCard(cancelled.id, APPROVALS, (t, c) => t.includes("Cancelled by the requester.") && !c.actions?.length);
  });

  it("retries throttled card updates (429 with Retry-After, 412) with backoff until they land", async () => {
    const r = await submit({ action: "deploy.service", summary: "Deploy under throttling" });
    const card = await waitPosted(r.id);
    // botbuilder itself retries a 429 with Retry-After three times; the fourth reaches the outbox.
    connector.injectFaults("updateActivity", 4, { status: 429, retryAfter: 1, conversation: card.conversationId });
    connector.injectFaults("updateActivity", 1, { status: 412, conversation: card.conversationId });
    await gw.api(`/v1/requests/${r.id}/decisions`, { method: "POST", key: reviewerKey, json: { decision: "approve" } });

    await waitCard(r.id, APPROVALS, (t) => t.includes("Approved by carol@contoso.com."), 30_000);
    const statuses = connector
      .callsOf("updateActivity")
      .filter((c) => c.params.conversationId === card.conversationId)
      .map((c) => c.status);
    expect(statuses).toEqual([429, 429, 429, 429, 412, 200]);
    const job = (await get(r.id)).deliveries.find((x) => x.kind === "teams.update");
    expect(job).toMatchObject({ status: "done", attempts: 3 });
  });

  it("updates the card when the request expires", async () => {
    await waitCard(expiring.id, APPROVALS, (t, c) => t.includes("Expired: nobody decided in time.") && !c.actions?.length, 30_000);
    expect((await get(expiring.id)).status).toBe("expired");
  });

  async function auditFor(requestId: string) {
    const res = await gw.api("/v1/audit?limit=1000", { key: adminKey });
    const body = (await res.json()) as {
      data: {
        type: string;
        requestId: string | null;
        actor: { type: string; principal: string | null; surface: string | null; surfaceUserId: string | null };
        data: unknown;
      }[];
    };
    return body.data.filter((e) => e.requestId === requestId);
  }
});
