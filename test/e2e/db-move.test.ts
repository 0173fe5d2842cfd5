import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Evidence, type JsonWebKeySet, verifyEvidence } from "../../packages/sdk/src/index.ts";
import type { CreatedKey } from "../../packages/services/src/index.ts";
import { API_POLICY, eventually, runCli } from "../support/api-helpers.ts";
import { freshPostgresUrl, tempDir } from "../support/db.ts";
import { type GatewayProcess, startGateway } from "../support/gateway.ts";

/**
 * A team outgrows the embedded database: it backs it up while the gateway runs, restores
 * that backup elsewhere, then stops the gateway and moves everything to PostgreSQL with
 * `countersign db copy`. The same request's evidence verifies, offline, before and after.
 */
describe.skipIf(!inject("pgUrl"))("moving an embedded install to PostgreSQL, end to end", () => {
  let gw: GatewayProcess | undefined;
  let onPg: GatewayProcess | undefined;
  let target: Awaited<ReturnType<typeof freshPostgresUrl>>;
  const dirs: { remove: () => void }[] = [];
  const keys: Record<string, CreatedKey> = {};
  let requestId: string;
  let evidenceBefore: Evidence;
  let jwksBefore: JsonWebKeySet;
  const cliEnv = () => ({ COUNTERSIGN_DATA_DIR: (gw as GatewayProcess).dataDir });

  const sealed = (g: GatewayProcess, id: string) =>
    eventually(async () => {
      const ev = (await (await g.api(`/v1/requests/${id}/evidence`, { key: keys.agent?.key })).json()) as Evidence;
      return ev.entries?.every((e) => e.proof !== null) ? ev : null;
    });

  beforeAll(async () => {
    target = await freshPostgresUrl();
    gw = await startGateway({ engine: "pglite", policy: API_POLICY, env: { COUNTERSIGN_RATE_LIMIT: "0", COUNTERSIGN_CHECKPOINT_MS: "200" } });
    keys.agent = await gw.createKey({ name: "agent", owner: "owner@example.com", scopes: ["requests"] });
    keys.alice = await gw.createKey({ name: "alice", owner: "alice@example.com", scopes: ["decisions"] });
    const res = await gw.api("/v1/requests", { method: "POST", key: keys.agent.key, json: { action: "report.build", summary: "Build it", params: { n: 1 } } });
    requestId = ((await res.json()) as { id: string }).id;
    expect((await gw.api(`/v1/requests/${requestId}/decisions`, { method: "POST", key: keys.alice.key, json: { decision: "approve" } })).status).toBe(201);
    // A second one stays pending, so the copy carries live work too.
    await gw.api("/v1/requests", { method: "POST", key: keys.agent.key, json: { action: "report.build", summary: "Later", params: { n: 2 } } });
    evidenceBefore = await sealed(gw, requestId);
    jwksBefore = (await (await gw.api("/.well-known/jwks.json")).json()) as JsonWebKeySet;
  });
  afterAll(async () => {
    await onPg?.kill("SIGTERM");
    await gw?.stop();
    await target?.drop();
    for (const d of dirs) d.remove();
  });

  it("backs up while the gateway runs, and restores into an empty data directory", async () => {
    const out = tempDir("cs-backup-");
    dirs.push(out);
    const file = join(out.dir, "countersign.jsonl.gz");
    const nowhere = await runCli(["backup", "--out", join(out.dir, "missing/dir/x.gz")], cliEnv());
    expect(nowhere.code).toBe(1);
    expect(nowhere.stderr).toMatch(/^countersign: --out: cannot write .*missing\/dir\/x\.gz\.partial: no such directory\n$/);
    const b = await runCli(["backup", "--out", file], cliEnv());
    expect(b.stderr + b.stdout).toMatch(/backup written to .*: \d+ rows \(2 requests/);
    expect(b.code).toBe(0);
    expect(existsSync(`${file}.partial`)).toBe(false);
    // The gateway was not stopped: it still answers.
    expect((await (gw as GatewayProcess).api("/readyz")).status).toBe(200);

    const fresh = tempDir("cs-restored-");
    dirs.push(fresh);
    const r = await runCli(["restore", file], { COUNTERSIGN_DATA_DIR: fresh.dir });
    expect(r.stdout).toMatch(/restored \d+ rows .*2 requests.*receipt keys written/);
    expect(r.code).toBe(0);
    const v = await runCli(["audit", "verify"], { COUNTERSIGN_DATA_DIR: fresh.dir });
    expect(v.stdout).toMatch(/^audit log ok/);
    // A second restore into the now-used directory is refused, and a file that is not a backup too.
    const again = await runCli(["restore", file], { COUNTERSIGN_DATA_DIR: fresh.dir });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/the target database is not empty \(api_keys: 2/);

    // A restore that fails (a file cut short) leaves its directory empty, and the same command runs again.
    const cut = join(out.dir, "cut.jsonl.gz");
    const whole = gunzipSync(readFileSync(file)).toString("utf8").trimEnd().split("\n");
    writeFileSync(cut, gzipSync(`${whole.slice(0, -1).join("\n")}\n`));
    const retried = tempDir("cs-retried-");
    dirs.push(retried);
    const bad = await runCli(["restore", cut], { COUNTERSIGN_DATA_DIR: retried.dir });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/trailer is missing/);
    const good = await runCli(["restore", file], { COUNTERSIGN_DATA_DIR: retried.dir });
    expect(good.stdout).toMatch(/restored \d+ rows/);
    expect(good.code).toBe(0);
    const bogus = await runCli(["restore", join(ROOT_README)], { COUNTERSIGN_DATA_DIR: join(fresh.dir, "other") });
    expect(bogus.code).toBe(1);
    expect(bogus.stderr).toMatch(/not a countersign backup/);
  });

  it("refuses to copy while the gateway holds the embedded database", async () => {
    const r = await runCli(["db", "copy", "--to", target.url], cliEnv());
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/a gateway is running on .*: stop it before copying/);
  });

  it("copies everything to PostgreSQL, verified before and after; a failed copy leaves the target empty and runs again", async () => {
    // Stopped as a supervisor would, keeping its data directory (stop() would remove it).
    await (gw as GatewayProcess).kill("SIGTERM");

    // A copy that fails part-way: the target refuses audit events (here, a trigger), after the other tables went in.
    const c = new pg.Client({ connectionString: target.url });
    await c.connect();
    const m = await runCli(["migrate"], { DATABASE_URL: target.url });
    expect(m.code).toBe(0);
    await c.query(`CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full (simulated)'; END $$`);
    await c.query(`CREATE TRIGGER refuse BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse()`);
    const failed = await runCli(["db", "copy", "--to", target.url], cliEnv());
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/source verified/);
    expect(failed.stderr).toMatch(/copied api_keys: 2 rows/);
    const left = await c.query(`SELECT (SELECT count(*) FROM api_keys)::int AS k, (SELECT count(*) FROM approval_requests)::int AS r`);
    expect(left.rows[0]).toEqual({ k: 0, r: 0 });
    await c.query(`DROP TRIGGER refuse ON audit_events`);

    const ok = await runCli(["db", "copy", "--to", target.url], cliEnv());
    expect(ok.stderr).toMatch(/copied approval_requests: 2 rows/);
    expect(ok.stdout).toMatch(/copied \d+ rows to 127\.0\.0\.1:5432\/.*; the audit log verifies there: \d+ events in \d+ checkpoints/);
    expect(ok.stderr).toMatch(/Receipt keys are not in the database/);
    expect(ok.code).toBe(0);
    // A non-empty target is refused, and nothing is written.
    const twice = await runCli(["db", "copy", "--to", target.url], cliEnv());
    expect(twice.code).toBe(1);
    expect(twice.stderr).toMatch(/the target database is not empty \(api_keys: 2/);
    const counts = await c.query(`SELECT count(*)::int AS n FROM approval_requests`);
    expect(counts.rows[0].n).toBe(2);
    await c.end();

    // The gateway on PostgreSQL, with the same key ring, serves the same evidence, and it still verifies offline.
    onPg = await startGateway({
      databaseUrl: target.url,
      policy: API_POLICY,
      env: { COUNTERSIGN_DATA_DIR: (gw as GatewayProcess).dataDir, COUNTERSIGN_RATE_LIMIT: "0" },
    });
    const after = await sealed(onPg, requestId);
    expect(after.entries.map((e) => e.event)).toEqual(evidenceBefore.entries.map((e) => e.event));
    expect(after.entries.map((e) => e.proof)).toEqual(evidenceBefore.entries.map((e) => e.proof));
    const jwks = (await (await onPg.api("/.well-known/jwks.json")).json()) as JsonWebKeySet;
    expect(jwks.keys.map((k) => k.kid)).toEqual(expect.arrayContaining(jwksBefore.keys.map((k) => k.kid)));
    expect(await verifyEvidence(after, { jwks: jwksBefore, requestId })).toMatchObject({ status: "approved", events: 3, sealed: 3 });
    const v = await runCli(["audit", "verify"], { DATABASE_URL: target.url, COUNTERSIGN_DATA_DIR: (gw as GatewayProcess).dataDir });
    expect(v.stdout).toMatch(/^audit log ok/);
  }, 120_000);

  it("names a bad --to plainly", async () => {
    const r = await runCli(["db", "copy", "--to", "mysql://x"], cliEnv());
    expect(r.stderr).toMatch(/--to must be a postgres:\/\/ URL/);
    const gone = await runCli(["db", "copy", "--to", "postgresql://postgres@127.0.0.1:1/none"], cliEnv());
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/--to/);
    expect(gone.stderr).not.toMatch(/DATABASE_URL/);
  });
});

const ROOT_README = join(import.meta.dirname, "../../README.md");
