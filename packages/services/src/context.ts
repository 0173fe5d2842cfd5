import type { Actor, Logger, PolicyFile, RefusalCode, Surface, TerminalStatus } from "@countersign/core";
import type { AdmissionWait, Database, Tx } from "@countersign/db";
import type { CallbackGuard } from "./callbacks/guard.ts";
import type { ReceiptSigner } from "./receipts/signer.ts";

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

/**
 * Per-call context: who is acting, the correlation id of the inbound request, a logger
 * that carries it, and (inside `withTransaction`) the open transaction.
 */
export interface ServiceCtx {
  deps: ServiceDeps;
  actor: Actor;
  requestId: string;
  log: Logger;
  tx?: Tx;
  /**
   * "always": this call's transaction waits for a connection however many are queued. For a
   * reviewer's click that Slack or Teams was already told is received; an API caller can
   * retry a 503 instead.
   */
  admission?: AdmissionWait;
}

/** A ctx inside a transaction; verbs that take it run in the caller's transaction. */
export type TxCtx = ServiceCtx & { tx: Tx };

export interface ServiceCall<I> {
  ctx: ServiceCtx;
  input: I;
}

/** Builds a ctx; each surface wraps this in its own `toServiceCtx()`. */
export function serviceCtx(deps: ServiceDeps, actor: Actor, requestId: string): ServiceCtx {
  return { deps, actor, requestId, log: deps.logger.child({ requestId }) };
}

/** The ctx for work the gateway does on its own (sweeper, policy, relay). */
export function systemCtx(deps: ServiceDeps, name: string, requestId = `${name}-${Date.now().toString(36)}`): ServiceCtx {
  return serviceCtx(deps, { type: "system", name }, requestId);
}

/**
 * Runs `fn` in the caller's transaction when there is one, or in a new one. Verbs compose
 * through this, so a change and its audit event always commit together.
 */
export function withTransaction<T>(ctx: ServiceCtx, fn: (ctx: TxCtx) => Promise<T>): Promise<T> {
  if (ctx.tx) return fn(ctx as TxCtx);
  return ctx.deps.db.transaction((tx) => fn({ ...ctx, tx }), { wait: ctx.admission ?? "bounded" });
}
