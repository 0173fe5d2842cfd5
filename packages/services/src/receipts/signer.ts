import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { CHECKPOINT_JWS_TYPE, CountersignError } from "@countersign/core";
import { CompactSign, exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from "jose";

export interface ReceiptClaims {
  jti: string;
  action: string;
  params_sha256: string;
  resource: string | null;
  environment: string | null;
  agent: { key_id: string; name: string };
  on_behalf_of: string | null;
  approvers: { principal: string; surface: string }[];
  rule: string | null;
}

export interface ReceiptSigner {
  /** The key that signs now. */
  readonly kid: string;
  sign(claims: ReceiptClaims, now: Date): Promise<string>;
  /** Signs an audit checkpoint: a compact JWS whose payload is exactly `payload` (its canonical JSON). */
  signCheckpoint(payload: string): Promise<{ jws: string; kid: string }>;
  /**
   * Every public key of the ring, retired ones included: a retired key no longer signs,
   * but the checkpoints it signed must verify for as long as the log is kept.
   */
  jwks(now: Date): { keys: JWK[] };
}

interface StoredKey {
  kid: string;
  privateJwk: JWK;
  createdAt: string;
  /** Set when a newer key took over; the key stays published, since checkpoints it signed must keep verifying. */
  retiredAt?: string;
}

export interface ReceiptSignerOptions {
  issuer: string;
  ttlSeconds: number;
  /** JSON file holding the key ring; created with a fresh Ed25519 key when missing. */
  keyFile?: string;
  /** An Ed25519 private JWK from COUNTERSIGN_RECEIPT_KEY (checked by ReceiptKeySpec at boot); takes precedence over the file. */
  envKey?: JWK;
}

async function newStoredKey(now: Date): Promise<StoredKey> {
  const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  const jwk = await exportJWK(privateKey);
  const kid = `cs-${now.toISOString().slice(0, 10)}-${Math.random().toString(36).slice(2, 8)}`;
  return { kid, privateJwk: { ...jwk, kid, alg: "EdDSA", use: "sig" }, createdAt: now.toISOString() };
}

function publicOf(k: StoredKey): JWK {
  const { d: _d, ...pub } = k.privateJwk;
  return { ...pub, kid: k.kid, alg: "EdDSA", use: "sig" };
}

function readRing(file: string): StoredKey[] {
  return existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as { keys: StoredKey[] }).keys : [];
}

function writeRing(file: string, keys: StoredKey[]): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, JSON.stringify({ keys }, null, 2), { mode: 0o600 });
  renameSync(tmp, file);
}

/** Adds a new signing key to the ring and retires the current one (it stays in the JWKS). */
export async function rotateReceiptKey(file: string, now = new Date()): Promise<string> {
  const ring = readRing(file).map((k) => (k.retiredAt ? k : { ...k, retiredAt: now.toISOString() }));
  const fresh = await newStoredKey(now);
  writeRing(file, [...ring, fresh]);
  return fresh.kid;
}

export async function createReceiptSigner(opts: ReceiptSignerOptions): Promise<ReceiptSigner> {
  let ring: StoredKey[];
  if (opts.envKey) {
    const jwk = opts.envKey;
    const kid = jwk.kid ?? "cs-env";
    const fileKeys = opts.keyFile ? readRing(opts.keyFile).map((k) => (k.retiredAt ? k : { ...k, retiredAt: new Date(0).toISOString() })) : [];
    ring = [...fileKeys.filter((k) => k.kid !== kid), { kid, privateJwk: { ...jwk, kid }, createdAt: new Date().toISOString() }];
  } else {
    if (!opts.keyFile) throw new CountersignError("internal_error", "the receipt signer needs a key file or COUNTERSIGN_RECEIPT_KEY");
    ring = readRing(opts.keyFile);
    if (!ring.some((k) => !k.retiredAt)) {
      ring.push(await newStoredKey(new Date()));
      writeRing(opts.keyFile, ring);
    }
  }
  const current = ring.filter((k) => !k.retiredAt).at(-1) as StoredKey;
  const signingKey = await importJWK(current.privateJwk, "EdDSA");
  return {
    kid: current.kid,
    async sign(claims, now) {
      const iat = Math.floor(now.getTime() / 1000);
      return new SignJWT({ ...claims })
        .setProtectedHeader({ alg: "EdDSA", kid: current.kid, typ: "countersign-receipt+jwt" })
        .setIssuer(opts.issuer)
        .setIssuedAt(iat)
        .setExpirationTime(iat + opts.ttlSeconds)
        .sign(signingKey);
    },
    async signCheckpoint(payload) {
      const jws = await new CompactSign(new TextEncoder().encode(payload))
        .setProtectedHeader({ alg: "EdDSA", kid: current.kid, typ: CHECKPOINT_JWS_TYPE })
        .sign(signingKey);
      return { jws, kid: current.kid };
    },
    jwks() {
      return { keys: ring.map(publicOf) };
    },
  };
}

/**
 * The public keys of an existing ring (file and/or COUNTERSIGN_RECEIPT_KEY), without
 * creating one: what an operator command trusts to verify checkpoint signatures.
 */
export function publicReceiptKeys(opts: { keyFile?: string; envKey?: JWK }): JWK[] {
  const fileKeys = opts.keyFile ? readRing(opts.keyFile) : [];
  const env: StoredKey[] = opts.envKey
    ? [{ kid: opts.envKey.kid ?? "cs-env", privateJwk: { ...opts.envKey, kid: opts.envKey.kid ?? "cs-env" }, createdAt: "" }]
    : [];
  return [...fileKeys.filter((k) => !env.some((e) => e.kid === k.kid)), ...env].map(publicOf);
}
