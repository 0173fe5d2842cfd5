import { type Actor, CountersignError, type Scope } from "@countersign/core";
import type { Database } from "@countersign/db";

export interface ApiKeyView {
  id: string;
  prefix: string;
  name: string;
  owner: string;
  scopes: Scope[];
  createdAt: string;
  revokedAt: string | null;
}

export type KeyRow = Awaited<ReturnType<Database["prisma"]["apiKey"]["findMany"]>>[number];

export function keyView(r: KeyRow): ApiKeyView {
  return {
    id: r.id,
    prefix: r.prefix,
    name: r.name,
    owner: r.owner,
    scopes: r.scopes as Scope[],
    createdAt: r.createdAt.toISOString(),
    revokedAt: r.revokedAt?.toISOString() ?? null,
  };
}

export function requireKeyAdmin(actor: Actor): void {
  if (actor.type !== "admin" && actor.type !== "system") {
    throw new CountersignError("forbidden", "managing API keys needs the admin scope");
  }
}
