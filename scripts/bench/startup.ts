/**
 * Start-up: how long the compiled gateway takes from spawn to listening and to a green
 * /readyz, on a fresh data directory (PGlite creates its cluster then) and on a restart;
 * its idle RSS just after; and the first intake after ready against the warm p50.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { type Engine, freshPostgres } from "./lib/db.ts";
import { type BenchGateway, startBenchGateway } from "./lib/gateway.ts";
import { jsonHeaders, keepAliveAgent, send } from "./lib/http.ts";
import { log } from "./lib/setup.ts";
import { median, round } from "./lib/stats.ts";

const POLICY = `version: 1
rules:
  - id: writes
    match: { action: bench.write }
    effect: require_approval
    approvers: ["*"]
    expiresIn: 1d
default: deny
`;

export interface StartRun {
  listeningMs: number;
  readyMs: number;
  idleRssMB: number;
  firstRequestMs: number;
  warmP50Ms: number;
}

export interface StartupResult {
  engine: Engine;
  fresh: StartRun;
  restart: StartRun;
  /** PGlite only: RSS of a bare node process holding the same data directory open with PGlite's defaults. */
  barePgliteRssMB?: number;
}

async function readyAfter(gw: BenchGateway, t0: number): Promise<number> {
  for (;;) {
    const r = await fetch(`${gw.url}/readyz`).catch(() => undefined);
    if (r?.status === 200) return performance.now() - t0;
    await new Promise((res) => setTimeout(res, 10));
  }
}

async function oneStart(opts: { databaseUrl?: string; dataDir: string }): Promise<StartRun> {
  const t0 = performance.now();
  const gw = await startBenchGateway({ policy: POLICY, dataDir: opts.dataDir, ...(opts.databaseUrl ? { databaseUrl: opts.databaseUrl } : {}) });
  try {
    const listeningMs = performance.now() - t0;
    const readyMs = await readyAfter(gw, t0);
    await new Promise((r) => setTimeout(r, 2_000));
    const idleRssMB = gw.rss() / 1024 ** 2;
    const key = await gw.createKey({ name: "startup-bench", owner: "bench-owner@bench.example", scopes: ["requests"] });
    const agent = keepAliveAgent(1);
    const body = (i: number) => JSON.stringify({ action: "bench.write", summary: `start-up bench ${i}`, params: { i } });
    const first = await send(agent, `${gw.url}/v1/requests`, { method: "POST", headers: jsonHeaders(key.key), body: body(0) });
    if (first.status !== 201) throw new Error(`first intake answered ${first.status}`);
    const warm: number[] = [];
    for (let i = 1; i <= 50; i++) warm.push((await send(agent, `${gw.url}/v1/requests`, { method: "POST", headers: jsonHeaders(key.key), body: body(i) })).ms);
    agent.destroy();
    return {
      listeningMs: round(listeningMs),
      readyMs: round(readyMs),
      idleRssMB: round(idleRssMB),
      firstRequestMs: round(first.ms),
      warmP50Ms: round(median(warm)),
    };
  } finally {
    await gw.stop();
  }
}

/** A bare PGlite (its default settings) on `dir`, in its own node process: what the gateway's RSS is compared with. */
async function barePgliteRss(dir: string): Promise<number> {
  const script = `const { PGlite } = await import(process.argv[1]); const db = new PGlite(process.argv[2]); await db.waitReady;
await db.query("SELECT 1"); globalThis.gc?.(); await new Promise((r) => setTimeout(r, 1000)); process.stdout.write(String(process.memoryUsage().rss)); await db.close();`;
  const dbPackage = join(import.meta.dirname, "../../packages/db/package.json");
  const { createRequire } = await import("node:module");
  const entry = createRequire(dbPackage).resolve("@electric-sql/pglite");
  const { stdout } = await promisify(execFile)(process.execPath, ["--expose-gc", "--input-type=module", "-e", script, entry, join(dir, "pglite")]);
  return round(Number(stdout) / 1024 ** 2);
}

export async function benchStartup(opts: { engine: Engine; pgUrl: string | undefined }): Promise<StartupResult> {
  const dir = mkdtempSync(join(tmpdir(), "cs-bench-start-"));
  const pg = opts.engine === "postgres" ? await freshPostgres(opts.pgUrl as string) : undefined;
  try {
    const dataDir = join(dir, "data");
    log(`startup ${opts.engine}: fresh data`);
    const fresh = await oneStart({ dataDir, ...(pg ? { databaseUrl: pg.url } : {}) });
    log(`startup ${opts.engine}: restart`);
    const restart = await oneStart({ dataDir, ...(pg ? { databaseUrl: pg.url } : {}) });
    const barePgliteRssMB = opts.engine === "pglite" ? await barePgliteRss(dataDir) : undefined;
    return { engine: opts.engine, fresh, restart, ...(barePgliteRssMB ? { barePgliteRssMB } : {}) };
  } finally {
    await pg?.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}
