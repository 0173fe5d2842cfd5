import { createLocalJWKSet, createRemoteJWKSet, errors, type JSONWebKeySet, type JWTVerifyGetKey, jwtVerify } from "jose";
import { paramsSha256 } from "./canonical.js";
import { CountersignApiError, ReceiptVerificationError } from "./errors.js";
import type { JsonWebKeySet, ReceiptClaims, ReceiptRedemption } from "./types.js";

export const RECEIPT_TYPE = "countersign-receipt+jwt";

/**
 * What `verifyReceipt` needs to redeem a single-use receipt: a `Countersign` client built
 * with the agent key that made the request (`new Countersign({ baseUrl, apiKey })`).
 */
export interface ReceiptRedeemer {
  redeemReceipt(jti: string, options?: { signal?: AbortSignal | undefined }): Promise<ReceiptRedemption>;
}

export interface VerifyReceiptOptions {
  /** Where to fetch the gateway's public keys, e.g. `https://countersign.example.com/.well-known/jwks.json`. */
  jwksUrl?: string | URL;
  /** Or the key set itself, for fully offline verification. */
  jwks?: JsonWebKeySet;
  /** The action about to run; must equal the receipt's `action`. */
  action: string;
  /** The params about to be used; their canonical SHA-256 must equal the receipt's `params_sha256`. */
  params: unknown;
  /** If given, the receipt must be for this request (`jti`). */
  requestId?: string;
  /**
   * The environment the action is about to run in. When given, the receipt's `environment`
   * must equal it exactly (no trimming or case folding); `null` asserts that the request
   * named no environment. Omitted (`undefined`), the claim is not checked: executors
   * should always pass it, or a receipt approved for staging passes in production.
   */
  environment?: string | null;
  /** The resource the action is about to touch; checked like `environment`. */
  resource?: string | null;
  /**
   * Single-use receipts: after every other check passes, redeem the receipt on the gateway
   * (`POST /v1/receipts/:jti/redeem`) with this client, which must hold the agent key that
   * made the request. The first redemption succeeds; any later one throws
   * ReceiptVerificationError `already_redeemed`. Other failures (network, 404 for another
   * key's receipt) throw the client's own errors; either way, do not act.
   */
  redeem?: { client: ReceiptRedeemer; signal?: AbortSignal | undefined };
  /** If given, the receipt's `iss` must equal it (the gateway's COUNTERSIGN_PUBLIC_URL). */
  issuer?: string;
  /** Seconds of clock skew to tolerate on `exp`/`iat`; default 30. */
  clockToleranceSeconds?: number;
  /** Verify as of this time (tests). */
  currentDate?: Date;
}

const remoteSets = new Map<string, JWTVerifyGetKey>();

/** Remote key sets are cached per URL (jose refetches on an unknown `kid`, with a cooldown). */
export function remoteKeySet(url: string | URL): JWTVerifyGetKey {
  const key = String(url);
  let set = remoteSets.get(key);
  if (!set) {
    set = createRemoteJWKSet(new URL(key));
    remoteSets.set(key, set);
  }
  return set;
}

/**
 * Checks an approval receipt before acting: the EdDSA signature against the gateway's
 * keys, its type and expiry, and that it covers exactly this action and these params (and,
 * when given, this request, environment and resource). With `redeem`, it then uses the
 * receipt up on the gateway, so it verifies with `redeem` at most once.
 * Resolves with the verified claims; throws ReceiptVerificationError otherwise.
 */
export async function verifyReceipt(jws: string | null | undefined, options: VerifyReceiptOptions): Promise<ReceiptClaims> {
  if (!jws) throw new ReceiptVerificationError("missing", "the request carries no receipt");
  const keys = options.jwks ? createLocalJWKSet(options.jwks as unknown as JSONWebKeySet) : options.jwksUrl ? remoteKeySet(options.jwksUrl) : undefined;
  if (!keys) throw new TypeError("verifyReceipt needs jwksUrl or jwks");

  let payload: Record<string, unknown>;
  try {
    const verified = await jwtVerify(jws, keys, {
      algorithms: ["EdDSA"],
      typ: RECEIPT_TYPE,
      requiredClaims: ["jti", "iat", "exp", "iss"],
      clockTolerance: options.clockToleranceSeconds ?? 30,
      ...(options.issuer ? { issuer: options.issuer } : {}),
      ...(options.currentDate ? { currentDate: options.currentDate } : {}),
    });
    payload = verified.payload;
  } catch (e) {
    if (e instanceof errors.JWTExpired) throw new ReceiptVerificationError("expired", "the receipt has expired; ask for approval again", { cause: e });
    if (e instanceof errors.JWTClaimValidationFailed) throw new ReceiptVerificationError("claims", e.message, { cause: e });
    if (e instanceof errors.JWSInvalid || e instanceof errors.JWTInvalid) throw new ReceiptVerificationError("malformed", e.message, { cause: e });
    if (e instanceof errors.JWSSignatureVerificationFailed || e instanceof errors.JWKSNoMatchingKey || e instanceof errors.JOSEAlgNotAllowed) {
      throw new ReceiptVerificationError("signature", e.message, { cause: e });
    }
    throw new ReceiptVerificationError("signature", `could not verify: ${(e as Error).message}`, { cause: e });
  }

  const claims = payload as unknown as ReceiptClaims;
  if (typeof claims.action !== "string" || typeof claims.params_sha256 !== "string" || !Array.isArray(claims.approvers)) {
    throw new ReceiptVerificationError("claims", "the receipt lacks action, params_sha256 or approvers");
  }
  if (claims.action !== options.action) {
    throw new ReceiptVerificationError("action_mismatch", `the receipt is for "${claims.action}", not "${options.action}"`);
  }
  if (options.requestId !== undefined && claims.jti !== options.requestId) {
    throw new ReceiptVerificationError("request_mismatch", `the receipt is for ${claims.jti}, not ${options.requestId}`);
  }
  for (const field of ["environment", "resource"] as const) {
    const claim: unknown = claims[field] ?? null;
    if (claim !== null && typeof claim !== "string") throw new ReceiptVerificationError("claims", `the receipt's ${field} is not a string or null`);
    const expected = options[field];
    if (expected !== undefined && claim !== expected) {
      const show = (v: unknown) => (v === null ? "none" : JSON.stringify(v));
      throw new ReceiptVerificationError(`${field}_mismatch`, `the receipt is for ${field} ${show(claim)}, not ${show(expected)}`);
    }
  }
  const hash = await paramsSha256(options.params);
  if (hash !== claims.params_sha256) {
    throw new ReceiptVerificationError("params_mismatch", "these params differ from the ones that were approved");
  }
  // Last, so a receipt that fails any check is never used up.
  if (options.redeem) {
    try {
      await options.redeem.client.redeemReceipt(claims.jti, { signal: options.redeem.signal });
    } catch (e) {
      if (e instanceof CountersignApiError && e.code === "receipt_already_redeemed") {
        throw new ReceiptVerificationError("already_redeemed", e.detail, { cause: e });
      }
      throw e;
    }
  }
  return claims;
}
