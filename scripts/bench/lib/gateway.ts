import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { openAdmin } from "../../../apps/cli/src/admin-client.ts";
import { parseEnv } from "../../../apps/gateway/src/env.ts";
import type { CreatedKey } from "../../../packages/services/src/index.ts";

export const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
// The compiled gateway, as `pnpm start` runs it (`pnpm bench` builds first).
const MAIN = join(ROOT, "apps/gateway/dist/main.js");

export interface BenchGateway {
  url: string;
  port: number;
  pid: number;
  env: Record<string, string>;
  child: ChildProcess;
  logs: string[];
  createKey(input: { name: string; owner: string; scopes: string[] }): Promise<CreatedKey>;
  /** Resident set size of the gateway process, in bytes (Linux /proc). */
  rss(): number;
  /** CPU time (user + system) the gateway has used so far, in ms. */
  cpuMs(): number;
  stop(): Promise<void>;
}

/**
 * Boots the real gateway as a child process, exactly as `pnpm start` does, on its own
 * data directory and the given database (PGlite when `databaseUrl` is unset).
 */
export async function startBenchGateway(opts: {
  databaseUrl?: string;
  policy: string;
  env?: Record<string, string>;
  nodeArgs?: string[];
  /** Reuse this data directory (a restart); it is kept on stop. Default: a fresh one, removed on stop. */
  dataDir?: string;
}): Promise<BenchGateway> {
  const dir = mkdtempSync(join(tmpdir(), "cs-bench-"));
  const policyFile = join(dir, "policy.yaml");
  writeFileSync(policyFile, opts.policy);
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "",
    NODE_ENV: "production",
    HOST: "127.0.0.1",
    PORT: "0",
    LOG_FORMAT: "json",
    LOG_LEVEL: "info",
    COUNTERSIGN_DATA_DIR: opts.dataDir ?? join(dir, "data"),
    COUNTERSIGN_POLICY_FILE: policyFile,
    COUNTERSIGN_CALLBACK_ALLOW: "http:127.0.0.1/32",
    COUNTERSIGN_RATE_LIMIT: "0",
    // The waiters benchmark parks thousands of long-polls on one agent key, which the
    // per-key long-poll limits refuse by design (429); 0 turns them off, as for intake.
    COUNTERSIGN_WAIT_RATE_LIMIT: "0",
    COUNTERSIGN_WAIT_MAX_OPEN: "0",
    ...(opts.databaseUrl ? { DATABASE_URL: opts.databaseUrl } : {}),
    ...opts.env,
  };
  const logs: string[] = [];
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), MAIN], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  child.stderr?.on("data", (c: Buffer) => logs.push(c.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start in 90 s:\n${logs.join("")}`)), 90_000);
    let out = "";
    child.stdout?.on("data", (c: Buffer) => {
      const text = c.toString();
      logs.push(text);
      out += text;
      const m = /listening on http:\/\/[^:]+:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        out = "";
        resolve(Number(m[1]));
      }
      if (logs.length > 2000) logs.splice(0, 1000);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code} before listening:\n${logs.join("")}`));
    });
  });
  env.PORT = String(port);
  const pid = child.pid as number;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    pid,
    env,
    child,
    logs,
    async createKey(input) {
      const session = await openAdmin(parseEnv(env));
      try {
        return await session.ops.createKey(input);
      } finally {
        await session.close();
      }
    },
    rss() {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      return m ? Number(m[1]) * 1024 : Number.NaN;
    },
    cpuMs() {
      // Fields 14 and 15 of /proc/<pid>/stat are utime and stime in clock ticks (100 Hz here).
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return (Number(fields[11]) + Number(fields[12])) * 10;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 15_000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Waits until the gateway has been (nearly) idle for `quietMs`: every request sent so far has been handled. */
export async function waitForIdle(gw: BenchGateway, { quietMs = 500, maxCpuShare = 0.05, timeoutMs = 120_000 } = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = gw.cpuMs();
  for (;;) {
    await new Promise((r) => setTimeout(r, quietMs));
    const now = gw.cpuMs();
    if (now - last <= quietMs * maxCpuShare) return;
    last = now;
    if (Date.now() > deadline) return;
  }
}
