import type { Actor, Logger, PolicyFile } from "@countersign/core";
import type { Database } from "@countersign/db";
import type { CallbackGuard } from "./callback-guard.ts";
import type { ReceiptSigner } from "./receipts.ts";

/** Long-lived dependencies, built once by the gateway (or CLI) and shared by every call. */
export interface ServiceDeps {
  db: Database;
  logger: Logger;
  /** The policy in force; a function so a reload takes effect without rewiring. */
  policy: () => PolicyFile;
  receipts: ReceiptSigner;
  callbackGuard: CallbackGuard;
  /** Which chat surfaces are configured; cards are only queued for those. */
  surfaces: { slack: boolean; teams: boolean };
  /** Base URL used in links and as the receipt issuer. */
  publicUrl: string;
  clock: () => Date;
}

/** Per-call context: who is acting, and the correlation id of the inbound request. */
export interface ServiceCtx {
  deps: ServiceDeps;
  actor: Actor;
  requestId: string;
}

export interface ServiceCall<I> {
  ctx: ServiceCtx;
  input: I;
}
