/**
 * Builders for audit logs in tests (`@countersign/core/testing`): well-formed events and
 * checkpoints signed with a throwaway Ed25519 key, which tests then tamper with. Not part
 * of the runtime API.
 */
import { sign as edSign, verify as edVerify, generateKeyPairSync, type KeyObject } from "node:crypto";
import { type AuditActorRecord, type AuditEventBody, type AuditEventRecord, auditHash, eventHash, streamGenesis } from "./audit-chain.ts";
import { canonicalJson } from "./canonical.ts";
import { CHECKPOINT_JWS_TYPE, type CheckpointRecord, checkpointHash, nextCheckpointBody } from "./checkpoint.ts";

const b64u = (b: Buffer | string) => Buffer.from(b).toString("base64url");

export interface TestSigner {
  kid: string;
  /** The public key as a JWK, as the gateway's JWKS serves it. */
  jwk: { kty: string; crv: string; x: string; kid: string; alg: "EdDSA"; use: "sig" };
  sign(payload: string): string;
  /** What LogVerifier needs: the payload when the JWS verifies under this key, else null. */
  verify(jws: string): Promise<string | null>;
}

export function testSigner(kid = "test-key"): TestSigner {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const pub = publicKey.export({ format: "jwk" }) as { kty: string; crv: string; x: string };
  return {
    kid,
    jwk: { kty: pub.kty, crv: pub.crv, x: pub.x, kid, alg: "EdDSA", use: "sig" },
    sign(payload) {
      const input = `${b64u(JSON.stringify({ alg: "EdDSA", kid, typ: CHECKPOINT_JWS_TYPE }))}.${b64u(payload)}`;
      return `${input}.${b64u(edSign(null, Buffer.from(input), privateKey))}`;
    },
    verify: async (jws) => verifyWith(publicKey, jws),
  };
}

function verifyWith(key: KeyObject, jws: string): string | null {
  const [h, p, s] = jws.split(".");
  if (!h || p === undefined || !s) return null;
  return edVerify(null, Buffer.from(`${h}.${p}`), key, Buffer.from(s, "base64url")) ? Buffer.from(p, "base64url").toString("utf8") : null;
}

const SYSTEM_ACTOR: AuditActorRecord = { type: "system", principal: null, surface: null, surfaceUserId: null };

/** An in-memory log that appends and seals the way the gateway does. */
export class TestLog {
  readonly events: AuditEventRecord[] = [];
  readonly checkpoints: CheckpointRecord[] = [];
  private seq = 0;
  private clock = Date.parse("2030-01-01T00:00:00.000Z");

  constructor(readonly signer: TestSigner = testSigner()) {}

  append(e: { requestId: string | null; type: string; actor?: AuditActorRecord; data?: unknown; at?: string }): AuditEventRecord {
    const stream = e.requestId ?? "system";
    const prev = this.events.filter((x) => x.stream === stream).at(-1);
    this.clock += 1000;
    const body: AuditEventBody = {
      v: 2,
      stream,
      index: prev ? prev.index + 1 : 0,
      at: e.at ?? new Date(this.clock).toISOString(),
      type: e.type,
      requestId: e.requestId,
      actor: e.actor ?? SYSTEM_ACTOR,
      data: e.data ?? {},
      prevHash: prev?.hash ?? streamGenesis(stream),
    };
    const record: AuditEventRecord = { ...body, seq: ++this.seq, hash: auditHash(body), sealedIn: null, leafIndex: null };
    this.events.push(record);
    return record;
  }

  /** Seals every unsealed event, in seq order, into a new signed checkpoint. */
  seal(sealedAt?: string): CheckpointRecord {
    const leaves = this.events.filter((e) => e.sealedIn === null).sort((a, b) => a.seq - b.seq);
    if (leaves.length === 0) throw new Error("nothing to seal");
    const sealed = new Date(sealedAt ?? this.clock + 500);
    const body = nextCheckpointBody(
      this.checkpoints.at(-1) ?? null,
      leaves.map((l) => ({ hash: l.hash, at: new Date(l.at) })),
      sealed,
    );
    leaves.forEach((l, i) => {
      l.sealedIn = body.seq;
      l.leafIndex = i;
    });
    const c: CheckpointRecord = { ...body, hash: checkpointHash(body), kid: this.signer.kid, jws: this.signer.sign(canonicalJson(body)) };
    this.checkpoints.push(c);
    return c;
  }

  /** Items in verification (and export) order. */
  items(): ({ kind: "checkpoint"; checkpoint: CheckpointRecord; events: AuditEventRecord[] } | { kind: "unsealed"; event: AuditEventRecord })[] {
    const out: ReturnType<TestLog["items"]> = this.checkpoints.map((checkpoint) => ({
      kind: "checkpoint" as const,
      checkpoint,
      events: this.events.filter((e) => e.sealedIn === checkpoint.seq).sort((a, b) => (a.leafIndex as number) - (b.leafIndex as number)),
    }));
    const sealed = new Set(this.checkpoints.map((c) => c.seq));
    for (const e of [...this.events].sort((a, b) => a.seq - b.seq))
      if (e.sealedIn === null || !sealed.has(e.sealedIn)) out.push({ kind: "unsealed", event: e });
    return out;
  }

  /** The lines `countersign audit export` would write. */
  exportLines(): string[] {
    return this.items().flatMap((i) =>
      i.kind === "checkpoint"
        ? [...i.events.map((e) => JSON.stringify(e)), JSON.stringify({ object: "checkpoint", ...i.checkpoint })]
        : [JSON.stringify(i.event)],
    );
  }
}

/** Re-hashes an event after a test edited it (what a tamperer with database access would do). */
export function rehash(e: AuditEventRecord): AuditEventRecord {
  return { ...e, hash: eventHash(e) };
}
