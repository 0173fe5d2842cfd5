import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeConnector, type StoredActivity, startFakeConnector } from "../fakes/fake-bot-framework.ts";
import { type GatewayProcess, startGateway } from "../support/gateway.ts";

// Bot Framework Emulator mode (TEAMS_DEV_NO_AUTH=true): no app id, no JWTs in either
// direction. The fake connector plays the Emulator, which accepts unauthenticated calls.
const TEAM = "19:dev-team@thread.tacv2";
const CHANNEL = "19:dev-approvals@thread.tacv2";
const TENANT = "00000000-0000-4000-8000-00000000dev0";
const REVIEWER = { id: "29:dev-alice", name: "Alice", aadObjectId: "a11ce000-0000-4000-8000-0000000000de", email: "alice@dev.example" };

const POLICY = `
version: 1
channels:
  dev: { teams: { channel: "${CHANNEL}", team: "${TEAM}" } }
rules:
  - id: anything
    effect: require_approval
    approvers: ["*"]
    notify: [dev]
default: deny
`;

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

describe("Microsoft Teams in Bot Framework Emulator mode (TEAMS_DEV_NO_AUTH)", () => {
  let connector: FakeConnector;
  let gw: GatewayProcess;
  let agentKey: string;

  beforeAll(async () => {
    connector = await startFakeConnector({ anonymous: true });
    connector.members.set(REVIEWER.id, { ...REVIEWER, tenantId: TENANT });
    gw = await startGateway({ engine: "pglite", policy: POLICY, env: { TEAMS_DEV_NO_AUTH: "true" } });
    agentKey = (await gw.createKey({ name: "dev-bot", owner: "dev-lead@dev.example", scopes: ["requests"] })).key;
  });

  afterAll(async () => {
    await gw?.stop();
    await connector?.close();
  });

  const activityBase = (conversationId: string) => ({
    id: `e:${Math.random().toString(36).slice(2)}`,
    channelId: "msteams",
    serviceUrl: connector.serviceUrl,
    timestamp: new Date().toISOString(),
    recipient: { id: "28:countersign", name: "Countersign" },
    conversation: { id: conversationId, conversationType: "channel", isGroup: true, tenantId: TENANT },
  });

  // No Authorization header anywhere: that is what emulator mode means.
  async function send(activity: object) {
    const res = await fetch(`${gw.url}/api/messages`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(activity) });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as { value?: unknown }) : undefined };
  }

  const cardFor = (requestId: string): StoredActivity | undefined =>
    [...connector.activities.values()].find((a) => a.conversationId.startsWith(`${CHANNEL};`) && JSON.stringify(a.versions[0]).includes(requestId));

  it("posts the card proactively, and a click on it decides and updates the card", async () => {
    // Installing the app in the team gives the bot the conversation reference it posts through.
    const install = await send({
      ...activityBase(TEAM),
      type: "conversationUpdate",
      from: { id: REVIEWER.id, aadObjectId: REVIEWER.aadObjectId },
      membersAdded: [{ id: "28:countersign" }],
      channelData: { tenant: { id: TENANT }, team: { id: TEAM, name: "Dev" }, eventType: "teamMemberAdded" },
    });
    expect(install.status).toBe(200);

    const created = await gw.api("/v1/requests", {
      method: "POST",
      key: agentKey,
      json: { action: "deploy.preview", summary: "Deploy the preview build", params: { build: 42 } },
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };

    const card = await waitFor(`the card for ${id}`, () => cardFor(id));
    const post = connector.callsOf("createConversation").find((c) => JSON.stringify(c.body).includes(id));
    expect(post?.status).toBe(201);
    expect(post?.authorization).toBeUndefined();
    const teamsJob = ((await (await gw.api(`/v1/requests/${id}`, { key: agentKey })).json()) as { deliveries: { kind: string; status: string }[] }).deliveries;
    expect(teamsJob).toContainEqual(expect.objectContaining({ kind: "teams.card", status: "posted" }));

    const click = await send({
      ...activityBase(`${CHANNEL};messageid=${card.activityId}`),
      type: "invoke",
      name: "adaptiveCard/action",
      from: { id: REVIEWER.id, name: REVIEWER.name, aadObjectId: REVIEWER.aadObjectId },
      channelData: { tenant: { id: TENANT }, team: { id: TEAM }, channel: { id: CHANNEL } },
      replyToId: card.activityId,
      value: { action: { type: "Action.Execute", id: "approve", verb: "approve", data: { requestId: id } }, trigger: "manual" },
    });
    expect(click.status).toBe(200);
    expect(JSON.stringify(click.body?.value)).toContain("You approved this request.");

    const after = (await (await gw.api(`/v1/requests/${id}`, { key: agentKey })).json()) as {
      status: string;
      decisions: { reviewer: string; surface: string }[];
    };
    expect(after.status).toBe("approved");
    expect(after.decisions).toEqual([expect.objectContaining({ reviewer: "alice@dev.example", surface: "teams" })]);
    // The posted card itself is brought up to date, proactively, like in authenticated mode.
    await waitFor("the card update", () => (JSON.stringify(cardFor(id)?.activity).includes("Approved by alice@dev.example") ? true : undefined));
  });
});
