import { execFile } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { buildProgram, run } from "../../apps/cli/src/main.ts";
import { CLI_MAIN } from "../support/build.ts";
import { tempDir } from "../support/db.ts";
import { type GatewayProcess, ROOT, startGateway } from "../support/gateway.ts";

const exec = promisify(execFile);
type Command = ReturnType<typeof buildProgram>;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI as `pnpm countersign ...` does (compiled), with only the given environment. */
async function cli(env: Record<string, string>, ...args: string[]): Promise<Result> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [CLI_MAIN, ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", NODE_ENV: "test", ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

/**
 * Runs the CLI's `run()` in this process with `env` applied: the same code as the binary,
 * without paying its start-up for every case. Spawned runs above cover the entry point.
 */
async function inProcess(env: Record<string, string>, ...args: string[]): Promise<Result> {
  let stdout = "";
  let stderr = "";
  const out = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  for (const [k, v] of Object.entries(env)) vi.stubEnv(k, v);
  try {
    const code = await run(["node", "countersign", ...args]);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
    vi.unstubAllEnvs();
  }
}

/** Every command path, e.g. ["keys", "create"]. */
function commandPaths(cmd: Command, prefix: string[] = []): string[][] {
  return cmd.commands.flatMap((c) => {
    const path = [...prefix, c.name()];
    return [path, ...commandPaths(c, path)];
  });
}

/** Commands whose output is not data: a running server, and a file. */
// start runs the gateway, teams package writes a zip, mcp stdio speaks MCP on stdin/stdout.
const NOT_DATA = new Set(["start", "teams package", "mcp stdio"]);

describe("countersign CLI", () => {
  describe("every command", () => {
    const program = buildProgram();
    const paths = commandPaths(program);

    it("has --help, which exits 0", async () => {
      expect(paths.length).toBeGreaterThanOrEqual(14);
      for (const path of paths) {
        const r = await inProcess({}, ...path, "--help");
        expect({ path, code: r.code }).toEqual({ path, code: 0 });
        expect(r.stdout).toContain(`Usage: countersign ${path.join(" ")}`);
      }
    });

    it("takes --json where its output is data", () => {
      const leaves = paths.filter((p) => {
        let c: Command | undefined = program;
        for (const name of p) c = c?.commands.find((x) => x.name() === name);
        return c !== undefined && c.commands.length === 0;
      });
      for (const path of leaves) {
        if (NOT_DATA.has(path.join(" "))) continue;
        let c: Command | undefined = program;
        for (const name of path) c = c?.commands.find((x) => x.name() === name);
        expect({ path, json: c?.options.some((o) => o.long === "--json") }).toEqual({ path, json: true });
      }
    });
  });

  describe("on a fresh clone (no data directory yet, embedded database)", () => {
    const t = tempDir("cs-cli-");
    const env = { COUNTERSIGN_DATA_DIR: join(t.dir, "not/yet/there") };
    afterAll(() => t.remove());

    it("migrate, keys create|list|revoke, audit verify|export, and a tampered export", async () => {
      const migrated = await cli(env, "migrate", "--json");
      expect(migrated.code).toBe(0);
      expect(JSON.parse(migrated.stdout).applied.length + JSON.parse(migrated.stdout).alreadyApplied.length).toBeGreaterThan(0);

      const agent = await cli(env, "keys", "create", "--name", "deploy-bot", "--owner", "Ops-Lead@Example.com", "--scopes", "requests", "--json");
      expect(agent.code).toBe(0);
      const a = JSON.parse(agent.stdout);
      expect(a).toMatchObject({ name: "deploy-bot", owner: "ops-lead@example.com", scopes: ["requests"] });
      expect(a.key).toMatch(/^cs_/);
      expect(a.webhookSecret).toMatch(/^whsec_/);

      const listed = await inProcess(env, "keys", "list", "--json");
      const keys = JSON.parse(listed.stdout) as Record<string, unknown>[];
      expect(keys.map((k) => k.name)).toEqual(["deploy-bot"]);
      expect(keys.every((k) => !("key" in k) && !("hash" in k))).toBe(true);
      expect(listed.stdout).not.toContain(a.key);

      const revoked = await inProcess(env, "keys", "revoke", a.prefix, "--json");
      expect(JSON.parse(revoked.stdout)).toMatchObject({ id: a.id });
      expect(JSON.parse(revoked.stdout).revokedAt).toBeTruthy();

      const verified = await inProcess(env, "audit", "verify", "--json");
      expect(verified.code).toBe(0);
      expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true, events: 2 });

      const exported = await cli(env, "audit", "export");
      expect(exported.code).toBe(0);
      expect(exported.stderr).toBe(""); // piped: no progress
      const lines = exported.stdout.trim().split("\n");
      expect(lines.map((l) => JSON.parse(l).type)).toEqual(["key.created", "key.revoked"]);
      // The export is JSON Lines either way; --json is accepted like everywhere else.
      expect((await inProcess(env, "audit", "export", "--json")).stdout).toBe(exported.stdout);

      const file = join(t.dir, "audit.jsonl");
      writeFileSync(file, exported.stdout);
      expect((await inProcess(env, "audit", "verify", "--file", file)).stdout).toMatch(/^audit log ok: 2 events in 0 checkpoints, 2 not sealed yet/);
      const tampered = lines.map((l, i) => (i === 1 ? l.replace('"deploy-bot"', '"mallory"') : l)).join("\n");
      writeFileSync(file, `${tampered}\n`);
      const broken = await inProcess(env, "audit", "verify", "--file", file);
      expect(broken.code).toBe(1);
      expect(broken.stderr).toMatch(/^countersign: audit log broken at event seq 2: edited/);
    });

    it("fails with a one-line reason and a non-zero status", async () => {
      const cases: [string[], RegExp][] = [
        [["keys", "create", "--name", "x", "--owner", "not-an-email", "--scopes", "requests"], /--owner: "not-an-email" is not an email address/],
        [["keys", "create", "--name", "x", "--owner", "x@example.com", "--scopes", "root"], /unknown scope "root"/],
        [["keys", "create", "--name", "x"], /required option '--owner <email>' not specified/],
        [["keys", "revoke", "key_nope"], /not_found: no API key key_nope/],
        [["requests", "list", "--status", "stuck"], /Allowed choices are pending, approved, denied, expired, cancelled/],
        [["requests", "list", "--limit", "0"], /expected an integer from 1 to 200/],
        [["audit", "verify", "--file", join(t.dir, "missing.jsonl")], /cannot read .*missing\.jsonl/],
        [["nonsense"], /unknown command 'nonsense'/],
      ];
      const errEnv = env;
      const results: Result[] = [];
      for (const [args] of cases) results.push(await inProcess(errEnv, ...args));
      cases.forEach(([args, re], i) => {
        const r = results[i] as Result;
        expect({ args, code: r.code }).toEqual({ args, code: 1 });
        expect(r.stderr).toMatch(re);
        expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
        expect(r.stderr).toMatch(/^countersign: /);
      });
      const badEnv = await inProcess({ ...env, DATABASE_POOL_SIZE: "lots" }, "keys", "list");
      expect(badEnv.code).toBe(1);
      expect(badEnv.stderr).toMatch(/^countersign: invalid configuration: DATABASE_POOL_SIZE: .+\n$/);
      // With --json the error is JSON too, on stderr, and stdout stays empty; usage errors included.
      const asJson = [
        await inProcess(errEnv, "requests", "show", "req_01ARZ3NDEKTSV4RRFFQ69G5FAV", "--json"),
        await inProcess(errEnv, "requests", "list", "--limit", "0", "--json"),
        await inProcess({ ...env, DATABASE_POOL_SIZE: "lots" }, "keys", "list", "--json"),
      ];
      expect(asJson.map((r) => ({ code: r.code, stdout: r.stdout, error: JSON.parse(r.stderr).error }))).toEqual([
        { code: 1, stdout: "", error: { code: "not_found", message: "no request req_01ARZ3NDEKTSV4RRFFQ69G5FAV" } },
        { code: 1, stdout: "", error: { code: "invalid_argument", message: expect.stringMatching(/--limit.*expected an integer from 1 to 200/) } },
        {
          code: 1,
          stdout: "",
          error: {
            code: "invalid_configuration",
            message: expect.stringMatching(/^invalid configuration: DATABASE_POOL_SIZE/),
            errors: [expect.objectContaining({ path: "DATABASE_POOL_SIZE" })],
          },
        },
      ]);
      // The binary exits with that status.
      expect(await cli(errEnv, "requests", "show", "req_01ARZ3NDEKTSV4RRFFQ69G5FAV")).toMatchObject({
        code: 1,
        stderr: "countersign: not_found: no request req_01ARZ3NDEKTSV4RRFFQ69G5FAV\n",
      });
    });
  });

  describe("policy check and explain", () => {
    const policyFile = join(ROOT, "examples/policy/countersign.yaml");

    it("checks a good file and explains which rule decides", async () => {
      // Its channels are Slack and Teams ones: without those surfaces configured, each is a warning (exit 0).
      const ok = await inProcess({}, "policy", "check", policyFile);
      expect(ok).toMatchObject({ code: 0, stdout: expect.stringMatching(/countersign\.yaml: ok \(3 rules, 2 groups, 2 channels, 2 warning\(s\)\)\n$/) });
      expect(ok.stderr.trimEnd().split("\n")).toEqual([
        expect.stringMatching(
          /countersign\.yaml: warning: channels\.ops\.slack: channel "ops" has a Slack destination but Slack is not configured.*SLACK_BOT_TOKEN/,
        ),
        expect.stringMatching(
          /countersign\.yaml: warning: channels\.sec\.teams: channel "sec" has a Teams destination but Microsoft Teams is not configured.*TEAMS_APP_ID/,
        ),
      ]);
      const configured = await inProcess(
        { SLACK_BOT_TOKEN: "xoxb-1", TEAMS_APP_ID: "00000000-0000-0000-0000-000000000001" },
        "policy",
        "check",
        policyFile,
        "--json",
      );
      expect({ stderr: configured.stderr, ...JSON.parse(configured.stdout) }).toMatchObject({ stderr: "", ok: true, rules: 3, warnings: [] });
      const explained = await inProcess({}, "policy", "explain", "--action", "iam.role.attach", "--environment", "production", "--file", policyFile, "--json");
      expect(JSON.parse(explained.stdout)).toMatchObject({
        ruleId: "prod-iam",
        effect: "require_approval",
        requiredApprovals: 2,
        eligible: ["carol@example.com", "dan@example.com", "erin@example.com"],
        onExpire: "deny",
      });
      const text = await inProcess({}, "policy", "explain", "--action", "logs.read", "--file", policyFile);
      expect(text.stdout).toMatch(/rule: +reads\neffect: +allow/);
    });

    it("explains a rule that matches on arguments, given --params", async () => {
      const t = tempDir("cs-policy-");
      try {
        const file = join(t.dir, "countersign.yaml");
        writeFileSync(
          file,
          [
            "version: 1",
            "rules:",
            '  - { id: docs, match: { action: mcp.fs.write_file, params: { path: "/srv/docs/**" } }, effect: allow }',
            '  - { id: writes, match: { action: mcp.fs.write_file }, effect: require_approval, approvers: ["*"] }',
            "",
          ].join("\n"),
        );
        const explain = async (params: string) =>
          JSON.parse((await inProcess({}, "policy", "explain", "--action", "mcp.fs.write_file", "--params", params, "--file", file, "--json")).stdout) as {
            ruleId: string;
          };
        expect((await explain('{"path":"/srv/docs/a.md"}')).ruleId).toBe("docs");
        expect((await explain('{"path":"/srv/docs/../etc/passwd"}')).ruleId).toBe("writes");
        const bad = await cli({}, "policy", "explain", "--action", "mcp.fs.write_file", "--params", "[1]", "--file", file);
        expect(bad.code).not.toBe(0);
        expect(bad.stderr).toContain("expected a JSON object");
      } finally {
        t.remove();
      }
    });

    it("names the file, line and message of every problem, and exits non-zero", async () => {
      const t = tempDir("cs-policy-");
      try {
        const file = join(t.dir, "countersign.yaml");
        writeFileSync(
          file,
          ["version: 1", "rules:", "  - id: deploys", "    match: { action: deploy.* }", "    effect: require_approval", "    approvers: [sre]", ""].join("\n"),
        );
        const bad = await cli({}, "policy", "check", file);
        expect(bad.code).toBe(1);
        expect(bad.stderr).toBe(`${file}:6:17: rules[0].approvers[0]: "sre" is neither a group nor an email address\n`);
        const json = await inProcess({}, "policy", "check", file, "--json");
        expect(json.code).toBe(1);
        expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, problems: [{ line: 6, column: 17, path: "rules[0].approvers[0]" }] });
        writeFileSync(file, "version: 1\nrules: [\n");
        const syntax = await inProcess({}, "policy", "check", file);
        expect(syntax.code).toBe(1);
        expect(syntax.stderr).toMatch(new RegExp(`^${file}:\\d+:\\d+: `));
      } finally {
        t.remove();
      }
    });
  });

  describe("while the gateway runs on the embedded database (through its admin socket)", () => {
    let gw: GatewayProcess;
    let env: Record<string, string>;
    let requestId: string;

    beforeAll(async () => {
      gw = await startGateway({ engine: "pglite" });
      env = { COUNTERSIGN_DATA_DIR: gw.dataDir };
      const agent = (await gw.createKey({ name: "deploy-bot", owner: "owner@example.com", scopes: ["requests"] })).key;
      const res = await gw.api("/v1/requests", {
        method: "POST",
        key: agent,
        json: { action: "deploy.production", summary: "Deploy v2", environment: "production" },
      });
      requestId = ((await res.json()) as { id: string }).id;
    });
    afterAll(async () => {
      await gw?.stop();
    });

    it("lists and shows requests, and verifies the audit chain", async () => {
      const list = await inProcess(env, "requests", "list", "--status", "pending", "--json");
      expect(list.code).toBe(0);
      expect(JSON.parse(list.stdout).data.map((r: { id: string }) => r.id)).toEqual([requestId]);
      const table = await inProcess(env, "requests", "list");
      expect(table.stdout).toMatch(new RegExp(`${requestId}\\s+pending\\s+deploy\\.production\\s+deploy-bot\\s+0/1`));

      const reviewer = await inProcess(env, "keys", "create", "--name", "alice", "--owner", "alice@example.com", "--scopes", "decisions");
      expect(reviewer.stdout).toMatch(/^key: {12}cs_\S+$/m);
      expect(reviewer.stdout).not.toContain("webhook secret"); // reviewers receive no callbacks
      expect(reviewer.stderr).toContain("cannot be shown again");
      const key = /^key: +(\S+)$/m.exec(reviewer.stdout)?.[1] as string;
      const keysTable = await inProcess(env, "keys", "list");
      expect(keysTable.stdout.split("\n")[0]).toMatch(/^ID\s+PREFIX\s+NAME\s+OWNER\s+SCOPES\s+CREATED\s+REVOKED$/);
      expect(keysTable.stdout).toMatch(/alice\s+alice@example\.com\s+decisions/);
      expect((await gw.api(`/v1/requests/${requestId}/decisions`, { method: "POST", key, json: { decision: "approve", reason: "ship it" } })).status).toBe(201);

      const shown = await inProcess(env, "requests", "show", requestId);
      expect(shown.code).toBe(0);
      expect(shown.stdout).toContain(`${requestId}  approved (quorum)`);
      expect(shown.stdout).toMatch(/decision: +approve by alice@example\.com via api at .+: ship it/);
      expect(JSON.parse((await inProcess(env, "requests", "show", requestId, "--json")).stdout)).toMatchObject({ id: requestId, status: "approved" });

      const verified = await inProcess(env, "audit", "verify");
      expect(verified.code).toBe(0);
      expect(verified.stdout).toMatch(/^audit log ok: \d+ events/);
      expect(verified.stderr).toBe("");
    });

    it("shows progress on a terminal", async () => {
      const out = join(gw.dataDir, "export.jsonl");
      const cmd = `${process.execPath} ${CLI_MAIN} audit export --out ${out}`;
      // `script` gives the command a pseudo-terminal, as an operator's shell would.
      const { stdout } = await exec("script", ["-qec", cmd, "/dev/null"], { cwd: ROOT, env: { PATH: process.env.PATH ?? "", ...env } });
      expect(stdout).toMatch(/exported \d+ events\./);
      expect(existsSync(out)).toBe(true);
      expect(readFileSync(out, "utf8").trim().split("\n").length).toBeGreaterThanOrEqual(5);
      // Piped, the same command prints nothing but the data: see the fresh-clone export above.
    });
  });
});
