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
