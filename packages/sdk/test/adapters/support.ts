import { execFile, spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { expect } from "vitest";
import { type GatewayProcess, ROOT, startGateway } from "../../../../test/support/gateway.ts";
import { type ApprovalRequest, Countersign } from "../../src/index.ts";

// What every adapter test shares: one real gateway per file, an agent key, a reviewer who
// decides through the HTTP API, and an address where nothing listens.

export const POLICY = `
version: 1
groups:
  reviewers: [alice@example.com]
rules:
  - id: reads
    match: { action: "tool.read*" }
    effect: allow
  - id: never-drop
    match: { action: "tool.drop*" }
    effect: deny
  - id: reviewers
    effect: require_approval
    approvers: [reviewers]
default: deny
`;

export interface AdapterHarness {
  gw: GatewayProcess;
  agentKey: string;
  reviewerKey: string;
  /** The agent's client, as the adapters get it. */
  cs: Countersign;
  /** The pending request for `action` once the agent has asked. */
  pendingFor(action: string): Promise<ApprovalRequest>;
  /** A reviewer's decision, POSTed to /v1/requests/:id/decisions as the API documents it. */
  decide(id: string, decision: "approve" | "deny", reason?: string): Promise<void>;
  /** Every request for `action`, as a reviewer lists them. */
  requestsFor(action: string): Promise<ApprovalRequest[]>;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startHarness(): Promise<AdapterHarness> {
  const gw = await startGateway({ engine: "pglite", policy: POLICY });
  const agentKey = (await gw.createKey({ name: "agent", owner: "agent-owner@example.com", scopes: ["requests"] })).key;
  const reviewerKey = (await gw.createKey({ name: "alice", owner: "alice@example.com", scopes: ["decisions"] })).key;
  const requestsFor = async (action: string) => {
    const res = await gw.api(`/v1/requests?action=${encodeURIComponent(action)}&limit=100`, { key: reviewerKey });
    expect(res.status).toBe(200);
    return ((await res.json()) as { data: ApprovalRequest[] }).data;
  };
  return {
    gw,
    agentKey,
    reviewerKey,
    cs: new Countersign({ baseUrl: gw.url, apiKey: agentKey, retryDelayMs: 20 }),
    async pendingFor(action) {
      for (let i = 0; i < 400; i++) {
        const found = (await requestsFor(action)).find((r) => r.status === "pending");
        if (found) return found;
        await sleep(50);
      }
      throw new Error(`no pending request for ${action}`);
    },
    async decide(id, decision, reason) {
      const res = await gw.api(`/v1/requests/${id}/decisions`, { method: "POST", key: reviewerKey, json: { decision, ...(reason ? { reason } : {}) } });
      expect(res.status, await res.clone().text()).toBe(201);
    },
    requestsFor,
    stop: () => gw.stop(),
  };
}

/** A base URL where nothing listens: a port that was bound and released. */
export async function closedUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return `http://127.0.0.1:${port}`;
}

const run = promisify(execFile);

/** Runs a TypeScript file in a fresh Node process (through tsx) and parses the JSON it prints last. */
export async function inChildProcess<T>(file: string, env: Record<string, string>): Promise<T> {
  const { stdout } = await run(process.execPath, ["--import", "tsx", file], {
    cwd: join(ROOT, "packages/sdk"),
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
    timeout: 50_000,
  });
  const last = stdout.trim().split("\n").pop() ?? "";
  return JSON.parse(last) as T;
}

export interface ExampleRun {
  /** Resolves with the first match of `re` in the output so far. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exit: Promise<number | null>;
  out(): string;
}

/**
 * Runs examples/agents/<framework>/agent.ts the way a user would after `npm install`: from a
 * project whose node_modules holds @countersign/sdk and the framework packages (linked from
 * the SDK's own devDependencies), so the example imports the published entry point names.
 * @countersign/sdk there maps those names to the SDK's sources (tsx compiles them), not to
 * dist: the consumer test rebuilds dist while other files run.
 */
export function runExample(framework: string, packages: string[], env: Record<string, string>): ExampleRun & { cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), `cs-example-${framework}-`));
  const sdk = join(ROOT, "packages/sdk");
  const published = JSON.parse(readFileSync(join(sdk, "package.json"), "utf8")) as { exports: Record<string, unknown> };
  const exports: Record<string, string> = { ".": "./src/index.ts" };
  for (const name of Object.keys(published.exports)) if (name !== "." && name !== "./package.json") exports[name] = `./src/adapters/${name.slice(2)}.ts`;
  mkdirSync(join(dir, "node_modules/@countersign/sdk"), { recursive: true });
  writeFileSync(join(dir, "node_modules/@countersign/sdk/package.json"), JSON.stringify({ name: "@countersign/sdk", type: "module", exports }));
  symlinkSync(join(sdk, "src"), join(dir, "node_modules/@countersign/sdk/src"), "dir");
  for (const name of packages) {
    mkdirSync(dirname(join(dir, "node_modules", name)), { recursive: true });
    symlinkSync(realpathSync(join(sdk, "node_modules", name)), join(dir, "node_modules", name), "dir");
  }
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: `example-${framework}`, private: true, type: "module" }));
  copyFileSync(join(ROOT, "examples/agents", framework, "agent.ts"), join(dir, "agent.ts"));
  const tsx = join(ROOT, "node_modules/tsx/dist/loader.mjs");
  const child = spawn(process.execPath, ["--import", pathToFileURL(tsx).href, "agent.ts"], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let text = "";
  child.stdout.on("data", (c) => {
    text += c;
  });
  child.stderr.on("data", (c) => {
    text += c;
  });
  const exit = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  return {
    exit,
    out: () => text,
    async waitFor(re, timeoutMs = 30_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const m = re.exec(text);
        if (m) return m;
        if (Date.now() > until || child.exitCode !== null) throw new Error(`no ${re} in output:\n${text}`);
        await sleep(25);
      }
    },
    cleanup() {
      if (child.exitCode === null) child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
