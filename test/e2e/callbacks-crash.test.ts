import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CreatedKey } from "../../packages/services/src/index.ts";
import { startCallbackReceiver } from "../fakes/callback-receiver.ts";
import { eventually } from "../support/api-helpers.ts";
import { type GatewayProcess, startGateway } from "../support/gateway.ts";

interface Delivery {
  kind: string;
  status: string;
  attempts: number;
}

/**
 * A callback is an outbox row committed with the decision, so killing the gateway after
 * the commit but before a successful delivery loses nothing: the restarted gateway delivers.
 * Runs with the real retry schedule (the second attempt is due 5 s after the first).
 */
describe("callbacks survive SIGKILL between the commit and the delivery", () => {
  let gw: GatewayProcess;
  let agent: CreatedKey;
  let reviewer: CreatedKey;
  let rx: Awaited<ReturnType<typeof startCallbackReceiver>>;

  beforeAll(async () => {
    gw = await startGateway({ engine: "pglite" });
    agent = await gw.createKey({ name: "deploy-bot", owner: "owner@example.com", scopes: ["requests"] });
    reviewer = await gw.createKey({ name: "alice", owner: "alice@example.com", scopes: ["decisions"] });
    rx = await startCallbackReceiver(() => agent.webhookSecret as string);
  });
  afterAll(async () => {
    await rx?.close();
    await gw?.stop();
  });

  const callbackOf = async (id: string) =>
    ((await (await gw.api(`/v1/requests/${id}`, { key: agent.key })).json()) as { status: string; deliveries: Delivery[] }).deliveries.find(
      (d) => d.kind === "callback",
    );

  it("the receiver is down when the decision commits; the gateway is killed; after a restart the event is delivered", async () => {
    rx.failFirst(1_000);
    const res = await gw.api("/v1/requests", {
      method: "POST",
      key: agent.key,
      json: { action: "deploy.service", summary: "Deploy", params: { v: 2 }, callbackUrl: rx.url },
    });
    const { id } = (await res.json()) as { id: string };
    expect((await gw.api(`/v1/requests/${id}/decisions`, { method: "POST", key: reviewer.key, json: { decision: "approve" } })).status).toBe(201);

    // The first attempt failed and was recorded; the retry is scheduled but has not run.
    await eventually(async () => {
      const d = await callbackOf(id);
      return d?.status === "pending" && d.attempts === 1;
    });
    const firstAttempt = rx.received.find((c) => c.event.data.id === id)!;
    expect(firstAttempt).toBeDefined();

    await gw.kill("SIGKILL");
    expect(gw.child.signalCode).toBe("SIGKILL");
    rx.failFirst(0);
    const before = rx.received.length;
    expect(before).toBe(1);

    await gw.restart();
    const delivered = await rx.waitFor((c) => c.event.data.id === id && rx.received.indexOf(c) >= before, 30_000);
    expect(delivered.verified).toBe(true);
    expect(delivered.event).toMatchObject({ type: "request.approved", data: { id, status: "approved" } });
    expect(delivered.headers["webhook-id"]).toBe(firstAttempt.headers["webhook-id"]);
    expect(delivered.body).toBe(firstAttempt.body);
    await eventually(async () => (await callbackOf(id))?.status === "done");
    expect(await callbackOf(id)).toMatchObject({ status: "done", attempts: 2 });
    // The approved request itself survived the kill.
    expect(((await (await gw.api(`/v1/requests/${id}`, { key: agent.key })).json()) as { status: string }).status).toBe("approved");
  });
});
