import { type FakeSlack, startFakeSlack } from "../../../test/fakes/fake-slack.ts";
import type { Engine } from "./db.ts";
import { freshPostgres } from "./db.ts";
import { type BenchGateway, startBenchGateway } from "./gateway.ts";

export const SLACK_SIGNING_SECRET = "bench-signing-secret-0123456789abcdef";

/**
 * bench.read is allowed by policy; bench.write needs one approval and posts a Slack card
 * (so intake writes an outbox row); bench.release needs one approval and posts nothing,
 * so release timings are not mixed with card traffic.
 */
export const BENCH_POLICY = `version: 1
channels:
  ops: { slack: { channel: C0BENCH0001 } }
rules:
  - id: allow-reads
    match: { action: bench.read }
    effect: allow
  - id: needs-approval
    match: { action: bench.write }
    effect: require_approval
    approvers: ["*"]
    notify: [ops]
    expiresIn: 1d
  - id: release
    match: { action: bench.release }
    effect: require_approval
    approvers: ["*"]
    expiresIn: 1d
default: deny
`;

/** Slack users who click in the benchmark; the fake's users.info maps each to an email. */
export const SLACK_REVIEWERS = Array.from({ length: 50 }, (_, i) => ({
  id: `U0BENCH${String(i).padStart(3, "0")}`,
  name: `reviewer${i}`,
  email: `reviewer${i}@bench.example`,
}));

export interface BenchEnv {
  engine: Engine;
  gw: BenchGateway;
  slack: FakeSlack;
  agentKey: string;
  webhookSecret: string;
  reviewerKey: string;
  adminKey: string;
  close(): Promise<void>;
}

export async function startBenchEnv(engine: Engine, pgUrl: string | undefined, env: Record<string, string> = {}): Promise<BenchEnv> {
  const slack = await startFakeSlack({ users: SLACK_REVIEWERS });
  const fresh = engine === "postgres" ? await freshPostgres(pgUrl as string) : undefined;
  let gw: BenchGateway | undefined;
  try {
    gw = await startBenchGateway({
      ...(fresh ? { databaseUrl: fresh.url } : {}),
      policy: BENCH_POLICY,
      // For profiling, e.g. BENCH_GATEWAY_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof".
      nodeArgs: (process.env.BENCH_GATEWAY_NODE_ARGS ?? "").split(" ").filter(Boolean),
      env: {
        SLACK_BOT_TOKEN: "xoxb-bench-token",
        SLACK_SIGNING_SECRET,
        SLACK_API_URL: slack.url,
        ...env,
      },
    });
    const agent = await gw.createKey({ name: "bench-agent", owner: "owner@bench.example", scopes: ["requests"] });
    const reviewer = await gw.createKey({ name: "bench-reviewer", owner: "reviewer@bench.example", scopes: ["decisions"] });
    const admin = await gw.createKey({ name: "bench-admin", owner: "admin@bench.example", scopes: ["admin"] });
    const g = gw;
    return {
      engine,
      gw: g,
      slack,
      agentKey: agent.key,
      webhookSecret: agent.webhookSecret as string,
      reviewerKey: reviewer.key,
      adminKey: admin.key,
      async close() {
        await g.stop();
        await slack.close();
        await fresh?.drop();
      },
    };
  } catch (e) {
    await gw?.stop();
    await slack.close();
    await fresh?.drop();
    throw e;
  }
}

export function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}
