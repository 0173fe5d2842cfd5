import { parsePrincipal, sodPrincipal } from "@countersign/core";
import type { ServiceCall } from "../context.ts";
import { type ApiKeyView, keyView, requireKeyAdmin } from "./view.ts";

export interface OwnerCollision {
  /** The separation-of-duties form the owners share: to Countersign they are one person. */
  person: string;
  owners: string[];
  keys: ApiKeyView[];
}

export interface OwnerProblem {
  key: ApiKeyView;
  /** The canonical form, when the stored owner has one but is not in it (a key made before canonical forms). */
  canonical: string | null;
  problem: string;
}

export interface KeyAudit {
  /** Keys whose owners are written differently but are the same person (a +tag, a look-alike). */
  collisions: OwnerCollision[];
  /** Owners stored in a form the gateway would no longer accept or store. */
  problems: OwnerProblem[];
}

/**
 * Reports API keys whose owners collide as one person, and owners that are not in
 * canonical form. Decisions are already refused across colliding owners; this shows an
 * operator which keys to revoke or re-issue.
 */
export async function auditKeys({ ctx }: ServiceCall<void>): Promise<KeyAudit> {
  requireKeyAdmin(ctx.actor);
  const rows = await ctx.deps.db.prisma.apiKey.findMany({ orderBy: { createdAt: "asc" } });
  const byPerson = new Map<string, typeof rows>();
  const problems: OwnerProblem[] = [];
  for (const r of rows) {
    const person = sodPrincipal(r.owner);
    byPerson.set(person, [...(byPerson.get(person) ?? []), r]);
    const parsed = parsePrincipal(r.owner);
    if (!parsed.ok) problems.push({ key: keyView(r), canonical: null, problem: parsed.message });
    else if (parsed.canonical !== r.owner) {
      problems.push({ key: keyView(r), canonical: parsed.canonical, problem: `stored as "${r.owner}", not in canonical form "${parsed.canonical}"` });
    }
  }
  const collisions = [...byPerson]
    .map(([person, keys]) => ({ person, owners: [...new Set(keys.map((k) => k.owner))], keys: keys.map(keyView) }))
    .filter((c) => c.owners.length > 1);
  return { collisions, problems };
}
