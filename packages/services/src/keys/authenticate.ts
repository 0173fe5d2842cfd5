import { timingSafeEqual } from "node:crypto";
import { CountersignError, type Scope, sha256Hex } from "@countersign/core";
import type { ServiceCall } from "../context.ts";

const KEY_PATTERN = /^cs_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{32,})$/;

export interface AuthenticatedKey {
  id: string;
  name: string;
  owner: string;
  scopes: Scope[];
  signingSecret: string;
}

/**
 * Verifies a presented API key. Unknown, malformed and revoked keys all fail the same way.
 * Runs before there is an actor, so its ctx is the edge's system ctx.
 */
export async function authenticateKey({ ctx, input }: ServiceCall<{ presented: string }>): Promise<AuthenticatedKey> {
  const m = KEY_PATTERN.exec(input.presented);
  const fail = () => new CountersignError("unauthorized", "The API key is missing, malformed, unknown or revoked.");
  if (!m) throw fail();
  const row = await ctx.deps.db.prisma.apiKey.findUnique({
    where: { prefix: `cs_${m[1]}` },
    select: { id: true, hash: true, name: true, owner: true, scopes: true, signingSecret: true, revokedAt: true },
  });
  const expected = Buffer.from(row?.hash ?? "0".repeat(64), "hex");
  const actual = Buffer.from(sha256Hex(input.presented), "hex");
  // Compare even when the row is missing so timing does not reveal which prefixes exist.
  const same = timingSafeEqual(expected, actual);
  if (!row || !same || row.revokedAt) throw fail();
  return { id: row.id, name: row.name, owner: row.owner, scopes: row.scopes as Scope[], signingSecret: row.signingSecret };
}
