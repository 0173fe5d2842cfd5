import { describe, expect, it } from "vitest";
import type { AuditEventRecord } from "./audit-chain.ts";
import { canonicalJson } from "./canonical.ts";
import { checkpointBody, checkpointHash, LogVerifier, type LogVerifierOptions } from "./checkpoint.ts";
import { rehash, TestLog, testSigner } from "./testing.ts";

const reviewer = (principal: string) => ({ type: "reviewer", principal, surface: "slack", surfaceUserId: "U1" });

/** Two requests and a key event, sealed in two checkpoints, with one unsealed event after. */
function sampleLog(): TestLog {
  const log = new TestLog();
  log.append({ requestId: null, type: "key.created", data: { keyId: "key_1" } });
  log.append({ requestId: "req_a", type: "request.created", data: { action: "db.export", paramsSha256: "a".repeat(64) } });
  log.append({ requestId: "req_b", type: "request.created", data: { action: "iam.attach", paramsSha256: "b".repeat(64) } });
  log.append({ requestId: "req_a", type: "decision.recorded", actor: reviewer("carol@example.com"), data: { decision: "approve" } });
  log.seal();
  log.append({ requestId: "req_a", type: "request.approved", data: { resolution: "approved" } });
  log.append({ requestId: "req_b", type: "decision.recorded", actor: reviewer("dan@example.com"), data: { decision: "deny" } });
  log.append({ requestId: "req_b", type: "request.denied", data: {} });
  log.seal();
  log.append({ requestId: "req_a", type: "receipt.redeemed", data: {} });
  return log;
}

async function verify(log: TestLog, opts: Partial<LogVerifierOptions> = {}, items = log.items()) {
  const v = new LogVerifier({ verifySignature: log.signer.verify, maxUnsealedAgeMs: 60_000, deriveRequests: true, ...opts });
  for (const item of items) {
    const ok = item.kind === "checkpoint" ? await v.checkpoint(item.checkpoint, item.events) : v.unsealed(item.event);
    if (!ok) break;
  }
  v.finish();
  return { verdict: v.verdict(), requests: v.requests() };
}

const eventAt = (log: TestLog, requestId: string | null, index: number) =>
  log.events.find((e) => e.stream === (requestId ?? "system") && e.index === index) as AuditEventRecord;

describe("LogVerifier: an intact log", () => {
  it("verifies every stream, both checkpoints and the unsealed tail", async () => {
    const { verdict } = await verify(sampleLog());
    expect(verdict).toMatchObject({ ok: true, events: 8, checkpoints: 2, unsealed: 1, lastCheckpoint: { seq: 2, cumulativeSize: 7 } });
  });

  it("derives each request's status and decisions from its events", async () => {
    const { requests } = await verify(sampleLog());
    expect(requests.get("req_a")).toEqual({
      status: "approved",
      action: "db.export",
      paramsSha256: "a".repeat(64),
      decisions: [{ principal: "carol@example.com", decision: "approve", surface: "slack" }],
    });
    expect(requests.get("req_b")?.status).toBe("denied");
  });

  it("each request's chain starts from a genesis derived from its id, so chains cannot be swapped", () => {
    const log = sampleLog();
    expect(eventAt(log, "req_a", 0).prevHash).not.toBe(eventAt(log, "req_b", 0).prevHash);
  });
});

describe("LogVerifier: tampering", () => {
  it("edited: an event's data changed without re-hashing", async () => {
    const log = sampleLog();
    const e = eventAt(log, "req_a", 1);
    e.data = { decision: "deny" };
    expect((await verify(log)).verdict.firstBad).toMatchObject({ problem: "edited", event: e.seq });
  });

  it("edited: an event re-hashed after the change breaks its successor's link", async () => {
    const log = sampleLog();
    const e = eventAt(log, "req_a", 0);
    Object.assign(e, rehash({ ...e, data: { action: "db.drop", paramsSha256: "a".repeat(64) } }));
    const next = eventAt(log, "req_a", 1);
    expect((await verify(log)).verdict.firstBad).toMatchObject({ problem: "edited", event: next.seq });
  });

  it("edited: re-hashing the last event of a stream still breaks the checkpoint's signed root", async () => {
    const log = sampleLog();
    const e = eventAt(log, "req_b", 2);
    Object.assign(e, rehash({ ...e, type: "request.approved" }));
    expect((await verify(log)).verdict.firstBad).toMatchObject({ problem: "edited", checkpoint: 2 });
  });

  it("deleted: an event missing from the middle of a stream", async () => {
    const log = sampleLog();
    const gone = eventAt(log, "req_a", 1);
    log.events.splice(log.events.indexOf(gone), 1);
    expect((await verify(log)).verdict.firstBad).toMatchObject({ problem: "deleted" });
  });

  it("deleted: the last leaf of a checkpoint", async () => {
    const log = sampleLog();
    const last = log.events.filter((e) => e.sealedIn === 2).at(-1) as AuditEventRecord;
    log.events.splice(log.events.indexOf(last), 1);
    expect((await verify(log)).verdict.firstBad).toMatchObject({ problem: "deleted", checkpoint: 2 });
  });

  it("inserted: a forged, correctly hashed event claiming a place in a checkpoint", async () => {
    const log = sampleLog();
    const forged = log.append({ requestId: "req_b", type: "decision.recorded", actor: reviewer("mallory@example.com"), data: { decision: "approve" } });
    log.events.splice(log.events.indexOf(forged), 1);
    log.events.push({ ...forged, sealedIn: 2, leafIndex: 3, seq: 7 + 100 });
    const r = (await verify(log)).verdict.firstBad;
    expect(r?.problem).toBe("inserted");
  });

  it("reordered: two leaves of a checkpoint swapped", async () => {
    const log = sampleLog();
    const [a, b] = log.events.filter((e) => e.sealedIn === 1);
    [a!.leafIndex, b!.leafIndex] = [b!.leafIndex, a!.leafIndex];
    expect((await verify(log)).verdict.firstBad).toMatchObject({ problem: "reordered" });
  });

  it("reordered: a stream's later event sealed before an earlier one", async () => {
    const log = sampleLog();
    const items = log.items();
    const [first] = items;
    if (first?.kind !== "checkpoint") throw new Error("expected a checkpoint");
    // Swap the positions (seq and leaf) of two req_a events, keeping each checkpoint self-consistent.
    const e1 = first.events.find((e) => e.stream === "req_a" && e.index === 0) as AuditEventRecord;
    const e2 = first.events.find((e) => e.stream === "req_a" && e.index === 1) as AuditEventRecord;
    [e1.seq, e2.seq] = [e2.seq, e1.seq];
    [e1.leafIndex, e2.leafIndex] = [e2.leafIndex, e1.leafIndex];
    first.events.sort((x, y) => (x.leafIndex as number) - (y.leafIndex as number));
    const bad = (await verify(log, {}, items)).verdict.firstBad;
    expect(bad?.problem).toBe("reordered");
  });

  it("bad signature: a checkpoint re-signed by a key the verifier does not trust", async () => {
    const log = sampleLog();
    const c = log.checkpoints[1]!;
    c.jws = testSigner("mallory").sign(canonicalJson(checkpointBody(c)));
    expect((await verify(log)).verdict.firstBad).toMatchObject({ problem: "bad_signature", checkpoint: 2 });
  });

  it("bad signature: a checkpoint whose fields were changed and re-hashed, under the old signature", async () => {
    const log = sampleLog();
    const c = log.checkpoints[0]!;
    c.treeSize = 3;
    c.hash = checkpointHash(c);
    expect((await verify(log)).verdict.firstBad).toMatchObject({ problem: "bad_signature", checkpoint: 1 });
  });

  it("edited: a checkpoint's stored hash does not match its fields", async () => {
    const log = sampleLog();
    log.checkpoints[0]!.sealedAt = "2031-01-01T00:00:00.000Z";
    expect((await verify(log)).verdict.firstBad).toMatchObject({ problem: "edited", checkpoint: 1 });
  });

  it("deleted: a checkpoint removed from the middle of the checkpoint chain", async () => {
    const log = sampleLog();
    log.append({ requestId: "req_b", type: "receipt.redeem_refused", data: {} });
    log.seal();
    log.checkpoints.splice(1, 1);
    expect((await verify(log)).verdict.firstBad).toMatchObject({ problem: "deleted", checkpoint: 3 });
  });

  it("deleted: the newest checkpoint removed leaves events that claim it", async () => {
    const log = sampleLog();
    log.checkpoints.pop();
    expect((await verify(log)).verdict.firstBad).toMatchObject({ problem: "deleted" });
  });

  it("unsealed: an event left unsealed well before a later checkpoint was cut", async () => {
    const log = sampleLog();
    const e = log.append({ requestId: "req_b", type: "note", at: "2029-12-01T00:00:00.000Z" });
    // A later round sealed other events but skipped this one.
    e.sealedIn = -1;
    log.append({ requestId: null, type: "key.revoked" });
    log.seal();
    e.sealedIn = null;
    expect((await verify(log)).verdict.firstBad).toMatchObject({ problem: "unsealed", event: e.seq });
  });

  it("unsealed: an old unsealed event at the end of the log, once a newer checkpoint exists", async () => {
    const log = sampleLog();
    const tail = log.events.find((e) => e.sealedIn === null) as AuditEventRecord;
    tail.at = "2029-12-31T00:00:00.000Z";
    Object.assign(tail, rehash(tail));
    expect((await verify(log)).verdict.firstBad).toMatchObject({ problem: "unsealed", event: tail.seq });
    expect((await verify(log, { maxUnsealedAgeMs: 10 * 86_400_000 })).verdict.ok).toBe(true);
  });
});

describe("LogVerifier: anchors and tails", () => {
  it("passes when every anchored checkpoint is still there, unchanged", async () => {
    const log = sampleLog();
    const anchors = log.checkpoints.map((c) => ({ seq: c.seq, hash: c.hash }));
    expect((await verify(log, { anchors })).verdict.ok).toBe(true);
  });

  it("names a rewritten log: an anchored checkpoint whose hash differs", async () => {
    const log = sampleLog();
    expect((await verify(log, { anchors: [{ seq: 2, hash: "f".repeat(64) }] })).verdict.firstBad).toMatchObject({ problem: "edited", checkpoint: 2 });
  });

  it("names a truncated log: an anchored checkpoint that is gone", async () => {
    const log = sampleLog();
    const anchors = log.checkpoints.map((c) => ({ seq: c.seq, hash: c.hash }));
    // Truncation done carefully: the last checkpoint and everything it sealed removed.
    log.checkpoints.pop();
    for (let i = log.events.length - 1; i >= 0; i--) if (log.events[i]!.sealedIn !== 1) log.events.splice(i, 1);
    const { verdict } = await verify(log, { anchors });
    expect(verdict.firstBad).toMatchObject({ problem: "deleted", checkpoint: 2 });
  });

  it("verifies a tail from its first checkpoint when asked to, and only then", async () => {
    const log = sampleLog();
    const tail = log.items().slice(1);
    expect((await verify(log, { tail: true }, tail)).verdict).toMatchObject({ ok: true, checkpoints: 1 });
    expect((await verify(log, {}, tail)).verdict.firstBad).toMatchObject({ problem: "deleted", checkpoint: 2 });
  });
});
