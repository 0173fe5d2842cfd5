import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { readLock } from "@countersign/db/lock";
import { afterAll, describe, expect, inject, it } from "vitest";
import { runCli } from "../support/api-helpers.ts";
import { GATEWAY_MAIN } from "../support/build.ts";
import { tempDir } from "../support/db.ts";
import { ROOT, startGateway } from "../support/gateway.ts";

/** A TCP port that nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function until(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const lockHolder = (dataDir: string) => readLock(dataDir)?.role;

/** A process in the background, with its output collected. */
function spawnCollecting(command: string, args: string[], opts: SpawnOptions): { child: ChildProcess; out: () => string; exited: Promise<number | null> } {
  const child = spawn(command, args, opts);
  let out = "";
  child.stdout?.on("data", (c) => {
    out += c;
  });
  child.stderr?.on("data", (c) => {
    out += c;
  });
  // "close", not "exit": by then every byte of output has been read.
  return { child, out: () => out, exited: new Promise((r) => child.once("close", (code) => r(code))) };
}

/** The gateway as `pnpm start` runs it. */
const spawnGateway = (env: Record<string, string>) =>
  spawnCollecting(process.execPath, [GATEWAY_MAIN], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", NODE_ENV: "test", PORT: "0", LOG_FORMAT: "json", ...env },
  });

/** Runs the gateway until it exits (a start-up that fails), killing it after `timeoutMs`. */
async function runGateway(env: Record<string, string>, timeoutMs = 30_000): Promise<{ code: number | null; out: string }> {
  const gw = spawnGateway(env);
  const timer = setTimeout(() => gw.child.kill("SIGKILL"), timeoutMs);
  const code = await gw.exited;
  clearTimeout(timer);
  return { code, out: gw.out() };
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

  describe("a database it cannot use is one line that names DATABASE_URL, exit 1", () => {
    const pgUrl = inject("pgUrl");
    const withPath = (db: string, user?: string) => {
      const u = new URL(pgUrl ?? "postgresql://postgres@127.0.0.1:5432/test");
      u.pathname = `/${db}`;
      if (user) u.username = user;
      return u.toString();
    };
    const cases: [string, () => Promise<string>, RegExp, boolean][] = [
      [
        "nothing listening",
        async () => `postgresql://postgres@127.0.0.1:${await closedPort()}/test`,
        /nothing accepts connections at 127\.0\.0\.1:\d+; start PostgreSQL/,
        false,
      ],
      ["unknown host", async () => "postgresql://postgres@no-such-host.invalid:5432/test", /the host "no-such-host\.invalid" cannot be resolved/, false],
      ["missing database", async () => withPath("cs_no_such_db"), /database "cs_no_such_db" does not exist on .*; create it \(createdb/, true],
      ["unknown user", async () => withPath("test", "cs_no_such_role"), /refused user "cs_no_such_role" \(role "cs_no_such_role" does not exist\)/, true],
    ];
    // The last two need the PostgreSQL server; without it the PostgreSQL tier is skipped (and CI fails, see pg-global-setup).
    it.each(cases.filter(([, , , needsServer]) => !needsServer || pgUrl))("%s", async (_name, url, message) => {
      const r = await runGateway({ DATABASE_URL: await url() });
      expect(r.code).toBe(1);
      const errors = r.out.split("\n").filter((l) => l && !l.startsWith("{"));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(/^countersign: cannot start: DATABASE_URL: /);
      expect(errors[0]).toMatch(message);
      expect(r.out).not.toMatch(/\n\s+at /);
    });
  });

  it("a busy PORT is one line, and nothing was touched: the embedded database was never created", async () => {
    const busy: Server = createServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", () => r()));
    const port = (busy.address() as { port: number }).port;
    const t = tempDir();
    dirs.push(t);
    try {
      const r = await runGateway({ COUNTERSIGN_DATA_DIR: join(t.dir, "data"), HOST: "127.0.0.1", PORT: String(port) });
      expect(r.code).toBe(1);
      expect(r.out.split("\n").filter((l) => l && !l.startsWith("{"))).toEqual([
        `countersign: cannot start: PORT ${port} is already in use on 127.0.0.1; stop the process that has it, or set PORT to a free port (PORT=0 picks one)`,
      ]);
      expect(existsSync(join(t.dir, "data"))).toBe(false);
    } finally {
      busy.close();
    }
  });

  it("HOST must be an address or a host name", async () => {
    const r = await runGateway({ HOST: "1.2.3.4.5" });
    expect(r.code).toBe(1);
    expect(r.out).toContain("HOST: must be an IP address of this machine (127.0.0.1, 0.0.0.0, ::) or a host name");
  });

  it("no start-up race on the embedded database: a starting gateway waits for a short CLI command, and a CLI command waits for a starting gateway", async () => {
    const t = tempDir();
    dirs.push(t);
    const env = { COUNTERSIGN_DATA_DIR: join(t.dir, "data") };
    // The CLI creates the database on a fresh directory, so it holds the lock for a while.
    const first = runCli(["keys", "list", "--json"], env);
    await until("the CLI to take the lock", () => lockHolder(env.COUNTERSIGN_DATA_DIR) === "cli");
    const gw = spawnGateway(env);
    try {
      expect((await first).code).toBe(0);
      await until("the gateway to listen", () => /listening on/.test(gw.out()), 60_000);
      expect(gw.out()).toMatch(/waiting for a countersign command \(pid \d+\) to close the embedded database/);
    } finally {
      gw.child.kill("SIGTERM");
      await gw.exited;
    }

    // And the other way round: a gateway that has the lock but is still starting.
    const fresh = { COUNTERSIGN_DATA_DIR: join(t.dir, "data2") };
    const gw2 = spawnGateway(fresh);
    try {
      await until("the gateway to take the lock", () => lockHolder(fresh.COUNTERSIGN_DATA_DIR) === "gateway");
      const socketWasUp = existsSync(join(fresh.COUNTERSIGN_DATA_DIR, "admin.sock"));
      const r = await runCli(["keys", "list", "--json"], fresh);
      expect({ code: r.code, stderr: r.stderr, socketWasUp }).toEqual({ code: 0, stderr: "", socketWasUp: false });
      expect(JSON.parse(r.stdout)).toEqual([]);
      // While it created the database it said so, before it was listening: a newcomer sees it is not hung.
      const out = gw2.out();
      const creating = out.search(/creating the embedded database in \S+ \(first start only; this takes a few seconds\)/);
      expect(creating).toBeGreaterThanOrEqual(0);
      expect(creating).toBeLessThan(out.search(/listening on/));
    } finally {
      gw2.child.kill("SIGTERM");
      expect(await gw2.exited).toBe(0);
    }
  });

  it("Ctrl-C on `pnpm start` is a clean shutdown: exit 0, no ELIFECYCLE", async () => {
    const t = tempDir();
    dirs.push(t);
    // detached: its own process group, so a SIGINT to the group is what a terminal's Ctrl-C sends.
    const gw = spawnCollecting("pnpm", ["start"], {
      cwd: ROOT,
      detached: true,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", PORT: "0", COUNTERSIGN_DATA_DIR: join(t.dir, "data"), TURBO_TELEMETRY_DISABLED: "1" },
    });
    await until("the gateway to listen", () => /listening on/.test(gw.out()), 90_000);
    process.kill(-(gw.child.pid as number), "SIGINT");
    expect(await gw.exited).toBe(0);
    expect(gw.out()).toContain("received SIGINT; shutting down");
    expect(gw.out()).not.toContain("ELIFECYCLE");
  });

  it("SIGTERM to the `pnpm start` process alone (as a supervisor sends it) stops the gateway too: nothing is left running", async () => {
    const t = tempDir();
    dirs.push(t);
    const gw = spawnCollecting("pnpm", ["start"], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", PORT: "0", COUNTERSIGN_DATA_DIR: join(t.dir, "data"), TURBO_TELEMETRY_DISABLED: "1" },
    });
    await until("the gateway to listen", () => /listening on/.test(gw.out()), 90_000);
    const lock = readLock(join(t.dir, "data"));
    expect(lock?.role).toBe("gateway");
    gw.child.kill("SIGTERM");
    await gw.exited;
    expect(gw.out()).toContain("received SIGTERM; shutting down");
    // The gateway itself (the pid in its lock), not only pnpm, is gone.
    await until(
      "the gateway process to exit",
      () => {
        try {
          process.kill(lock?.pid as number, 0);
          return false;
        } catch {
          return true;
        }
      },
      20_000,
    );
  });

  it("warns at start and in /readyz about channels whose surface is not configured", async () => {
    const gw = await startGateway({ engine: "pglite", policy: readFileSync(join(ROOT, "examples/policy/countersign.yaml"), "utf8") });
    try {
      const warned = gw.logs
        .join("")
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as { level: string; message: string })
        .filter((l) => l.level === "warn" && l.message.startsWith("policy: "))
        .map((l) => l.message);
      expect(warned).toEqual([
        expect.stringMatching(/^policy: channels\.ops\.slack: channel "ops" has a Slack destination but Slack is not configured/),
        expect.stringMatching(/^policy: channels\.sec\.teams: channel "sec" has a Teams destination but Microsoft Teams is not configured/),
      ]);
      const ready = await gw.api("/readyz");
      expect(ready.status).toBe(200);
      expect(((await ready.json()) as { policyWarnings: { path: string }[] }).policyWarnings.map((w) => w.path)).toEqual([
        "channels.ops.slack",
        "channels.sec.teams",
      ]);
    } finally {
      await gw.stop();
    }
  });
});
