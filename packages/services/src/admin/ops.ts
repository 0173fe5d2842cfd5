import { latestCheckpoint } from "../audit/list.ts";
import { type ExportLine, exportLog } from "../audit/records.ts";
import { type VerifyInput, verifyAudit } from "../audit/verify.ts";
import { type ServiceDeps, systemCtx } from "../context.ts";
import { auditKeys } from "../keys/audit.ts";
import { createKey } from "../keys/create.ts";
import { listKeys } from "../keys/list.ts";
import { revokeKey } from "../keys/revoke.ts";
import { getRequest } from "../requests/get.ts";
import { type ListRequestsInput, listRequests } from "../requests/list.ts";
import { type LoadProgress, loadSnapshot, type SnapshotLine, takeSnapshot } from "./transfer.ts";

/**
 * Operator commands, shared by the CLI (talking to the database directly) and the
 * gateway's local admin socket (when the CLI must not open the embedded database itself).
 * Each call gets its own system ctx, named after who runs it.
 */
export function adminOps(deps: ServiceDeps, who = "cli") {
  const ctx = () => systemCtx(deps, who);
  return {
    createKey: (input: unknown) => createKey({ ctx: ctx(), input }),
    listKeys: () => listKeys({ ctx: ctx(), input: undefined }),
    revokeKey: (id: string) => revokeKey({ ctx: ctx(), input: { id } }),
    auditKeys: () => auditKeys({ ctx: ctx(), input: undefined }),
    migrate: () => deps.db.migrate(),
    listRequests: (input: ListRequestsInput) => listRequests({ ctx: ctx(), input }),
    showRequest: (requestId: string) => getRequest({ ctx: ctx(), input: { requestId } }),
    exportAudit: (afterCheckpoint = 0): AsyncGenerator<ExportLine> => exportLog(deps.db, afterCheckpoint),
    verifyAudit: (input: VerifyInput = {}) => verifyAudit({ ctx: ctx(), input }),
    latestCheckpoint: () => latestCheckpoint({ ctx: ctx(), input: undefined }),
    /** One consistent moment of every table (see takeSnapshot); a gateway serves it while it runs. */
    snapshot: (emit: (line: SnapshotLine) => Promise<void>) => takeSnapshot(deps.db, emit),
    /** Loads a snapshot into this (empty) database; never through a running gateway. */
    loadSnapshot: (lines: AsyncIterable<SnapshotLine>, onProgress?: (p: LoadProgress) => void) => loadSnapshot(deps.db, lines, onProgress),
  };
}
export type AdminOps = ReturnType<typeof adminOps>;
