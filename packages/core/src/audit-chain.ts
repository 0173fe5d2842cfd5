import { canonicalJson, sha256Hex } from "./canonical.ts";

export const GENESIS_HASH = "0".repeat(64);

/** The hashed content of an audit event: everything but its own hash. */
export interface AuditEventBody {
  seq: number;
  at: string;
  type: string;
  requestId: string | null;
  actor: { type: string; principal: string | null; surface: string | null; surfaceUserId: string | null };
  data: unknown;
  prevHash: string;
}

export interface AuditEventRecord extends AuditEventBody {
  hash: string;
}

/** hash = sha256(prevHash ‖ canonical JSON of the event without its hash). */
export function auditHash(body: AuditEventBody): string {
  return sha256Hex(Buffer.from(body.prevHash + canonicalJson(body), "utf8"));
}

export type ChainProblem = "edited" | "deleted_or_reordered" | "inserted" | "bad_link";

export interface ChainVerdict {
  ok: boolean;
  count: number;
  lastSeq: number | null;
  firstBad?: { seq: number; problem: ChainProblem; detail: string };
}

/**
 * Walks the chain in order and reports the first event that does not fit. `startPrev`
 * and `startSeq` let a caller verify a tail (for example `--since`) from a trusted point.
 */
export class ChainVerifier {
  private prevHash: string;
  private expectedSeq: number;
  private count = 0;
  private lastSeq: number | null = null;
  private bad: ChainVerdict["firstBad"];

  constructor(startPrev = GENESIS_HASH, startSeq = 1) {
    this.prevHash = startPrev;
    this.expectedSeq = startSeq;
  }

  push(e: AuditEventRecord): boolean {
    if (this.bad) return false;
    this.count++;
    const { hash, ...body } = e;
    if (auditHash(body) !== hash) {
      this.bad = { seq: e.seq, problem: "edited", detail: "its content does not match its hash" };
    } else if (e.prevHash !== this.prevHash) {
      this.bad =
        e.seq === this.expectedSeq
          ? { seq: e.seq, problem: "bad_link", detail: "prevHash does not match the previous event's hash" }
          : e.seq > this.expectedSeq
            ? { seq: e.seq, problem: "deleted_or_reordered", detail: `expected seq ${this.expectedSeq} before it` }
            : { seq: e.seq, problem: "inserted", detail: `seq ${e.seq} is out of order or duplicated` };
    } else if (e.seq !== this.expectedSeq) {
      this.bad = { seq: e.seq, problem: "inserted", detail: `expected seq ${this.expectedSeq}` };
    }
    if (this.bad) return false;
    this.prevHash = hash;
    this.expectedSeq = e.seq + 1;
    this.lastSeq = e.seq;
    return true;
  }

  verdict(): ChainVerdict {
    return this.bad ? { ok: false, count: this.count, lastSeq: this.lastSeq, firstBad: this.bad } : { ok: true, count: this.count, lastSeq: this.lastSeq };
  }
}

export function verifyChain(events: Iterable<AuditEventRecord>): ChainVerdict {
  const v = new ChainVerifier();
  for (const e of events) if (!v.push(e)) break;
  return v.verdict();
}
