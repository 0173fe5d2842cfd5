import type { RequestStatus } from "@countersign/core";
import type { Database, Tx } from "@countersign/db";

export const REQUEST_INCLUDE = {
  decisions: { orderBy: { createdAt: "asc" } },
  messages: { orderBy: { createdAt: "asc" } },
  // A revoked agent's request can no longer be decided, redeemed or read by that key.
  apiKey: { select: { revokedAt: true } },
} as const;

type Client = Database["prisma"] | Tx;
export async function loadRequest(db: Client, id: string) {
  return db.approvalRequest.findUnique({ where: { id }, include: REQUEST_INCLUDE });
}
export type RequestRow = NonNullable<Awaited<ReturnType<typeof loadRequest>>>;

export interface DeliveryView {
  id: string;
  kind: string;
  status: string;
  attempts: number;
  lastError: string | null;
  destination?: string;
}

export interface RequestResource {
  object: "approval_request";
  id: string;
  status: RequestStatus;
  resolution: string | null;
  action: string;
  summary: string;
  params: unknown;
  paramsSha256: string;
  resource: string | null;
  environment: string | null;
  risk: string | null;
  rationale: string | null;
  onBehalfOf: string | null;
  callbackUrl: string | null;
  metadata: Record<string, string> | null;
  agent: { keyId: string; name: string; owner: string };
  policy: { ruleId: string | null; effect: string; approverGroups: string[]; requiredApprovals: number; onExpire: string };
  approvals: { required: number; received: number };
  decisions: { reviewer: string; decision: string; reason: string | null; surface: string; decidedAt: string }[];
  receipt: string | null;
  expiresAt: string;
  createdAt: string;
  updatedAt: string;
  decidedAt: string | null;
  deliveries: DeliveryView[];
  links: { self: string; wait: string; decisions: string; cancel: string };
}

export function toResource(r: RequestRow, deliveries: DeliveryView[] = []): RequestResource {
  const base = `/v1/requests/${r.id}`;
  const cards: DeliveryView[] = r.messages.map((m) => ({
    id: m.id,
    kind: `${m.surface}.card`,
    status: m.state,
    attempts: 0,
    lastError: m.error,
    destination: m.destination,
  }));
  return {
    object: "approval_request",
    id: r.id,
    status: r.status,
    resolution: r.resolution,
    action: r.action,
    summary: r.summary,
    params: r.params,
    paramsSha256: r.paramsSha256,
    resource: r.resource,
    environment: r.environment,
    risk: r.risk,
    rationale: r.rationale,
    onBehalfOf: r.onBehalfOf,
    callbackUrl: r.callbackUrl,
    metadata: (r.metadata as Record<string, string> | null) ?? null,
    agent: { keyId: r.apiKeyId, name: r.agentName, owner: r.agentOwner },
    policy: { ruleId: r.ruleId, effect: r.effect, approverGroups: r.approverGroups, requiredApprovals: r.requiredApprovals, onExpire: r.onExpire },
    approvals: { required: r.requiredApprovals, received: r.decisions.filter((d) => d.decision === "approve").length },
    decisions: r.decisions.map((d) => ({
      reviewer: d.principal,
      decision: d.decision,
      reason: d.reason,
      surface: d.surface,
      decidedAt: d.createdAt.toISOString(),
    })),
    receipt: r.receipt,
    expiresAt: r.expiresAt.toISOString(),
    createdAt: r.createdAt.toISOString(),
    updatedAt: r.updatedAt.toISOString(),
    decidedAt: r.decidedAt?.toISOString() ?? null,
    deliveries: [...deliveries, ...cards],
    links: { self: base, wait: `${base}?wait=30`, decisions: `${base}/decisions`, cancel: `${base}/cancel` },
  };
}

export async function loadDeliveries(db: Client, requestId: string): Promise<DeliveryView[]> {
  const jobs = await db.outboxJob.findMany({ where: { requestId }, orderBy: { createdAt: "asc" } });
  return jobs.map((j) => ({ id: j.id, kind: j.kind, status: j.status, attempts: j.attempts, lastError: j.lastError }));
}

export async function loadResource(db: Client, id: string): Promise<RequestResource | null> {
  const row = await loadRequest(db, id);
  if (!row) return null;
  return toResource(row, await loadDeliveries(db, id));
}
