import type { Actor, Logger, PolicyFile, RefusalCode, Surface, TerminalStatus } from "@countersign/core";
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
  /** Optional observer (the gateway's metrics). Called synchronously; it must not throw. */
  events?: (e: ServiceEvent) => void;
}

/** What happened, for observers such as metrics. Nothing depends on it for correctness. */
export type ServiceEvent =
  | { type: "request.created"; action: string; rule: string | null; effect: string }
  /** Emitted inside the transition's transaction, so a rolled-back transition may still be counted. */
  | { type: "request.finished"; action: string; rule: string | null; status: TerminalStatus; resolution: string; createdAt: Date; decidedAt: Date }
  | { type: "decision"; surface: Surface; decision: "approve" | "deny"; refused?: RefusalCode | undefined };

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
