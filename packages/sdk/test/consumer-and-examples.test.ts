import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "../../../test/support/db.ts";
import { type GatewayProcess, ROOT, startGateway } from "../../../test/support/gateway.ts";
import { verifyReceipt } from "../src/index.ts";

const run = promisify(execFile);
const SDK = join(ROOT, "packages/sdk");
const TSC = join(ROOT, "node_modules/typescript/bin/tsc");

interface Proc {
  child: ChildProcess;
  out: () => string;
  exit: Promise<number | null>;
  /** Resolves with the first match of `re` in stdout+stderr. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
}

function launch(cmd: string, args: string[], env: Record<string, string>): Proc {
  const child = spawn(cmd, args, { cwd: ROOT, env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let text = "";
  child.stdout?.on("data", (c) => {
    text += c;
  });
  child.stderr?.on("data", (c) => {
    text += c;
  });
  const exit = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  return {
    child,
    out: () => text,
    exit,
    async waitFor(re, timeoutMs = 20_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const m = re.exec(text);
        if (m) return m;
        if (Date.now() > until || child.exitCode !== null) throw new Error(`no ${re} in output:\n${text}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
  };
}

describe("the built package, as a consumer uses it, and the examples, against a local gateway", () => {
  let gw: GatewayProcess;
  let agentKey: string;
  let reviewerKey: string;
  const tmp = tempDir("cs-sdk-consumer-");

  beforeAll(async () => {
    // Build dist the way `pnpm --filter @countersign/sdk build` does, while the gateway boots.
    rmSync(join(SDK, "dist"), { recursive: true, force: true });
    const [started] = await Promise.all([
      startGateway({ engine: "pglite" }),
      run(process.execPath, [TSC, "-p", join(SDK, "tsconfig.build.json")], { cwd: ROOT }),
    ]);
    gw = started;
    agentKey = (await gw.createKey({ name: "export-agent", owner: "data-team@example.com", scopes: ["requests"] })).key;
    reviewerKey = (await gw.createKey({ name: "alice", owner: "alice@example.com", scopes: ["decisions"] })).key;
    // A consumer project: node_modules/@countersign/sdk points at the package folder.
    mkdirSync(join(tmp.dir, "node_modules/@countersign"), { recursive: true });
    symlinkSync(SDK, join(tmp.dir, "node_modules/@countersign/sdk"), "dir");
    writeFileSync(join(tmp.dir, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
  });
  afterAll(async () => {
    await gw?.stop();
    tmp.remove();
  });

  const approve = (id: string, decision: "approve" | "deny" = "approve", reason?: string) =>
    gw.api(`/v1/requests/${id}/decisions`, { method: "POST", key: reviewerKey, json: { decision, ...(reason ? { reason } : {}) } }).then((r) => {
      expect(r.status).toBe(201);
    });

  describe("built package", () => {
    it("ships ESM with types, depends only on jose and standardwebhooks, and never imports the server's packages", () => {
      const pkg = JSON.parse(readFileSync(join(SDK, "package.json"), "utf8"));
      expect(pkg.type).toBe("module");
      expect(pkg.exports["."]).toEqual({ types: "./dist/index.d.ts", import: "./dist/index.js", default: "./dist/index.js" });
      expect(Object.keys(pkg.dependencies).sort()).toEqual(["jose", "standardwebhooks"]);
      const files = readdirSync(join(SDK, "dist"), { recursive: true, encoding: "utf8" });
      expect(files).toContain("index.d.ts");
      for (const f of files.filter((f) => f.endsWith(".js") || f.endsWith(".d.ts"))) {
        const text = readFileSync(join(SDK, "dist", f), "utf8");
        expect(text, f).not.toMatch(/@countersign\/|from "node:|\.ts"/);
      }
    });

    it("has an entry point per agent framework, each framework an optional peer, so installing the SDK installs none", () => {
      const pkg = JSON.parse(readFileSync(join(SDK, "package.json"), "utf8"));
      const adapters = ["ai", "openai-agents", "langchain", "mastra", "claude-agent"];
      for (const a of adapters) {
        expect(pkg.exports[`./${a}`], a).toEqual({ types: `./dist/adapters/${a}.d.ts`, import: `./dist/adapters/${a}.js`, default: `./dist/adapters/${a}.js` });
        expect(existsSync(join(SDK, "dist/adapters", `${a}.js`)), a).toBe(true);
      }
      const peers = Object.keys(pkg.peerDependencies).sort();
      expect(peers).toEqual(["@anthropic-ai/claude-agent-sdk", "@langchain/core", "@langchain/langgraph", "@mastra/core", "@openai/agents", "ai", "langchain"]);
      for (const p of peers) expect(pkg.peerDependenciesMeta[p], p).toEqual({ optional: true });
      // Frameworks are only ever dev dependencies (for the adapter tests), never runtime ones.
      for (const d of Object.keys(pkg.devDependencies)) expect(pkg.dependencies[d], d).toBeUndefined();
      // The main entry point reaches no framework.
      for (const f of ["index.js", "client.js", "errors.js"]) {
        expect(readFileSync(join(SDK, "dist", f), "utf8"), f).not.toMatch(/from "(ai|@openai|@langchain|langchain|@mastra|@anthropic-ai)/);
      }
    });

    it("runs in plain Node: asks, gets approved through the API, verifies the receipt", async () => {
      writeFileSync(
        join(tmp.dir, "consumer.mjs"),
        `
import { Countersign, ApprovalDeniedError, CountersignApiError, SDK_VERSION, canonicalJson } from "@countersign/sdk";
import pkg from "@countersign/sdk/package.json" with { type: "json" };
const cs = new Countersign({ baseUrl: process.env.URL, apiKey: process.env.AGENT });
const reviewer = new Countersign({ baseUrl: process.env.URL, apiKey: process.env.REVIEWER });
const approval = await cs.requestApproval(
  { action: "consumer.export", summary: "From the built package", params: { b: 2, a: [1, "x"] } },
  { onSubmitted: (r) => void reviewer.decide(r.id, { decision: "approve" }) },
);
const denied = cs.requestApproval({ action: "consumer.export", summary: "Will be denied" }, { onSubmitted: (r) => void reviewer.decide(r.id, { decision: "deny", reason: "no" }) }).catch((e) => e);
const bad = await cs.createRequest({ action: "x", summary: "" }).catch((e) => e);
const d = await denied;
console.log(JSON.stringify({
  version: SDK_VERSION === pkg.version,
  status: approval.request.status,
  approvers: approval.receipt.approvers,
  canonical: canonicalJson({ b: 2, a: [1, "x"] }),
  denied: d instanceof ApprovalDeniedError && d.reasons[0].reason,
  apiError: bad instanceof CountersignApiError && bad.code,
}));
`,
      );
      const { stdout } = await run(process.execPath, ["consumer.mjs"], {
        cwd: tmp.dir,
        env: { PATH: process.env.PATH ?? "", URL: gw.url, AGENT: agentKey, REVIEWER: reviewerKey },
      });
      expect(JSON.parse(stdout)).toEqual({
        version: true,
        status: "approved",
        approvers: [{ principal: "alice@example.com", surface: "api" }],
        canonical: '{"a":[1,"x"],"b":2}',
        denied: "no",
        apiError: "invalid_request",
      });
    });

    it("type-checks in a strict NodeNext consumer project", async () => {
      writeFileSync(
        join(tmp.dir, "tsconfig.json"),
        JSON.stringify({
          compilerOptions: {
            strict: true,
            module: "NodeNext",
            moduleResolution: "NodeNext",
            target: "ES2023",
            lib: ["ES2023", "DOM"],
            types: [],
            noEmit: true,
          },
          files: ["consumer.ts"],
        }),
      );
      writeFileSync(
        join(tmp.dir, "consumer.ts"),
        `
import { type Approval, ApprovalDeniedError, type ApprovalRequest, Countersign, type ReceiptClaims, verifyReceipt, verifyWebhook, type WebhookEvent } from "@countersign/sdk";
const cs = new Countersign({ baseUrl: "http://127.0.0.1:8080", apiKey: "cs_x" });
export async function main(): Promise<void> {
  const approval: Approval = await cs.requestApproval({ action: "db.export", summary: "s", params: { table: "t" } });
  const claims: ReceiptClaims = approval.receipt;
  const pending: ApprovalRequest = await cs.requestApproval({ action: "db.export", summary: "s" }, { wait: false });
  const exportRows = cs.guard("db.export", async (p: { table: string }) => p.table.length, { summary: (p) => "Export " + p.table });
  const n: number = await exportRows({ table: "customers" });
  // @ts-expect-error the guarded function takes exactly its params
  await exportRows({ tabel: "customers" });
  const checked: ReceiptClaims = await verifyReceipt(approval.receiptJws, { jwksUrl: cs.jwksUrl, action: "db.export", params: { table: "t" } });
  const event: WebhookEvent = verifyWebhook("{}", { "webhook-id": "x" }, "whsec_x");
  try {
    await cs.requestApproval({ action: "db.export", summary: "s" });
  } catch (e) {
    if (e instanceof ApprovalDeniedError) console.log(e.reasons.map((r) => r.reason), e.deniedBy, e.request?.status);
  }
  console.log(claims.params_sha256, pending.id, n, checked.jti, event.data.status);
}
`,
      );
      const r = await run(process.execPath, [TSC, "-p", tmp.dir], { cwd: tmp.dir }).catch((e: { stdout: string }) => ({ stdout: e.stdout, failed: true }));
      expect(r.stdout).toBe("");
      expect("failed" in r).toBe(false);
    });
  });

  describe("examples/data-export-agent.ts", () => {
    const agentEnv = () => ({ TSX_TSCONFIG_PATH: join(ROOT, "examples/tsconfig.json"), COUNTERSIGN_URL: gw.url, COUNTERSIGN_API_KEY: agentKey });

    it("exports only after the request is approved through the API", async () => {
      const out = join(tmp.dir, "customers.csv");
      const p = launch(process.execPath, ["--import", "tsx", "examples/data-export-agent.ts", "customers", out], agentEnv());
      const [, id] = (await p.waitFor(/waiting for approval of (req_\w+)/)) as unknown as [string, string];
      await new Promise((r) => setTimeout(r, 500));
      expect(p.child.exitCode).toBeNull();
      expect(existsSync(out)).toBe(false);
      const req = await (await gw.api(`/v1/requests/${id}`, { key: reviewerKey })).json();
      expect(req).toMatchObject({ action: "data.export", status: "pending", environment: "production", risk: "high", resource: "db/customers" });
      expect(req.params).toEqual({ table: "customers", format: "csv", destination: out });

      await approve(id);
      expect(await p.exit).toBe(0);
      expect(p.out()).toMatch(/approved by alice@example\.com \(api\)/);
      expect(p.out()).toContain(`exported 2 rows to ${out}`);
      expect(readFileSync(out, "utf8")).toBe("id,name,email\n1,Ada Lovelace,ada@example.com\n2,Grace Hopper,grace@example.com\n");
    });

    it("never exports when the request is denied", async () => {
      const out = join(tmp.dir, "invoices.csv");
      const p = launch(process.execPath, ["--import", "tsx", "examples/data-export-agent.ts", "invoices", out], agentEnv());
      const [, id] = (await p.waitFor(/waiting for approval of (req_\w+)/)) as unknown as [string, string];
      await approve(id, "deny", "not this quarter");
      expect(await p.exit).toBe(2);
      expect(p.out()).toContain("not this quarter");
      expect(existsSync(out)).toBe(false);
    });
  });

  describe("examples/ci/wait-for-approval.sh", () => {
    const script = join(ROOT, "examples/ci/wait-for-approval.sh");
    const ciEnv = (extra: Record<string, string> = {}) => ({
      COUNTERSIGN_URL: gw.url,
      COUNTERSIGN_API_KEY: agentKey,
      GITHUB_RUN_ID: `${Date.now()}`,
      ...extra,
    });

    it("blocks the deploy until approved, then prints the receipt (and writes it to GITHUB_OUTPUT)", async () => {
      const output = join(tmp.dir, "github-output");
      const p = launch(
        "bash",
        [script, "deploy.production", "Deploy abc1234 to production", '{"sha":"abc1234"}'],
        ciEnv({ GITHUB_OUTPUT: output, COUNTERSIGN_ENVIRONMENT: "production" }),
      );
      const [, id] = (await p.waitFor(/asked for approval of deploy\.production: (req_\w+)/)) as unknown as [string, string];
      await new Promise((r) => setTimeout(r, 300));
      expect(p.child.exitCode).toBeNull();
      await approve(id);
      expect(await p.exit).toBe(0);
      const receipt = /receipt=(\S+)/.exec(p.out())?.[1] as string;
      expect(readFileSync(output, "utf8")).toBe(`receipt=${receipt}\n`);
      const claims = await verifyReceipt(receipt, {
        jwksUrl: `${gw.url}/.well-known/jwks.json`,
        action: "deploy.production",
        params: { sha: "abc1234" },
        requestId: id,
      });
      expect(claims).toMatchObject({ environment: "production", approvers: [{ principal: "alice@example.com" }] });
    });

    it("fails the step when denied, naming the reviewer's reason", async () => {
      const p = launch("bash", [script, "deploy.production", "Deploy def5678"], ciEnv());
      const [, id] = (await p.waitFor(/asked for approval of deploy\.production: (req_\w+)/)) as unknown as [string, string];
      await approve(id, "deny", "change freeze");
      expect(await p.exit).toBe(1);
      expect(p.out()).toContain("alice@example.com: change freeze");
    });

    it("times out (exit 3), and reports refused input and bad usage (exit 2)", async () => {
      const slow = launch("bash", [script, "deploy.staging", "Nobody answers"], ciEnv({ COUNTERSIGN_TIMEOUT: "2" }));
      const bad = launch("bash", [script, "not-dotted", "Bad action"], ciEnv());
      const usage = launch("bash", [script], ciEnv());
      expect(await slow.exit).toBe(3);
      expect(slow.out()).toMatch(/no decision within 2s; req_\w+ is still pending/);
      expect(await bad.exit).toBe(2);
      expect(bad.out()).toMatch(/400 invalid_request: .*action: expected a dotted action name/);
      expect(await usage.exit).toBe(2);
      expect(usage.out()).toContain("usage:");
    });
  });
});
