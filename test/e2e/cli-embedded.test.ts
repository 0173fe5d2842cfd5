import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliResult, runCli } from "../support/api-helpers.ts";
import { tempDir } from "../support/db.ts";
import { type GatewayProcess, startGateway } from "../support/gateway.ts";

interface KeyJson {
  id: string;
  prefix: string;
  name: string;
  owner: string;
  scopes: string[];
  revokedAt: string | null;
  key?: string;
  webhookSecret?: string | null;
}

/**
 * The CLI on the embedded database: while the gateway runs, commands go through its admin
 * socket (PGlite allows one process per data directory); when it is stopped, the CLI opens
 * the database itself. keys create/list/revoke and audit verify/export work both ways, and
 * what one mode wrote the other sees.
 */
describe("CLI with the embedded database, gateway running and stopped", () => {
  let gw: GatewayProcess;
  let admin: string;
  const files = tempDir("cs-cli-");
  const cli = (...args: string[]) => runCli(args, { COUNTERSIGN_DATA_DIR: gw.dataDir });
  const json = <T>(r: CliResult): T => {
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
    return JSON.parse(r.stdout) as T;
  };
  const submit = (key: string) =>
    gw.api("/v1/requests", { method: "POST", key, json: { action: "deploy.service", summary: "Deploy from CI", params: { sha: "abc123" } } });
  const auditHead = async () => {
    const page = (await (await gw.api("/v1/audit?limit=1000", { key: admin })).json()) as { data: { seq: number }[] };
    return page.data.at(-1)?.seq ?? 0;
  };

  beforeAll(async () => {
    gw = await startGateway({ engine: "pglite" });
    admin = (await gw.createKey({ name: "root", owner: "root@example.com", scopes: ["admin"] })).key;
  });
  afterAll(async () => {
    await gw?.stop();
    files.remove();
  });

  let ciKey: KeyJson;
  let stoppedKey: KeyJson;
  let doomedKey: KeyJson;

  it("gateway running: keys create goes through the admin socket, and the new key works at once", async () => {
    const lock = JSON.parse(readFileSync(join(gw.dataDir, "gateway.lock"), "utf8")) as { role: string; pid: number };
    expect(lock).toMatchObject({ role: "gateway", pid: gw.child.pid });
    ciKey = json<KeyJson>(await cli("keys", "create", "--name", "ci-bot", "--owner", "CI@Example.com", "--scopes", "requests", "--json"));
    expect(ciKey).toMatchObject({ name: "ci-bot", owner: "ci@example.com", scopes: ["requests"], revokedAt: null });
    expect(ciKey.key).toMatch(/^cs_[A-Za-z0-9]{12}_/);
    expect(ciKey.webhookSecret).toMatch(/^whsec_/);
    expect((await submit(ciKey.key as string)).status).toBe(201);
    // The gateway still holds the database and is healthy.
    expect((await gw.api("/readyz")).status).toBe(200);
  });

  it("gateway running: invalid input is refused with the error code, and nothing is created", async () => {
    const before = await auditHead();
    // Through the socket, commands may run side by side.
    const [bad, unknown] = await Promise.all([
      cli("keys", "create", "--name", "x", "--owner", "not-an-email", "--scopes", "requests"),
      cli("keys", "revoke", "key_DOESNOTEXIST"),
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^countersign: .*(owner|email)/);
    expect(bad.stderr).not.toMatch(/\n\s+at /);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/not_found/);
    expect(await auditHead()).toBe(before);
  });

  it("gateway running: keys list shows keys without secrets; keys revoke stops a key at once", async () => {
    const [listed, table] = await Promise.all([cli("keys", "list", "--json"), cli("keys", "list")]);
    const list = json<KeyJson[]>(listed);
    expect(list.map((k) => k.name)).toEqual(["root", "ci-bot"]);
    const text = JSON.stringify(list);
    expect(text).not.toContain(ciKey.key as string);
    expect(text).not.toContain("whsec_");
    expect(list.every((k) => !("hash" in k) && !("key" in k))).toBe(true);

    const revoked = json<KeyJson>(await cli("keys", "revoke", ciKey.prefix, "--json"));
    expect(revoked).toMatchObject({ id: ciKey.id, revokedAt: expect.any(String) });
    const res = await submit(ciKey.key as string);
    expect(res.status).toBe(401);
    // The human-readable table also works through the socket.
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^ID\s+PREFIX\s+NAME\s+OWNER\s+SCOPES\s+CREATED\s+REVOKED/);
    expect(table.stdout).toContain(ciKey.prefix);
  });

  it("gateway running: audit verify and audit export see the gateway's whole chain", async () => {
    const head = await auditHead();
    const [verdict, exported] = await Promise.all([cli("audit", "verify", "--json"), cli("audit", "export", "--out", join(files.dir, "running.jsonl"))]);
    expect(json<{ ok: boolean; events: number }>(verdict)).toMatchObject({ ok: true, events: head });
    expect(exported.code).toBe(0);
    const lines = readFileSync(join(files.dir, "running.jsonl"), "utf8").trim().split("\n");
    const events = lines.map((l) => JSON.parse(l) as { type?: string; object?: string }).filter((l) => l.object !== "checkpoint");
    expect(events).toHaveLength(head);
    expect(events.map((e) => e.type)).toContain("key.revoked");
    // The CLI trusts the gateway's key ring in the data directory for the checkpoint signatures.
    const fromFile = await cli("audit", "verify", "--file", join(files.dir, "running.jsonl"));
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect(fromFile.stdout).toMatch(new RegExp(`^audit log ok: ${head} events in \\d+ checkpoints`));
  });

  it("gateway stopped: the CLI opens the database itself for keys create, revoke, list and audit", async () => {
    const headWhileRunning = await auditHead();
    await gw.kill("SIGTERM");
    expect(gw.child.exitCode).toBe(0);
    // A clean shutdown releases the lock and removes nothing else.
    expect(existsSync(join(gw.dataDir, "gateway.lock"))).toBe(false);

    stoppedKey = json<KeyJson>(await cli("keys", "create", "--name", "offline-bot", "--owner", "ops@example.com", "--scopes", "requests,decisions", "--json"));
    expect(stoppedKey).toMatchObject({ name: "offline-bot", scopes: ["requests", "decisions"], revokedAt: null });
    doomedKey = json<KeyJson>(await cli("keys", "create", "--name", "doomed", "--owner", "ops@example.com", "--scopes", "decisions", "--json"));
    expect(doomedKey.webhookSecret).toBeNull();
    expect(json<KeyJson>(await cli("keys", "revoke", doomedKey.id, "--json")).revokedAt).not.toBeNull();
    const list = json<KeyJson[]>(await cli("keys", "list", "--json"));
    expect(list.map((k) => [k.name, k.revokedAt !== null])).toEqual([
      ["root", false],
      ["ci-bot", true],
      ["offline-bot", false],
      ["doomed", true],
    ]);

    const verdict = json<{ ok: boolean; events: number; unsealed: number }>(await cli("audit", "verify", "--json"));
    // key.created twice and key.revoked once, on top of what the gateway wrote; a stopped
    // gateway sealed everything it wrote, and what the CLI wrote waits for the next start.
    expect(verdict).toMatchObject({ ok: true, events: headWhileRunning + 3, unsealed: 3 });
    const out = join(files.dir, "stopped.jsonl");
    expect((await cli("audit", "export", "--out", out)).code).toBe(0);
    const exportedEvents = readFileSync(out, "utf8")
      .trim()
      .split("\n")
      .filter((l) => !l.includes('"object":"checkpoint"'));
    expect(exportedEvents).toHaveLength(headWhileRunning + 3);
    expect((await cli("audit", "verify", "--file", out)).code).toBe(0);
    // The CLI released its lock when it finished.
    expect(existsSync(join(gw.dataDir, "gateway.lock"))).toBe(false);
  });

  it("gateway stopped: two CLI commands at once never both open the database; the loser is told to retry", async () => {
    const [a, b] = await Promise.all([cli("audit", "verify", "--json"), cli("keys", "list", "--json")]);
    for (const r of [a, b]) {
      if (r.code !== 0) expect(r.stderr).toMatch(/another countersign command \(pid \d+\) has the embedded database open; retry when it finishes/);
    }
    expect([a, b].some((r) => r.code === 0)).toBe(true);
  });

  it("gateway restarted: it sees what the CLI wrote while it was down", async () => {
    await gw.restart();
    expect((await submit(stoppedKey.key as string)).status).toBe(201);
    expect((await submit(ciKey.key as string)).status).toBe(401);
    const doomed = await gw.api("/v1/requests", { key: doomedKey.key as string });
    expect(doomed.status).toBe(401);
    const [listed, verified] = await Promise.all([cli("keys", "list", "--json"), cli("audit", "verify", "--json")]);
    expect(json<KeyJson[]>(listed)).toHaveLength(4);
    const verdict = json<{ ok: boolean; events: number }>(verified);
    expect(verdict.ok).toBe(true);
    expect(verdict.events).toBe(await auditHead());
  });
});
