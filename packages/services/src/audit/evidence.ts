import { CountersignError, type Evidence, eventLeaf, type InclusionProof, inclusionProof } from "@countersign/core";
import { canRead } from "../authz.ts";
import type { ServiceCall } from "../context.ts";
import { assertRequestId } from "../requests/get.ts";
import { auditRecord, checkpointRecord } from "./records.ts";

/**
 * A request's events, the checkpoints that seal them and an inclusion proof for each, so
 * that one approval can be proven without handing over the rest of the log. Readable by
 * whoever may read the request.
 */
export async function getEvidence({ ctx, input }: ServiceCall<{ requestId: string }>): Promise<Evidence> {
  assertRequestId(input.requestId);
  const { prisma } = ctx.deps.db;
  const row = await prisma.approvalRequest.findUnique({
    where: { id: input.requestId },
    select: { id: true, apiKeyId: true, apiKey: { select: { revokedAt: true } } },
  });
  if (!row || !canRead(ctx.actor, row.apiKeyId)) throw new CountersignError("not_found", `no request ${input.requestId}`);
  if (ctx.actor.type === "agent" && row.apiKey.revokedAt) throw new CountersignError("unauthorized", "The API key is missing, malformed, unknown or revoked.");

  // Legacy (v1) events first, in their global order, then the request's own chain.
  const rows = await prisma.auditEvent.findMany({ where: { requestId: row.id }, orderBy: [{ v: "asc" }, { index: "asc" }] });
  const events = rows.map(auditRecord);
  const sealedIn = [...new Set(events.flatMap((e) => (e.sealedIn === null ? [] : [e.sealedIn])))].sort((a, b) => a - b);
  const checkpoints = (await prisma.auditCheckpoint.findMany({ where: { seq: { in: sealedIn } }, orderBy: { seq: "asc" } })).map(checkpointRecord);
  const proofs = new Map<number, InclusionProof>();
  for (const c of checkpoints) {
    const leaves = await prisma.auditEvent.findMany({ where: { sealedIn: c.seq }, orderBy: { leafIndex: "asc" }, select: { seq: true, hash: true } });
    const tree = leaves.map((l) => eventLeaf(l.hash));
    for (const e of events) {
      if (e.sealedIn !== c.seq || e.leafIndex === null || e.leafIndex >= tree.length) continue;
      proofs.set(e.seq, {
        checkpoint: c.seq,
        leafIndex: e.leafIndex,
        treeSize: c.treeSize,
        path: inclusionProof(tree, e.leafIndex).map((h) => h.toString("hex")),
      });
    }
  }
  return { object: "evidence", requestId: row.id, entries: events.map((event) => ({ event, proof: proofs.get(event.seq) ?? null })), checkpoints };
}
