/**
 * `pnpm bench`: Countersign's benchmarks, each on PGlite and on PostgreSQL, in one run.
 *
 *   pnpm bench [--quick] [--json] [--out=file.json] [--only=intake,slack,release,waiters,decisions,startup,cli,mcp]
 *              [--engines=pglite,postgres] [--pg-url=postgresql://...] [--waiters=10000]
 *
 * --quick runs small counts to check that everything works; figures from it mean little.
 * --json prints the JSON document on stdout (the tables then go to stderr).
 */
import { writeFileSync } from "node:fs";
import { cpus, freemem, totalmem } from "node:os";
import { benchCli, type CliTiming } from "./cli.ts";
import { benchDecisions, breakdown, type DecisionsResult, pct, TARGET_RATIO } from "./decisions.ts";
import { benchIntake, type IntakeResult } from "./intake.ts";
import { type Engine, postgresReachable } from "./lib/db.ts";
import { log } from "./lib/setup.ts";
import { round } from "./lib/stats.ts";
import { benchMcp, type McpResult } from "./mcp.ts";
import { benchRelease, type ReleaseResult } from "./release.ts";
import { benchSlackAck, type SlackAckResult } from "./slack-ack.ts";
import { benchStartup, type StartupResult } from "./startup.ts";
import { benchWaiters, type WaitersResult } from "./waiters.ts";

const BENCHES = ["intake", "slack", "release", "waiters", "decisions", "startup", "cli", "mcp"] as const;
type Bench = (typeof BENCHES)[number];

interface Args {
  quick: boolean;
  json: boolean;
  out: string | undefined;
  only: Bench[];
  engines: Engine[];
  pgUrl: string;
  waiters: number | undefined;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    quick: false,
    json: false,
    out: undefined,
    only: [...BENCHES],
    engines: ["pglite", "postgres"],
    pgUrl: process.env.COUNTERSIGN_TEST_PG_URL ?? "postgresql://postgres@127.0.0.1:5432/test",
    waiters: undefined,
  };
  for (const arg of argv) {
    const [k, v] = arg.split("=", 2) as [string, string | undefined];
    if (k === "--quick") a.quick = true;
    else if (k === "--json") a.json = true;
    else if (k === "--out" && v) a.out = v;
    else if (k === "--only" && v) a.only = v.split(",").map((s) => s.trim()) as Bench[];
    else if (k === "--engines" && v) a.engines = v.split(",").map((s) => s.trim()) as Engine[];
    else if (k === "--pg-url" && v) a.pgUrl = v;
    else if (k === "--waiters" && v && /^\d+$/.test(v) && Number(v) >= 100) a.waiters = Number(v);
    else if (k === "--") continue;
    else throw new Error(`unknown argument ${arg}; see the header of scripts/bench/main.ts`);
  }
  for (const b of a.only) if (!BENCHES.includes(b)) throw new Error(`unknown benchmark ${b}; one of ${BENCHES.join(", ")}`);
  for (const e of a.engines) if (e !== "pglite" && e !== "postgres") throw new Error(`unknown engine ${e}`);
  return a;
}

const SIZES = {
  full: {
    intake: { perRound: 2000, rounds: 5, warmup: 500 },
    slack: { rounds: 40 },
    release: { perRound: 100, rounds: 5 },
    waiters: 10_000,
    decisions: { perRound: 2000, rounds: 3, warmup: 200 },
    cliRuns: 10,
    mcp: { calls: 1000, warmup: 100 },
  },
  quick: {
    intake: { perRound: 200, rounds: 2, warmup: 100 },
    slack: { rounds: 4 },
    release: { perRound: 20, rounds: 2 },
    waiters: 1_000,
    decisions: { perRound: 200, rounds: 2, warmup: 50 },
    cliRuns: 3,
    mcp: { calls: 100, warmup: 20 },
  },
};

interface Target {
  benchmark: Bench;
  engine: Engine | "none";
  what: string;
  target: string;
  value: string;
  met: boolean | null;
}

function pad(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows
    .map((r, j) => `${r.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ")}${j === 0 ? `\n${widths.map((w) => "-".repeat(w)).join("  ")}` : ""}`)
    .join("\n");
}

const fmt = (n: number | undefined, unit = "") => (n === undefined || Number.isNaN(n) ? "-" : `${n}${unit}`);

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const size = { ...(args.quick ? SIZES.quick : SIZES.full) };
  if (args.waiters) size.waiters = args.waiters;
  const machine = {
    cores: cpus().length,
    cpu: cpus()[0]?.model ?? "unknown",
    memoryGB: Math.round(totalmem() / 1024 ** 3),
    freeMemoryGB: Math.round(freemem() / 1024 ** 3),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
  };
  let engines = args.engines;
  if (engines.includes("postgres")) {
    const why = await postgresReachable(args.pgUrl);
    if (why) {
      log(`PostgreSQL at ${args.pgUrl} is unreachable (${why}); running PGlite only`);
      engines = engines.filter((e) => e !== "postgres");
    }
  }
  log(
    `${args.quick ? "QUICK run (small counts; figures are indicative only)" : "full run"} on ${machine.cores} cores, Node ${machine.node}; engines ${engines.join(", ")}`,
  );
  const results: {
    intake: IntakeResult[];
    slack: SlackAckResult[];
    release: ReleaseResult[];
    waiters: WaitersResult[];
    decisions: DecisionsResult[];
    startup: StartupResult[];
    cli: CliTiming[];
    mcp: McpResult[];
  } = { intake: [], slack: [], release: [], waiters: [], decisions: [], startup: [], cli: [], mcp: [] };
  const startedAt = new Date().toISOString();
  const pgUrl = engines.includes("postgres") ? args.pgUrl : undefined;
  for (const bench of args.only) {
    if (bench === "cli") results.cli = await benchCli({ engines, pgUrl, runs: size.cliRuns });
    for (const engine of engines) {
      if (bench === "startup") results.startup.push(await benchStartup({ engine, pgUrl }));
      if (bench === "intake") results.intake.push(await benchIntake({ engine, pgUrl, concurrency: 64, poolSize: 10, ...size.intake }));
      if (bench === "slack") results.slack.push(await benchSlackAck({ engine, pgUrl, concurrency: 50, ...size.slack }));
      if (bench === "release") results.release.push(await benchRelease({ engine, pgUrl, ...size.release }));
      if (bench === "waiters") results.waiters.push(await benchWaiters({ engine, pgUrl, waiters: size.waiters, herdRequests: 100, deciders: 32 }));
      if (bench === "decisions") results.decisions.push(await benchDecisions({ engine, pgUrl, reviewers: 32, poolSize: 10, ...size.decisions }));
      if (bench === "mcp") results.mcp.push(await benchMcp({ engine, pgUrl, ...size.mcp }));
    }
  }

  const targets: Target[] = [];
  const out: string[] = [];
  if (results.intake.length) {
    const rows = [["engine", "case", "countersign req/s", "limit req/s", "ratio", "p50 ms", "p99 ms", "gw CPU ms/req", "errors", "target"]];
    for (const r of results.intake) {
      for (const c of r.cases) {
        const t = r.engine === "postgres" ? c.ratio >= 0.6 : null;
        if (r.engine === "postgres")
          targets.push({ benchmark: "intake", engine: r.engine, what: `intake ${c.case} vs raw-SQL limit`, target: ">= 0.6x", value: `${c.ratio}x`, met: t });
        rows.push([
          r.engine,
          c.case,
          fmt(c.countersign.rps),
          fmt(c.limit.rps),
          `${c.ratio}x`,
          fmt(c.countersign.p50),
          fmt(c.countersign.p99),
          fmt(c.countersign.cpuMsPerRequest),
          String(c.countersign.errors),
          t === null ? "(PostgreSQL only)" : t ? "met (>= 0.6x)" : "NOT met (>= 0.6x)",
        ]);
      }
    }
    out.push(`1. Intake throughput: POST /v1/requests, concurrency 64, keep-alive; medians over rounds\n${pad(rows)}`);
  }
  if (results.slack.length) {
    const rows = [["engine", "clicks", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "decided", "non-200", "target p99 <= 50 ms"]];
    for (const r of results.slack) {
      if ("skipped" in r) {
        rows.push([r.engine, "-", "-", "-", "-", "-", "-", "-", `skipped: ${r.skipped}`]);
        targets.push({ benchmark: "slack", engine: r.engine, what: "Slack click ack p99", target: "<= 50 ms", value: "skipped", met: null });
        continue;
      }
      const met = r.ackMs.p99 <= 50;
      targets.push({ benchmark: "slack", engine: r.engine, what: "Slack click ack p99", target: "<= 50 ms", value: `${r.ackMs.p99} ms`, met });
      // A fast ack means nothing if the vote behind it was lost or refused.
      targets.push({
        benchmark: "slack",
        engine: r.engine,
        what: "Slack clicks recorded as votes",
        target: "all",
        value: `${r.decided}/${r.clicks}`,
        met: r.decided === r.clicks,
      });
      rows.push([
        r.engine,
        String(r.clicks),
        fmt(r.ackMs.p50),
        fmt(r.ackMs.p99),
        fmt(r.ackMs.p999),
        fmt(r.ackMs.max),
        `${r.decided}/${r.clicks}`,
        String(r.non200),
        met ? "met" : "NOT met",
      ]);
    }
    out.push(
      `2. Slack click ack latency: bursts of 50 simultaneous signed block_actions clicks on distinct pending requests; percentiles over all clicks\n${pad(rows)}`,
    );
  }
  if (results.release.length) {
    const rows = [["engine", "samples", "long-poll p50", "long-poll p99", "callback p50", "callback p99", "decision API p50", "failures", "targets"]];
    for (const r of results.release) {
      const lp = r.longPollMs.p99 <= 50;
      const cb = r.callbackMs.p99 <= 250;
      targets.push({
        benchmark: "release",
        engine: r.engine,
        what: "decision -> long-poll returns, p99",
        target: "<= 50 ms",
        value: `${r.longPollMs.p99} ms`,
        met: lp,
      });
      targets.push({
        benchmark: "release",
        engine: r.engine,
        what: "decision -> first callback verified, p99",
        target: "<= 250 ms",
        value: `${r.callbackMs.p99} ms`,
        met: cb,
      });
      rows.push([
        r.engine,
        String(r.samples),
        fmt(r.longPollMs.p50, " ms"),
        fmt(r.longPollMs.p99, " ms"),
        fmt(r.callbackMs.p50, " ms"),
        fmt(r.callbackMs.p99, " ms"),
        fmt(r.decisionMs.p50, " ms"),
        String(r.failures),
        `long-poll ${lp ? "met" : "NOT met"}, callback ${cb ? "met" : "NOT met"}`,
      ]);
    }
    out.push(`3. Decision to release: from sending the decision (medians over rounds of per-round percentiles)\n${pad(rows)}`);
  }
  if (results.waiters.length) {
    const rows = [
      [
        "engine",
        "variant",
        "waiters",
        "parked",
        "RSS MB",
        "idle RSS MB",
        "decide ms",
        "decisions/s",
        "all released ms",
        "after last decision ms",
        "lag p99 ms",
        "503 retried",
        "failures",
      ],
    ];
    for (const r of results.waiters) {
      for (const [name, p] of [
        ["one per request", r.perRequest],
        [`${p_(r.fanOut)} per request`, r.fanOut],
      ] as const) {
        rows.push([
          r.engine,
          name,
          String(p.waiters),
          String(p.parked ?? "-"),
          fmt(p.rssMB),
          fmt(p.rssIdleMB),
          fmt(p.decideMs),
          fmt(p.decisionsPerSecond),
          fmt(p.allReleasedMs),
          fmt(p.afterLastDecisionMs),
          fmt(p.lagMs.p99),
          String(p.busy),
          String(p.failures),
        ]);
      }
      const worst = r.perRequest.rssMB >= r.fanOut.rssMB ? r.perRequest : r.fanOut;
      targets.push({
        benchmark: "waiters",
        engine: r.engine,
        what: `gateway RSS with ${worst.waiters} parked waiters`,
        target: "<= 300 MB",
        value: `${worst.rssMB} MB (${round(worst.rssMB - worst.rssIdleMB, 1)} MB over idle)`,
        met: worst.rssMB <= 300,
      });
      targets.push({
        benchmark: "waiters",
        engine: r.engine,
        what: `all ${r.fanOut.waiters} released, first decision -> last waiter (${p_(r.fanOut)} per request, ${r.fanOut.requests} decisions)`,
        target: "<= 2000 ms",
        value: `${r.fanOut.allReleasedMs} ms (${r.fanOut.afterLastDecisionMs} ms after the last decision)`,
        met: r.fanOut.allReleasedMs <= 2000,
      });
      targets.push({
        benchmark: "waiters",
        engine: r.engine,
        what: `all ${r.perRequest.waiters} released, first decision -> last waiter (one per request, ${r.perRequest.requests} decisions)`,
        target: "<= 2000 ms",
        value: `${r.perRequest.allReleasedMs} ms (${r.perRequest.afterLastDecisionMs} ms after the last decision)`,
        met: r.perRequest.allReleasedMs <= 2000,
      });
    }
    out.push(`4. Waiters at scale: parked long-polls on one gateway, then every request decided (32 deciders)\n${pad(rows)}`);
  }
  if (results.decisions.length) {
    const rows = [
      [
        "engine",
        "decisions/s",
        "p50 ms",
        "p99 ms",
        "non-2xx",
        "gw CPU ms/dec",
        "lock-waiting share",
        "by wait_event",
        "before decisions/s",
        "before p99 ms",
        "before lock share",
        "ratio",
        "target",
      ],
    ];
    for (const r of results.decisions) {
      const b = r.before;
      if (r.engine === "postgres")
        targets.push({
          benchmark: "decisions",
          engine: r.engine,
          what: `decisions/s vs before (${b ? `${b.commit}: ${b.decisionsPerSecond}/s` : "no before figure"})`,
          target: `>= ${TARGET_RATIO}x`,
          value: b ? `${b.ratio}x (${r.decisionsPerSecond}/s)` : `${r.decisionsPerSecond}/s`,
          met: b ? b.met : null,
        });
      rows.push([
        r.engine,
        fmt(r.decisionsPerSecond),
        fmt(r.latencyMs.p50),
        fmt(r.latencyMs.p99),
        String(r.non2xx),
        fmt(r.cpuMsPerDecision),
        r.locks ? `${pct(r.locks.lockShare)} (${r.locks.meanLockWaiting}/${r.locks.meanBackends})` : "n/a",
        r.locks ? breakdown(r.locks.lockByEvent) : "n/a",
        b ? fmt(b.decisionsPerSecond) : "-",
        b ? fmt(b.p99) : "-",
        b ? pct(b.lockShare) : "-",
        b ? `${b.ratio}x` : "-",
        r.engine !== "postgres" ? "(PostgreSQL only)" : !b ? "no before figure" : b.met ? `met (>= ${TARGET_RATIO}x)` : `NOT met (>= ${TARGET_RATIO}x)`,
      ]);
    }
    const first = results.decisions[0] as DecisionsResult;
    const beforeFrom = results.decisions.find((r) => r.before)?.before;
    out.push(
      `5. Decisions per second: ${first.reviewers} reviewers in a closed loop on distinct pending requests (1 approval each), gateway pool ${first.poolSize}; ` +
        `decisions/s = median over ${first.rounds} rounds of ${first.perRound}, latency percentiles over all timed decisions\n` +
        `   lock share = connections with wait_event_type 'Lock' / all client backends of the bench database except the sampler (pool + LISTEN), sampled every ~50 ms; PGlite: n/a (one connection)\n` +
        `   before = ${beforeFrom ? `commit ${beforeFrom.commit}, measured ${beforeFrom.measuredAt}${beforeFrom.quick ? " (QUICK)" : ""}` : "none recorded (scripts/bench/baselines/decisions-before.json)"}\n${pad(rows)}`,
    );
  }
  if (results.startup.length) {
    const rows = [["engine", "start", "listening ms", "/readyz green ms", "idle RSS MB", "first intake ms", "warm p50 ms", "targets"]];
    for (const r of results.startup) {
      const rssLimit = r.engine === "postgres" ? 150 : round(1.3 * (r.barePgliteRssMB ?? Number.NaN));
      for (const [name, run] of [
        ["fresh data", r.fresh],
        ["restart", r.restart],
      ] as const) {
        const ready = run.readyMs <= 2000;
        const first = run.firstRequestMs <= 3 * run.warmP50Ms;
        const rss = run.idleRssMB <= rssLimit;
        const check = (what: string, target: string, value: string, met: boolean) =>
          targets.push({ benchmark: "startup", engine: r.engine, what: `${what} (${name})`, target, value, met });
        check("start to /readyz green", "<= 2000 ms", `${run.readyMs} ms`, ready);
        check("first intake after ready", `<= 3x warm p50 (${round(3 * run.warmP50Ms)} ms)`, `${run.firstRequestMs} ms`, first);
        const rssTarget = r.engine === "postgres" ? "<= 150 MB" : `<= 1.3x bare PGlite (${r.barePgliteRssMB} MB) = ${rssLimit} MB`;
        check("idle RSS after start", rssTarget, `${run.idleRssMB} MB`, rss);
        rows.push([
          r.engine,
          name,
          fmt(run.listeningMs),
          fmt(run.readyMs),
          fmt(run.idleRssMB),
          fmt(run.firstRequestMs),
          fmt(run.warmP50Ms),
          `ready ${ready ? "met" : "NOT met"}, first ${first ? "met" : "NOT met"}, RSS ${rss ? "met" : "NOT met"}`,
        ]);
      }
    }
    out.push(
      `6. Start-up: spawn of the compiled gateway to listening and to /readyz 200; RSS 2 s after ready; then one intake, and the p50 of the next 50 (sequential)\n` +
        `   bare PGlite = a node process holding the same data directory open with PGlite's default settings: ${results.startup.map((r) => (r.barePgliteRssMB ? `${r.barePgliteRssMB} MB` : "")).join("")}\n${pad(rows)}`,
    );
  }
  if (results.cli.length) {
    const rows = [["command", "engine", "how", "runs", "median ms", "max ms", "target"]];
    for (const c of results.cli) {
      const met = Number.isNaN(c.targetMs) ? null : c.medianMs <= c.targetMs;
      if (met !== null)
        targets.push({
          benchmark: "cli",
          engine: c.engine,
          what: `countersign ${c.command}: ${c.how}`,
          target: `< ${c.targetMs} ms (median)`,
          value: `${c.medianMs} ms`,
          met,
        });
      rows.push([c.command, c.engine, c.how, String(c.runs), fmt(c.medianMs), fmt(c.maxMs), met === null ? "(reported)" : met ? "met" : "NOT met"]);
    }
    out.push(`7. CLI response time: wall time of node apps/cli/dist/main.js (what pnpm countersign runs, less pnpm's own ~0.7 s)\n${pad(rows)}`);
  }
  if (results.mcp.length) {
    const rows = [
      [
        "engine",
        "calls",
        "direct p50",
        "direct p99",
        "gateway p50",
        "gateway p99",
        "added p50",
        "added p99",
        "of which ping p50",
        "failures",
        "target added p50 <= 2 ms",
      ],
    ];
    for (const r of results.mcp) {
      const met = r.engine === "postgres" ? r.addedP50Ms <= 2 && r.failures === 0 : null;
      if (r.engine === "postgres")
        targets.push({
          benchmark: "mcp",
          engine: r.engine,
          what: "allowed MCP call, added p50 vs straight to the upstream",
          target: "<= 2 ms",
          value: `${r.addedP50Ms} ms`,
          met,
        });
      rows.push([
        r.engine,
        String(r.calls),
        fmt(r.direct.p50, " ms"),
        fmt(r.direct.p99, " ms"),
        fmt(r.gateway.p50, " ms"),
        fmt(r.gateway.p99, " ms"),
        fmt(r.addedP50Ms, " ms"),
        fmt(r.addedP99Ms, " ms"),
        fmt(r.gatewayPing.p50, " ms"),
        String(r.failures),
        met === null ? "(PostgreSQL only)" : met ? "met" : "NOT met",
      ]);
    }
    out.push(
      `8. MCP gateway overhead: server-everything's echo, sequential, straight over stdio vs through /mcp/everything (Streamable HTTP; policy allow; upstream over stdio)\n` +
        `   ping = the gateway answering an MCP ping itself: the HTTP/SSE round trip and the key check, without the intake\n${pad(rows)}`,
    );
  }

  const trows = [["benchmark", "engine", "what", "target", "measured", "verdict"]];
  for (const t of targets) trows.push([t.benchmark, t.engine, t.what, t.target, t.value, t.met === null ? "skipped" : t.met ? "MET" : "NOT MET"]);
  out.push(`Targets\n${pad(trows)}`);

  const header = `Countersign benchmarks (${args.quick ? "QUICK: small counts, indicative only" : "full"}), ${startedAt}\nmachine: ${machine.cores} cores (${machine.cpu}), ${machine.memoryGB} GB, Node ${machine.node}, ${machine.platform}`;
  const text = `${header}\n\n${out.join("\n\n")}\n`;
  const doc = { startedAt, finishedAt: new Date().toISOString(), quick: args.quick, machine, engines, sizes: size, results, targets };
  (args.json ? process.stderr : process.stdout).write(text);
  if (args.json) process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
  if (args.out) writeFileSync(args.out, `${JSON.stringify(doc, null, 2)}\n`);
}

function p_(p: { waiters: number; requests: number }): number {
  return Math.round(p.waiters / p.requests);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
