import { spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { GATEWAY_MAIN } from "../support/build.ts";
import { tempDir } from "../support/db.ts";
import { ROOT, startGateway } from "../support/gateway.ts";

function runGateway(env: Record<string, string>, timeoutMs = 30_000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [GATEWAY_MAIN], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", NODE_ENV: "test", PORT: "0", LOG_FORMAT: "json", ...env },
    });
    let out = "";
    child.stdout.on("data", (c) => {
      out += c;
    });
    child.stderr.on("data", (c) => {
      out += c;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

describe("gateway start-up", () => {
  const dirs: { remove: () => void }[] = [];
  afterAll(() => {
    for (const d of dirs) d.remove();
  });

  it("refuses a bad policy file, naming the file, YAML path, line and problem", async () => {
    const t = tempDir();
    dirs.push(t);
    const file = join(t.dir, "countersign.yaml");
    writeFileSync(
      file,
      ["version: 1", "groups:", "  sre: [alice@example.com]", "rules:", "  - id: r1", "    effect: require_approval", "    approvers: [nobody-group]"].join(
        "\n",
      ),
    );
    const r = await runGateway({ COUNTERSIGN_DATA_DIR: join(t.dir, "data"), COUNTERSIGN_POLICY_FILE: file });
    expect(r.code).toBe(1);
    expect(r.out).toContain(`${file}:7:`);
    expect(r.out).toContain("rules[0].approvers[0]");
    expect(r.out).toContain('"nobody-group" is neither a group nor an email address');
  });

  it("refuses invalid configuration and names every bad variable", async () => {
    const t = tempDir();
    dirs.push(t);
    const r = await runGateway({ COUNTERSIGN_DATA_DIR: t.dir, PORT: "not-a-port", DATABASE_URL: "mysql://x", SLACK_BOT_TOKEN: "xoxb-1" });
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/PORT:/);
    expect(r.out).toMatch(/DATABASE_URL: must be a postgres/);
    expect(r.out).toMatch(/SLACK_SIGNING_SECRET/);
    // The token's value is never echoed back.
    expect(r.out).not.toContain("xoxb-1");
  });

  it("a bad callback allow-list, receipt key, port and database URL, given together, stop it before any database work, each named, with no stack trace", async () => {
    const t = tempDir();
    dirs.push(t);
    const dataDir = join(t.dir, "data");
    const r = await runGateway({
      COUNTERSIGN_DATA_DIR: dataDir,
      COUNTERSIGN_CALLBACK_ALLOW: "http://127.0.0.1,10.0.0.0/99",
      COUNTERSIGN_RECEIPT_KEY: '{"kty":"RSA","n":"abc"}',
      PORT: "70000",
      DATABASE_URL: "postgres//nohost",
    });
    expect(r.code).toBe(1);
    const lines = r.out.trim().split("\n");
    expect(lines[0]).toBe("countersign: invalid configuration:");
    expect(r.out).toContain('  COUNTERSIGN_CALLBACK_ALLOW: "http://127.0.0.1": write http:host (no "//"), for example http:127.0.0.1:9000');
    expect(r.out).toContain('  COUNTERSIGN_CALLBACK_ALLOW: "10.0.0.0/99": "10.0.0.0/99" is not a valid CIDR range');
    expect(r.out).toContain('  COUNTERSIGN_RECEIPT_KEY: must be an Ed25519 key ("kty": "OKP", "crv": "Ed25519")');
    expect(r.out).toContain("  COUNTERSIGN_RECEIPT_KEY: needs the private part");
    expect(r.out).toMatch(/^ {2}PORT: /m);
    expect(r.out).toMatch(/^ {2}DATABASE_URL: must be a postgres/m);
    // One line per problem, nothing else: no stack frames, no JSON log lines.
    expect(lines.slice(1).every((l) => /^ {2}[A-Z_]+: /.test(l))).toBe(true);
    expect(r.out).not.toMatch(/\n\s+at /);
    // Nothing was opened: the embedded database's directory was never created.
    expect(existsSync(dataDir)).toBe(false);
  });

  it("refuses Teams emulator mode in production", async () => {
    const t = tempDir();
    dirs.push(t);
    const r = await runGateway({ COUNTERSIGN_DATA_DIR: t.dir, NODE_ENV: "production", TEAMS_DEV_NO_AUTH: "true" });
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/TEAMS_DEV_NO_AUTH: is refused when NODE_ENV=production/);
  });

  it("runs the built-in policy with a warning, and a second gateway on the same embedded data dir is refused clearly", async () => {
    const gw = await startGateway({ engine: "pglite" });
    try {
      const logs = gw.logs.join("");
      expect(logs).toContain("the built-in policy is in force");
      expect(logs.match(/Slack is not configured/g)).toHaveLength(1);
      expect(logs.match(/Teams is not configured/g)).toHaveLength(1);
      const second = await runGateway({ COUNTERSIGN_DATA_DIR: gw.dataDir });
      expect(second.code).toBe(1);
      expect(second.out).toMatch(/cannot start: the gateway \(pid \d+\) has the embedded database open/);
      // The first gateway is unharmed.
      expect((await gw.api("/readyz")).status).toBe(200);
    } finally {
      await gw.stop();
    }
  });
});
