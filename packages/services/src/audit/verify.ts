import { CHECKPOINT_JWS_TYPE, CountersignError, DEFAULT_MAX_UNSEALED_AGE_MS, type DerivedRequest, type LogVerdict, LogVerifier } from "@countersign/core";
import type { Database } from "@countersign/db";
import { compactVerify, createLocalJWKSet, type JSONWebKeySet } from "jose";
import type { ServiceCall } from "../context.ts";
import { iterateLog } from "./records.ts";

/** A checkpoint kept outside the database (`countersign audit anchor`). */
export interface Anchor {
  seq: number;
  hash: string;
}

export interface VerifyInput {
  onProgress?: ((events: number) => void) | undefined;
  /** Trusted keys for checkpoint signatures; by default the gateway's own key ring. */
  jwks?: JSONWebKeySet | undefined;
  /** See LogVerifierOptions.maxUnsealedAgeMs. */
  maxUnsealedAgeMs?: number | undefined;
  /** Checkpoints the log must still contain, unchanged. */
  anchors?: Anchor[] | undefined;
}

export { DEFAULT_MAX_UNSEALED_AGE_MS };

/** Verifies compact JWS checkpoints against a key set, returning the payload text. */
export function checkpointSignatureVerifier(jwks: JSONWebKeySet): (jws: string) => Promise<string | null> {
  const keys = createLocalJWKSet(jwks);
  return async (jws) => {
    try {
      const { payload, protectedHeader } = await compactVerify(jws, keys, { algorithms: ["EdDSA"] });
      return protectedHeader.typ === CHECKPOINT_JWS_TYPE ? new TextDecoder().decode(payload) : null;
    } catch {
      return null;
    }
  };
}

/** Compares every request and its decisions with what its events say. */
async function checkState(db: Database, derived: ReadonlyMap<string, DerivedRequest>, v: LogVerifier, walkStarted: Date): Promise<void> {
  // A request that changed while the walk ran cannot be compared with what the walk saw;
  // only changes inside this window are skipped, so a forged future timestamp does not help.
  const walkEnded = new Date();
  const changedDuringWalk = (t: Date) => t > walkStarted && t <= walkEnded;
  const seen = new Set<string>();
  for (let after = ""; ; ) {
    const rows = await db.prisma.approvalRequest.findMany({
      where: { id: { gt: after } },
      orderBy: { id: "asc" },
      take: 500,
      select: {
        id: true,
        status: true,
        action: true,
        paramsSha256: true,
        createdAt: true,
        updatedAt: true,
        decisions: { select: { principal: true, decision: true, surface: true, createdAt: true } },
      },
    });
    for (const r of rows) {
      seen.add(r.id);
      if (changedDuringWalk(r.createdAt) || changedDuringWalk(r.updatedAt) || r.decisions.some((d) => changedDuringWalk(d.createdAt))) continue;
      const d = derived.get(r.id);
      const mismatch = (detail: string) => v.report({ problem: "state_mismatch", requestId: r.id, detail });
      if (!d || d.status === null) return mismatch("the request has no request.created event");
      if (d.status !== r.status) return mismatch(`its status is ${r.status} but its events say ${d.status}`);
      if (d.action !== r.action) return mismatch(`its action is ${r.action} but its events say ${d.action}`);
      if (d.paramsSha256 !== r.paramsSha256) return mismatch("its params do not hash to what its events recorded");
      const key = (x: { principal: string; decision: string; surface: string | null }) => `${x.principal}\u0000${x.decision}\u0000${x.surface}`;
      const table = r.decisions.map(key).sort();
      const events = d.decisions.map(key).sort();
      if (table.join("\n") !== events.join("\n")) {
        const extra = r.decisions.find((x) => !events.includes(key(x)));
        const missing = d.decisions.find((x) => !table.includes(key(x)));
        return mismatch(
          extra
            ? `its decision by ${extra.principal} (${extra.decision}) is not in its events`
            : `its events record a decision by ${missing?.principal} (${missing?.decision}) that the decisions table lacks`,
        );
      }
    }
    if (rows.length < 500) break;
    after = rows[rows.length - 1]?.id ?? after;
  }
  for (const [id, d] of derived) {
    if (d.status !== null && !seen.has(id))
      return v.report({ problem: "state_mismatch", requestId: id, detail: "its events describe a request the requests table lacks" });
  }
}

/**
 * Verifies the whole log from the database: every stream's chain, every checkpoint's
 * signature, root and link, that each event is sealed exactly once (or still within the
 * sealing delay), that the state tables agree with the events, and that every anchor is
 * still there. Names the first problem.
 */
export async function verifyAudit({ ctx, input }: ServiceCall<VerifyInput>): Promise<LogVerdict> {
  if (ctx.actor.type !== "admin" && ctx.actor.type !== "system") throw new CountersignError("forbidden", "verifying the audit log needs the admin scope");
  const { db } = ctx.deps;
  const jwks = input.jwks ?? ctx.deps.receipts.jwks(ctx.deps.clock());
  if (jwks.keys.length === 0 && (await db.prisma.auditCheckpoint.count()) > 0) {
    throw new CountersignError(
      "invalid_request",
      "no trusted keys to check checkpoint signatures with: pass the gateway's JWKS (countersign audit verify --jwks)",
    );
  }
  const v = new LogVerifier({
    verifySignature: checkpointSignatureVerifier(jwks as JSONWebKeySet),
    maxUnsealedAgeMs: input.maxUnsealedAgeMs ?? DEFAULT_MAX_UNSEALED_AGE_MS,
    deriveRequests: true,
    anchors: input.anchors ?? [],
  });
  const walkStarted = new Date();
  let n = 0;
  const tick = (k: number) => {
    const before = n;
    n += k;
    if (input.onProgress && Math.floor(n / 1000) > Math.floor(before / 1000)) input.onProgress(n);
  };
  for await (const item of iterateLog(db)) {
    if (item.kind === "checkpoint") {
      tick(item.events.length);
      if (!(await v.checkpoint(item.checkpoint, item.events))) break;
    } else {
      tick(1);
      if (!v.unsealed(item.event)) break;
    }
  }
  v.finish();
  if (!v.failed) await checkState(db, v.requests(), v, walkStarted);
  return v.verdict();
}
