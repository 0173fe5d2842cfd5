import { existsSync, readFileSync } from "node:fs";
import type { Agent } from "node:http";
import pg from "pg";
import type { Engine } from "./lib/db.ts";
import { waitForIdle } from "./lib/gateway.ts";
import { jsonHeaders, keepAliveAgent, pool, send } from "./lib/http.ts";
import { type BenchEnv, log, startBenchEnv } from "./lib/setup.ts";
import { median, percentile, round } from "./lib/stats.ts";

/**
 * Decisions per second: `reviewers` concurrent reviewers (one API key each), in a closed
 * loop: each approves one pending request through `POST /v1/requests/:id/decisions`, then
 * takes the next pending one, so `reviewers` distinct requests are being decided at any
 * moment. Every request needs one approval (the `bench.release` rule of BENCH_POLICY), so
 * each decision finishes its request. The requests of a round are created through the
 * API before the round's timed phase.
 *
 * On PostgreSQL a separate connection samples `pg_stat_activity` every ~50 ms during the
 * timed phase: how many of the gateway's connections wait on a heavyweight lock, by
 * `wait_event` (advisory, transactionid, tuple, ...).
 */
export interface DecisionsOptions {
  engine: Engine;
  pgUrl: string | undefined;
  perRound: number;
  rounds: number;
  warmup: number;
  reviewers: number;
  /** The gateway's DATABASE_POOL_SIZE (PostgreSQL). */
  poolSize: number;
  /** Milliseconds between pg_stat_activity samples. */
  sampleEveryMs?: number;
}

/** pg_stat_activity over a timed phase, PostgreSQL only. */
export interface LockSummary {
  samples: number;
  /** Which backends the shares are over. */
  denominator: string;
  /** Mean per sample: backends of the bench database (gateway pool + its LISTEN connection), busy ones, lock waiters. */
  meanBackends: number;
  meanBusy: number;
  meanLockWaiting: number;
  /** Σ lock-waiting ÷ Σ backends over all samples. */
  lockShare: number;
  /** Σ lock-waiting ÷ Σ busy (state active or idle in transaction) over all samples. */
  lockShareOfBusy: number;
  /** Share of all backends waiting on each Lock wait_event (advisory, transactionid, tuple, relation, ...). */
  lockByEvent: Record<string, number>;
  /** What busy backends were doing, as a share of all backends: "Lock:advisory", "Client:ClientRead" (idle in transaction), "running" (no wait), ... */
  busyBy: Record<string, number>;
}

export interface DecisionsRound {
  decisions: number;
  ok: number;
  non2xx: number;
  seconds: number;
  decisionsPerSecond: number;
  p50: number;
  p99: number;
  /** Gateway CPU time (user + system) per successful decision, ms. */
  cpuMsPerDecision: number;
  locks: LockSummary | null;
}

export interface BeforeComparison {
  commit: string;
  measuredAt: string;
  quick: boolean;
  decisionsPerSecond: number;
  p99: number;
  lockShare: number | null;
  /** This run's decisions/s ÷ the before figure. */
  ratio: number;
  /** PostgreSQL only: at least 4x the before figure. */
  target: string | null;
  met: boolean | null;
}

export interface DecisionsResult {
  engine: Engine;
  reviewers: number;
  poolSize: number;
  perRound: number;
  rounds: number;
  warmup: number;
  /** Median over rounds of successful decisions per second. */
  decisionsPerSecond: number;
  /** Percentiles over every timed decision of every round. */
  latencyMs: { p50: number; p99: number; max: number };
  non2xx: number;
  /** Non-2xx answers by status ("error" for a failed connection). */
  non2xxByStatus: Record<string, number>;
  cpuMsPerDecision: number;
  /** Pooled over every sample of every timed round; null on PGlite (one in-process connection). */
  locks: LockSummary | null;
  roundsDetail: DecisionsRound[];
  /** The figure for the code before the audit-log rewrite, from baselines/decisions-before.json. */
  before: BeforeComparison | null;
}

export const BEFORE_FILE = new URL("./baselines/decisions-before.json", import.meta.url);
export const TARGET_RATIO = 4;

interface BeforeDoc {
  commit: string;
  measuredAt: string;
  quick: boolean;
  results: { decisions: DecisionsResult[] };
}

export function loadBefore(): BeforeDoc | null {
  if (!existsSync(BEFORE_FILE)) return null;
  try {
    return JSON.parse(readFileSync(BEFORE_FILE, "utf8")) as BeforeDoc;
  } catch (e) {
    log(`decisions: cannot read ${BEFORE_FILE.pathname}: ${(e as Error).message}`);
    return null;
  }
}

export function compareWithBefore(engine: Engine, dps: number): BeforeComparison | null {
  const doc = loadBefore();
  const b = doc?.results.decisions.find((r) => r.engine === engine);
  if (!doc || !b) return null;
  const ratio = round(dps / b.decisionsPerSecond, 2);
  return {
    commit: doc.commit,
    measuredAt: doc.measuredAt,
    quick: doc.quick,
    decisionsPerSecond: b.decisionsPerSecond,
    p99: b.latencyMs.p99,
    lockShare: b.locks?.lockShare ?? null,
    ratio,
    target: engine === "postgres" ? `>= ${TARGET_RATIO}x` : null,
    met: engine === "postgres" ? ratio >= TARGET_RATIO : null,
  };
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const BUSY_STATES = new Set(["active", "idle in transaction", "idle in transaction (aborted)"]);
const DENOMINATOR = "every client backend connected to the bench database except the sampler (the gateway's pool connections and its LISTEN connection)";

interface Sample {
  backends: number;
  busy: number;
  lockWaiting: number;
  lockByEvent: Record<string, number>;
  busyBy: Record<string, number>;
}

/** Samples pg_stat_activity of `datname` from its own connection (to `adminUrl`), between start() and stop(). */
async function lockSampler(adminUrl: string, datname: string, everyMs: number) {
  const client = new pg.Client({ connectionString: adminUrl });
  client.on("error", () => {});
  await client.connect();
  let samples: Sample[] = [];
  let running: Promise<void> | null = null;
  let stopping = false;
  const loop = async () => {
    while (!stopping) {
      const t = performance.now();
      const { rows } = await client.query<{ state: string | null; wait_event_type: string | null; wait_event: string | null }>(
        `SELECT state, wait_event_type, wait_event FROM pg_stat_activity
          WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'`,
        [datname],
      );
      const s: Sample = { backends: rows.length, busy: 0, lockWaiting: 0, lockByEvent: {}, busyBy: {} };
      for (const r of rows) {
        if (r.wait_event_type === "Lock") {
          s.lockWaiting++;
          const ev = r.wait_event ?? "?";
          s.lockByEvent[ev] = (s.lockByEvent[ev] ?? 0) + 1;
        }
        if (r.state && BUSY_STATES.has(r.state)) {
          s.busy++;
          const what = r.wait_event_type ? `${r.wait_event_type}:${r.wait_event}` : "running";
          s.busyBy[what] = (s.busyBy[what] ?? 0) + 1;
        }
      }
      samples.push(s);
      await pause(Math.max(0, everyMs - (performance.now() - t)));
    }
  };
  return {
    start() {
      samples = [];
      stopping = false;
      running = loop();
    },
    async stop(): Promise<Sample[]> {
      stopping = true;
      await running;
      running = null;
      return samples;
    },
    close: () => client.end(),
  };
}

function summarise(samples: Sample[]): LockSummary {
  const sum = (f: (s: Sample) => number) => samples.reduce((n, s) => n + f(s), 0);
  const backends = sum((s) => s.backends);
  const busy = sum((s) => s.busy);
  const waiting = sum((s) => s.lockWaiting);
  const share = (m: (s: Sample) => Record<string, number>) => {
    const out: Record<string, number> = {};
    for (const s of samples) for (const [k, v] of Object.entries(m(s))) out[k] = (out[k] ?? 0) + v;
    return Object.fromEntries(
      Object.entries(out)
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => [k, round(v / Math.max(1, backends), 3)]),
    );
  };
  const n = Math.max(1, samples.length);
  return {
    samples: samples.length,
    denominator: DENOMINATOR,
    meanBackends: round(backends / n, 2),
    meanBusy: round(busy / n, 2),
    meanLockWaiting: round(waiting / n, 2),
    lockShare: round(waiting / Math.max(1, backends), 3),
    lockShareOfBusy: round(waiting / Math.max(1, busy), 3),
    lockByEvent: share((s) => s.lockByEvent),
    busyBy: share((s) => s.busyBy),
  };
}

/** Creates `n` pending bench.release requests through the API (a 503 is retried after its Retry-After). */
async function createPending(env: BenchEnv, n: number, tag: string): Promise<string[]> {
  const agent = keepAliveAgent(32);
  const ids: string[] = [];
  try {
    await pool(n, 32, async (i) => {
      const body = JSON.stringify({ action: "bench.release", summary: `Decision ${tag}/${i}`, params: { tag, i } });
      for (let attempt = 0; ; attempt++) {
        const r = await send(agent, `${env.gw.url}/v1/requests`, { method: "POST", headers: jsonHeaders(env.agentKey), body });
        if (r.status === 201) {
          ids[i] = (JSON.parse(r.body) as { id: string; status: string }).id;
          return;
        }
        if (r.status !== 503 || attempt >= 10) throw new Error(`intake answered ${r.status}: ${r.body}`);
        await pause(Number(r.headers["retry-after"] ?? 1) * 1000);
      }
    });
  } finally {
    agent.destroy();
  }
  return ids;
}

/** The closed loop: each reviewer approves the next pending request until none is left. */
async function decideAll(env: BenchEnv, agent: Agent, ids: string[], keys: string[]) {
  let next = 0;
  const lat: number[] = [];
  const bad: Record<string, number> = {};
  let ok = 0;
  const body = '{"decision":"approve"}';
  const t0 = performance.now();
  await Promise.all(
    keys.map(async (key) => {
      const headers = jsonHeaders(key);
      for (;;) {
        const i = next++;
        if (i >= ids.length) return;
        const t = performance.now();
        try {
          const r = await send(agent, `${env.gw.url}/v1/requests/${ids[i]}/decisions`, { method: "POST", headers, body, timeoutMs: 60_000 });
          lat.push(performance.now() - t);
          if (r.status >= 200 && r.status < 300) ok++;
          else bad[r.status] = (bad[r.status] ?? 0) + 1;
        } catch {
          lat.push(performance.now() - t);
          bad.error = (bad.error ?? 0) + 1;
        }
      }
    }),
  );
  return { seconds: (performance.now() - t0) / 1000, lat, ok, bad };
}

export async function benchDecisions(o: DecisionsOptions): Promise<DecisionsResult> {
  log(`decisions/${o.engine}: starting gateway`);
  const env = await startBenchEnv(o.engine, o.pgUrl, { DATABASE_POOL_SIZE: String(o.poolSize) });
  const agent = keepAliveAgent(o.reviewers);
  let sampler: Awaited<ReturnType<typeof lockSampler>> | undefined;
  try {
    const keys = [env.reviewerKey];
    for (let i = keys.length; i < o.reviewers; i++) {
      keys.push((await env.gw.createKey({ name: `bench-reviewer-${i}`, owner: `reviewer${i}@bench.example`, scopes: ["decisions"] })).key);
    }
    if (o.engine === "postgres") {
      const datname = decodeURIComponent(new URL(env.gw.env.DATABASE_URL as string).pathname.slice(1));
      sampler = await lockSampler(o.pgUrl as string, datname, o.sampleEveryMs ?? 50);
    }

    log(`decisions/${o.engine}: warm-up (${o.warmup} decisions by ${o.reviewers} reviewers)`);
    await decideAll(env, agent, await createPending(env, o.warmup, "warmup"), keys);

    const rounds: DecisionsRound[] = [];
    const allLat: number[] = [];
    const allSamples: Sample[] = [];
    const non2xxByStatus: Record<string, number> = {};
    for (let r = 0; r < o.rounds; r++) {
      const ids = await createPending(env, o.perRound, `r${r}`);
      await waitForIdle(env.gw, { quietMs: 500, maxCpuShare: 0.05, timeoutMs: 60_000 });
      const cpu = env.gw.cpuMs();
      sampler?.start();
      const x = await decideAll(env, agent, ids, keys);
      const samples = (await sampler?.stop()) ?? null;
      const cpuMs = env.gw.cpuMs() - cpu;
      if (samples) allSamples.push(...samples);
      allLat.push(...x.lat);
      for (const [k, v] of Object.entries(x.bad)) non2xxByStatus[k] = (non2xxByStatus[k] ?? 0) + v;
      const non2xx = Object.values(x.bad).reduce((n, v) => n + v, 0);
      const locks = samples ? summarise(samples) : null;
      const fig: DecisionsRound = {
        decisions: ids.length,
        ok: x.ok,
        non2xx,
        seconds: round(x.seconds, 2),
        decisionsPerSecond: round(x.ok / x.seconds, 1),
        p50: round(percentile(x.lat, 50), 2),
        p99: round(percentile(x.lat, 99), 2),
        cpuMsPerDecision: round(cpuMs / Math.max(1, x.ok), 2),
        locks,
      };
      rounds.push(fig);
      log(
        `decisions/${o.engine}: round ${r + 1}/${o.rounds}: ${fig.decisionsPerSecond} decisions/s, p50 ${fig.p50} ms, p99 ${fig.p99} ms, non-2xx ${non2xx}, gateway CPU ${fig.cpuMsPerDecision} ms/decision` +
          (locks
            ? `, waiting on locks ${locks.meanLockWaiting} of ${locks.meanBackends} backends (${pct(locks.lockShare)}; ${breakdown(locks.lockByEvent)})`
            : ", lock share n/a (PGlite)"),
      );
    }
    const dps = round(median(rounds.map((x) => x.decisionsPerSecond)), 1);
    const result: DecisionsResult = {
      engine: o.engine,
      reviewers: o.reviewers,
      poolSize: o.poolSize,
      perRound: o.perRound,
      rounds: o.rounds,
      warmup: o.warmup,
      decisionsPerSecond: dps,
      latencyMs: { p50: round(percentile(allLat, 50), 2), p99: round(percentile(allLat, 99), 2), max: round(Math.max(...allLat), 2) },
      non2xx: rounds.reduce((n, x) => n + x.non2xx, 0),
      non2xxByStatus,
      cpuMsPerDecision: round(median(rounds.map((x) => x.cpuMsPerDecision)), 2),
      locks: sampler ? summarise(allSamples) : null,
      roundsDetail: rounds,
      before: compareWithBefore(o.engine, dps),
    };
    const b = result.before;
    log(
      b
        ? `decisions/${o.engine}: before (${b.commit}${b.quick ? ", quick" : ""}) ${b.decisionsPerSecond}/s, after ${dps}/s: ${b.ratio}x` +
            (b.target ? `; target ${b.target}: ${b.met ? "met" : "NOT met"}` : "")
        : `decisions/${o.engine}: ${dps}/s; no before figure (${BEFORE_FILE.pathname} missing or without ${o.engine})`,
    );
    return result;
  } finally {
    agent.destroy();
    await sampler?.close().catch(() => {});
    await env.close();
  }
}

export const pct = (share: number | null | undefined) => (share === null || share === undefined || Number.isNaN(share) ? "n/a" : `${round(share * 100, 1)}%`);

/** "advisory 71%, transactionid 3%": each Lock wait_event's share of all backends. */
export function breakdown(byEvent: Record<string, number>): string {
  const parts = Object.entries(byEvent).map(([k, v]) => `${k} ${pct(v)}`);
  return parts.length ? parts.join(", ") : "none";
}
