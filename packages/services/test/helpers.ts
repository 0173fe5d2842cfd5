import { join } from "node:path";
import { type Actor, type Logger, type PolicyFile, parsePolicy } from "@countersign/core";
import type { Database } from "@countersign/db";
import { type Engine, openTestDatabase, tempDir } from "../../../test/support/db.ts";
import { parseCallbackAllow } from "../src/callbacks/allow-list.ts";
import { createCallbackGuard } from "../src/callbacks/guard.ts";
import { type ServiceCtx, type ServiceDeps, serviceCtx } from "../src/context.ts";
import { type CreatedKey, createKey } from "../src/index.ts";
import { createReceiptSigner } from "../src/receipts/signer.ts";

export const PUBLIC_URL = "https://countersign.test";

/** A logger that swallows everything but keeps error lines, so a test can assert none happened. */
export function quietLogger(sink: { level: string; message: string }[] = []): Logger {
  const log: Logger = {
    debug: () => {},
    info: () => {},
    warn: (message) => void sink.push({ level: "warn", message }),
    error: (message) => void sink.push({ level: "error", message }),
    child: () => log,
  };
  return log;
}

/** A clock the test moves by hand; services read time only through it. */
export class TestClock {
  constructor(public current = new Date("2026-11-21T12:00:00.000Z")) {}
  now = (): Date => new Date(this.current.getTime());
  advance(ms: number): void {
    this.current = new Date(this.current.getTime() + ms);
  }
}

/**
 * A policy for the data-layer tests:
 * - `deploy.*` needs 2 of the sre group (alice, bob, carol); it expires after 1h and is then denied;
 * - `db.drop` is denied and `logs.read` allowed by policy;
 * - anything else needs 1 approval from anyone.
 */
export const TEST_POLICY_YAML = `
version: 1
groups:
  sre: [alice@example.com, bob@example.com, carol@example.com]
rules:
  - id: deploy-two-sre
    match: { action: "deploy.*" }
    effect: require_approval
    approvers: [sre]
    approvals: 2
    expiresIn: 1h
    onExpire: deny
  - id: drop-denied
    match: { action: db.drop }
    effect: deny
  - id: logs-allowed
    match: { action: logs.read }
    effect: allow
  - id: anyone
    effect: require_approval
    approvers: ["*"]
    expiresIn: 30m
default: deny
`;

export interface ServiceHarness {
  engine: Engine;
  db: Database;
  deps: ServiceDeps;
  clock: TestClock;
  /** warn/error lines the services logged. */
  logged: { level: string; message: string }[];
  ctx(actor: Actor): ServiceCtx;
  /** Creates an API key (as an operator would) and returns it with the matching agent actor. */
  agent(name: string, owner: string): Promise<{ key: CreatedKey; actor: Actor }>;
  reviewer(principal: string): Actor;
  system: Actor;
  cleanup(): Promise<void>;
}

function allowList(spec: string | undefined) {
  const r = parseCallbackAllow(spec);
  if (!r.ok) throw new Error(`bad test allow-list: ${r.problems.join("; ")}`);
  return r.value;
}

/** Opens a fresh, migrated database of `engine` and wires ServiceDeps around it, as the gateway does. */
export async function setupServices(
  engine: Engine,
  opts: {
    policy?: PolicyFile | string;
    callbackAllow?: string;
    resolve?: (host: string) => Promise<string[]>;
    /** Where the receipt (and checkpoint) key ring lives; a temporary file by default. */
    receiptKeyFile?: string;
    /** An already open, migrated database to use instead of a fresh one. */
    database?: { db: Database; cleanup: () => Promise<void> };
  } = {},
): Promise<ServiceHarness> {
  const { db, cleanup } = opts.database ?? (await openTestDatabase(engine));
  const keys = tempDir("cs-keys-");
  const clock = new TestClock();
  const logged: { level: string; message: string }[] = [];
  const policy = typeof opts.policy === "object" ? opts.policy : parsePolicy(opts.policy ?? TEST_POLICY_YAML, "test-policy.yaml");
  const deps: ServiceDeps = {
    db,
    logger: quietLogger(logged),
    policy: () => policy,
    receipts: await createReceiptSigner({ issuer: PUBLIC_URL, ttlSeconds: 900, keyFile: opts.receiptKeyFile ?? join(keys.dir, "receipt-keys.json") }),
    callbackGuard: createCallbackGuard(allowList(opts.callbackAllow), ...(opts.resolve ? [opts.resolve] : [])),
    surfaces: { slack: false, teams: false },
    publicUrl: PUBLIC_URL,
    clock: clock.now,
  };
  const system: Actor = { type: "system", name: "test" };
  let n = 0;
  const ctx = (actor: Actor): ServiceCtx => serviceCtx(deps, actor, `test-${++n}`);
  return {
    engine,
    db,
    deps,
    clock,
    logged,
    ctx,
    system,
    async agent(name, owner) {
      const key = await createKey({ ctx: ctx(system), input: { name, owner, scopes: ["requests"] } });
      return { key, actor: { type: "agent", keyId: key.id, keyName: key.name, owner: key.owner, scopes: key.scopes } };
    },
    reviewer: (principal) => ({ type: "reviewer", principal, surface: "api", keyId: `key_${principal}` }),
    async cleanup() {
      await cleanup();
      keys.remove();
    },
  };
}

/** Row counts of every Countersign table, to prove a refused call wrote nothing. */
export async function rowCounts(db: Database): Promise<Record<string, number>> {
  const rows = await db.prisma.$queryRawUnsafe<{ t: string; n: number | bigint }[]>(
    `SELECT 'api_keys' AS t, count(*)::int AS n FROM api_keys
     UNION ALL SELECT 'approval_requests', count(*)::int FROM approval_requests
     UNION ALL SELECT 'decisions', count(*)::int FROM decisions
     UNION ALL SELECT 'audit_events', count(*)::int FROM audit_events
     UNION ALL SELECT 'outbox_jobs', count(*)::int FROM outbox_jobs
     UNION ALL SELECT 'outbox_attempts', count(*)::int FROM outbox_attempts
     UNION ALL SELECT 'chat_messages', count(*)::int FROM chat_messages`,
  );
  return Object.fromEntries(rows.map((r) => [r.t, Number(r.n)]));
}

/** Settles every promise and returns fulfilled values and rejection codes, in call order. */
export async function settleAll<T>(ps: Promise<T>[]): Promise<({ ok: true; value: T } | { ok: false; code: string; error: unknown })[]> {
  const rs = await Promise.allSettled(ps);
  return rs.map((r) =>
    r.status === "fulfilled" ? { ok: true, value: r.value } : { ok: false, code: (r.reason as { code?: string })?.code ?? "thrown", error: r.reason },
  );
}
