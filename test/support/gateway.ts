import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { openAdmin } from "../../apps/cli/src/admin-client.ts";
import { parseEnv } from "../../apps/gateway/src/env.ts";
import type { CreatedKey } from "../../packages/services/src/index.ts";
import { GATEWAY_MAIN } from "./build.ts";
import { type Engine, freshPostgresUrl, tempDir } from "./db.ts";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface GatewayProcess {
  url: string;
  port: number;
  env: Record<string, string>;
  dataDir: string;
  logs: string[];
  child: ChildProcess;
  /** Creates an API key the way an operator would (CLI code path). */
  createKey(input: { name: string; owner: string; scopes: string[] }): Promise<CreatedKey>;
  /** Authenticated fetch against the gateway. */
  api(path: string, init?: RequestInit & { key?: string; json?: unknown }): Promise<Response>;
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the process again on the same data directory / database and port. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface StartGatewayOptions {
  engine?: Engine;
  /** Reuse a database URL (for several replicas on one PostgreSQL). */
  databaseUrl?: string;
  policy?: string;
  env?: Record<string, string>;
  port?: number;
  /** Another build's gateway entry point (a previous release, for upgrade tests); its checkout is the working directory. */
  main?: { file: string; cwd: string };
}

function waitForListen(child: ChildProcess, logs: string[], timeoutMs = 60_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start in ${timeoutMs} ms:\n${logs.join("")}`)), timeoutMs);
    // Keeps capturing stdout after start-up, so tests can inspect everything the gateway logged,
    // and looks for "listening" in this process's output only (a restart must not match the old one's).
    let listening = false;
    const own: string[] = [];
    const onData = (chunk: Buffer) => {
      const text = chunk.toString();
      logs.push(text);
      if (listening) return;
      own.push(text);
      const m = /listening on http:\/\/[^:]+:(\d+)/.exec(own.slice(-2).join(""));
      if (m) {
        listening = true;
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", (c: Buffer) => logs.push(c.toString()));
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code} before listening:\n${logs.join("")}`));
    });
  });
}

// A test that times out or throws before stop() must not leave gateways running.
const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of live) c.kill("SIGKILL");
});

/** Boots the real, compiled gateway as a child process, on a temp data dir and a fresh database. */
export async function startGateway(opts: StartGatewayOptions = {}): Promise<GatewayProcess> {
  const data = tempDir("cs-gw-");
  let dropDb: (() => Promise<void>) | undefined;
  let databaseUrl = opts.databaseUrl;
  if (!databaseUrl && opts.engine === "postgres") {
    const fresh = await freshPostgresUrl();
    databaseUrl = fresh.url;
    dropDb = fresh.drop;
  }
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "",
    NODE_ENV: "test",
    HOST: "127.0.0.1",
    PORT: String(opts.port ?? 0),
    LOG_FORMAT: "json",
    LOG_LEVEL: "info",
    COUNTERSIGN_DATA_DIR: data.dir,
    COUNTERSIGN_CALLBACK_ALLOW: "http:127.0.0.1/32,http:localhost",
    COUNTERSIGN_RELAY_POLL_MS: "100",
    COUNTERSIGN_SWEEP_MS: "200",
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    ...opts.env,
  };
  if (opts.policy !== undefined) {
    const file = join(data.dir, "..", `${data.dir.split("/").pop()}-policy.yaml`);
    writeFileSync(file, opts.policy);
    env.COUNTERSIGN_POLICY_FILE = file;
  }
  const logs: string[] = [];
  const spawnIt = () => {
    const c = spawn(process.execPath, [opts.main?.file ?? GATEWAY_MAIN], { cwd: opts.main?.cwd ?? ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    live.add(c);
    c.once("exit", () => live.delete(c));
    return c;
  };
  let child = spawnIt();
  let port = await waitForListen(child, logs);
  env.PORT = String(port);

  const gw: GatewayProcess = {
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    env,
    dataDir: data.dir,
    logs,
    get child() {
      return child;
    },
    async createKey(input) {
      const session = await openAdmin(parseEnv(env));
      try {
        return await session.ops.createKey(input);
      } finally {
        await session.close();
      }
    },
    api(path, init = {}) {
      const headers = new Headers(init.headers);
      if (init.key) headers.set("authorization", `Bearer ${init.key}`);
      let body = init.body;
      if (init.json !== undefined) {
        headers.set("content-type", "application/json");
        body = JSON.stringify(init.json);
      }
      return fetch(`${gw.url}${path}`, { ...init, headers, body });
    },
    async kill(signal = "SIGKILL") {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill(signal);
      await exited;
    },
    async restart() {
      await gw.kill("SIGKILL");
      child = spawnIt();
      port = await waitForListen(child, logs);
    },
    async stop() {
      await gw.kill("SIGTERM");
      await dropDb?.();
      data.remove();
    },
  };
  return gw;
}
