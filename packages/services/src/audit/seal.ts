import { type CheckpointRecord, CountersignError, canonicalJson, checkpointHash, LegacyChainVerifier, nextCheckpointBody } from "@countersign/core";
import type { Tx } from "@countersign/db";
import type { ServiceCall } from "../context.ts";
import { auditRecord, checkpointRecord } from "./records.ts";

// One checkpointer at a time across every replica; taken with try, so the others skip
// the round instead of queueing behind it. Request transactions never touch it.
const CHECKPOINT_LOCK = 7265_1002;

export const CHECKPOINT_DEFAULTS = { maxEvents: 1000 } as const;

export interface SealInput {
  /** The most events one checkpoint seals; the rest wait for the next round. */
  maxEvents?: number;
}

export type SealResult = { sealed: CheckpointRecord } | { sealed: null; reason: "nothing_to_seal" | "busy" | "legacy_chain_broken" };

interface Leaf {
  seq: number;
  hash: string;
  at: Date;
}

async function legacyLeaves(tx: Tx): Promise<{ leaves: Leaf[]; broken: string | null }> {
  const v = new LegacyChainVerifier();
  const leaves: Leaf[] = [];
  for (let after = 0; ; ) {
    const rows = await tx.auditEvent.findMany({ where: { v: 1, seq: { gt: after } }, orderBy: { seq: "asc" }, take: 5000 });
    for (const r of rows) {
      const e = auditRecord(r);
      if (!v.push({ seq: e.seq, at: e.at, type: e.type, requestId: e.requestId, actor: e.actor, data: e.data, prevHash: e.prevHash, hash: e.hash })) {
        const bad = v.verdict().firstBad;
        return { leaves: [], broken: `seq ${bad?.seq}: ${bad?.problem} (${bad?.detail})` };
      }
      leaves.push({ seq: r.seq, hash: r.hash, at: r.at });
    }
    if (rows.length < 5000) return { leaves, broken: null };
    after = rows[rows.length - 1]?.seq ?? after;
  }
}

/**
 * Seals the events no checkpoint has sealed yet into one signed Merkle checkpoint, in seq
 * order. Runs in its own transaction, outside any request's: the rows it marks were
 * committed before it read them, so it never waits on a request, and an event that
 * commits while it runs goes into the next checkpoint. Killed midway, it rolls back and
 * leaves nothing half-sealed. On a migrated database the first checkpoint seals the
 * pre-migration global chain, after verifying it.
 */
export async function sealCheckpoint({ ctx, input }: ServiceCall<SealInput>): Promise<SealResult> {
  const maxEvents = input.maxEvents ?? CHECKPOINT_DEFAULTS.maxEvents;
  const { deps } = ctx;
  return deps.db.transaction(
    async (tx) => {
      const [lock] = await tx.$queryRawUnsafe<{ ok: boolean }[]>(`SELECT pg_try_advisory_xact_lock(${CHECKPOINT_LOCK}) AS ok`);
      if (!lock?.ok) return { sealed: null, reason: "busy" } as const;
      const prev = await tx.auditCheckpoint.findFirst({ orderBy: { seq: "desc" } });

      let leaves: Leaf[];
      let legacy = false;
      const legacyPending = prev ? 0 : await tx.auditEvent.count({ where: { v: 1, sealedIn: null } });
      if (legacyPending > 0) {
        const l = await legacyLeaves(tx);
        if (l.broken) {
          // Sealing a broken chain would vouch for it. Leave it unsealed (verify names the
          // break) and refuse to seal anything newer ahead of it.
          ctx.log.error("the pre-migration audit chain does not verify, so it cannot be sealed; run `countersign audit verify`", { problem: l.broken });
          return { sealed: null, reason: "legacy_chain_broken" } as const;
        }
        leaves = l.leaves;
        legacy = true;
      } else {
        leaves = await tx.auditEvent.findMany({
          where: { sealedIn: null, v: 2 },
          orderBy: { seq: "asc" },
          take: maxEvents,
          select: { seq: true, hash: true, at: true },
        });
      }
      if (leaves.length === 0) return { sealed: null, reason: "nothing_to_seal" } as const;

      const body = nextCheckpointBody(prev, leaves, deps.clock(), legacy);
      const { jws, kid } = await deps.receipts.signCheckpoint(canonicalJson(body));
      const marked = await tx.$executeRawUnsafe(
        `UPDATE audit_events AS e SET sealed_in = $1, leaf_index = u.leaf
           FROM unnest($2::int[], $3::int[]) AS u(seq, leaf)
          WHERE e.seq = u.seq AND e.sealed_in IS NULL`,
        body.seq,
        leaves.map((l) => l.seq),
        leaves.map((_, i) => i),
      );
      // The lock makes this impossible; if it ever happens, roll back rather than seal twice.
      if (marked !== leaves.length) throw new CountersignError("conflict", `checkpoint ${body.seq} marked ${marked} of ${leaves.length} events`);
      const row = await tx.auditCheckpoint.create({
        data: {
          seq: body.seq,
          prevHash: body.prevHash,
          treeSize: body.treeSize,
          cumulativeSize: body.cumulativeSize,
          rootHash: body.rootHash,
          firstAt: new Date(body.firstAt),
          lastAt: new Date(body.lastAt),
          sealedAt: new Date(body.sealedAt),
          legacy,
          hash: checkpointHash(body),
          kid,
          jws,
        },
      });
      return { sealed: checkpointRecord(row) };
    },
    // The one legacy checkpoint may seal a long chain; regular rounds are small.
    { timeout: 120_000 },
  );
}

export interface Checkpointer {
  /** Resolves once the loop has stopped and no round is running. */
  stop(): Promise<void>;
  /** Runs rounds until nothing is left to seal (tests, shutdown). */
  flush(): Promise<void>;
}

/**
 * Seals every `intervalMs`, and keeps sealing back to back while rounds come back full,
 * so a checkpoint is cut every second or every `maxEvents` events, whichever comes first.
 * Every replica runs one; the advisory lock elects the one that seals each round.
 */
export function startCheckpointer(
  ctx: ServiceCall<unknown>["ctx"],
  opts: { intervalMs: number; maxEvents: number; onError: (e: unknown) => void },
): Checkpointer {
  let running: Promise<void> | null = null;
  let stopped = false;
  const round = async (): Promise<void> => {
    for (;;) {
      const r = await sealCheckpoint({ ctx, input: { maxEvents: opts.maxEvents } });
      if (stopped || !r.sealed || r.sealed.treeSize < opts.maxEvents) return;
    }
  };
  const tick = () => {
    if (running || stopped) return;
    running = round()
      .catch(opts.onError)
      .finally(() => {
        running = null;
      });
  };
  const timer = setInterval(tick, opts.intervalMs);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
    async flush() {
      await running;
      for (;;) {
        const r = await sealCheckpoint({ ctx, input: { maxEvents: opts.maxEvents } });
        if (!r.sealed && r.reason !== "busy") return;
        if (!r.sealed) await new Promise((res) => setTimeout(res, 20));
      }
    },
  };
}
