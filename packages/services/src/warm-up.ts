import { evaluatePolicy } from "@countersign/core";
import { type ServiceDeps, systemCtx } from "./context.ts";
import { authenticateKey } from "./keys/authenticate.ts";
import { lockAndLoad } from "./requests/lock.ts";
import { loadDeliveries, loadRequest } from "./requests/resource.ts";

// An id and a key no row can have: the reads find nothing, and nothing is written.
const NO_REQUEST = "req_00000000000000000000000000";
const NO_KEY = `cs_000000000000_${"0".repeat(32)}`;

/**
 * Runs the hot paths' reads once before the gateway reports ready, writing nothing: the
 * key lookup, the row lock and read a decision takes, the reads behind GET and long-poll,
 * policy evaluation and a receipt signature. Prisma compiles each query shape on its first
 * use and the pool opens its first connection, so the first real request pays neither.
 */
export async function warmUp(deps: ServiceDeps): Promise<void> {
  const ctx = systemCtx(deps, "warm-up");
  await authenticateKey({ ctx, input: { presented: NO_KEY } }).catch(() => undefined);
  await deps.db.transaction((tx) => lockAndLoad(tx, NO_REQUEST, { jobs: true }));
  await loadRequest(deps.db.prisma, NO_REQUEST);
  await loadDeliveries(deps.db.prisma, NO_REQUEST);
  evaluatePolicy(deps.policy(), { action: "countersign.warm-up" });
  const now = deps.clock();
  await deps.receipts.sign(
    {
      jti: NO_REQUEST,
      action: "countersign.warm-up",
      params_sha256: "",
      resource: null,
      environment: null,
      agent: { key_id: "", name: "" },
      on_behalf_of: null,
      approvers: [],
      rule: null,
    },
    now,
  );
}
