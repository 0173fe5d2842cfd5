import { randomBytes, timingSafeEqual } from "node:crypto";
import { type Actor, CountersignError, isPrincipal, normalizePrincipal, SCOPES, type Scope, sha256Hex } from "@countersign/core";
import type { Database } from "@countersign/db";
import { z } from "zod";
import { appendAudit } from "./audit.ts";
import type { ServiceCall } from "./context.ts";
import { fromZod } from "./errors.ts";
import { newId, randomToken } from "./ids.ts";

const KEY_PATTERN = /^cs_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{32,})$/;

export const CreateKeyInput = z.strictObject({
  name: z.string().trim().min(1).max(100),
  owner: z.string().refine(isPrincipal, "owner must be an email address").transform(normalizePrincipal),
  scopes: z.array(z.enum(SCOPES)).min(1),
});
export type CreateKeyInput = z.input<typeof CreateKeyInput>;

export interface ApiKeyView {
  id: string;
  prefix: string;
  name: string;
  owner: string;
  scopes: Scope[];
  createdAt: string;
  revokedAt: string | null;
}

export interface CreatedKey extends ApiKeyView {
  /** Shown once; only its hash is stored. */
  key: string;
  /** Standard Webhooks secret for this key's callbacks (agent keys only). */
  webhookSecret: string | null;
}

type KeyRow = Awaited<ReturnType<Database["prisma"]["apiKey"]["findMany"]>>[number];

function view(r: KeyRow): ApiKeyView {
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

function alnum(n: number): string {
  const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = randomBytes(n);
  return Array.from(bytes, (b) => chars[b % chars.length]).join("");
}

function requireAdminOrSystem(actor: Actor): void {
  if (actor.type !== "admin" && actor.type !== "system") {
    throw new CountersignError("forbidden", "managing API keys needs the admin scope");
  }
}

export async function createKey({ ctx, input }: ServiceCall<unknown>): Promise<CreatedKey> {
  requireAdminOrSystem(ctx.actor);
  const parsed = CreateKeyInput.safeParse(input);
  if (!parsed.success) throw fromZod(parsed.error);
  const { name, owner, scopes } = parsed.data;
  const prefix = `cs_${alnum(12)}`;
  const key = `${prefix}_${randomToken(24)}`;
  const webhookSecret = `whsec_${randomBytes(24).toString("base64")}`;
  const now = ctx.deps.clock();
  const row = await ctx.deps.db.prisma.$transaction(async (tx) => {
    const created = await tx.apiKey.create({
      data: { id: newId("key"), prefix, hash: sha256Hex(key), name, owner, scopes: [...new Set(scopes)], signingSecret: webhookSecret, createdAt: now },
    });
    await appendAudit(tx, { type: "key.created", requestId: null, actor: ctx.actor, data: { keyId: created.id, name, owner, scopes: created.scopes } }, now);
    return created;
  });
  return { ...view(row), key, webhookSecret: scopes.includes("requests") ? webhookSecret : null };
}

export async function listKeys({ ctx }: ServiceCall<void>): Promise<ApiKeyView[]> {
  requireAdminOrSystem(ctx.actor);
  const rows = await ctx.deps.db.prisma.apiKey.findMany({ orderBy: { createdAt: "asc" } });
  return rows.map(view);
}

export async function revokeKey({ ctx, input }: ServiceCall<{ id: string }>): Promise<ApiKeyView> {
  requireAdminOrSystem(ctx.actor);
  const now = ctx.deps.clock();
  const ref = input.id;
  return ctx.deps.db.prisma.$transaction(async (tx) => {
    const row = await tx.apiKey.findFirst({ where: { OR: [{ id: ref }, { prefix: ref }] } });
    if (!row) throw new CountersignError("not_found", `no API key ${ref}`);
    if (row.revokedAt) return view(row);
    const updated = await tx.apiKey.update({ where: { id: row.id }, data: { revokedAt: now } });
    await appendAudit(tx, { type: "key.revoked", requestId: null, actor: ctx.actor, data: { keyId: row.id, name: row.name } }, now);
    return view(updated);
  });
}

export interface AuthenticatedKey {
  id: string;
  name: string;
  owner: string;
  scopes: Scope[];
  signingSecret: string;
}

/** Verifies a presented API key. Unknown, malformed and revoked keys all fail the same way. */
export async function authenticateKey(db: Database, presented: string): Promise<AuthenticatedKey> {
  const m = KEY_PATTERN.exec(presented);
  const fail = () => new CountersignError("unauthorized", "The API key is missing, malformed, unknown or revoked.");
  if (!m) throw fail();
  const row = await db.prisma.apiKey.findUnique({ where: { prefix: `cs_${m[1]}` } });
  const expected = Buffer.from(row?.hash ?? "0".repeat(64), "hex");
  const actual = Buffer.from(sha256Hex(presented), "hex");
  // Compare even when the row is missing so timing does not reveal which prefixes exist.
  const same = timingSafeEqual(expected, actual);
  if (!row || !same || row.revokedAt) throw fail();
  return { id: row.id, name: row.name, owner: row.owner, scopes: row.scopes as Scope[], signingSecret: row.signingSecret };
}
