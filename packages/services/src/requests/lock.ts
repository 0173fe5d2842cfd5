import { REQUEST_EVENTS_CHANNEL, type Tx } from "@countersign/db";
import { loadRequest, type RequestRow } from "./resource.ts";

/**
 * Locks the request row for the rest of the transaction and reads it, with its decisions
 * and cards, once. Concurrent deciders of the same request queue here; other requests
 * are not affected.
 */
export async function lockRequest(tx: Tx, id: string): Promise<RequestRow | null> {
  const locked = await tx.$queryRawUnsafe<{ id: string }[]>(`SELECT id FROM approval_requests WHERE id = $1 FOR UPDATE`, id);
  if (locked.length === 0) return null;
  return loadRequest(tx, id);
}

/** Tells every process (via NOTIFY, delivered on commit) that this request changed. */
export async function notifyChanged(tx: Tx, requestId: string): Promise<void> {
  await tx.$executeRawUnsafe(`SELECT pg_notify('${REQUEST_EVENTS_CHANNEL}', $1)`, requestId);
}
