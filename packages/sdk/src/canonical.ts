/**
 * Canonical JSON, byte for byte the same as the gateway's (packages/core/src/canonical.ts):
 * object keys sorted by UTF-16 code units (as RFC 8785 does), no insignificant whitespace,
 * strings and numbers written as JSON.stringify writes them, `undefined` object members
 * dropped, `undefined` array elements written as null, Dates as ISO strings, numbers finite.
 * Kept separate so the SDK has no runtime dependency on the server's packages; a test
 * checks both produce identical hashes.
 */
export function canonicalJson(value: unknown): string {
  return write(value);
}

function write(v: unknown): string {
  if (v === null) return "null";
  switch (typeof v) {
    case "boolean":
      return v ? "true" : "false";
    case "number":
      if (!Number.isFinite(v)) throw new TypeError("canonicalJson: non-finite number");
      return JSON.stringify(v);
    case "string":
      return JSON.stringify(v);
    case "object": {
      if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? "null" : write(x))).join(",")}]`;
      if (v instanceof Date) return JSON.stringify(v.toISOString());
      const obj = v as Record<string, unknown>;
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${write(obj[k])}`).join(",")}}`;
    }
    default:
      throw new TypeError(`canonicalJson: cannot encode ${typeof v}`);
  }
}

/** Lowercase hex SHA-256 of a string's UTF-8 bytes (WebCrypto, so it runs wherever fetch does). */
export async function sha256Hex(text: string): Promise<string> {
  const digest = await globalThis.crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * What the gateway will see for `params` once it has crossed the wire: a JSON round trip
 * (toJSON honoured, undefined dropped, Dates as strings). Hashing and guarded execution
 * both use this value, so what runs is exactly what was approved.
 */
export function toWireParams(params: unknown): Record<string, unknown> {
  if (params === undefined) return {};
  if (params === null || typeof params !== "object" || Array.isArray(params)) {
    throw new TypeError("params must be a plain JSON object");
  }
  const text = JSON.stringify(params);
  return JSON.parse(text) as Record<string, unknown>;
}

/** `params_sha256` as the gateway computes it and receipts carry it. */
export async function paramsSha256(params: unknown): Promise<string> {
  return sha256Hex(canonicalJson(toWireParams(params)));
}
