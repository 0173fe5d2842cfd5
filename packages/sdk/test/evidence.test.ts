import * as core from "@countersign/core";
import { CompactSign, exportJWK, generateKeyPair } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { type CheckpointRecord as CoreCheckpointRecord, type Evidence as CoreEvidence, checkpointHash } from "../../core/src/checkpoint.ts";
import { rootFromInclusionProof as coreRootFromInclusionProof, inclusionProof, merkleRoot } from "../../core/src/merkle.ts";
import { EvidenceVerificationError } from "../src/errors.ts";
import { auditEventHash, CHECKPOINT_TYPE, rootFromInclusionProof, streamGenesis, verifyEvidence } from "../src/evidence.ts";
import type { AuditActor, AuditEventRecord, CheckpointRecord, Evidence, InclusionProof, JsonWebKeySet } from "../src/types.ts";

// Evidence is built here with the gateway's own code (core's event hashes, Merkle tree
// and checkpoint hash) and signed like the gateway signs checkpoints, so these tests
// check the SDK's independent implementation against the real one.

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Shape<T> = T extends readonly (infer U)[] ? Shape<U>[] : T extends object ? { [K in keyof T]-?: Shape<T[K]> } : "leaf";
const eventShapeAgrees: Equal<Shape<AuditEventRecord>, Shape<core.AuditEventRecord>> = true;
const checkpointShapeAgrees: Equal<Shape<CheckpointRecord>, Shape<CoreCheckpointRecord>> = true;
const evidenceShapeAgrees: Equal<Shape<Evidence>, Shape<CoreEvidence>> = true;

interface Key {
  kid: string;
  privateKey: CryptoKey;
  jwks: JsonWebKeySet;
}

async function newKey(kid: string): Promise<Key> {
  const { publicKey, privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  return { kid, privateKey, jwks: { keys: [{ ...(await exportJWK(publicKey)), kid, alg: "EdDSA", use: "sig" }] } };
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const leaf = (hash: string) => Buffer.from(hash, "hex");
const atOf = (seq: number) => new Date(Date.UTC(2026, 10, 1) + seq * 1000).toISOString();

const agent: AuditActor = { type: "agent", principal: "key:agent", surface: "api", surfaceUserId: null };
const system: AuditActor = { type: "system", principal: null, surface: null, surfaceUserId: null };
const reviewer = (principal: string, surface: string): AuditActor => ({
  type: "reviewer",
  principal,
  surface,
  surfaceUserId: surface === "slack" ? "U123" : null,
});

interface Spec {
  type: string;
  actor?: AuditActor;
  data?: unknown;
}

/** A log under construction: events in storage (seq) order, each stream chained. */
class Log {
  events: AuditEventRecord[] = [];
  private heads = new Map<string, { next: number; prevHash: string }>();
  private legacyHead = core.GENESIS_HASH;

  /** A v2 event in a request's stream (or `system`, with no requestId). */
  v2(stream: string, spec: Spec): AuditEventRecord {
    const head = this.heads.get(stream) ?? { next: 0, prevHash: core.streamGenesis(stream) };
    const seq = this.events.length + 1;
    const body: core.AuditEventBody = {
      v: 2,
      stream,
      index: head.next,
      at: atOf(seq),
      type: spec.type,
      requestId: stream === core.SYSTEM_STREAM ? null : stream,
      actor: spec.actor ?? agent,
      data: spec.data ?? {},
      prevHash: head.prevHash,
    };
    const e: AuditEventRecord = { seq, ...body, hash: core.auditHash(body), sealedIn: null, leafIndex: null };
    this.heads.set(stream, { next: head.next + 1, prevHash: e.hash });
    this.events.push(e);
    return e;
  }

  /** A v1 event of the pre-migration global chain. */
  v1(requestId: string | null, spec: Spec): AuditEventRecord {
    const seq = this.events.length + 1;
    const body: core.LegacyAuditEventBody = {
      seq,
      at: atOf(seq),
      type: spec.type,
      requestId,
      actor: spec.actor ?? agent,
      data: spec.data ?? {},
      prevHash: this.legacyHead,
    };
    const e: AuditEventRecord = { ...body, v: 1, stream: core.LEGACY_STREAM, index: seq - 1, hash: core.auditHash(body), sealedIn: null, leafIndex: null };
    this.legacyHead = e.hash;
    this.events.push(e);
    return e;
  }

  /** Re-hashes one event after editing it (what an attacker with write access would do). */
  rehash(e: AuditEventRecord): void {
    e.hash = core.eventHash(e);
  }
}

interface Sealed {
  events: AuditEventRecord[];
  checkpoints: CheckpointRecord[];
  leaves: Map<number, string[]>;
}

async function signCheckpoint(body: ReturnType<typeof checkpointBodyOf>, key: Key, typ = CHECKPOINT_TYPE): Promise<string> {
  return new CompactSign(new TextEncoder().encode(core.canonicalJson(body))).setProtectedHeader({ alg: "EdDSA", kid: key.kid, typ }).sign(key.privateKey);
}

function checkpointBodyOf(c: Omit<CheckpointRecord, "hash" | "kid" | "jws">) {
  const { v, seq, prevHash, treeSize, cumulativeSize, rootHash, firstAt, lastAt, sealedAt, legacy } = c;
  return { v, seq, prevHash, treeSize, cumulativeSize, rootHash, firstAt, lastAt, sealedAt, legacy };
}

/** Seals the log's events in batches of the given sizes (what is left stays unsealed); the first batch is the legacy one if `legacyFirst`. */
async function seal(events: readonly AuditEventRecord[], batches: number[], key: Key, legacyFirst = false): Promise<Sealed> {
  const out = events.map((e) => ({ ...e, sealedIn: null, leafIndex: null }) as AuditEventRecord);
  const checkpoints: CheckpointRecord[] = [];
  const leaves = new Map<number, string[]>();
  let from = 0;
  let prevHash = "0".repeat(64);
  let cumulativeSize = 0;
  for (const [i, size] of batches.entries()) {
    const seq = i + 1;
    const batch = out.slice(from, from + size);
    from += size;
    batch.forEach((e, leafIndex) => {
      e.sealedIn = seq;
      e.leafIndex = leafIndex;
    });
    const hashes = batch.map((e) => e.hash);
    cumulativeSize += size;
    const body = checkpointBodyOf({
      v: 1,
      seq,
      prevHash,
      treeSize: size,
      cumulativeSize,
      rootHash: merkleRoot(hashes.map(leaf)).toString("hex"),
      firstAt: batch[0]?.at as string,
      lastAt: batch.at(-1)?.at as string,
      sealedAt: atOf(10_000 + seq),
      legacy: legacyFirst && i === 0,
    });
    const hash = checkpointHash(body);
    checkpoints.push({ ...body, hash, kid: key.kid, jws: await signCheckpoint(body, key) });
    leaves.set(seq, hashes);
    prevHash = hash;
  }
  return { events: out, checkpoints, leaves };
}

/** What the gateway's evidence endpoint returns for one request. */
function evidenceFor(requestId: string, log: Sealed): Evidence {
  const mine = log.events.filter((e) => e.requestId === requestId);
  const ordered = [...mine.filter((e) => e.v === 1).sort((a, b) => a.seq - b.seq), ...mine.filter((e) => e.v === 2).sort((a, b) => a.index - b.index)];
  const entries = ordered.map((event) => {
    if (event.sealedIn === null || event.leafIndex === null) return { event, proof: null };
    const hashes = log.leaves.get(event.sealedIn) as string[];
    return {
      event,
      proof: {
        checkpoint: event.sealedIn,
        leafIndex: event.leafIndex,
        treeSize: hashes.length,
        path: inclusionProof(hashes.map(leaf), event.leafIndex).map(hex),
      },
    };
  });
  const used = new Set(ordered.map((e) => e.sealedIn));
  return { object: "evidence", requestId, entries, checkpoints: log.checkpoints.filter((c) => used.has(c.seq)) };
}

function entryAt(evidence: Evidence, i: number): Evidence["entries"][number] {
  const entry = evidence.entries[i];
  if (!entry) throw new Error(`no entry ${i}`);
  return entry;
}
const eventAt = (evidence: Evidence, i: number): AuditEventRecord => entryAt(evidence, i).event;
function proofAt(evidence: Evidence, i: number): InclusionProof {
  const proof = entryAt(evidence, i).proof;
  if (!proof) throw new Error(`entry ${i} has no proof`);
  return proof;
}

const REQ = "req_main";

/** Five events of REQ interleaved with another request's and the system stream's. */
function mainLog(): Log {
  const log = new Log();
  log.v2("req_other", { type: "request.created", data: { action: "x.y" } });
  log.v2(REQ, { type: "request.created", data: { action: "db.export", paramsSha256: "ab".repeat(32) } });
  log.v2(core.SYSTEM_STREAM, { type: "key.created", actor: system, data: { keyId: "k1" } });
  log.v2(REQ, { type: "decision.recorded", actor: reviewer("carol@example.com", "api"), data: { decision: "deny", reason: "hm" } });
  log.v2("req_other", { type: "request.expired", actor: system });
  log.v2(REQ, { type: "decision.recorded", actor: reviewer("alice@example.com", "slack"), data: { decision: "approve" } });
  log.v2(core.SYSTEM_STREAM, { type: "policy.reloaded", actor: system, data: { rules: 3 } });
  log.v2(REQ, { type: "decision.recorded", actor: reviewer("bob@example.com", "api"), data: { decision: "approve", reason: "ok ✓" } });
  log.v2("req_other", { type: "receipt.redeemed" });
  log.v2(REQ, { type: "request.approved", actor: system, data: { resolution: "quorum" } });
  log.v2(core.SYSTEM_STREAM, { type: "key.revoked", actor: system, data: { keyId: "k1" } });
  return log;
}

let key: Key;
let other: Key;
let base: Evidence;
const fresh = (): Evidence => structuredClone(base);

async function rejects(evidence: unknown, problem: string, options: Partial<Parameters<typeof verifyEvidence>[1]> = {}): Promise<EvidenceVerificationError> {
  const err = await verifyEvidence(evidence, { jwks: key.jwks, ...options }).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(EvidenceVerificationError);
  expect((err as EvidenceVerificationError).problem).toBe(problem);
  return err as EvidenceVerificationError;
}

beforeAll(async () => {
  key = await newKey("ck-2026");
  other = await newKey("ck-2026"); // an attacker's key, claiming the same kid
  base = evidenceFor(REQ, await seal(mainLog().events, [6, 5], key));
});

describe("verifyEvidence", () => {
  it("the SDK's types match the gateway's records", () => {
    expect([eventShapeAgrees, checkpointShapeAgrees, evidenceShapeAgrees]).toEqual([true, true, true]);
  });

  it("hashes events and genesis exactly as the gateway does", async () => {
    for (const e of mainLog().events) expect(await auditEventHash(e)).toBe(core.eventHash(e));
    for (const s of [REQ, "system", "ü/ß\n"]) expect(await streamGenesis(s)).toBe(core.streamGenesis(s));
  });

  it("accepts genuine evidence and says what it proves", async () => {
    expect(base.entries).toHaveLength(5);
    expect(base.checkpoints.map((c) => c.treeSize)).toEqual([6, 5]);
    const summary = await verifyEvidence(JSON.parse(JSON.stringify(base)), { jwks: key.jwks, requestId: REQ });
    expect(summary).toEqual({
      requestId: REQ,
      status: "approved",
      approvers: [
        { principal: "alice@example.com", surface: "slack" },
        { principal: "bob@example.com", surface: "api" },
      ],
      events: 5,
      sealed: 5,
      checkpoints: [1, 2],
    });
  });

  it("derives pending while no terminal event is in the chain", async () => {
    const log = new Log();
    log.v2(REQ, { type: "request.created" });
    const summary = await verifyEvidence(evidenceFor(REQ, await seal(log.events, [1], key)), { jwks: key.jwks });
    expect(summary).toMatchObject({ status: "pending", approvers: [], events: 1, sealed: 1, checkpoints: [1] });
  });

  it("proves every leaf of trees of 1 to 17 events, and no leaf at another index", async () => {
    for (let n = 1; n <= 17; n++) {
      for (let i = 0; i < n; i++) {
        const log = new Log();
        for (let j = 0; j < n; j++) {
          if (j === i) log.v2("req_p", { type: "request.created", data: { n, i } });
          else log.v2(core.SYSTEM_STREAM, { type: "filler", actor: system, data: { n, j } });
        }
        const sealed = await seal(log.events, [n], key);
        const evidence = evidenceFor("req_p", sealed);
        const proof = evidence.entries[0]?.proof;
        if (!proof) throw new Error("no proof");
        expect([proof.leafIndex, proof.treeSize]).toEqual([i, n]);

        const hashes = (sealed.leaves.get(1) as string[]).map(leaf);
        const path = proof.path.map(leaf);
        const mine = leaf(eventAt(evidence, 0).hash);
        const expected = coreRootFromInclusionProof(i, n, mine, path)?.toString("hex");
        expect(expected).toBe(merkleRoot(hashes).toString("hex"));
        expect(await rootFromInclusionProof(i, n, mine, path)).toBe(expected);
        if (path.length > 0) {
          expect(coreRootFromInclusionProof(i, n, mine, path.slice(1))).toBeNull();
          expect(await rootFromInclusionProof(i, n, mine, path.slice(1))).toBeNull();
        }
        expect(await rootFromInclusionProof(i, n, mine, [...path, leaf("22".repeat(32))])).toBeNull();
        await expect(verifyEvidence(evidence, { jwks: key.jwks })).resolves.toMatchObject({ events: 1, sealed: 1 });

        if (n > 1) {
          const moved = structuredClone(evidence);
          const to = (i + 1) % n;
          eventAt(moved, 0).leafIndex = to;
          proofAt(moved, 0).leafIndex = to;
          await rejects(moved, "bad_proof");
        }
      }
    }
  });

  describe("rejects", () => {
    it("a malformed document", async () => {
      await rejects(null, "malformed");
      await rejects({ ...fresh(), object: "approval_request" }, "malformed");
      await rejects({ ...fresh(), entries: undefined }, "malformed");
      const noHash = fresh();
      eventAt(noHash, 1).hash = "XYZ";
      await rejects(noHash, "malformed");
      const badPath = fresh();
      (proofAt(badPath, 1).path as unknown[]).push(42);
      await rejects(badPath, "malformed");
      const twice = fresh();
      twice.checkpoints.push(twice.checkpoints[0] as CheckpointRecord);
      await rejects(twice, "malformed");
      await expect(verifyEvidence(fresh(), {})).rejects.toThrow(TypeError);
    });

    it("evidence for another request", async () => {
      await rejects(fresh(), "wrong_request", { requestId: "req_other" });
      await rejects({ ...fresh(), requestId: "req_other" }, "wrong_request");
      const log = await seal(mainLog().events, [6, 5], key);
      const mixed = fresh();
      mixed.entries.push(evidenceFor("req_other", log).entries[0] as Evidence["entries"][number]);
      await rejects(mixed, "wrong_request");
    });

    it("an event whose data was edited", async () => {
      const e = fresh();
      eventAt(e, 2).data = { decision: "approve", reason: "edited" };
      await rejects(e, "event_edited");
      const actor = fresh();
      eventAt(actor, 2).actor.principal = "mallory@example.com";
      await rejects(actor, "event_edited");
    });

    it("a chain with an event removed", async () => {
      const middle = fresh();
      middle.entries.splice(2, 1);
      const err = await rejects(middle, "chain_broken");
      expect(err.message).toMatch(/index 2 of the chain is missing/);
      const first = fresh();
      first.entries.shift();
      await rejects(first, "chain_broken");
      await rejects({ ...fresh(), entries: [], checkpoints: [] }, "chain_broken");
    });

    it("a chain whose entries were reordered or repeated", async () => {
      const swapped = fresh();
      const [a, b] = [swapped.entries[1], swapped.entries[2]] as Evidence["entries"];
      swapped.entries.splice(1, 2, b as Evidence["entries"][number], a as Evidence["entries"][number]);
      await rejects(swapped, "chain_broken");
      const repeated = fresh();
      repeated.entries.splice(2, 0, structuredClone(repeated.entries[1]) as Evidence["entries"][number]);
      await rejects(repeated, "chain_broken");
    });

    it("a chain with an event replaced by another at the same index", async () => {
      // A fork: the same request, but a different decision at index 2, validly hashed.
      const forkLog = new Log();
      forkLog.v2(REQ, { type: "request.created", data: { action: "db.export", paramsSha256: "ab".repeat(32) } });
      forkLog.v2(REQ, { type: "decision.recorded", actor: reviewer("carol@example.com", "api"), data: { decision: "approve" } });
      forkLog.v2(REQ, { type: "decision.recorded", actor: reviewer("mallory@example.com", "api"), data: { decision: "approve" } });
      const fork = evidenceFor(REQ, await seal(forkLog.events, [3], key));
      const replaced = fresh();
      replaced.entries[2] = fork.entries[2] as Evidence["entries"][number];
      const err = await rejects(replaced, "chain_broken");
      expect(err.message).toMatch(/index 2 does not link to index 1/);
    });

    it("a chain that does not start at the request's genesis", async () => {
      const e = fresh();
      const first = eventAt(e, 0);
      first.prevHash = core.streamGenesis("req_other");
      first.hash = core.eventHash(first);
      const err = await rejects(e, "chain_broken");
      expect(err.message).toMatch(/genesis/);
    });

    it("events of the request filed in another stream", async () => {
      const e = fresh();
      const first = eventAt(e, 0);
      first.stream = "req_elsewhere";
      first.hash = core.eventHash(first);
      const err = await rejects(e, "chain_broken");
      expect(err.message).toMatch(/sits in stream req_elsewhere/);
    });

    it("a chain rewritten end to end by someone without the signing key", async () => {
      // Edit the approval itself, re-hash it and re-seal checkpoint 2 with another key.
      const log = mainLog();
      const approved = log.events.find((e) => e.requestId === REQ && e.type === "request.approved") as AuditEventRecord;
      approved.data = { resolution: "policy" };
      log.rehash(approved);
      const forged = await seal(log.events, [6, 5], other);
      // Everything holds together: with the attacker's key it would verify.
      await expect(verifyEvidence(evidenceFor(REQ, forged), { jwks: other.jwks })).resolves.toMatchObject({ events: 5, sealed: 5 });
      // Presented with the genuine checkpoint 1, only checkpoint 2's signature gives it away.
      forged.checkpoints[0] = base.checkpoints[0] as CheckpointRecord;
      const evidence = evidenceFor(REQ, forged);
      expect(evidence.checkpoints[1]?.rootHash).not.toBe(base.checkpoints[1]?.rootHash);
      const err = await rejects(evidence, "bad_signature");
      expect(err.message).toMatch(/checkpoint 2/);
    });

    it("a checkpoint whose content differs from what was signed", async () => {
      const root = fresh();
      const c = root.checkpoints[1] as CheckpointRecord;
      c.rootHash = "00".repeat(32);
      c.hash = checkpointHash(c);
      const err = await rejects(root, "bad_signature");
      expect(err.message).toMatch(/covers different content/);

      const unhashed = fresh();
      (unhashed.checkpoints[0] as CheckpointRecord).treeSize = 7;
      await rejects(unhashed, "bad_signature");

      const hash = fresh();
      (hash.checkpoints[0] as CheckpointRecord).hash = "ee".repeat(32);
      const hashErr = await rejects(hash, "bad_signature");
      expect(hashErr.message).toMatch(/does not match its hash/);

      const payload = fresh();
      const cp = payload.checkpoints[0] as CheckpointRecord;
      const [h, p, s] = cp.jws.split(".") as [string, string, string];
      const edited = Buffer.from(p, "base64url").toString("utf8").replace('"treeSize":6', '"treeSize":7');
      cp.jws = [h, Buffer.from(edited).toString("base64url"), s].join(".");
      await rejects(payload, "bad_signature");
    });

    it("a checkpoint signed with the wrong type or key id", async () => {
      const typ = fresh();
      const c = typ.checkpoints[0] as CheckpointRecord;
      c.jws = await signCheckpoint(checkpointBodyOf(c), key, "JWT");
      await rejects(typ, "bad_signature");
      const kid = fresh();
      (kid.checkpoints[0] as CheckpointRecord).kid = "ck-other";
      await rejects(kid, "bad_signature");
      const unknown = await newKey("ck-unknown");
      const signedByUnknown = fresh();
      const u = signedByUnknown.checkpoints[0] as CheckpointRecord;
      u.kid = unknown.kid;
      u.jws = await signCheckpoint(checkpointBodyOf(u), unknown);
      await rejects(signedByUnknown, "bad_signature");
    });

    it("a wrong proof path", async () => {
      const flipped = fresh();
      const path = proofAt(flipped, 1).path;
      path[0] = `${(path[0] as string).slice(0, 63)}${(path[0] as string).endsWith("0") ? "1" : "0"}`;
      await rejects(flipped, "bad_proof");
      const short = fresh();
      proofAt(short, 1).path.pop();
      await rejects(short, "bad_proof");
      const long = fresh();
      proofAt(long, 1).path.push("11".repeat(32));
      await rejects(long, "bad_proof");
      const swapped = fresh();
      const p0 = proofAt(swapped, 0);
      const p1 = proofAt(swapped, 1);
      [p0.path, p1.path] = [p1.path, p0.path];
      await rejects(swapped, "bad_proof");
    });

    it("a wrong leaf index, tree size or checkpoint", async () => {
      const both = fresh();
      const entry = both.entries[1] as Evidence["entries"][number];
      (entry.event as AuditEventRecord).leafIndex = 2;
      (entry.proof as { leafIndex: number }).leafIndex = 2;
      await rejects(both, "bad_proof");
      const eventOnly = fresh();
      eventAt(eventOnly, 1).leafIndex = 2;
      await rejects(eventOnly, "bad_proof");
      const sealedIn = fresh();
      eventAt(sealedIn, 1).sealedIn = 2;
      await rejects(sealedIn, "bad_proof");
      const size = fresh();
      proofAt(size, 1).treeSize = 8;
      await rejects(size, "bad_proof");
      const missing = fresh();
      missing.checkpoints.shift();
      await rejects(missing, "bad_proof");
    });

    it("unsealed events unless allowed", async () => {
      const log = await seal(mainLog().events, [6], key);
      const evidence = evidenceFor(REQ, log);
      expect(evidence.entries.map((e) => e.proof === null)).toEqual([false, false, false, true, true]);
      await rejects(evidence, "unsealed");
      await expect(verifyEvidence(evidence, { jwks: key.jwks, allowUnsealed: true })).resolves.toMatchObject({
        status: "approved",
        events: 5,
        sealed: 3,
        checkpoints: [1],
      });
      // Allowing unsealed events does not excuse an edited one.
      eventAt(evidence, 4).data = { resolution: "policy" };
      await rejects(evidence, "event_edited", { allowUnsealed: true });
    });
  });

  describe("legacy events", () => {
    async function legacyEvidence() {
      const log = new Log();
      log.v1("req_a", { type: "request.created" });
      log.v1("req_old", { type: "request.created", data: { action: "db.drop" } });
      log.v1(null, { type: "key.created", actor: system });
      log.v1("req_old", { type: "decision.recorded", actor: reviewer("alice@example.com", "teams"), data: { decision: "approve" } });
      log.v1("req_a", { type: "request.denied", actor: system });
      log.v1(null, { type: "policy.reloaded", actor: system });
      // After the migration the request continues in its own stream.
      log.v2("req_old", { type: "request.approved", actor: system });
      log.v2(core.SYSTEM_STREAM, { type: "key.revoked", actor: system });
      return evidenceFor("req_old", await seal(log.events, [6, 2], key, true));
    }

    it("sealed in the legacy checkpoint verify, and the chain continues from the stream's genesis", async () => {
      const evidence = await legacyEvidence();
      expect(evidence.entries.map((e) => [e.event.v, e.event.seq])).toEqual([
        [1, 2],
        [1, 4],
        [2, 7],
      ]);
      expect(evidence.checkpoints.map((c) => c.legacy)).toEqual([true, false]);
      await expect(verifyEvidence(evidence, { jwks: key.jwks, requestId: "req_old" })).resolves.toEqual({
        requestId: "req_old",
        status: "approved",
        approvers: [{ principal: "alice@example.com", surface: "teams" }],
        events: 3,
        sealed: 3,
        checkpoints: [1, 2],
      });
    });

    it("are still checked for edits, order and their proofs", async () => {
      const edited = await legacyEvidence();
      eventAt(edited, 1).data = { decision: "deny" };
      await rejects(edited, "event_edited");
      const reordered = await legacyEvidence();
      reordered.entries.splice(0, 2, reordered.entries[1] as Evidence["entries"][number], reordered.entries[0] as Evidence["entries"][number]);
      expect((await rejects(reordered, "chain_broken")).message).toMatch(/legacy event 2 is out of order/);
      const moved = await legacyEvidence();
      eventAt(moved, 0).index = 5;
      expect((await rejects(moved, "chain_broken")).message).toMatch(/claims stream legacy index 5/);
      const late = await legacyEvidence();
      late.entries.push(late.entries.shift() as Evidence["entries"][number]);
      expect((await rejects(late, "chain_broken")).message).toMatch(/after the request's own chain began/);
      const badProof = await legacyEvidence();
      proofAt(badProof, 0).path.reverse();
      await rejects(badProof, "bad_proof");
      const unflagged = await legacyEvidence();
      const c = unflagged.checkpoints[0] as CheckpointRecord;
      c.legacy = false;
      c.hash = checkpointHash(c);
      c.jws = await signCheckpoint(checkpointBodyOf(c), key);
      await rejects(unflagged, "bad_proof");
    });
  });
});
