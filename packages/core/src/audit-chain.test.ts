import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { auditHash, GENESIS_HASH, type LegacyAuditEventBody, LegacyChainVerifier } from "./audit-chain.ts";

// The legacy (v1) global chain: still verified once, when a migrated database seals it
// as its first checkpoint. The per-stream v2 chain is tested in checkpoint.test.ts.
type AuditEventBody = LegacyAuditEventBody;
type AuditEventRecord = LegacyAuditEventBody & { hash: string };
const ChainVerifier = LegacyChainVerifier;

function verifyChain(events: Iterable<AuditEventRecord>) {
  const v = new LegacyChainVerifier();
  for (const e of events) if (!v.push(e)) break;
  return v.verdict();
}

type Draft = Omit<AuditEventBody, "seq" | "prevHash">;

const drafts: Draft[] = [
  {
    at: "2030-01-01T00:00:00.000Z",
    type: "request.created",
    requestId: "req_01",
    actor: { type: "agent", principal: "owner@example.com", surface: "api", surfaceUserId: null },
    data: { action: "iam.role.attach", environment: "production" },
  },
  {
    at: "2030-01-01T00:00:01.000Z",
    type: "request.notified",
    requestId: "req_01",
    actor: { type: "system", principal: null, surface: null, surfaceUserId: null },
    data: { channels: ["ops", "sec"] },
  },
  {
    at: "2030-01-01T00:01:00.000Z",
    type: "vote.cast",
    requestId: "req_01",
    actor: { type: "reviewer", principal: "carol@example.com", surface: "slack", surfaceUserId: "U123" },
    data: { decision: "approve" },
  },
  {
    at: "2030-01-01T00:02:00.000Z",
    type: "vote.cast",
    requestId: "req_01",
    actor: { type: "reviewer", principal: "dan@example.com", surface: "teams", surfaceUserId: "29:abc" },
    data: { decision: "approve" },
  },
  {
    at: "2030-01-01T00:02:00.001Z",
    type: "request.approved",
    requestId: "req_01",
    actor: { type: "system", principal: null, surface: null, surfaceUserId: null },
    data: { approvals: 2 },
  },
];

/** Builds a correctly linked chain starting at `startSeq` after `prev`. */
function buildChain(ds: Draft[] = drafts, prev = GENESIS_HASH, startSeq = 1): AuditEventRecord[] {
  const out: AuditEventRecord[] = [];
  for (const [i, d] of ds.entries()) {
    const body: AuditEventBody = { ...d, seq: startSeq + i, prevHash: prev };
    const hash = auditHash(body);
    out.push({ ...body, hash });
    prev = hash;
  }
  return out;
}

/** Re-seals one event after tampering with its body (recomputes its own hash only). */
function reseal(e: AuditEventRecord): AuditEventRecord {
  const { hash: _old, ...body } = e;
  return { ...body, hash: auditHash(body) };
}

const at = <T>(xs: T[], i: number): T => {
  const x = xs[i];
  if (x === undefined) throw new Error(`no element ${i}`);
  return x;
};

describe("auditHash", () => {
  it("is sha256(prevHash ‖ canonical JSON of the body), checked against a hand-written canonical form", () => {
    const body: AuditEventBody = {
      seq: 1,
      at: "2024-01-01T00:00:00.000Z",
      type: "request.created",
      requestId: "req_X",
      actor: { type: "agent", principal: "a@example.com", surface: "api", surfaceUserId: null },
      data: { b: 2, a: 1 },
      prevHash: GENESIS_HASH,
    };
    const canonical =
      '{"actor":{"principal":"a@example.com","surface":"api","surfaceUserId":null,"type":"agent"},' +
      '"at":"2024-01-01T00:00:00.000Z","data":{"a":1,"b":2},' +
      `"prevHash":"${"0".repeat(64)}","requestId":"req_X","seq":1,"type":"request.created"}`;
    const expected = createHash("sha256")
      .update("0".repeat(64) + canonical, "utf8")
      .digest("hex");
    expect(auditHash(body)).toBe(expected);
  });

  it("GENESIS_HASH is 64 zeros", () => {
    expect(GENESIS_HASH).toBe("0".repeat(64));
  });

  it("changes when any field changes, including prevHash and nested data", () => {
    const [first] = buildChain();
    const { hash, ...body } = first!;
    expect(auditHash(body)).toBe(hash);
    const variants: AuditEventBody[] = [
      { ...body, seq: 2 },
      { ...body, at: "2030-01-01T00:00:00.001Z" },
      { ...body, type: "request.cancelled" },
      { ...body, requestId: null },
      { ...body, actor: { ...body.actor, principal: "mallory@example.com" } },
      { ...body, actor: { ...body.actor, surfaceUserId: "U999" } },
      { ...body, data: { action: "iam.role.attach", environment: "staging" } },
      { ...body, prevHash: "f".repeat(64) },
    ];
    const hashes = new Set(variants.map(auditHash));
    expect(hashes.size).toBe(variants.length);
    expect(hashes.has(hash)).toBe(false);
  });

  it("does not depend on the key order of data", () => {
    const { hash: _h, ...body } = at(buildChain(), 0);
    expect(auditHash({ ...body, data: { environment: "production", action: "iam.role.attach" } })).toBe(auditHash(body));
  });
});

describe("verifyChain: an intact chain", () => {
  it("links each event to the previous hash, starting from GENESIS_HASH", () => {
    const chain = buildChain();
    expect(at(chain, 0).prevHash).toBe(GENESIS_HASH);
    for (let i = 1; i < chain.length; i++) expect(at(chain, i).prevHash).toBe(at(chain, i - 1).hash);
  });

  it("verifies ok with count and lastSeq", () => {
    expect(verifyChain(buildChain())).toEqual({ ok: true, count: 5, lastSeq: 5 });
  });

  it("an empty chain is ok with lastSeq null", () => {
    expect(verifyChain([])).toEqual({ ok: true, count: 0, lastSeq: null });
  });

  it("accepts any iterable (e.g. a generator)", () => {
    const chain = buildChain();
    function* gen() {
      yield* chain;
    }
    expect(verifyChain(gen()).ok).toBe(true);
  });
});

describe("verifyChain: tampering", () => {
  it("editing an event's data is reported as edited at that seq", () => {
    const chain = buildChain();
    chain[2] = { ...at(chain, 2), data: { decision: "deny" } };
    const v = verifyChain(chain);
    expect(v.ok).toBe(false);
    expect(v.firstBad).toMatchObject({ seq: 3, problem: "edited" });
    expect(v.lastSeq).toBe(2);
  });

  it("editing the actor of the first event is caught at seq 1", () => {
    const chain = buildChain();
    chain[0] = { ...at(chain, 0), actor: { ...at(chain, 0).actor, principal: "mallory@example.com" } };
    expect(verifyChain(chain).firstBad).toMatchObject({ seq: 1, problem: "edited" });
    expect(verifyChain(chain).lastSeq).toBeNull();
  });

  it("editing an event and re-sealing its own hash breaks the link to its successor", () => {
    const chain = buildChain();
    chain[2] = reseal({ ...at(chain, 2), data: { decision: "deny" } });
    const v = verifyChain(chain);
    expect(v.firstBad).toMatchObject({ seq: 4, problem: "bad_link" });
    expect(v.lastSeq).toBe(3);
  });

  it("replacing an event's hash with garbage is caught as edited", () => {
    const chain = buildChain();
    chain[1] = { ...at(chain, 1), hash: "f".repeat(64) };
    expect(verifyChain(chain).firstBad).toMatchObject({ seq: 2, problem: "edited" });
  });

  it("deleting a middle event is caught at the event after the gap", () => {
    const chain = buildChain();
    chain.splice(2, 1); // drop seq 3
    const v = verifyChain(chain);
    expect(v.firstBad).toMatchObject({ seq: 4, problem: "deleted_or_reordered" });
    expect(v.firstBad?.detail).toContain("3");
    expect(v.lastSeq).toBe(2);
  });

  it("deleting the first event is caught at the new first event", () => {
    const v = verifyChain(buildChain().slice(1));
    expect(v.firstBad).toMatchObject({ seq: 2, problem: "deleted_or_reordered" });
  });

  it("swapping two events is caught at the first one out of place", () => {
    const chain = buildChain();
    [chain[1], chain[2]] = [at(chain, 2), at(chain, 1)]; // order 1,3,2,4,5
    const v = verifyChain(chain);
    expect(v.firstBad).toMatchObject({ seq: 3, problem: "deleted_or_reordered" });
    expect(v.lastSeq).toBe(1);
  });

  it("inserting a forged event with a correctly recomputed hash is caught at the genuine event it displaced", () => {
    const chain = buildChain();
    const forgedBody: AuditEventBody = {
      seq: 3,
      at: "2030-01-01T00:00:30.000Z",
      type: "vote.cast",
      requestId: "req_01",
      actor: { type: "reviewer", principal: "mallory@example.com", surface: "api", surfaceUserId: null },
      data: { decision: "approve" },
      prevHash: at(chain, 1).hash,
    };
    const forged: AuditEventRecord = { ...forgedBody, hash: auditHash(forgedBody) };
    chain.splice(2, 0, forged); // 1,2,F(3),3,4,5
    const v = verifyChain(chain);
    expect(v.ok).toBe(false);
    // The forgery itself links, so it is accepted; the genuine seq 3 then no longer links and repeats a seq.
    expect(v.firstBad).toMatchObject({ seq: 3, problem: "inserted" });
    expect(v.lastSeq).toBe(3);
    expect(v.count).toBe(4);
  });

  it("inserting a linked forged event with a fresh seq in the middle is caught at the forgery", () => {
    const chain = buildChain();
    const forgedBody: AuditEventBody = { ...drafts[2]!, seq: 99, prevHash: at(chain, 1).hash };
    chain.splice(2, 0, { ...forgedBody, hash: auditHash(forgedBody) });
    expect(verifyChain(chain).firstBad).toMatchObject({ seq: 99, problem: "inserted" });
  });

  it("replaying (duplicating) an event is caught as inserted", () => {
    const chain = buildChain();
    chain.splice(3, 0, at(chain, 2)); // 1,2,3,3,4,5
    expect(verifyChain(chain).firstBad).toMatchObject({ seq: 3, problem: "inserted" });
  });

  it("renumbering an event without re-hashing is caught as edited", () => {
    const chain = buildChain();
    chain[3] = { ...at(chain, 3), seq: 40 };
    expect(verifyChain(chain).firstBad).toMatchObject({ seq: 40, problem: "edited" });
  });

  it("truncating the tail is NOT detectable by the chain alone (needs an external anchor such as the last hash)", () => {
    const full = buildChain();
    const truncated = full.slice(0, 3);
    expect(verifyChain(truncated)).toEqual({ ok: true, count: 3, lastSeq: 3 });
    // What does reveal it: comparing against a separately kept head.
    expect(at(truncated, truncated.length - 1).hash).not.toBe(at(full, full.length - 1).hash);
  });

  it("a fully re-hashed rewrite of history is NOT detectable by the chain alone", () => {
    const rewritten = buildChain(drafts.map((d) => ({ ...d, data: { rewritten: true } })));
    expect(verifyChain(rewritten).ok).toBe(true);
    expect(at(rewritten, 4).hash).not.toBe(at(buildChain(), 4).hash);
  });
});

describe("ChainVerifier", () => {
  it("stops at the first bad event: later pushes return false and do not change the verdict", () => {
    const chain = buildChain();
    chain[1] = { ...at(chain, 1), type: "tampered" };
    const v = new ChainVerifier();
    expect(chain.map((e) => v.push(e))).toEqual([true, false, false, false, false]);
    expect(v.verdict()).toMatchObject({ ok: false, count: 2, lastSeq: 1, firstBad: { seq: 2, problem: "edited" } });
  });

  it("verifyChain stops reading the iterable after the first bad event", () => {
    const chain = buildChain();
    chain[0] = { ...at(chain, 0), data: null };
    let pulled = 0;
    function* gen() {
      for (const e of chain) {
        pulled++;
        yield e;
      }
    }
    expect(verifyChain(gen()).firstBad?.seq).toBe(1);
    expect(pulled).toBe(1);
  });
});
