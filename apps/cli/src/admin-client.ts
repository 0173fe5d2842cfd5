import { request } from "node:http";
import { join, resolve } from "node:path";
import type { ErrorCode } from "@countersign/core";
import type { Database } from "@countersign/db";
import { acquireDataDirLock, DataDirLockedError, readLock } from "@countersign/db/lock";
import type { AdminOps, ExportLine, ServiceDeps, SnapshotLine } from "@countersign/services";
import type { CliEnv } from "./env.ts";

// A command that goes through a running gateway's socket needs none of Prisma, the
// database drivers or the services; they load only when the CLI opens the database itself.
const direct = () => Promise.all([import("@countersign/db"), import("@countersign/services")]);

export interface AdminSession {
  ops: AdminOps;
  /** How the command reached the database, for `--verbose` and error messages. */
  via: "direct" | "gateway";
  close(): Promise<void>;
}

function callSocket(socket: string, method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
  return new Promise((resolveReq, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      { socketPath: socket, method, path, headers: payload ? { "content-type": "application/json", "content-length": Buffer.byteLength(payload) } : {} },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c) => {
          text += c;
        });
        res.on("end", () => resolveReq({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on("error", reject);
    if (payload) req.write(payload);
    req.end();
  });
}

/** A streamed GET: each line of the answer goes to `onLine`, awaited, so a slow consumer slows the reader. */
function streamSocket(socket: string, path: string, onLine: (line: string) => Promise<void>): Promise<void> {
  return new Promise((resolveReq, reject) => {
    const req = request({ socketPath: socket, method: "GET", path }, async (res) => {
      res.setEncoding("utf8");
      if ((res.statusCode ?? 0) >= 400) {
        let text = "";
        for await (const c of res) text += c;
        const { CountersignError } = await import("@countersign/core");
        const p = JSON.parse(text) as { code: ErrorCode; detail: string };
        return reject(new CountersignError(p.code, p.detail));
      }
      let rest = "";
      try {
        for await (const chunk of res) {
          const lines = (rest + chunk).split("\n");
          rest = lines.pop() ?? "";
          for (const line of lines) if (line) await onLine(line);
        }
        if (rest) await onLine(rest);
        resolveReq();
      } catch (e) {
        reject(e);
      }
    });
    req.on("error", reject);
    req.end();
  });
}

async function viaSocket<T>(socket: string, method: string, path: string, body?: unknown): Promise<T> {
  const r = await callSocket(socket, method, path, body);
  if (r.status >= 400) {
    const { CountersignError } = await import("@countersign/core");
    const p = JSON.parse(r.text) as { code: ErrorCode; detail: string; errors?: { path: string; message: string }[] };
    throw new CountersignError(p.code, p.detail, p.errors ? { errors: p.errors } : {});
  }
  return JSON.parse(r.text) as T;
}

/** The same operations, sent to a running gateway that holds the embedded database. */
function socketOps(socket: string): AdminOps {
  const qs = (o: object) => {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(o)) if (v !== undefined) p.set(k, String(v));
    const s = p.toString();
    return s ? `?${s}` : "";
  };
  return {
    createKey: (input) => viaSocket(socket, "POST", "/keys", input),
    listKeys: () => viaSocket(socket, "GET", "/keys"),
    revokeKey: (id) => viaSocket(socket, "POST", `/keys/${encodeURIComponent(id)}/revoke`),
    auditKeys: () => viaSocket(socket, "GET", "/keys/audit"),
    migrate: () => viaSocket(socket, "POST", "/migrate"),
    listRequests: (input) => viaSocket(socket, "GET", `/requests${qs(input)}`),
    showRequest: (id) => viaSocket(socket, "GET", `/requests/${encodeURIComponent(id)}`),
    exportAudit: async function* (after = 0) {
      const r = await callSocket(socket, "GET", `/audit/export${qs({ after })}`);
      for (const line of r.text.split("\n")) if (line) yield JSON.parse(line) as ExportLine;
    },
    // The gateway verifies with its own key ring unless the caller names other keys.
    verifyAudit: ({ onProgress: _progress, ...input } = {}) => viaSocket(socket, "POST", "/audit/verify", input),
    latestCheckpoint: async () =>
      (await viaSocket<{ checkpoint: Awaited<ReturnType<AdminOps["latestCheckpoint"]>> }>(socket, "GET", "/audit/checkpoints/latest")).checkpoint,
    snapshot: async (emit) => {
      let trailer: Extract<SnapshotLine, { end: true }> | undefined;
      // A stream cut short (the gateway stopped) arrives without its trailer.
      await streamSocket(socket, "/snapshot", async (text) => {
        const line = JSON.parse(text) as SnapshotLine;
        if ("end" in line) trailer = line;
        await emit(line);
      }).catch((e: Error & { code?: string }) => {
        throw e.code === "ECONNRESET" ? new Error("the gateway ended the snapshot part-way; see its log") : e;
      });
      if (!trailer) throw new Error("the gateway ended the snapshot part-way; see its log");
      return trailer.counts;
    },
    loadSnapshot: async () => {
      const { CountersignError } = await import("@countersign/core");
      throw new CountersignError("conflict", "a gateway is running on this database: stop it first, then restore into an empty data directory");
    },
  } as AdminOps;
}

/**
 * A gateway takes the lock before it opens the database and serves its admin socket only
 * once it is up; a command issued during that window waits for it rather than failing.
 */
async function waitForSocket(socket: string, pid: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await callSocket(socket, "GET", "/keys").then(
      () => true,
      () => false,
    );
    if (ok) return;
    if (Date.now() > deadline) {
      const { CountersignError } = await import("@countersign/core");
      throw new CountersignError("service_unavailable", `the gateway (pid ${pid}) holds the embedded database but its admin socket ${socket} is not answering`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Where the gateway keeps its receipt (and checkpoint) signing keys. */
export function receiptKeySources(env: CliEnv) {
  return {
    keyFile: join(resolve(env.COUNTERSIGN_DATA_DIR), "receipt-keys.json"),
    ...(env.COUNTERSIGN_RECEIPT_KEY ? { envKey: env.COUNTERSIGN_RECEIPT_KEY } : {}),
  };
}

/** Deps for operator commands: no chat surfaces, and receipts are never signed from the CLI. */
async function cliDeps(db: Database, env: CliEnv): Promise<ServiceDeps> {
  const [{ CountersignError }, { createCallbackGuard, publicReceiptKeys }] = await Promise.all([import("@countersign/core"), import("@countersign/services")]);
  return {
    db,
    logger: {
      debug() {},
      info() {},
      warn() {},
      error() {},
      child() {
        return this;
      },
    },
    policy: () => ({ version: 1, groups: {}, channels: {}, rules: [], default: "deny" }),
    receipts: {
      kid: "",
      sign: () => Promise.reject(new CountersignError("internal_error", "the CLI does not sign receipts")),
      signCheckpoint: () => Promise.reject(new CountersignError("internal_error", "the CLI does not sign checkpoints; the gateway does")),
      // What verify trusts for checkpoint signatures: the gateway's ring, read, never created.
      jwks: () => ({ keys: publicReceiptKeys(receiptKeySources(env)) }),
    },
    callbackGuard: createCallbackGuard(env.COUNTERSIGN_CALLBACK_ALLOW),
    surfaces: { slack: false, teams: false },
    publicUrl: "",
    clock: () => new Date(),
  };
}

/** Operator commands on a database the caller opened (a copy's target), trusting this install's key ring. */
export async function opsFor(db: Database, env: CliEnv): Promise<AdminOps> {
  const { adminOps } = await import("@countersign/services");
  return adminOps(await cliDeps(db, env));
}

/**
 * Opens the database for an operator command. On PostgreSQL the CLI and any number of
 * gateways share it. On the embedded database only one process may open it, so when a
 * gateway holds it the command goes through that gateway's admin socket.
 */
export async function openAdmin(env: CliEnv): Promise<AdminSession> {
  const dataDir = resolve(env.COUNTERSIGN_DATA_DIR);
  if (!env.DATABASE_URL) {
    const holder = readLock(dataDir);
    if (holder?.role === "gateway" && holder.socket) {
      await waitForSocket(holder.socket, holder.pid);
      return { ops: socketOps(holder.socket), via: "gateway", close: async () => {} };
    }
    let release: () => void;
    try {
      release = acquireDataDirLock(dataDir, { role: "cli" });
    } catch (e) {
      // A gateway took the lock between readLock and here: it is starting, so wait for its socket.
      if (!(e instanceof DataDirLockedError) || e.holder.role !== "gateway" || !e.holder.socket) throw e;
      await waitForSocket(e.holder.socket, e.holder.pid);
      return { ops: socketOps(e.holder.socket), via: "gateway", close: async () => {} };
    }
    try {
      const [{ databaseConfigFrom, openDatabase }, { adminOps }] = await direct();
      const db = await openDatabase(databaseConfigFrom({ dataDir }));
      // Operator commands on a fresh data directory should just work, as the gateway would;
      // `migrate` then reports what this first pass applied.
      const migrated = await db.migrate();
      const ops = adminOps(await cliDeps(db, env));
      ops.migrate = async () => {
        const again = await db.migrate();
        return { applied: migrated.applied, alreadyApplied: again.alreadyApplied.filter((m) => !migrated.applied.includes(m)) };
      };
      return {
        ops,
        via: "direct",
        close: async () => {
          await db.close();
          release();
        },
      };
    } catch (e) {
      release();
      throw e;
    }
  }
  const [{ databaseConfigFrom, openDatabase }, { adminOps }] = await direct();
  const db = await openDatabase(databaseConfigFrom({ url: env.DATABASE_URL, dataDir }));
  return { ops: adminOps(await cliDeps(db, env)), via: "direct", close: () => db.close() };
}
