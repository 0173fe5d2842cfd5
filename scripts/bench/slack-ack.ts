import { blockActionsPayload, formBody, signature, slackUser } from "../../test/fakes/slack-sign.ts";
import type { Engine } from "./lib/db.ts";
import { waitForIdle } from "./lib/gateway.ts";
import { jsonHeaders, keepAliveAgent, pool, send } from "./lib/http.ts";
import { log, SLACK_REVIEWERS, SLACK_SIGNING_SECRET, startBenchEnv } from "./lib/setup.ts";
import { latency, median, percentile, round } from "./lib/stats.ts";

export interface SlackAckOptions {
  engine: Engine;
  pgUrl: string | undefined;
  /** Clicks sent at once in each burst. */
  concurrency: number;
  /** Bursts; the gateway settles (every vote recorded) between bursts. */
  rounds: number;
}

export type SlackAckResult =
  | { engine: Engine; skipped: string }
  | {
      engine: Engine;
      concurrency: number;
      clicks: number;
      rounds: number;
      /** Over every click of the run (a burst of 50 is too small for its own p99). */
      ackMs: { p50: number; p99: number; p999: number; max: number };
      /** Median over bursts of each burst's p50 and slowest ack. */
      perBurstMs: { p50: number; max: number };
      /** Clicks whose vote was committed (checked after the run through the API). */
      decided: number;
      non200: number;
    };

/** Slack's request URL answers 404 (problem+json) when the Slack surface is not mounted. */
export async function slackWired(url: string): Promise<boolean> {
  const agent = keepAliveAgent(1);
  try {
    const r = await send(agent, `${url}/slack/events`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "payload=%7B%7D",
    });
    return r.status !== 404;
  } finally {
    agent.destroy();
  }
}

export async function benchSlackAck(o: SlackAckOptions): Promise<SlackAckResult> {
  log(`slack/${o.engine}: starting gateway`);
  const env = await startBenchEnv(o.engine, o.pgUrl);
  const agent = keepAliveAgent(Math.max(64, o.concurrency));
  try {
    if (!(await slackWired(env.gw.url))) {
      log(`slack/${o.engine}: skipped: Slack not wired (POST /slack/events answers 404)`);
      return { engine: o.engine, skipped: "Slack not wired (POST /slack/events answers 404)" };
    }
    // One extra burst first, not measured: the first clicks warm the JIT, the query plans and the identity cache.
    const total = o.concurrency * (o.rounds + 1);
    log(`slack/${o.engine}: creating ${total} pending requests with cards`);
    const ids: string[] = [];
    await pool(total, 32, async (i) => {
      const body = JSON.stringify({ action: "bench.write", summary: `Slack click ${i}`, params: { i } });
      const r = await send(agent, `${env.gw.url}/v1/requests`, { method: "POST", headers: jsonHeaders(env.agentKey), body });
      if (r.status !== 201) throw new Error(`intake answered ${r.status}: ${r.body}`);
      ids[i] = (JSON.parse(r.body) as { id: string }).id;
    });
    // Let the relay post every card first, so the clicks are not queued behind card posts.
    await waitForIdle(env.gw, { quietMs: 500, maxCpuShare: 0.05 });
    // Each click must come from its request's own card (the gateway refuses a button from any
    // other message), so take every card's channel and ts from what the fake Slack was sent.
    const cardOf = new Map<string, { channel: string; ts: string }>();
    for (const c of env.slack.callsTo("chat.postMessage")) {
      const id = /req_[0-9A-HJKMNP-TV-Z]{26}/.exec(JSON.stringify(c.args.blocks ?? ""))?.[0];
      if (id && c.response.ok) cardOf.set(id, { channel: String(c.response.channel), ts: String(c.response.ts) });
    }
    const missing = ids.filter((id) => !cardOf.has(id)).length;
    if (missing > 0) throw new Error(`slack: ${missing} of ${ids.length} requests have no card posted`);
    const all: number[] = [];
    const perBurst: { p50: number; max: number }[] = [];
    let non200 = 0;
    for (let r = -1; r < o.rounds; r++) {
      const lat: number[] = [];
      // One burst: `concurrency` reviewers click at the same moment, each on a different request.
      await pool(o.concurrency, o.concurrency, async (k) => {
        const i = (r + 1) * o.concurrency + k;
        const who = SLACK_REVIEWERS[i % SLACK_REVIEWERS.length] as (typeof SLACK_REVIEWERS)[number];
        const raw = formBody(
          blockActionsPayload({
            user: slackUser(who.id, who.name),
            channel: cardOf.get(ids[i] as string)?.channel as string,
            messageTs: cardOf.get(ids[i] as string)?.ts as string,
            actionId: "countersign.approve",
            value: ids[i] as string,
          }),
        );
        const ts = Math.floor(Date.now() / 1000);
        const res = await send(agent, `${env.gw.url}/slack/events`, {
          method: "POST",
          headers: {
            "content-type": "application/x-www-form-urlencoded",
            "x-slack-request-timestamp": String(ts),
            "x-slack-signature": signature(SLACK_SIGNING_SECRET, ts, raw),
          },
          body: raw,
        });
        if (res.status !== 200 && r >= 0) non200++;
        lat.push(res.ms);
      });
      // The ack comes first and the vote after it: let this burst's votes and card updates finish.
      await waitForIdle(env.gw, { quietMs: 250, maxCpuShare: 0.1 });
      if (r < 0) continue;
      all.push(...lat);
      perBurst.push({ p50: percentile(lat, 50), max: Math.max(...lat) });
      if ((r + 1) % 5 === 0 || r === o.rounds - 1) {
        log(`slack/${o.engine}: burst ${r + 1}/${o.rounds}: p50 ${round(percentile(lat, 50), 2)} ms, max ${round(Math.max(...lat), 2)} ms`);
      }
    }
    let decided = 0;
    await pool(ids.length - o.concurrency, 16, async (k) => {
      const r = await send(agent, `${env.gw.url}/v1/requests/${ids[k + o.concurrency]}`, { headers: { authorization: `Bearer ${env.agentKey}` } });
      if ((JSON.parse(r.body) as { status: string }).status === "approved") decided++;
    });
    const pooled = latency(all, true);
    return {
      engine: o.engine,
      concurrency: o.concurrency,
      clicks: total - o.concurrency,
      rounds: o.rounds,
      ackMs: { p50: pooled.p50, p99: pooled.p99, p999: pooled.p999 as number, max: pooled.max },
      perBurstMs: { p50: round(median(perBurst.map((x) => x.p50)), 2), max: round(median(perBurst.map((x) => x.max)), 2) },
      decided,
      non200,
    };
  } finally {
    agent.destroy();
    await env.close();
  }
}
