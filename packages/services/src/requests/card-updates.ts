import type { Tx } from "@countersign/db";
import type { ServiceDeps } from "../context.ts";
import { enqueue } from "../outbox/enqueue.ts";
import type { LockedJob } from "./lock.ts";

/** Surfaces that have a card for this request's notify list and are configured. */
export function cardSurfaces(deps: ServiceDeps, r: { notify: string[] }): ("slack" | "teams")[] {
  const channels = deps.policy().channels;
  const out = new Set<"slack" | "teams">();
  for (const name of r.notify) {
    const c = channels[name];
    if (c?.slack && deps.surfaces.slack) out.add("slack");
    if (c?.teams && deps.surfaces.teams) out.add("teams");
  }
  return [...out];
}

/** Queues card refreshes after a decision or transition; the relay renders fresh state. Returns the queued jobs. */
export async function enqueueCardUpdates(tx: Tx, deps: ServiceDeps, r: { id: string; notify: string[] }, now: Date): Promise<LockedJob[]> {
  const jobs: LockedJob[] = [];
  for (const surface of cardSurfaces(deps, r)) {
    jobs.push(await enqueue(tx, { kind: `${surface}.update`, requestId: r.id, payload: { requestId: r.id }, runAt: now }));
  }
  return jobs;
}
