import type { Engine } from "./lib/db.ts";
import { jsonHeaders, keepAliveAgent, send } from "./lib/http.ts";
import { startReceiver } from "./lib/receiver.ts";
import { log, startBenchEnv } from "./lib/setup.ts";
import { median, percentile, round } from "./lib/stats.ts";

export interface ReleaseOptions {
  engine: Engine;
  pgUrl: string | undefined;
  perRound: number;
  rounds: number;
}

export interface ReleaseResult {
  engine: Engine;
  samples: number;
  rounds: number;
  /** From sending the decision to the long-poll response; median over rounds. */
  longPollMs: { p50: number; p99: number; max: number };
  /** From sending the decision to the receiver holding a verified request.approved event. */
  callbackMs: { p50: number; p99: number; max: number };
  /** The decision API call itself. */
  decisionMs: { p50: number; p99: number };
  failures: number;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function benchRelease(o: ReleaseOptions): Promise<ReleaseResult> {
  log(`release/${o.engine}: starting gateway and callback receiver`);
  const env = await startBenchEnv(o.engine, o.pgUrl);
  const receiver = await startReceiver(() => env.webhookSecret);
  const api = keepAliveAgent(4);
  const waitAgent = keepAliveAgent(4);
  const sample = async (): Promise<{ poll: number; cb: number; ack: number } | null> => {
    const body = JSON.stringify({ action: "bench.release", summary: "Release timing", params: { n: Math.random() }, callbackUrl: receiver.url });
    const created = await send(api, `${env.gw.url}/v1/requests`, { method: "POST", headers: jsonHeaders(env.agentKey), body });
    if (created.status !== 201) throw new Error(`intake answered ${created.status}`);
    const id = (JSON.parse(created.body) as { id: string }).id;
    let released = 0;
    const waiting = send(waitAgent, `${env.gw.url}/v1/requests/${id}?wait=30`, { headers: { authorization: `Bearer ${env.agentKey}` } }).then((r) => {
      released = performance.now();
      return JSON.parse(r.body) as { status: string };
    });
    // Give the long-poll time to register; if it has not, it still reads the new state at once.
    await pause(25);
    const t0 = performance.now();
    const arrival = receiver.arrival(id, 15_000);
    const d = await send(api, `${env.gw.url}/v1/requests/${id}/decisions`, {
      method: "POST",
      headers: jsonHeaders(env.reviewerKey),
      body: JSON.stringify({ decision: "approve" }),
    });
    const ack = performance.now() - t0;
    if (d.status !== 201) throw new Error(`decision answered ${d.status}: ${d.body}`);
    const [state, cbAt] = await Promise.all([waiting, arrival]);
    if (state.status !== "approved") return null;
    return { poll: released - t0, cb: cbAt - t0, ack };
  };
  try {
    for (let i = 0; i < 10; i++) await sample();
    const rounds: { poll: number[]; cb: number[]; ack: number[] }[] = [];
    let failures = 0;
    for (let r = 0; r < o.rounds; r++) {
      const x = { poll: [] as number[], cb: [] as number[], ack: [] as number[] };
      for (let i = 0; i < o.perRound; i++) {
        const s = await sample().catch(() => null);
        if (!s) {
          failures++;
          continue;
        }
        x.poll.push(s.poll);
        x.cb.push(s.cb);
        x.ack.push(s.ack);
      }
      rounds.push(x);
      log(
        `release/${o.engine}: round ${r + 1}/${o.rounds}: long-poll p99 ${round(percentile(x.poll, 99), 2)} ms, callback p99 ${round(percentile(x.cb, 99), 2)} ms`,
      );
    }
    const med = (k: "poll" | "cb" | "ack", p: number) => round(median(rounds.map((x) => percentile(x[k], p))), 2);
    const max = (k: "poll" | "cb") => round(Math.max(...rounds.flatMap((x) => x[k])), 2);
    return {
      engine: o.engine,
      samples: rounds.reduce((n, x) => n + x.poll.length, 0),
      rounds: o.rounds,
      longPollMs: { p50: med("poll", 50), p99: med("poll", 99), max: max("poll") },
      callbackMs: { p50: med("cb", 50), p99: med("cb", 99), max: max("cb") },
      decisionMs: { p50: med("ack", 50), p99: med("ack", 99) },
      failures: failures + receiver.invalid,
    };
  } finally {
    api.destroy();
    waitAgent.destroy();
    await receiver.close();
    await env.close();
  }
}
