/**
 * CLI response times, as a user sees them: wall time of `node apps/cli/dist/main.js ...`
 * (what `pnpm countersign` runs, without pnpm's own start-up), for --help and -V, a
 * command that opens the embedded database itself, and one that goes through a running
 * gateway (its admin socket on PGlite, the database on PostgreSQL).
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { type Engine, freshPostgres } from "./lib/db.ts";
import { ROOT, startBenchGateway } from "./lib/gateway.ts";
import { log } from "./lib/setup.ts";
import { median, round } from "./lib/stats.ts";

const CLI = join(ROOT, "apps/cli/dist/main.js");

export interface CliTiming {
  command: string;
  engine: Engine | "none";
  how: string;
  runs: number;
  medianMs: number;
  maxMs: number;
  targetMs: number;
}

async function time(args: string[], env: Record<string, string>, runs: number): Promise<{ medianMs: number; maxMs: number }> {
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await promisify(execFile)(process.execPath, [CLI, ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env } });
    ms.push(performance.now() - t0);
  }
  return { medianMs: round(median(ms)), maxMs: round(Math.max(...ms)) };
}

/** One row: `runs` timed runs of `countersign <args>` with `env`. NaN target: reported only. */
async function measure(
  args: string[],
  row: { engine: CliTiming["engine"]; how: string; targetMs: number },
  env: Record<string, string>,
  runs: number,
): Promise<CliTiming> {
  return { command: args.join(" "), ...row, runs, ...(await time(args, env, runs)) };
}

export async function benchCli(opts: { engines: Engine[]; pgUrl: string | undefined; runs: number }): Promise<CliTiming[]> {
  const out: CliTiming[] = [];
  const dir = mkdtempSync(join(tmpdir(), "cs-bench-cli-"));
  try {
    const bare = { COUNTERSIGN_DATA_DIR: join(dir, "unused") };
    log("cli: --help, -V");
    const noDb = { engine: "none", how: "no database", targetMs: 300 } as const;
    out.push(await measure(["--help"], noDb, bare, opts.runs), await measure(["-V"], noDb, bare, opts.runs));

    if (opts.engines.includes("pglite")) {
      const own = { COUNTERSIGN_DATA_DIR: join(dir, "own") };
      log("cli: keys list opening the embedded database itself");
      // The first command on a new directory creates the database; reported, not held to the target.
      out.push(
        await measure(["keys", "list"], { engine: "pglite", how: "opens it itself, new directory (creates the database)", targetMs: Number.NaN }, own, 1),
      );
      out.push(await measure(["keys", "list"], { engine: "pglite", how: "opens it itself", targetMs: 3000 }, own, opts.runs));
      log("cli: keys list through a running gateway");
      const gw = await startBenchGateway({ policy: "version: 1\n" });
      try {
        const env = { COUNTERSIGN_DATA_DIR: gw.env.COUNTERSIGN_DATA_DIR as string };
        out.push(await measure(["keys", "list"], { engine: "pglite", how: "through the running gateway's admin socket", targetMs: 1000 }, env, opts.runs));
      } finally {
        await gw.stop();
      }
    }
    if (opts.engines.includes("postgres") && opts.pgUrl) {
      const pg = await freshPostgres(opts.pgUrl, true);
      try {
        log("cli: keys list on PostgreSQL");
        const env = { DATABASE_URL: pg.url, COUNTERSIGN_DATA_DIR: join(dir, "pg") };
        out.push(await measure(["keys", "list"], { engine: "postgres", how: "connects to the database a gateway shares", targetMs: 1000 }, env, opts.runs));
      } finally {
        await pg.drop();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}
