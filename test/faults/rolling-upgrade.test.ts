import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Evidence, type JsonWebKeySet, verifyEvidence } from "../../packages/sdk/src/index.ts";
import { eventually, runCli } from "../support/api-helpers.ts";
import { freshPostgresUrl } from "../support/db.ts";
import { type GatewayProcess, ROOT, startGateway } from "../support/gateway.ts";
import { call, FAULT_POLICY, lifecycleViolations, sealingViolations, sharedReceiptKey } from "./support.ts";

const git = (...args: string[]) => execFileSync("git", args, { cwd: ROOT, encoding: "utf8" }).trim();

/**
 * The code a rolling upgrade runs beside the new one: the last release (the newest commit
 * that landed; test/support/previous-release.txt names it). COUNTERSIGN_PREVIOUS_RELEASE
 * names another commit. `newest` is this checkout's newest migration, which that release
 * must not know for the test to mean anything.
 */
function previousRelease(): { commit: string; newest: string } {
  const newest = readdirSync(join(ROOT, "prisma/migrations"))
    .filter((d) => /^\d{14}_/.test(d))
    .sort()
    .at(-1) as string;
  const named = readFileSync(join(ROOT, "test/support/previous-release.txt"), "utf8")
    .split("\n")
    .find((l) => /^[0-9a-f]{40}$/.test(l.trim()));
  return { commit: process.env.COUNTERSIGN_PREVIOUS_RELEASE ?? (named as string).trim(), newest };
}

/**
 * Expand, then contract: during a rolling upgrade the new release's migrations are applied
 * while replicas of the previous release still serve. This builds the previous release from
 * git, runs it and the new code as two replicas on one migrated PostgreSQL database, and has
 * every request cross between them. Nothing may break, and the evidence must verify.
 */
describe.skipIf(!inject("pgUrl"))("a rolling upgrade: the previous release and this one on the new schema", () => {
  const prev = previousRelease();
  const dir = join(tmpdir(), `cs-prev-${prev.commit.slice(0, 12)}`);
  let db: { url: string; drop: () => Promise<void> };
  let old: GatewayProcess;
  let now: GatewayProcess;
  const keys: Record<string, string> = {};

  beforeAll(async () => {
    if (!existsSync(join(dir, "apps/gateway/dist/main.js"))) {
      if (existsSync(dir)) git("worktree", "remove", "--force", dir);
      git("worktree", "add", "--detach", dir, prev.commit);
      // Its own lockfile, from the store this checkout already filled: no new downloads in CI.
      execFileSync("pnpm", ["install", "--frozen-lockfile", "--prefer-offline"], {
        cwd: dir,
        stdio: "pipe",
        env: { ...process.env, TURBO_TELEMETRY_DISABLED: "1", CI: "true" },
      });
    }
    expect(existsSync(join(dir, `prisma/migrations/${prev.newest}`))).toBe(false);

    db = await freshPostgresUrl();
    // The new release's migrations first, as the Helm chart's pre-upgrade Job does.
    const m = await runCli(["migrate"], { DATABASE_URL: db.url });
    expect(m.stdout).toContain(prev.newest);
    const env = { COUNTERSIGN_RATE_LIMIT: "0", COUNTERSIGN_CHECKPOINT_MS: "200", COUNTERSIGN_RECEIPT_KEY: await sharedReceiptKey("upgrade") };
    [old, now] = await Promise.all([
      startGateway({ databaseUrl: db.url, policy: FAULT_POLICY, env, main: { file: join(dir, "apps/gateway/dist/main.js"), cwd: dir } }),
      startGateway({ databaseUrl: db.url, policy: FAULT_POLICY, env }),
    ]);
    keys.agent = (await now.createKey({ name: "bot", owner: "owner@example.com", scopes: ["requests"] })).key;
    for (const r of ["r1@example.com", "r2@example.com"]) keys[r] = (await now.createKey({ name: r, owner: r, scopes: ["decisions"] })).key;
  }, 300_000);
  afterAll(async () => {
    await old?.stop();
    await now?.stop();
    await db?.drop();
  });

  it("the previous release starts on the new schema and reports itself ready", async () => {
    const ready = await call(`${old.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(old.logs.join("")).not.toMatch(/"level":"error"/);
  });

  it("requests cross between the releases: made on one, decided on the other, released on either, sealed once", async () => {
    const pairs = [
      [old, now],
      [now, old],
    ] as const;
    const ids: string[] = [];
    for (const [maker, decider] of pairs) {
      const made = await call(`${maker.url}/v1/requests`, {
        key: keys.agent,
        json: { action: "quorum.deploy", summary: "ship it", params: { v: ids.length } },
      });
      expect(made.status).toBe(201);
      const id = (made.body as { id: string }).id;
      ids.push(id);
      // A long-poll on the maker, released by a decision on the other release.
      const waiting = call(`${maker.url}/v1/requests/${id}?wait=20`, { key: keys.agent });
      for (const r of ["r1@example.com", "r2@example.com"]) {
        const vote = await call(`${decider.url}/v1/requests/${id}/decisions`, { key: keys[r], json: { decision: "approve" } });
        expect(vote.status).toBe(201);
      }
      const released = await waiting;
      expect(released.body).toMatchObject({ id, status: "approved" });
    }
    // Each release serves evidence the other's events are in, and it verifies offline.
    const jwks = (await call(`${now.url}/.well-known/jwks.json`)).body as JsonWebKeySet;
    for (const [g, id] of [
      [old, ids[1]],
      [now, ids[0]],
    ] as const) {
      const ev = await eventually(async () => {
        const e = (await call(`${g.url}/v1/requests/${id}/evidence`, { key: keys.agent })).body as Evidence;
        return e.entries?.every((x) => x.proof !== null) ? e : null;
      });
      expect(await verifyEvidence(ev, { jwks, requestId: id as string })).toMatchObject({ status: "approved" });
    }
    expect(await lifecycleViolations(db.url)).toEqual([]);
    expect(await sealingViolations(db.url)).toEqual([]);
    const v = await runCli(["audit", "verify", "--jwks", `${now.url}/.well-known/jwks.json`], { DATABASE_URL: db.url });
    expect(v.stdout).toMatch(/^audit log ok/);
  });
});
