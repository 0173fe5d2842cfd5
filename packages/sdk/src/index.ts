export { canonicalJson, paramsSha256, sha256Hex, toWireParams } from "./canonical.js";
export {
  type CallOptions,
  Countersign,
  type CountersignOptions,
  type CreateOptions,
  DEFAULT_WAIT_MS,
  type GuardedFunction,
  type GuardOptions,
  type ListRequestsQuery,
  type RequestApprovalOptions,
  SDK_VERSION,
  type WaitOptions,
} from "./client.js";
export {
  API_ERROR_CODES,
  type ApiErrorCode,
  ApprovalCancelledError,
  ApprovalDeniedError,
  ApprovalError,
  ApprovalExpiredError,
  ApprovalTimeoutError,
  CountersignApiError,
  CountersignError,
  CountersignNetworkError,
  type FieldError,
  type Problem,
  type ReceiptProblem,
  ReceiptVerificationError,
  WebhookVerificationError,
} from "./errors.js";
export { RECEIPT_TYPE, type VerifyReceiptOptions, verifyReceipt } from "./receipt.js";
export type {
  Approval,
  ApprovalRequest,
  ApprovalRequestInput,
  Decision,
  Delivery,
  JsonWebKeySet,
  ReceiptClaims,
  RequestList,
  RequestStatus,
  Risk,
  Surface,
  TerminalStatus,
  WebhookEvent,
} from "./types.js";
export { type HeadersLike, verifyWebhook } from "./webhook.js";
