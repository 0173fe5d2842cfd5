import { baselineIntake, type IntakeCase, openBaseline } from "./lib/baseline.ts";
import type { Engine } from "./lib/db.ts";
import { waitForIdle } from "./lib/gateway.ts";
import { jsonHeaders, keepAliveAgent, pool, send } from "./lib/http.ts";
import { log, startBenchEnv } from "./lib/setup.ts";
import { median, percentile, round } from "./lib/stats.ts";

export interface IntakeOptions {
  engine: Engine;
  pgUrl: string | undefined;
  concurrency: number;
  perRound: number;
  rounds: number;
  warmup: number;
  /** The gateway's DATABASE_POOL_SIZE; the baseline pool uses the same. */
  poolSize: number;
}

interface RoundFigures {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  /** Gateway CPU time (user + system) per request, in ms; Countersign side only. */
  cpuMsPerRequest?: number;
}

export interface IntakeCaseResult {
  case: IntakeCase;
  countersign: { rps: number; p50: number; p99: number; errors: number; cpuMsPerRequest: number };
  limit: { rps: number; p50: number; p99: number };
  /** Median over rounds of (Countersign req/s ÷ limit req/s), each pair measured back to back. */
  ratio: number;
  rounds: { countersign: RoundFigures; limit: RoundFigures; ratio: number }[];
}

export interface IntakeResult {
  engine: Engine;
  concurrency: number;
  perRound: number;
  rounds: number;
  cases: IntakeCaseResult[];
}

const ACTION: Record<IntakeCase, string> = { allow: "bench.read", require_approval: "bench.write" };

async function timed(total: number, concurrency: number, one: (i: number) => Promise<boolean>): Promise<RoundFigures> {
  const lat: number[] = [];
  let errors = 0;
  const started = performance.now();
  await pool(total, concurrency, async (i) => {
    const t = performance.now();
    let ok = false;
    try {
      ok = await one(i);
    } catch {
      ok = false;
    }
    lat.push(performance.now() - t);
    if (!ok) errors++;
  });
  const secs = (performance.now() - started) / 1000;
  return { rps: round(total / secs, 0), p50: round(percentile(lat, 50), 2), p99: round(percentile(lat, 99), 2), errors };
}

export async function benchIntake(o: IntakeOptions): Promise<IntakeResult> {
  log(`intake/${o.engine}: starting gateway and baseline database`);
  const env = await startBenchEnv(o.engine, o.pgUrl, { DATABASE_POOL_SIZE: String(o.poolSize) });
  const base = await openBaseline(o.engine, o.pgUrl, o.poolSize);
  const agent = keepAliveAgent(o.concurrency);
  let seq = 0;
  const post = async (kind: IntakeCase) => {
    const body = JSON.stringify({
      action: ACTION[kind],
      summary: "Benchmark request",
      params: { table: "customers", n: seq++ },
      environment: "production",
    });
    const r = await send(agent, `${env.gw.url}/v1/requests`, { method: "POST", headers: jsonHeaders(env.agentKey), body });
    return r.status === 201;
  };
  const viaSql = async (kind: IntakeCase) => {
    await baselineIntake(base, kind);
    return true;
  };
  try {
    const cases: IntakeCaseResult[] = [];
    for (const kind of ["allow", "require_approval"] as const) {
      log(`intake/${o.engine}/${kind}: warm-up (${o.warmup} each)`);
      await timed(o.warmup, o.concurrency, () => viaSql(kind));
      await timed(o.warmup, o.concurrency, () => post(kind));
      const rounds: IntakeCaseResult["rounds"] = [];
      for (let r = 0; r < o.rounds; r++) {
        // Back to back, alternating which side goes first, so drift on a shared machine hits both.
        const pair: Partial<{ countersign: RoundFigures; limit: RoundFigures }> = {};
        for (const side of r % 2 === 0 ? (["limit", "countersign"] as const) : (["countersign", "limit"] as const)) {
          // Start each side on a quiet gateway: card jobs queued by the previous round must not slow the next.
          await waitForIdle(env.gw, { quietMs: 300, maxCpuShare: 0.1, timeoutMs: 30_000 });
          const cpu = env.gw.cpuMs();
          pair[side] = await timed(o.perRound, o.concurrency, () => (side === "limit" ? viaSql(kind) : post(kind)));
          if (side === "countersign") (pair[side] as RoundFigures).cpuMsPerRequest = round((env.gw.cpuMs() - cpu) / o.perRound, 2);
        }
        const cs = pair.countersign as RoundFigures;
        const lim = pair.limit as RoundFigures;
        rounds.push({ countersign: cs, limit: lim, ratio: round(cs.rps / lim.rps, 3) });
        log(
          `intake/${o.engine}/${kind}: round ${r + 1}/${o.rounds}: countersign ${cs.rps}/s (p99 ${cs.p99} ms, errors ${cs.errors}, gateway CPU ${cs.cpuMsPerRequest} ms/req), limit ${lim.rps}/s`,
        );
      }
      const pick = (side: "countersign" | "limit", k: keyof RoundFigures) => round(median(rounds.map((x) => x[side][k] ?? Number.NaN)), k === "rps" ? 0 : 2);
      cases.push({
        case: kind,
        countersign: {
          rps: pick("countersign", "rps"),
          p50: pick("countersign", "p50"),
          p99: pick("countersign", "p99"),
          cpuMsPerRequest: round(median(rounds.map((x) => x.countersign.cpuMsPerRequest ?? Number.NaN)), 2),
          errors: rounds.reduce((n, x) => n + x.countersign.errors, 0),
        },
        limit: { rps: pick("limit", "rps"), p50: pick("limit", "p50"), p99: pick("limit", "p99") },
        ratio: round(median(rounds.map((x) => x.ratio)), 3),
        rounds,
      });
    }
    return { engine: o.engine, concurrency: o.concurrency, perRound: o.perRound, rounds: o.rounds, cases };
  } finally {
    agent.destroy();
    await base.close();
    await env.close();
  }
}
