import { compactVerify, createLocalJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from "jose";
import { canonicalJson, sha256Hex } from "./canonical.js";
import { EvidenceVerificationError } from "./errors.js";
import { remoteKeySet } from "./receipt.js";
import type { AuditEventRecord, CheckpointRecord, Evidence, EvidenceSummary, InclusionProof, JsonWebKeySet, RequestStatus } from "./types.js";

// Mirrors the gateway's audit log (packages/core/src/audit-chain.ts, merkle.ts and
// checkpoint.ts) without depending on it: per-request hash chains, sealed by signed
// RFC 9162 Merkle checkpoints. A test builds evidence with core's code and checks this
// verifies it, and rejects every kind of tampering.

export const CHECKPOINT_TYPE = "countersign-checkpoint+jws";

const LEGACY_STREAM = "legacy";
const HEX64 = /^[0-9a-f]{64}$/;
const TERMINAL = /^request\.(approved|denied|expired|cancelled)$/;

export interface VerifyEvidenceOptions {
  /** The gateway's public keys, for fully offline verification. */
  jwks?: JsonWebKeySet;
  /** Or where to fetch them, e.g. `https://countersign.example.com/.well-known/jwks.json`. */
  jwksUrl?: string | URL;
  /** If given, the evidence must be about this request. */
  requestId?: string;
  /** Accept events that no checkpoint has sealed yet (they are then only hash-chained, not signed). */
  allowUnsealed?: boolean;
}

/** The prevHash of index 0 of a request's chain: bound to the request, so a chain cannot be moved to another. */
export function streamGenesis(stream: string): Promise<string> {
  return sha256Hex(`countersign/audit/genesis/v2\n${stream}`);
}

/** An event's hash, by its version: sha256(prevHash ‖ canonical JSON of what it covers). */
export function auditEventHash(e: AuditEventRecord): Promise<string> {
  const body =
    e.v === 1
      ? { seq: e.seq, at: e.at, type: e.type, requestId: e.requestId, actor: e.actor, data: e.data, prevHash: e.prevHash }
      : { v: 2, stream: e.stream, index: e.index, at: e.at, type: e.type, requestId: e.requestId, actor: e.actor, data: e.data, prevHash: e.prevHash };
  return sha256Hex(e.prevHash + canonicalJson(body));
}

function checkpointBody(c: CheckpointRecord) {
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

// ---- RFC 9162 §2.1 -------------------------------------------------------------------

async function sha256(...parts: Uint8Array[]): Promise<Uint8Array> {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", all));
}

const LEAF = Uint8Array.of(0);
const NODE = Uint8Array.of(1);

function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * RFC 9162 §2.1.3.2: the root an inclusion proof leads to, from the leaf input (the 32
 * bytes of an event's hash), or null when the path has the wrong length for the index
 * and tree size. Lowercase hex.
 */
export async function rootFromInclusionProof(leafIndex: number, treeSize: number, leaf: Uint8Array, path: readonly Uint8Array[]): Promise<string | null> {
  if (!Number.isInteger(leafIndex) || !Number.isInteger(treeSize) || leafIndex < 0 || leafIndex >= treeSize) return null;
  let fn = leafIndex;
  let sn = treeSize - 1;
  let r = await sha256(LEAF, leaf);
  for (const p of path) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(NODE, p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      r = await sha256(NODE, r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? toHex(r) : null;
}

// ---- shape ---------------------------------------------------------------------------

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const isInt = (v: unknown, min: number): v is number => typeof v === "number" && Number.isInteger(v) && v >= min;
const isHex = (v: unknown): v is string => typeof v === "string" && HEX64.test(v);
const isStr = (v: unknown): v is string => typeof v === "string";
const isStrOrNull = (v: unknown): v is string | null => v === null || typeof v === "string";
const isIntOrNull = (v: unknown, min: number): v is number | null => v === null || isInt(v, min);

function malformed(what: string): never {
  throw new EvidenceVerificationError("malformed", what);
}

function checkEvent(e: unknown, where: string): asserts e is AuditEventRecord {
  if (!isObj(e)) malformed(`${where} is not an object`);
  if (e.v !== 1 && e.v !== 2) malformed(`${where} has an unknown version ${JSON.stringify(e.v)}`);
  if (!isInt(e.seq, 1) || !isInt(e.index, 0)) malformed(`${where} lacks an integer seq or index`);
  if (!isStr(e.stream) || !isStr(e.at) || !isStr(e.type) || !isStrOrNull(e.requestId)) malformed(`${where} lacks stream, at, type or requestId`);
  const a = e.actor;
  if (!isObj(a) || !isStr(a.type) || !isStrOrNull(a.principal) || !isStrOrNull(a.surface) || !isStrOrNull(a.surfaceUserId)) {
    malformed(`${where} has a malformed actor`);
  }
  if (!("data" in e) || e.data === undefined) malformed(`${where} lacks data`);
  if (!isHex(e.prevHash) || !isHex(e.hash)) malformed(`${where} lacks a hex prevHash or hash`);
  if (!isIntOrNull(e.sealedIn, 1) || !isIntOrNull(e.leafIndex, 0)) malformed(`${where} has a malformed sealedIn or leafIndex`);
}

function checkProof(p: unknown, where: string): asserts p is InclusionProof | null {
  if (p === null) return;
  if (!isObj(p)) malformed(`${where} is not an object or null`);
  if (!isInt(p.checkpoint, 1) || !isInt(p.leafIndex, 0) || !isInt(p.treeSize, 1)) malformed(`${where} lacks an integer checkpoint, leafIndex or treeSize`);
  if (!Array.isArray(p.path) || !p.path.every(isHex)) malformed(`${where} has a path that is not a list of hex hashes`);
}

function checkCheckpoint(c: unknown, where: string): asserts c is CheckpointRecord {
  if (!isObj(c)) malformed(`${where} is not an object`);
  if (c.v !== 1) malformed(`${where} has an unknown version ${JSON.stringify(c.v)}`);
  if (!isInt(c.seq, 1) || !isInt(c.treeSize, 1) || !isInt(c.cumulativeSize, 1)) malformed(`${where} lacks an integer seq, treeSize or cumulativeSize`);
  if (!isHex(c.prevHash) || !isHex(c.rootHash) || !isHex(c.hash)) malformed(`${where} lacks a hex prevHash, rootHash or hash`);
  if (!isStr(c.firstAt) || !isStr(c.lastAt) || !isStr(c.sealedAt) || typeof c.legacy !== "boolean") malformed(`${where} lacks its times or legacy flag`);
  if (!isStr(c.kid) || !isStr(c.jws)) malformed(`${where} lacks kid or jws`);
}

function checkShape(doc: unknown): asserts doc is Evidence {
  if (!isObj(doc)) malformed("the evidence is not an object");
  if (doc.object !== "evidence") malformed(`the document is ${JSON.stringify(doc.object)}, not "evidence"`);
  if (!isStr(doc.requestId)) malformed("the evidence lacks requestId");
  if (!Array.isArray(doc.entries) || !Array.isArray(doc.checkpoints)) malformed("the evidence lacks entries or checkpoints");
  for (const [i, entry] of doc.entries.entries()) {
    if (!isObj(entry)) malformed(`entry ${i} is not an object`);
    checkEvent(entry.event, `the event of entry ${i}`);
    if (!("proof" in entry)) malformed(`entry ${i} lacks proof`);
    checkProof(entry.proof, `the proof of entry ${i}`);
  }
  let lastSeq = 0;
  for (const [i, c] of doc.checkpoints.entries()) {
    checkCheckpoint(c, `checkpoint ${i}`);
    if (c.seq <= lastSeq) malformed(`checkpoint ${c.seq} is out of order or repeated`);
    lastSeq = c.seq;
  }
}

// ---- verification --------------------------------------------------------------------

/**
 * Proves, offline against the gateway's public keys, that one request's audit events are
 * in its tamper-evident log: every event's hash, the request's chain from its genesis
 * with nothing missing, added or reordered, each checkpoint's EdDSA signature, and each
 * event's RFC 9162 inclusion proof to its checkpoint's signed root. Pass what
 * `GET /v1/requests/:id/evidence` (`Countersign#evidence`) returned.
 * Resolves with what the events say; throws EvidenceVerificationError at the first failure.
 */
export async function verifyEvidence(evidence: unknown, options: VerifyEvidenceOptions): Promise<EvidenceSummary> {
  const keys: JWTVerifyGetKey | undefined = options.jwks
    ? createLocalJWKSet(options.jwks as unknown as JSONWebKeySet)
    : options.jwksUrl
      ? remoteKeySet(options.jwksUrl)
      : undefined;
  if (!keys) throw new TypeError("verifyEvidence needs jwksUrl or jwks");

  checkShape(evidence);
  const { requestId, entries } = evidence;
  if (options.requestId !== undefined && requestId !== options.requestId) {
    throw new EvidenceVerificationError("wrong_request", `the evidence is for ${requestId}, not ${options.requestId}`);
  }
  for (const { event: e } of entries) {
    if (e.requestId !== requestId)
      throw new EvidenceVerificationError("wrong_request", `event ${e.seq} is about ${e.requestId ?? "no request"}, not ${requestId}`);
  }

  // Each event's hash.
  for (const { event: e } of entries) {
    if ((await auditEventHash(e)) !== e.hash) throw new EvidenceVerificationError("event_edited", `event ${e.seq} (${e.type}) does not match its hash`);
  }

  // The chain: legacy events by seq (their chain ran through every request, so only their
  // hashes and proofs say anything), then the request's own stream from its genesis.
  if (entries.length === 0) throw new EvidenceVerificationError("chain_broken", "the evidence holds no events");
  let lastLegacySeq = 0;
  let next = 0;
  let prevHash = await streamGenesis(requestId);
  for (const { event: e } of entries) {
    if (e.v === 1) {
      if (next > 0) throw new EvidenceVerificationError("chain_broken", `legacy event ${e.seq} comes after the request's own chain began`);
      if (e.stream !== LEGACY_STREAM || e.index !== e.seq - 1)
        throw new EvidenceVerificationError("chain_broken", `legacy event ${e.seq} claims stream ${e.stream} index ${e.index}`);
      if (e.seq <= lastLegacySeq) throw new EvidenceVerificationError("chain_broken", `legacy event ${e.seq} is out of order or repeated`);
      lastLegacySeq = e.seq;
      continue;
    }
    if (e.stream !== requestId) throw new EvidenceVerificationError("chain_broken", `event ${e.seq} sits in stream ${e.stream}, not ${requestId}`);
    if (e.index !== next) {
      throw new EvidenceVerificationError(
        "chain_broken",
        e.index > next ? `index ${next} of the chain is missing before index ${e.index}` : `index ${e.index} comes after index ${next - 1}`,
      );
    }
    if (e.prevHash !== prevHash) {
      throw new EvidenceVerificationError(
        "chain_broken",
        next === 0 ? "the chain does not start at its genesis" : `index ${e.index} does not link to index ${next - 1}: one of them was replaced`,
      );
    }
    prevHash = e.hash;
    next++;
  }

  // Each checkpoint: its hash, and a signature over exactly its content.
  const checkpoints = new Map<number, CheckpointRecord>();
  for (const c of evidence.checkpoints) {
    const body = canonicalJson(checkpointBody(c));
    if ((await sha256Hex(body)) !== c.hash) throw new EvidenceVerificationError("bad_signature", `checkpoint ${c.seq} does not match its hash`);
    let payload: string;
    try {
      const verified = await compactVerify(c.jws, keys, { algorithms: ["EdDSA"] });
      if (verified.protectedHeader.typ !== CHECKPOINT_TYPE) {
        throw new EvidenceVerificationError(
          "bad_signature",
          `checkpoint ${c.seq}'s JWS has type ${JSON.stringify(verified.protectedHeader.typ)}, not ${CHECKPOINT_TYPE}`,
        );
      }
      if (verified.protectedHeader.kid !== c.kid) {
        throw new EvidenceVerificationError("bad_signature", `checkpoint ${c.seq}'s JWS is signed by key ${verified.protectedHeader.kid}, not ${c.kid}`);
      }
      payload = new TextDecoder("utf-8", { fatal: true }).decode(verified.payload);
    } catch (e) {
      if (e instanceof EvidenceVerificationError) throw e;
      throw new EvidenceVerificationError("bad_signature", `checkpoint ${c.seq}'s JWS does not verify: ${(e as Error).message}`, { cause: e });
    }
    if (payload !== body) throw new EvidenceVerificationError("bad_signature", `checkpoint ${c.seq}'s signature covers different content`);
    checkpoints.set(c.seq, c);
  }

  // Each proof leads from its event to a signed root.
  const sealedBy = new Set<number>();
  let sealed = 0;
  for (const { event: e, proof } of entries) {
    if (proof === null) {
      if (!options.allowUnsealed) throw new EvidenceVerificationError("unsealed", `event ${e.seq} (${e.type}) is not sealed in a checkpoint yet`);
      continue;
    }
    const c = checkpoints.get(proof.checkpoint);
    if (!c) throw new EvidenceVerificationError("bad_proof", `event ${e.seq}'s proof names checkpoint ${proof.checkpoint}, which the evidence lacks`);
    if (proof.treeSize !== c.treeSize)
      throw new EvidenceVerificationError("bad_proof", `event ${e.seq}'s proof is for a tree of ${proof.treeSize}, checkpoint ${c.seq} seals ${c.treeSize}`);
    if (e.sealedIn !== proof.checkpoint || e.leafIndex !== proof.leafIndex) {
      throw new EvidenceVerificationError(
        "bad_proof",
        `event ${e.seq} says leaf ${e.leafIndex} of checkpoint ${e.sealedIn}, its proof leaf ${proof.leafIndex} of ${proof.checkpoint}`,
      );
    }
    if (c.legacy !== (e.v === 1)) {
      throw new EvidenceVerificationError("bad_proof", `a v${e.v} event cannot be sealed in ${c.legacy ? "the legacy" : "a non-legacy"} checkpoint ${c.seq}`);
    }
    const root = await rootFromInclusionProof(proof.leafIndex, proof.treeSize, fromHex(e.hash), proof.path.map(fromHex));
    if (root !== c.rootHash) throw new EvidenceVerificationError("bad_proof", `event ${e.seq}'s proof does not lead to checkpoint ${c.seq}'s signed root`);
    sealedBy.add(c.seq);
    sealed++;
  }

  // What the verified events say.
  let status: RequestStatus | null = null;
  const approvers: EvidenceSummary["approvers"] = [];
  for (const { event: e } of entries) {
    const m = TERMINAL.exec(e.type);
    if (e.type === "request.created") status = "pending";
    else if (m) status = m[1] as RequestStatus;
    else if (e.type === "decision.recorded" && isObj(e.data) && e.data.decision === "approve" && e.actor.principal !== null) {
      approvers.push({ principal: e.actor.principal, surface: e.actor.surface });
    }
  }
  return { requestId, status, approvers, events: entries.length, sealed, checkpoints: [...sealedBy].sort((a, b) => a - b) };
}
