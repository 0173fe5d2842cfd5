import { type AuditEventRecord, eventHash, streamGenesis } from "./audit-chain.ts";
import { canonicalJson, sha256Hex } from "./canonical.ts";
import { merkleRoot } from "./merkle.ts";

/** A checkpoint's signed content. The JWS payload is exactly canonicalJson(body). */
export interface CheckpointBody {
  v: 1;
  seq: number;
  /** hash of the previous checkpoint, or 64 zeros for the first. */
  prevHash: string;
  /** How many events this checkpoint seals. */
  treeSize: number;
  /** Events sealed by this and every earlier checkpoint. */
  cumulativeSize: number;
  /** RFC 9162 Merkle Tree Hash over the sealed events' hashes, in leaf order. */
  rootHash: string;
  /** The earliest and latest `at` among the events it seals. */
  firstAt: string;
  lastAt: string;
  sealedAt: string;
  /** True for the one checkpoint that sealed the pre-migration global chain. */
  legacy: boolean;
}

export interface CheckpointRecord extends CheckpointBody {
  hash: string;
  kid: string;
  jws: string;
}

export const CHECKPOINT_JWS_TYPE = "countersign-checkpoint+jws";

export function checkpointBody(c: CheckpointBody): CheckpointBody {
  return {
    v: 1,
    seq: c.seq,
    prevHash: c.prevHash,
    treeSize: c.treeSize,
    cumulativeSize: c.cumulativeSize,
    rootHash: c.rootHash,
    firstAt: c.firstAt,
    lastAt: c.lastAt,
    sealedAt: c.sealedAt,
    legacy: c.legacy,
  };
}

/**
 * The next checkpoint after `prev` (null for the first), sealing `leaves` in the order
 * given: what the checkpointer signs.
 */
export function nextCheckpointBody(
  prev: { seq: number; hash: string; cumulativeSize: number } | null,
  leaves: readonly { hash: string; at: Date }[],
  sealedAt: Date,
  legacy = false,
): CheckpointBody {
  if (leaves.length === 0) throw new RangeError("a checkpoint seals at least one event");
  let first = leaves[0]?.at as Date;
  let last = first;
  for (const l of leaves) {
    if (l.at < first) first = l.at;
    if (l.at > last) last = l.at;
  }
  return {
    v: 1,
    seq: (prev?.seq ?? 0) + 1,
    prevHash: prev?.hash ?? "0".repeat(64),
    treeSize: leaves.length,
    cumulativeSize: (prev?.cumulativeSize ?? 0) + leaves.length,
    rootHash: eventsRoot(leaves.map((l) => l.hash)),
    firstAt: first.toISOString(),
    lastAt: last.toISOString(),
    sealedAt: sealedAt.toISOString(),
    legacy,
  };
}

export function checkpointHash(c: CheckpointBody): string {
  return sha256Hex(canonicalJson(checkpointBody(c)));
}

/** The Merkle leaf input of an event: the 32 bytes of its hash. */
export function eventLeaf(hash: string): Buffer {
  return Buffer.from(hash, "hex");
}

export function eventsRoot(hashes: readonly string[]): string {
  return merkleRoot(hashes.map(eventLeaf)).toString("hex");
}

export type LogProblem = "edited" | "deleted" | "inserted" | "reordered" | "unsealed" | "bad_signature" | "state_mismatch";

export interface LogFinding {
  problem: LogProblem;
  /** The first bad event (storage seq), checkpoint or request. */
  event?: number;
  checkpoint?: number;
  requestId?: string;
  detail: string;
}

export interface LogVerdict {
  ok: boolean;
  events: number;
  checkpoints: number;
  unsealed: number;
  lastCheckpoint: { seq: number; hash: string; cumulativeSize: number } | null;
  firstBad?: LogFinding;
}

/** A request's state as its events tell it, to compare with the state tables. */
export interface DerivedRequest {
  status: string | null;
  action: string | null;
  paramsSha256: string | null;
  decisions: { principal: string; decision: string; surface: string | null }[];
}

export interface LogVerifierOptions {
  /** Verifies a checkpoint's JWS against trusted keys; returns its payload, or null when the signature does not verify. */
  verifySignature: (jws: string) => Promise<string | null>;
  /**
   * An unsealed event older than this, measured back from the newest checkpoint, should
   * have been sealed by it: the checkpointer seals every committed event each run.
   */
  maxUnsealedAgeMs: number;
  /** Keep each request's derived state (for the state-table check). */
  deriveRequests?: boolean;
  /**
   * Verify a tail (an export made with `--since`): the first checkpoint's link and each
   * stream's first event are trusted as they are, since what they link to is not here.
   */
  tail?: boolean;
  /** Checkpoints kept elsewhere (`audit anchor`): each must still be in the log, unchanged. */
  anchors?: readonly { seq: number; hash: string }[];
}

interface StreamHead {
  next: number;
  prevHash: string;
}

/**
 * Verifies the whole log, fed in the order exports and the database walk use: for each
 * checkpoint (by seq), the events it seals in leaf order, then the events no checkpoint
 * has sealed yet (by seq). Stops at the first problem and names it. Memory is one head
 * per stream, plus one checkpoint's events at a time.
 */
export class LogVerifier {
  private readonly streams = new Map<string, StreamHead>();
  private readonly derived = new Map<string, DerivedRequest>();
  private prevCheckpoint: { seq: number; hash: string; cumulativeSize: number; sealedAt: number } | null = null;
  private nEvents = 0;
  private nCheckpoints = 0;
  private nUnsealed = 0;
  private bad: LogFinding | undefined;
  private readonly anchors: Map<number, string>;
  private firstSeq: number | undefined;

  constructor(private readonly opts: LogVerifierOptions) {
    this.anchors = new Map((opts.anchors ?? []).map((a) => [a.seq, a.hash]));
  }

  get failed(): boolean {
    return this.bad !== undefined;
  }

  private fail(f: LogFinding): false {
    this.bad ??= f;
    return false;
  }

  /** Checks one event's hash and its link into its stream; records the derived state. */
  private event(e: AuditEventRecord): boolean {
    this.nEvents++;
    if (eventHash(e) !== e.hash) return this.fail({ problem: "edited", event: e.seq, detail: "its content does not match its hash" });
    if (e.v === 1 ? e.stream !== "legacy" || e.index !== e.seq - 1 : e.stream === "legacy") {
      return this.fail({ problem: "edited", event: e.seq, detail: `its stream or index does not fit a v${e.v} event` });
    }
    if (e.v === 2 && e.requestId !== null && e.stream !== e.requestId) {
      return this.fail({ problem: "edited", event: e.seq, detail: `it names request ${e.requestId} but sits in stream ${e.stream}` });
    }
    const head = this.streams.get(e.stream) ?? (this.opts.tail ? { next: e.index, prevHash: e.prevHash } : { next: 0, prevHash: streamGenesis(e.stream) });
    if (e.index > head.next) {
      return this.fail({ problem: "deleted", event: e.seq, detail: `stream ${e.stream} is missing index ${head.next} before index ${e.index}` });
    }
    if (e.index < head.next) {
      return this.fail({ problem: "reordered", event: e.seq, detail: `index ${e.index} of stream ${e.stream} comes after index ${head.next - 1}` });
    }
    if (e.prevHash !== head.prevHash) {
      return this.fail({
        problem: e.index === 0 ? "inserted" : "edited",
        event: e.seq,
        detail:
          e.index === 0
            ? `its prevHash is not the genesis of stream ${e.stream}`
            : `its prevHash does not match index ${e.index - 1} of stream ${e.stream}: that event was edited or replaced`,
      });
    }
    this.streams.set(e.stream, { next: e.index + 1, prevHash: e.hash });
    if (this.opts.deriveRequests && e.requestId) this.derive(e);
    return true;
  }

  private derive(e: AuditEventRecord): void {
    const id = e.requestId as string;
    const r = this.derived.get(id) ?? { status: null, action: null, paramsSha256: null, decisions: [] };
    const data = (e.data ?? {}) as Record<string, unknown>;
    if (e.type === "request.created") {
      r.status = "pending";
      r.action = typeof data.action === "string" ? data.action : null;
      r.paramsSha256 = typeof data.paramsSha256 === "string" ? data.paramsSha256 : null;
    } else if (e.type === "decision.recorded" && e.actor.principal) {
      r.decisions.push({ principal: e.actor.principal, decision: String(data.decision), surface: e.actor.surface });
    } else if (/^request\.(approved|denied|expired|cancelled)$/.test(e.type)) {
      r.status = e.type.slice("request.".length);
    }
    this.derived.set(id, r);
  }

  /** One checkpoint with the events it seals, in leaf order. */
  async checkpoint(c: CheckpointRecord, sealed: readonly AuditEventRecord[]): Promise<boolean> {
    if (this.bad) return false;
    this.nCheckpoints++;
    this.firstSeq ??= c.seq;
    if (!this.prevCheckpoint && this.opts.tail) {
      this.prevCheckpoint = { seq: c.seq - 1, hash: c.prevHash, cumulativeSize: c.cumulativeSize - c.treeSize, sealedAt: Number.NEGATIVE_INFINITY };
    }
    const expected = (this.prevCheckpoint?.seq ?? 0) + 1;
    if (c.seq > expected) return this.fail({ problem: "deleted", checkpoint: c.seq, detail: `checkpoint ${expected} is missing before it` });
    if (c.seq < expected) return this.fail({ problem: "inserted", checkpoint: c.seq, detail: `it repeats or precedes checkpoint ${expected - 1}` });
    const body = checkpointBody(c);
    if (checkpointHash(body) !== c.hash) return this.fail({ problem: "edited", checkpoint: c.seq, detail: "its content does not match its hash" });
    const payload = await this.opts.verifySignature(c.jws);
    if (payload === null) return this.fail({ problem: "bad_signature", checkpoint: c.seq, detail: "its JWS does not verify against the trusted keys" });
    if (payload !== canonicalJson(body)) return this.fail({ problem: "bad_signature", checkpoint: c.seq, detail: "its signature covers different content" });
    if (c.prevHash !== (this.prevCheckpoint?.hash ?? "0".repeat(64))) {
      return this.fail({ problem: "edited", checkpoint: c.seq, detail: `its prevHash does not match checkpoint ${expected - 1}` });
    }
    if (c.cumulativeSize !== (this.prevCheckpoint?.cumulativeSize ?? 0) + c.treeSize) {
      return this.fail({ problem: "edited", checkpoint: c.seq, detail: "its cumulative size does not add up" });
    }
    // A stream's events sit in a checkpoint in index order; check that first, so a swap
    // is named as one rather than as the gap it also leaves.
    const lastIndex = new Map<string, number>();
    for (const e of sealed) {
      const before = lastIndex.get(e.stream);
      if (before !== undefined && e.index < before) {
        return this.fail({ problem: "reordered", event: e.seq, detail: `index ${e.index} of stream ${e.stream} is sealed after index ${before}` });
      }
      lastIndex.set(e.stream, e.index);
    }
    let lastSeq = 0;
    for (const [i, e] of sealed.entries()) {
      if (e.sealedIn !== c.seq)
        return this.fail({ problem: "inserted", event: e.seq, detail: `it is listed under checkpoint ${c.seq} but sealed in ${e.sealedIn}` });
      if (e.leafIndex !== i) {
        return this.fail({
          problem: (e.leafIndex ?? -1) < i ? "inserted" : "deleted",
          event: e.seq,
          detail: `it is leaf ${e.leafIndex} of checkpoint ${c.seq} where leaf ${i} was expected`,
        });
      }
      if (e.seq <= lastSeq)
        return this.fail({ problem: "reordered", event: e.seq, detail: `its leaf position in checkpoint ${c.seq} is out of storage order` });
      lastSeq = e.seq;
      if (!this.event(e)) return false;
    }
    if (sealed.length > c.treeSize) {
      return this.fail({ problem: "inserted", checkpoint: c.seq, detail: `it seals ${c.treeSize} events but ${sealed.length} claim to be sealed by it` });
    }
    if (sealed.length < c.treeSize) {
      return this.fail({ problem: "deleted", checkpoint: c.seq, detail: `it seals ${c.treeSize} events but only ${sealed.length} remain` });
    }
    if (eventsRoot(sealed.map((e) => e.hash)) !== c.rootHash) {
      return this.fail({ problem: "edited", checkpoint: c.seq, detail: "the events it seals do not hash to its signed root: one was replaced or moved" });
    }
    const anchored = this.anchors.get(c.seq);
    if (anchored !== undefined) {
      this.anchors.delete(c.seq);
      if (anchored !== c.hash)
        return this.fail({ problem: "edited", checkpoint: c.seq, detail: "it differs from the anchored copy: the log was rewritten after it was anchored" });
    }
    this.prevCheckpoint = { seq: c.seq, hash: c.hash, cumulativeSize: c.cumulativeSize, sealedAt: Date.parse(c.sealedAt) };
    return true;
  }

  /** An event no checkpoint has sealed yet, in seq order after every checkpoint. */
  unsealed(e: AuditEventRecord): boolean {
    if (this.bad) return false;
    this.nUnsealed++;
    if (e.sealedIn !== null || e.leafIndex !== null) {
      return this.fail({ problem: "deleted", event: e.seq, detail: `it claims checkpoint ${e.sealedIn}, which is not in the log` });
    }
    if (!this.event(e)) return false;
    const newest = this.prevCheckpoint?.sealedAt;
    if (newest !== undefined && Date.parse(e.at) < newest - this.opts.maxUnsealedAgeMs) {
      return this.fail({
        problem: "unsealed",
        event: e.seq,
        detail: `it was written at ${e.at}, well before checkpoint ${this.prevCheckpoint?.seq} was sealed, and no checkpoint seals it`,
      });
    }
    return true;
  }

  /** Requests as their events tell them (only with `deriveRequests`). */
  requests(): ReadonlyMap<string, DerivedRequest> {
    return this.derived;
  }

  /** Reports a finding from a check outside the log itself (the state tables, anchors). */
  report(f: LogFinding): void {
    this.fail(f);
  }

  /** Call after the last item: an anchored checkpoint that never came means the log lost it. */
  finish(): void {
    if (this.bad) return;
    // A tail export cannot show the checkpoints before it starts.
    const from = this.opts.tail ? (this.firstSeq ?? Number.POSITIVE_INFINITY) : 0;
    const missing = [...this.anchors.keys()].filter((seq) => seq >= from).sort((a, b) => a - b);
    if (missing[0] !== undefined) {
      this.fail({ problem: "deleted", checkpoint: missing[0], detail: "an anchored checkpoint is no longer in the log: the log was truncated or rewritten" });
    }
  }

  verdict(): LogVerdict {
    const base = {
      events: this.nEvents,
      checkpoints: this.nCheckpoints,
      unsealed: this.nUnsealed,
      lastCheckpoint: this.prevCheckpoint
        ? { seq: this.prevCheckpoint.seq, hash: this.prevCheckpoint.hash, cumulativeSize: this.prevCheckpoint.cumulativeSize }
        : null,
    };
    return this.bad ? { ok: false, ...base, firstBad: this.bad } : { ok: true, ...base };
  }
}

/** An RFC 9162 inclusion proof of one event in the checkpoint that sealed it. */
export interface InclusionProof {
  checkpoint: number;
  leafIndex: number;
  treeSize: number;
  /** Hex node hashes, bottom up. */
  path: string[];
}

/** One request's evidence (`GET /v1/requests/:id/evidence`): enough to check it offline against the JWKS. */
export interface Evidence {
  object: "evidence";
  requestId: string;
  /** In chain order; `proof` is null for an event not sealed yet. */
  entries: { event: AuditEventRecord; proof: InclusionProof | null }[];
  /** Every checkpoint that seals one of the entries, by seq. */
  checkpoints: CheckpointRecord[];
}
