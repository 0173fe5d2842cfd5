import { randomBytes } from "node:crypto";
import { parsePrincipal, SCOPES, sha256Hex } from "@countersign/core";
import { z } from "zod";
import { appendAudit } from "../audit/append.ts";
import { type ServiceCall, withTransaction } from "../context.ts";
import { fromZod } from "../errors.ts";
import { newId, randomToken } from "../ids.ts";
import { type ApiKeyView, keyView, requireKeyAdmin } from "./view.ts";

export const CreateKeyInput = z.strictObject({
  name: z.string().trim().min(1).max(100),
  // Stored in canonical form; an ambiguous address (invisible characters, mixed scripts) is refused.
  owner: z.string().transform((s, ctx) => {
    const r = parsePrincipal(s);
    if (r.ok) return r.canonical;
    ctx.addIssue({ code: "custom", message: r.message });
    return z.NEVER;
  }),
  scopes: z.array(z.enum(SCOPES)).min(1),
});
export type CreateKeyInput = z.input<typeof CreateKeyInput>;

export interface CreatedKey extends ApiKeyView {
  /** Shown once; only its hash is stored. */
  key: string;
  /** Standard Webhooks secret for this key's callbacks (agent keys only). */
  webhookSecret: string | null;
}

function alnum(n: number): string {
  const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = randomBytes(n);
  return Array.from(bytes, (b) => chars[b % chars.length]).join("");
}

export async function createKey({ ctx, input }: ServiceCall<unknown>): Promise<CreatedKey> {
  requireKeyAdmin(ctx.actor);
  const parsed = CreateKeyInput.safeParse(input);
  if (!parsed.success) throw fromZod(parsed.error);
  const { name, owner, scopes } = parsed.data;
  const prefix = `cs_${alnum(12)}`;
  const key = `${prefix}_${randomToken(24)}`;
  const webhookSecret = `whsec_${randomBytes(24).toString("base64")}`;
  const now = ctx.deps.clock();
  const row = await withTransaction(ctx, async ({ tx }) => {
    const created = await tx.apiKey.create({
      data: { id: newId("key"), prefix, hash: sha256Hex(key), name, owner, scopes: [...new Set(scopes)], signingSecret: webhookSecret, createdAt: now },
    });
    await appendAudit(tx, { type: "key.created", requestId: null, actor: ctx.actor, data: { keyId: created.id, name, owner, scopes: created.scopes } }, now);
    return created;
  });
  return { ...keyView(row), key, webhookSecret: scopes.includes("requests") ? webhookSecret : null };
}
