import { canonicalSha256, type PolicyFile } from "@countersign/core";
import { type ServiceCall, withTransaction } from "../context.ts";
import { appendAudit, SYSTEM_STREAM_LOCK } from "./append.ts";

export interface StartupInput {
  /** The policy file's path, or "builtin". */
  policySource: string;
  policy: PolicyFile;
  /** The key the gateway signs receipts and checkpoints with. */
  signingKid: string;
}

/**
 * Records, in the system stream, the policy and the signing key a gateway starts with,
 * each only when it differs from what was last recorded: a new policy or a rotated key
 * is audited once, by whichever replica adopts it first, not once per restart.
 */
export async function recordStartup({ ctx, input }: ServiceCall<StartupInput>): Promise<{ policyChanged: boolean; keyChanged: boolean }> {
  const now = ctx.deps.clock();
  const policySha256 = canonicalSha256(input.policy);
  return withTransaction(ctx, async ({ tx }) => {
    // Held before reading, so two replicas booting together record a change once.
    await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${SYSTEM_STREAM_LOCK})`);
    const last = (type: string) => tx.auditEvent.findFirst({ where: { stream: "system", type }, orderBy: { index: "desc" }, select: { data: true } });
    const lastPolicy = (await last("policy.loaded"))?.data as { policySha256?: string } | undefined;
    const lastKey = (await last("signing_key.activated"))?.data as { kid?: string } | undefined;
    const policyChanged = lastPolicy?.policySha256 !== policySha256;
    const keyChanged = lastKey?.kid !== input.signingKid;
    if (policyChanged) {
      const data = { source: input.policySource, policySha256, rules: input.policy.rules.length, default: input.policy.default };
      await appendAudit(tx, { type: "policy.loaded", requestId: null, actor: ctx.actor, data }, now);
    }
    if (keyChanged) {
      const data = { kid: input.signingKid, previousKid: lastKey?.kid ?? null };
      await appendAudit(tx, { type: "signing_key.activated", requestId: null, actor: ctx.actor, data }, now);
    }
    return { policyChanged, keyChanged };
  });
}
