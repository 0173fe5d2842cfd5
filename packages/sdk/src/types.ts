/** Request lifecycle states. Only `pending` ever changes, and only to a terminal state. */
export type RequestStatus = "pending" | "approved" | "denied" | "expired" | "cancelled";
export type TerminalStatus = Exclude<RequestStatus, "pending">;
export type Risk = "low" | "medium" | "high" | "critical";
/** Where a reviewer decided. */
export type Surface = "api" | "slack" | "teams";

/** The body of `POST /v1/requests`. */
export interface ApprovalRequestInput {
  /** Dotted action name, e.g. `db.export` or `iam.role.attach`. */
  action: string;
  /** One line for reviewers (1-150 characters). */
  summary: string;
  /** The exact arguments of the action; the receipt covers their canonical SHA-256. A plain JSON object. */
  params?: object;
  resource?: string;
  environment?: string;
  risk?: Risk;
  rationale?: string;
  /** The human the agent acts for; they can never approve it. */
  onBehalfOf?: string;
  /** Receives a signed Standard Webhooks callback when the request is decided. */
  callbackUrl?: string;
  /** Seconds the request may stay pending (10 s - 7 d; the policy may cap it). */
  expiresIn?: number;
  metadata?: Record<string, string>;
}

export interface Decision {
  reviewer: string;
  decision: "approve" | "deny";
  reason: string | null;
  surface: Surface;
  decidedAt: string;
}

export interface Delivery {
  id: string;
  kind: string;
  status: string;
  attempts: number;
  lastError: string | null;
  destination?: string;
}

/** An approval request as the gateway returns it. */
export interface ApprovalRequest {
  object: "approval_request";
  id: string;
  status: RequestStatus;
  /** How it ended: `policy`, `quorum`, `denied`, `timeout` or `cancelled`; null while pending. */
  resolution: string | null;
  action: string;
  summary: string;
  params: Record<string, unknown>;
  paramsSha256: string;
  resource: string | null;
  environment: string | null;
  risk: Risk | null;
  rationale: string | null;
  onBehalfOf: string | null;
  callbackUrl: string | null;
  metadata: Record<string, string> | null;
  agent: { keyId: string; name: string; owner: string };
  policy: { ruleId: string | null; effect: string; approverGroups: string[]; requiredApprovals: number; onExpire: string };
  approvals: { required: number; received: number };
  decisions: Decision[];
  /** Compact JWS (EdDSA) once approved; null otherwise. */
  receipt: string | null;
  expiresAt: string;
  createdAt: string;
  updatedAt: string;
  decidedAt: string | null;
  deliveries: Delivery[];
  links: { self: string; wait: string; decisions: string; cancel: string };
}

export interface RequestList {
  object: "list";
  data: ApprovalRequest[];
  nextCursor: string | null;
}

/** The claims of an approval receipt, after its signature and binding were verified. */
export interface ReceiptClaims {
  /** The request id. */
  jti: string;
  action: string;
  /** Lowercase hex SHA-256 of the canonical JSON of the approved params. */
  params_sha256: string;
  resource: string | null;
  environment: string | null;
  agent: { key_id: string; name: string };
  on_behalf_of: string | null;
  approvers: { principal: string; surface: Surface }[];
  rule: string | null;
  iat: number;
  exp: number;
  iss: string;
}

/** The answer of `POST /v1/receipts/:jti/redeem`: the receipt is now used up. */
export interface ReceiptRedemption {
  object: "receipt_redemption";
  /** The receipt's `jti` (the request id). */
  jti: string;
  action: string;
  /** When the gateway recorded the redemption (RFC 3339). */
  redeemedAt: string;
}

/** What `requestApproval` resolves with: the approved request and its verified receipt. */
export interface Approval {
  request: ApprovalRequest;
  /** The verified claims. */
  receipt: ReceiptClaims;
  /** The compact JWS, to pass on to an executor that verifies it again. */
  receiptJws: string;
}

/** A callback event, delivered on every terminal transition of a request with a callbackUrl. */
export interface WebhookEvent {
  type: `request.${TerminalStatus}`;
  timestamp: string;
  data: ApprovalRequest;
}

/** A JSON Web Key Set, as served at `/.well-known/jwks.json`. */
export interface JsonWebKeySet {
  keys: Record<string, unknown>[];
}

/** Who caused an audit event. */
export interface AuditActor {
  type: string;
  principal: string | null;
  surface: string | null;
  surfaceUserId: string | null;
}

/**
 * One event of the gateway's audit log. A v2 event sits at `index` in its request's own
 * hash chain (`stream` is the request id); a v1 (legacy) event is from the global chain
 * that predates per-request chains (stream `legacy`, index `seq - 1`). `sealedIn` and
 * `leafIndex` name the checkpoint that sealed it and its leaf there; null until sealed.
 */
export interface AuditEventRecord {
  seq: number;
  v: 1 | 2;
  stream: string;
  index: number;
  at: string;
  type: string;
  requestId: string | null;
  actor: AuditActor;
  data: unknown;
  prevHash: string;
  hash: string;
  sealedIn: number | null;
  leafIndex: number | null;
}

/** A signed checkpoint: the RFC 9162 Merkle root over a batch of audit events. */
export interface CheckpointRecord {
  v: 1;
  seq: number;
  /** `hash` of the previous checkpoint, or 64 zeros for the first. */
  prevHash: string;
  /** How many events it seals. */
  treeSize: number;
  /** Events sealed by it and every earlier checkpoint. */
  cumulativeSize: number;
  /** Lowercase hex Merkle Tree Hash over the sealed events' hashes, in leaf order. */
  rootHash: string;
  firstAt: string;
  lastAt: string;
  sealedAt: string;
  /** True for the one checkpoint that sealed the pre-migration global chain. */
  legacy: boolean;
  /** Lowercase hex SHA-256 of the canonical JSON of the ten fields above. */
  hash: string;
  kid: string;
  /** Compact JWS (EdDSA, typ `countersign-checkpoint+jws`) whose payload is that canonical JSON. */
  jws: string;
}

/** An RFC 9162 inclusion proof of one event in one checkpoint's tree. */
export interface InclusionProof {
  checkpoint: number;
  leafIndex: number;
  treeSize: number;
  /** Lowercase hex sibling hashes, bottom up. */
  path: string[];
}

export interface EvidenceEntry {
  event: AuditEventRecord;
  /** Null while no checkpoint has sealed the event yet. */
  proof: InclusionProof | null;
}

/** `GET /v1/requests/:id/evidence`: one request's audit events, with proofs that the signed log holds them. */
export interface Evidence {
  object: "evidence";
  requestId: string;
  /** In chain order: legacy (v1) events by seq, then the request's own stream by index. */
  entries: EvidenceEntry[];
  /** Every checkpoint that seals at least one entry, by ascending seq. */
  checkpoints: CheckpointRecord[];
}

/** What `verifyEvidence` resolves with, once every check passed. */
export interface EvidenceSummary {
  requestId: string;
  /** The request's state as its events tell it; null if they hold no `request.created`. */
  status: RequestStatus | null;
  /** Who approved, from the `decision.recorded` events that approve, in order. */
  approvers: { principal: string; surface: string | null }[];
  /** Events verified. */
  events: number;
  /** Of those, how many are proven to be in a signed checkpoint. */
  sealed: number;
  /** The seqs of the checkpoints that seal them, ascending. */
  checkpoints: number[];
}
