import { ChainVerifier, CountersignError } from "@countersign/core";
import type { ServiceCall } from "../context.ts";
import { iterateAudit } from "./records.ts";

/** Recomputes the whole chain from the database and names the first bad event. */
export async function verifyAudit({ ctx, input }: ServiceCall<{ onProgress?: ((n: number) => void) | undefined }>) {
  if (ctx.actor.type !== "admin" && ctx.actor.type !== "system") throw new CountersignError("forbidden", "verifying the audit log needs the admin scope");
  const v = new ChainVerifier();
  let n = 0;
  for await (const e of iterateAudit(ctx.deps.db)) {
    n++;
    if (input.onProgress && n % 1000 === 0) input.onProgress(n);
    if (!v.push(e)) break;
  }
  return v.verdict();
}
