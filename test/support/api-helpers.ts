import { spawn } from "node:child_process";
import { type AuditEventRecord, type LogVerdict, LogVerifier } from "@countersign/core";
import { expect } from "vitest";
import { openAdmin } from "../../apps/cli/src/admin-client.ts";
import { parseEnv } from "../../apps/gateway/src/env.ts";
import { CLI_MAIN } from "./build.ts";
import { type GatewayProcess, ROOT } from "./gateway.ts";

/**
 * The policy the API tests run under: `deploy.*` needs 2 of the sre group, `db.drop` is
 * denied and `logs.read` allowed by policy, anything else needs one approval from anyone.
 */
export const API_POLICY = `
version: 1
groups:
  sre: [alice@example.com, bob@example.com, carol@example.com]
rules:
  - id: deploy-two-sre
    match: { action: "deploy.*" }
    effect: require_approval
    approvers: [sre]
    approvals: 2
  - id: drop-denied
    match: { action: db.drop }
    effect: deny
  - id: logs-allowed
    match: { action: logs.read }
    effect: allow
  - id: anyone
    effect: require_approval
    approvers: ["*"]
default: deny
`;

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
  requestId: string;
  instance: string;
  errors?: { path: string; message: string }[];
}

/**
 * Every error is application/problem+json with a stable snake_case code, a detail, and the
 * request id that is also in the X-Request-Id header; never a 5xx.
 */
export async function expectProblem(res: Response, status: number, code: string): Promise<ProblemBody> {
  const text = await res.text();
  expect({ status: res.status, text }).toMatchObject({ status });
  expect(res.status).toBeLessThan(500);
  expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  const body = JSON.parse(text) as ProblemBody;
  expect(body.code).toBe(code);
  expect(body.code).toMatch(/^[a-z]+(_[a-z]+)*$/);
  expect(body.status).toBe(status);
  expect(typeof body.detail).toBe("string");
  expect(body.detail.length).toBeGreaterThan(0);
  expect(body.requestId).toBeTruthy();
  expect(body.requestId).toBe(res.headers.get("x-request-id"));
  // Stack traces and driver errors never reach the client.
  expect(text).not.toMatch(/\bat .+\.ts:\d+|Prisma|PrismaClient|stack/);
  return body;
}

/** The authenticated view of what the database holds: the audit head and every request id. */
export async function snapshot(gw: GatewayProcess, adminKey: string): Promise<{ auditSeq: number; requests: string[] }> {
  let after = 0;
  for (;;) {
    const res = await gw.api(`/v1/audit?after=${after}&limit=1000`, { key: adminKey });
    expect(res.status).toBe(200);
    const page = (await res.json()) as { data: { seq: number }[]; nextAfter: number | null };
    after = page.data.at(-1)?.seq ?? after;
    if (page.nextAfter === null) break;
  }
  const requests: string[] = [];
  let cursor: string | null = null;
  for (;;) {
    const res = await gw.api(`/v1/requests?limit=200${cursor ? `&cursor=${cursor}` : ""}`, { key: adminKey });
    expect(res.status).toBe(200);
    const page = (await res.json()) as { data: { id: string; status: string; decisions: unknown[] }[]; nextCursor: string | null };
    requests.push(...page.data.map((r) => `${r.id}:${r.status}:${r.decisions.length}`));
    cursor = page.nextCursor;
    if (!cursor) break;
  }
  return { auditSeq: after, requests };
}

/** Every event of the log over the API (admin), in seq order. */
export async function allAuditEvents(gw: GatewayProcess, adminKey: string): Promise<AuditEventRecord[]> {
  const all: AuditEventRecord[] = [];
  for (let after = 0; ; ) {
    const page = (await (await gw.api(`/v1/audit?after=${after}&limit=1000`, { key: adminKey })).json()) as {
      data: AuditEventRecord[];
      nextAfter: number | null;
    };
    all.push(...page.data);
    if (page.nextAfter === null) return all;
    after = page.nextAfter;
  }
}

/**
 * Checks every stream's hash chain in a set of events read over the API (checkpoints are
 * verified elsewhere): each event's hash, and each link from its stream's genesis on.
 */
export function verifyChains(events: readonly AuditEventRecord[]): LogVerdict {
  const v = new LogVerifier({ verifySignature: async () => null, maxUnsealedAgeMs: Number.POSITIVE_INFINITY });
  for (const e of [...events].sort((a, b) => a.seq - b.seq)) if (!v.unsealed({ ...e, sealedIn: null, leafIndex: null })) break;
  return v.verdict();
}

/** Runs `fn` and checks that neither the audit log nor any request changed. */
export async function expectNothingWritten<T>(gw: GatewayProcess, adminKey: string, fn: () => Promise<T>): Promise<T> {
  const before = await snapshot(gw, adminKey);
  const out = await fn();
  expect(await snapshot(gw, adminKey)).toEqual(before);
  return out;
}

/** Operator actions on a running gateway (through its admin socket, as the CLI does). */
export async function revokeKey(gw: GatewayProcess, idOrPrefix: string): Promise<void> {
  const session = await openAdmin(parseEnv(gw.env));
  try {
    await session.ops.revokeKey(idOrPrefix);
  } finally {
    await session.close();
  }
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real, compiled CLI (`node apps/cli/dist/main.js ...`) with the given environment. */
export function runCli(args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_MAIN, ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", NODE_ENV: "test", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => {
      stdout += c;
    });
    child.stderr.on("data", (c) => {
      stderr += c;
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`countersign ${args.join(" ")} timed out\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value. */
export async function eventually<T>(fn: () => Promise<T | undefined | null | false>, timeoutMs = 20_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}
