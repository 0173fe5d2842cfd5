import type { AuditEventRecord } from "@countersign/core";
import { iterateAudit, verifyAudit } from "./audit.ts";
import type { ServiceDeps } from "./context.ts";
import { createKey, listKeys, revokeKey } from "./keys.ts";
import { getRequest, listRequests } from "./read-requests.ts";

/**
 * Operator commands, shared by the CLI (talking to the database directly) and the
 * gateway's local admin socket (when the CLI must not open the embedded database itself).
 */
export function adminOps(deps: ServiceDeps, who = "cli") {
  const ctx = { deps, actor: { type: "system", name: who } as const, requestId: `${who}-${Date.now()}` };
  return {
    createKey: (input: unknown) => createKey({ ctx, input }),
    listKeys: () => listKeys({ ctx, input: undefined }),
    revokeKey: (id: string) => revokeKey({ ctx, input: { id } }),
    migrate: () => deps.db.migrate(),
    listRequests: (input: { status?: string; action?: string; limit?: number; cursor?: string }) => listRequests({ ctx, input }),
    showRequest: (requestId: string) => getRequest({ ctx, input: { requestId } }),
    exportAudit: (after = 0): AsyncGenerator<AuditEventRecord> => iterateAudit(deps.db, { after }),
    verifyAudit: (onProgress?: (n: number) => void) => verifyAudit(deps.db, onProgress),
  };
}
export type AdminOps = ReturnType<typeof adminOps>;
