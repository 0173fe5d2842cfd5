import { Agent } from "node:http";
import type { Engine } from "./lib/db.ts";
import { type BenchGateway, waitForIdle } from "./lib/gateway.ts";
import { jsonHeaders, keepAliveAgent, pool, send } from "./lib/http.ts";
import { type BenchEnv, log, startBenchEnv } from "./lib/setup.ts";
import { percentile, round } from "./lib/stats.ts";

export interface WaitersOptions {
  engine: Engine;
  pgUrl: string | undefined;
  waiters: number;
  /** Requests the waiters share in the fan-out variant (waiters / herdRequests per request). */
  herdRequests: number;
  deciders: number;
  variants?: ("perRequest" | "fanOut")[];
}

export interface WaiterPhase {
  waiters: number;
  requests: number;
  /** Gateway RSS with every waiter parked, and before any was opened. */
  rssMB: number;
  rssIdleMB: number;
  /** Long-polls the gateway itself counted as parked before the decisions (its /metrics gauge). */
  parked: number | null;
  /** From the first decision sent to the last decision acknowledged. */
  decideMs: number;
  decisionsPerSecond: number;
  /** From the first decision sent until every waiter has returned with the decided state. */
  allReleasedMs: number;
  /** From the last decision acknowledged until every waiter has returned. */
  afterLastDecisionMs: number;
  /** Per waiter: from its request's decision being acknowledged to the waiter returning. */
  lagMs: { p50: number; p99: number; max: number };
  /** Long-polls that timed out and were re-issued (as a client SDK would). */
  repolls: number;
  /** Decisions answered 503 (overloaded) and retried after Retry-After. */
  busy: number;
  failures: number;
  /** A few of the client-side errors behind `failures`, for diagnosis. */
  errors: string[];
}

export interface WaitersResult {
  engine: Engine;
  /** One waiter per request: each decision releases one waiter. */
  perRequest: WaiterPhase;
  /** Many waiters per request: one decision releases a crowd at once. */
  fanOut: WaiterPhase;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MB = 1024 * 1024;

async function createRequests(env: BenchEnv, n: number): Promise<string[]> {
  const agent = keepAliveAgent(64);
  const ids: string[] = [];
  try {
    await pool(n, 64, async (i) => {
      const body = JSON.stringify({ action: "bench.release", summary: `Waiter ${i}`, params: { i } });
      const r = await send(agent, `${env.gw.url}/v1/requests`, { method: "POST", headers: jsonHeaders(env.agentKey), body });
      if (r.status !== 201) throw new Error(`intake answered ${r.status}: ${r.body}`);
      ids[i] = (JSON.parse(r.body) as { id: string }).id;
    });
  } finally {
    agent.destroy();
  }
  return ids;
}

/** Long-polls the gateway reports as parked (its /metrics gauge), or undefined without metrics. */
async function waitingOnGateway(env: BenchEnv): Promise<number | undefined> {
  const agent = keepAliveAgent(1);
  try {
    const r = await send(agent, `${env.gw.url}/metrics`, { headers: { authorization: `Bearer ${env.adminKey}` }, timeoutMs: 10_000 });
    const m = /^countersign_long_poll_waiters\s+(\d+)/m.exec(r.body);
    return r.status === 200 && m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  } finally {
    agent.destroy();
  }
}

/** Waits until at least `n` long-polls are parked (or `timeoutMs`); returns the last count seen. */
async function parked(env: BenchEnv, n: number, timeoutMs: number): Promise<number | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const seen = await waitingOnGateway(env);
    if (seen === undefined) {
      await pause(40);
      return undefined;
    }
    if (seen >= n || Date.now() > deadline) return seen;
    await pause(50);
  }
}

async function phase(env: BenchEnv, gw: BenchGateway, waiters: number, requests: number, deciders: number, label: string): Promise<WaiterPhase> {
  log(`waiters/${env.engine}/${label}: creating ${requests} pending requests`);
  const ids = await createRequests(env, requests);
  await waitForIdle(gw, { quietMs: 500, maxCpuShare: 0.05 });
  const rssIdle = gw.rss();

  log(`waiters/${env.engine}/${label}: opening ${waiters} long-polls`);
  // One connection per waiter, as 10,000 separate agents would hold; a re-poll reuses it.
  const conns = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });
  const returned = new Map<number, number>();
  let repolls = 0;
  let failures = 0;
  let busy = 0;
  const errors = new Map<string, number>();
  const noteError = (e: string) => errors.set(e, (errors.get(e) ?? 0) + 1);
  const waitOne = async (w: number) => {
    const id = ids[w % requests] as string;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const r = await send(conns, `${gw.url}/v1/requests/${id}?wait=60`, { headers: { authorization: `Bearer ${env.agentKey}` }, timeoutMs: 90_000 });
        const at = performance.now();
        if (r.status === 200 && (JSON.parse(r.body) as { status: string }).status !== "pending") {
          returned.set(w, at);
          return;
        }
        repolls++;
        if (r.status !== 200) noteError(`long-poll answered ${r.status}`);
      } catch (e) {
        failures++;
        noteError((e as Error).message);
        await pause(200);
      }
    }
  };
  const all: Promise<void>[] = [];
  const batch = 250;
  // Open in batches, each once the previous one is parked, so no connection waits in an overflowing accept queue.
  for (let w = 0; w < waiters; w += batch) {
    for (let k = w; k < Math.min(waiters, w + batch); k++) all.push(waitOne(k));
    await parked(env, Math.min(waiters, w + batch), 15_000);
  }
  const registered = await parked(env, waiters, 60_000);
  await waitForIdle(gw, { quietMs: 700, maxCpuShare: 0.03 });
  const rss = gw.rss();
  log(
    `waiters/${env.engine}/${label}: ${registered ?? "(unknown: no /metrics)"} of ${waiters} parked; gateway RSS ${round(rss / MB, 1)} MB (idle ${round(rssIdle / MB, 1)} MB); deciding ${requests}`,
  );

  const api = keepAliveAgent(deciders);
  const acked = new Map<string, number>();
  const t0 = performance.now();
  await pool(requests, deciders, async (i) => {
    const id = ids[i] as string;
    let d = await send(api, `${gw.url}/v1/requests/${id}/decisions`, { method: "POST", headers: jsonHeaders(env.reviewerKey), body: '{"decision":"approve"}' });
    // An overloaded gateway answers 503 with Retry-After; a reviewer's client retries after it.
    for (let attempt = 0; d.status === 503 && attempt < 5; attempt++) {
      busy++;
      await pause(Number(d.headers["retry-after"] ?? 1) * 1000);
      d = await send(api, `${gw.url}/v1/requests/${id}/decisions`, { method: "POST", headers: jsonHeaders(env.reviewerKey), body: '{"decision":"approve"}' });
    }
    if (d.status !== 201) {
      failures++;
      noteError(`decision answered ${d.status}`);
    }
    acked.set(id, performance.now());
  });
  const tDecided = performance.now();
  await Promise.all(all);
  api.destroy();
  conns.destroy();
  const times = [...returned.values()];
  const last = times.length ? Math.max(...times) : Number.NaN;
  const lags = [...returned.entries()].map(([w, at]) => at - (acked.get(ids[w % requests] as string) ?? at));
  return {
    waiters,
    requests,
    rssMB: round(rss / MB, 1),
    rssIdleMB: round(rssIdle / MB, 1),
    parked: registered ?? null,
    decideMs: round(tDecided - t0, 0),
    decisionsPerSecond: round(requests / ((tDecided - t0) / 1000), 0),
    allReleasedMs: round(last - t0, 0),
    afterLastDecisionMs: round(last - tDecided, 0),
    lagMs: { p50: round(percentile(lags, 50), 1), p99: round(percentile(lags, 99), 1), max: round(Math.max(...lags), 1) },
    repolls,
    busy,
    failures: failures + (waiters - returned.size),
    errors: [...errors].map(([e, n]) => `${n} x ${e}`).slice(0, 8),
  };
}

export async function benchWaiters(o: WaitersOptions): Promise<WaitersResult> {
  const result: Partial<WaitersResult> = { engine: o.engine };
  for (const variant of o.variants ?? (["perRequest", "fanOut"] as const)) {
    // A fresh gateway per variant, so the second starts from the same memory as the first.
    log(`waiters/${o.engine}: starting gateway`);
    const env = await startBenchEnv(o.engine, o.pgUrl);
    try {
      result[variant] =
        variant === "perRequest"
          ? await phase(env, env.gw, o.waiters, o.waiters, o.deciders, "one per request")
          : await phase(env, env.gw, o.waiters, o.herdRequests, o.deciders, `${o.waiters / o.herdRequests} per request`);
      const p = result[variant] as WaiterPhase;
      log(
        `waiters/${o.engine}/${variant}: all released ${p.allReleasedMs} ms after the first decision (${p.afterLastDecisionMs} ms after the last), failures ${p.failures}`,
      );
    } finally {
      await env.close();
    }
  }
  return result as WaitersResult;
}
