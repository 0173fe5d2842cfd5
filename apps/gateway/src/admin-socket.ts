import { existsSync, unlinkSync } from "node:fs";
import type { Server, ServerResponse } from "node:http";
import { CountersignError, type Logger } from "@countersign/core";
import type { AdminOps } from "@countersign/services";
import express from "express";
import { errorHandler } from "./http/problem.ts";

/**
 * Local admin API on a unix socket in the data directory (mode 0600). Only someone who
 * can already read the data directory can reach it, which is the same trust the CLI
 * needs to open the embedded database directly. It exists so CLI commands work while
 * the gateway holds PGlite's single-process lock.
 */
/**
 * Writes one JSON line, waiting while the reader catches up. Rejects once the reader has
 * gone: a closed socket never drains, and a wait for it would hold whatever the writer holds.
 */
function writeLine(res: ServerResponse, value: unknown): Promise<void> {
  if (res.destroyed || res.writableEnded) return Promise.reject(new Error("the admin client went away"));
  if (res.write(`${JSON.stringify(value)}\n`)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (e?: Error) => {
      res.off("drain", ok);
      res.off("close", gone);
      if (e) reject(e);
      else resolve();
    };
    const ok = () => done();
    const gone = () => done(new Error("the admin client went away"));
    res.once("drain", ok);
    res.once("close", gone);
  });
}

export async function startAdminSocket(path: string, ops: AdminOps, log: Logger): Promise<Server> {
  const app = express();
  app.use((req, _res, next) => {
    req.id = `admin-${Date.now()}`;
    next();
  });
  // Local callers only; verify may send a long anchor file.
  app.use(express.json({ limit: "16mb" }));
  const q = (v: unknown) => (typeof v === "string" ? v : undefined);
  app.post("/keys", async (req, res) => {
    res.status(201).json(await ops.createKey(req.body));
  });
  app.get("/keys", async (_req, res) => {
    res.json(await ops.listKeys());
  });
  app.get("/keys/audit", async (_req, res) => {
    res.json(await ops.auditKeys());
  });
  app.post("/keys/:id/revoke", async (req, res) => {
    res.json(await ops.revokeKey(req.params.id));
  });
  app.post("/migrate", async (_req, res) => {
    res.json(await ops.migrate());
  });
  app.get("/requests", async (req, res) => {
    const limit = q(req.query.limit);
    res.json(
      await ops.listRequests({
        ...(q(req.query.status) ? { status: q(req.query.status) } : {}),
        ...(q(req.query.action) ? { action: q(req.query.action) } : {}),
        ...(limit ? { limit: Number(limit) } : {}),
        ...(q(req.query.cursor) ? { cursor: q(req.query.cursor) } : {}),
      }),
    );
  });
  app.get("/requests/:id", async (req, res) => {
    res.json(await ops.showRequest(req.params.id));
  });
  app.get("/audit/export", async (req, res) => {
    res.type("application/x-ndjson");
    for await (const e of ops.exportAudit(Number(q(req.query.after) ?? 0))) await writeLine(res, e);
    res.end();
  });
  // A backup of the embedded database while the gateway runs: one consistent snapshot, streamed.
  // A failure part-way cuts the stream short; the file then lacks its trailer and restore refuses it.
  app.get("/snapshot", async (_req, res) => {
    res.type("application/x-ndjson");
    try {
      // A reader that goes away (Ctrl-C on `countersign backup`) ends the snapshot's transaction at once.
      await ops.snapshot((line) => writeLine(res, line));
    } catch (e) {
      if (!res.headersSent) throw e;
      log.error("admin: snapshot failed part-way", { err: e as Error });
      res.destroy();
      return;
    }
    res.end();
  });
  app.post("/audit/verify", async (req, res) => {
    const b = (req.body ?? {}) as { maxUnsealedAgeMs?: number; anchors?: { seq: number; hash: string }[]; jwks?: { keys: [] } };
    res.json(await ops.verifyAudit({ maxUnsealedAgeMs: b.maxUnsealedAgeMs, anchors: b.anchors, jwks: b.jwks }));
  });
  app.get("/audit/checkpoints/latest", async (_req, res) => {
    res.json({ checkpoint: await ops.latestCheckpoint() });
  });
  app.use((_req, _res) => {
    throw new CountersignError("not_found", "unknown admin route");
  });
  app.use(errorHandler(log));

  if (existsSync(path)) unlinkSync(path);
  return new Promise((resolve, reject) => {
    const server = app.listen({ path, readableAll: false, writableAll: false }, () => resolve(server));
    server.on("error", reject);
  });
}
