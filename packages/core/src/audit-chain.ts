import { canonicalJson, sha256Hex } from "./canonical.ts";

/**
 * The audit log is a set of hash chains, one per stream: each request's events form their
 * own chain (written under the request's row lock), and events that belong to no request
 * (keys, policy, refusals that name no request) chain in the `system` stream. Events
 * written before per-request chains existed form the one `legacy` stream: the old global
 * chain, verified and sealed as the first checkpoint when the database migrated.
 * Checkpoints (./checkpoint.ts) then seal every event into a signed Merkle tree.
 */

export const GENESIS_HASH = "0".repeat(64);
export const SYSTEM_STREAM = "system";
export const LEGACY_STREAM = "legacy";

/** The prevHash of a stream's first event: derived from the stream, so a chain cannot be moved to another request. */
export function streamGenesis(stream: string): string {
  return stream === LEGACY_STREAM ? GENESIS_HASH : sha256Hex(`countersign/audit/genesis/v2\n${stream}`);
}

export interface AuditActorRecord {
  type: string;
  principal: string | null;
  surface: string | null;
  surfaceUserId: string | null;
}

/** What every event says, whatever its version. */
interface AuditEventContent {
  at: string;
  type: string;
  requestId: string | null;
  actor: AuditActorRecord;
  data: unknown;
  prevHash: string;
}

/** What a v2 event's hash covers: everything but its storage position and its own hash. */
export interface AuditEventBody extends AuditEventContent {
  v: 2;
  stream: string;
  index: number;
}

/** What a legacy (v1) event's hash covers: the old global chain, ordered by seq. */
export interface LegacyAuditEventBody extends AuditEventContent {
  seq: number;
}

/**
 * One stored event as the API, exports and evidence carry it. `seq` is the storage order
 * (unique, with gaps); `sealedIn`/`leafIndex` say which checkpoint sealed it and where in
 * its tree, and are null until a checkpoint does. A legacy event has `v: 1`, stream
 * `legacy` and `index` seq - 1.
 */
export interface AuditEventRecord extends AuditEventContent {
  seq: number;
  v: 1 | 2;
  stream: string;
  index: number;
  hash: string;
  sealedIn: number | null;
  leafIndex: number | null;
}

/** hash = sha256(prevHash ‖ canonical JSON of the body). */
export function auditHash(body: AuditEventBody | LegacyAuditEventBody): string {
  return sha256Hex(Buffer.from(body.prevHash + canonicalJson(body), "utf8"));
}

/** The hashed part of a record, by its version. */
export function eventBody(e: AuditEventRecord): AuditEventBody | LegacyAuditEventBody {
  if (e.v === 1) return { seq: e.seq, at: e.at, type: e.type, requestId: e.requestId, actor: e.actor, data: e.data, prevHash: e.prevHash };
  return { v: 2, stream: e.stream, index: e.index, at: e.at, type: e.type, requestId: e.requestId, actor: e.actor, data: e.data, prevHash: e.prevHash };
}

export function eventHash(e: AuditEventRecord): string {
  return auditHash(eventBody(e));
}

export type ChainProblem = "edited" | "deleted_or_reordered" | "inserted" | "bad_link";

export interface ChainVerdict {
  ok: boolean;
  count: number;
  lastSeq: number | null;
  firstBad?: { seq: number; problem: ChainProblem; detail: string };
}

/**
 * Walks the legacy global chain in seq order and reports the first event that does not
 * fit. Used once, by the migration that seals it as the first checkpoint.
 */
export class LegacyChainVerifier {
  private prevHash = GENESIS_HASH;
  private expectedSeq = 1;
  private count = 0;
  private lastSeq: number | null = null;
  private bad: ChainVerdict["firstBad"];

  push(e: LegacyAuditEventBody & { hash: string }): boolean {
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
