import type { Actor } from "@countersign/core";
import { type ServiceCtx, type ServiceDeps, serviceCtx } from "@countersign/services";
import type { Request } from "express";

/** The HTTP surface's ctx: the verified key's actor, correlated by the request id. */
export function toServiceCtx(deps: ServiceDeps, req: Request, actor: Actor): ServiceCtx {
  return serviceCtx(deps, actor, req.id);
}
