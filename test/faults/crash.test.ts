import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startCallbackReceiver } from "../fakes/callback-receiver.ts";
import { runCli } from "../support/api-helpers.ts";
import { freshPostgresUrl } from "../support/db.ts";
import { type GatewayProcess, startGateway } from "../support/gateway.ts";
import { call, callbacksSettled, callbackViolations, FAULT_POLICY, lifecycleViolations, REVIEWERS, sealingViolations, sleep } from "./support.ts";

const KILLS = 20;
const MIN_REQUESTS = 300;

interface Ack {
  requestId: string;
  reviewer: string;
  decision: "approve" | "deny";
}

/**
 * SIGKILL at random moments while agents submit and reviewers decide, then restart, over
 * and over. Whatever the gateway acknowledged must survive; what it did not may or may not
 * have happened, but never half-way.
 */
describe.skipIf(!inject("pgUrl"))("crash: the gateway is SIGKILLed at random moments under load (PostgreSQL)", () => {
  let gw: GatewayProcess;
  let db: { url: string; drop: () => Promise<void> };
  let rx: Awaited<ReturnType<typeof startCallbackReceiver>>;
  let secret = "";
  const keys = { agent: "", admin: "", reviewers: new Map<string, string>() };

  beforeAll(async () => {
    db = await freshPostgresUrl();
    gw = await startGateway({
      databaseUrl: db.url,
      policy: FAULT_POLICY,
      env: { COUNTERSIGN_RATE_LIMIT: "0", COUNTERSIGN_RETRY_SCALE: "0.01" },
    });
    const agent = await gw.createKey({ name: "crash-bot", owner: "owner@example.com", scopes: ["requests"] });
    keys.agent = agent.key;
    secret = agent.webhookSecret as string;
    keys.admin = (await gw.createKey({ name: "auditor", owner: "auditor@example.com", scopes: ["admin"] })).key;
    for (const r of REVIEWERS.slice(0, 4)) keys.reviewers.set(r, (await gw.createKey({ name: r, owner: r, scopes: ["decisions"] })).key);
    rx = await startCallbackReceiver(() => secret);
  });

  afterAll(async () => {
    await rx?.close();
    await gw?.stop();
    await db?.drop();
  });

  it(`loses no acknowledged write across ${KILLS} kills`, { timeout: 480_000 }, async () => {
    const created = new Map<string, string>(); // idempotency key -> request id, for 2xx answers only
    const acks: Ack[] = [];
    let kills = 0;
    let draining = false;
    let seq = 0;
    const restarts: number[] = [];
    const retryUntil = (ms: number) => {
      const deadline = Date.now() + ms;
      return () => Date.now() < deadline;
    };
    const unexpected: string[] = [];

    // Clients retry what they did not get an answer for, as a real agent or reviewer would.
    const submit = async (n: number): Promise<{ id: string; status: string } | null> => {
      const kind = n % 10 === 0 ? "auto.read" : n % 3 === 0 ? "single.deploy" : "quorum.deploy";
      for (const more = retryUntil(120_000); more(); ) {
        const r = await call(`${gw.url}/v1/requests`, {
          key: keys.agent,
          json: { action: kind, summary: `crash ${n}`, params: { n }, callbackUrl: rx.url },
          headers: { "idempotency-key": `crash-${n}` },
          timeoutMs: 10_000,
        });
        if (r.status === 200 || r.status === 201) {
          const body = r.body as { id: string; status: string };
          created.set(`crash-${n}`, body.id);
          return body;
        }
        if (r.status !== 0 && r.status !== 503) unexpected.push(`submit ${n}: ${r.status} ${r.text.slice(0, 200)}`);
        await sleep(100 + Math.random() * 200);
      }
      unexpected.push(`submit ${n}: no answer within 120 s`);
      return null;
    };
    const vote = async (requestId: string, reviewer: string, decision: "approve" | "deny") => {
      for (const more = retryUntil(120_000); more(); ) {
        const r = await call(`${gw.url}/v1/requests/${requestId}/decisions`, {
          key: keys.reviewers.get(reviewer) as string,
          json: { decision },
          timeoutMs: 10_000,
        });
        if (r.status === 201) {
          acks.push({ requestId, reviewer, decision });
          return;
        }
        // Refusals are final answers: the request closed, or an earlier attempt of ours committed.
        if (r.status === 409) return;
        if (r.status !== 0 && r.status !== 503) {
          unexpected.push(`vote ${requestId} ${reviewer}: ${r.status} ${r.text.slice(0, 200)}`);
          return;
        }
        await sleep(100 + Math.random() * 200);
      }
      unexpected.push(`vote ${requestId} ${reviewer}: no answer within 120 s`);
    };
    const worker = async () => {
      while (!draining && (seq < MIN_REQUESTS || kills < KILLS)) {
        const n = seq++;
        const req = await submit(n);
        if (req?.status !== "pending") continue;
        const voters = [...keys.reviewers.keys()].sort(() => Math.random() - 0.5).slice(0, 1 + (n % 3));
        await Promise.all(voters.map((v) => vote(req.id, v, Math.random() < 0.8 ? "approve" : "deny")));
      }
    };
    const progress = () => created.size + acks.length;
    const killer = async () => {
      while (kills < KILLS) {
        // Kill while work is flowing: once this incarnation has answered something, at a random moment.
        const before = progress();
        for (const more = retryUntil(60_000); more() && progress() === before; ) await sleep(20);
        await sleep(300 + Math.random() * 2_500);
        const t = Date.now();
        await gw.restart(); // SIGKILL, then start again on the same port and database
        restarts.push(Date.now() - t);
        kills++;
        if (process.env.FAULTS_VERBOSE)
          console.info(`kill ${kills}: restart ${Date.now() - t} ms, ${seq} submitted, ${created.size} acknowledged, ${acks.length} votes`);
      }
    };

    const workers = Array.from({ length: 8 }, worker);
    await killer();
    // The gateway stays up now: the workload reaches its size, clients finish what they were doing, then the checks run.
    for (const more = retryUntil(180_000); more() && seq < MIN_REQUESTS; ) await sleep(100);
    draining = true;
    await Promise.all(workers);
    expect(kills).toBeGreaterThanOrEqual(KILLS);
    expect(unexpected).toEqual([]);
    expect(created.size).toBe(seq);
    expect(seq).toBeGreaterThanOrEqual(MIN_REQUESTS);

    // Every acknowledged submission exists; every acknowledged vote is in its request.
    const lost: string[] = [];
    const byRequest = new Map<string, Ack[]>();
    for (const a of acks) byRequest.set(a.requestId, [...(byRequest.get(a.requestId) ?? []), a]);
    for (const id of new Set([...created.values(), ...byRequest.keys()])) {
      const r = await call(`${gw.url}/v1/requests/${id}`, { key: keys.admin });
      if (r.status !== 200) {
        lost.push(`${id}: GET answered ${r.status}`);
        continue;
      }
      const body = r.body as { decisions: { reviewer: string; decision: string }[] };
      for (const a of byRequest.get(id) ?? []) {
        if (!body.decisions.some((d) => d.reviewer === a.reviewer && d.decision === a.decision))
          lost.push(`${id}: acknowledged ${a.decision} by ${a.reviewer} is missing`);
      }
    }
    expect(lost).toEqual([]);

    // Callbacks: leases of killed workers run out, then every terminal request is delivered.
    const settled = await callbacksSettled(db.url);
    expect(settled).toMatchObject({ open: 0, failed: 0 });
    expect(await callbackViolations(db.url, rx.received)).toEqual([]);
    expect(await lifecycleViolations(db.url)).toEqual([]);
    // Checkpointers were killed mid-round too: nothing half-sealed, nothing sealed twice.
    expect(await sealingViolations(db.url)).toEqual([]);

    const verify = await runCli(["audit", "verify"], { DATABASE_URL: db.url, COUNTERSIGN_DATA_DIR: gw.dataDir });
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toMatch(/audit log ok/);
    console.info(
      `crash: ${kills} kills (restart median ${restarts.sort((a, b) => a - b)[restarts.length >> 1]} ms), ${created.size} requests, ${acks.length} acknowledged votes, ${rx.received.length} callback deliveries (${settled.done} events)`,
    );
  });
});
