import type { JWK } from "jose";
import { z } from "zod";

const B64URL = /^[A-Za-z0-9_-]+$/;

/**
 * The zod schema for COUNTERSIGN_RECEIPT_KEY: an Ed25519 private key as a JWK (JSON), so a
 * bad key stops start-up with the other configuration problems, before the database opens.
 */
export const ReceiptKeySpec = z.string().transform((s, ctx): JWK => {
  let v: unknown;
  try {
    v = JSON.parse(s);
  } catch {
    ctx.addIssue({ code: "custom", message: "must be an Ed25519 private key as a JWK (JSON); it is not valid JSON" });
    return z.NEVER;
  }
  const jwk = v as Record<string, unknown>;
  const problems: string[] = [];
  if (!jwk || typeof jwk !== "object" || Array.isArray(jwk)) problems.push("must be a JSON object (an Ed25519 private JWK)");
  else {
    if (jwk.kty !== "OKP" || jwk.crv !== "Ed25519") problems.push(`must be an Ed25519 key ("kty": "OKP", "crv": "Ed25519")`);
    if (typeof jwk.x !== "string" || !B64URL.test(jwk.x)) problems.push(`needs the public part "x" (base64url)`);
    if (typeof jwk.d !== "string" || !B64URL.test(jwk.d)) problems.push(`needs the private part "d" (base64url); a public key cannot sign receipts`);
    if (jwk.kid !== undefined && (typeof jwk.kid !== "string" || !/^[\w.-]{1,64}$/.test(jwk.kid)))
      problems.push(`"kid" must be 1-64 letters, digits, "_", "-" or "."`);
  }
  for (const message of problems) ctx.addIssue({ code: "custom", message });
  return problems.length ? z.NEVER : (jwk as JWK);
});
