import type { ServiceDeps } from "../context.ts";
import { type QueuedJob, queueJob } from "../outbox/enqueue.ts";

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

/** Card refreshes after a decision or transition; the relay renders fresh state. */
export function cardUpdateJobs(deps: ServiceDeps, r: { id: string; notify: string[] }, now: Date): QueuedJob[] {
  return cardSurfaces(deps, r).map((surface) => queueJob({ kind: `${surface}.update`, requestId: r.id, payload: { requestId: r.id }, runAt: now }, now));
}
