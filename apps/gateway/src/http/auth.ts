import { type Actor, CountersignError, type Scope } from "@countersign/core";
import { type AuthenticatedKey, authenticateKey, type ServiceDeps, systemCtx } from "@countersign/services";
import type { NextFunction, Request, Response } from "express";

declare global {
  namespace Express {
    interface Request {
      id: string;
      apiKey?: AuthenticatedKey;
    }
  }
}

/** Verifies `Authorization: Bearer <key>` and that the key holds one of `scopes`. */
export function requireKey(deps: ServiceDeps, ...scopes: Scope[]) {
  return async (req: Request, _res: Response, next: NextFunction) => {
    const header = req.get("authorization") ?? "";
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    // Per client address, before any lookup: throws rate_limited once the address has failed too often.
    const attempt = await req.rateLimits?.unauthenticated.begin(req.rateLimits.clientAddress(req), m?.[1]);
    if (!m) throw new CountersignError("unauthorized", "Send the API key as `Authorization: Bearer <key>`.");
    let key: AuthenticatedKey;
    try {
      key = await authenticateKey({ ctx: systemCtx(deps, "http-auth", req.id), input: { presented: m[1] as string } });
      attempt?.done("ok");
    } catch (e) {
      attempt?.done(e instanceof CountersignError && e.code === "unauthorized" ? "unauthorized" : "error");
      throw e;
    }
    if (scopes.length > 0 && !scopes.some((s) => key.scopes.includes(s))) {
      throw new CountersignError("forbidden", `This API key lacks the ${scopes.map((s) => `"${s}"`).join(" or ")} scope.`);
    }
    req.apiKey = key;
    next();
  };
}

export function agentActor(k: AuthenticatedKey): Actor {
  return { type: "agent", keyId: k.id, keyName: k.name, owner: k.owner, scopes: k.scopes };
}

/** A decisions key acts as its owner, a reviewer on the API surface. */
export function reviewerActor(k: AuthenticatedKey): Actor {
  return { type: "reviewer", principal: k.owner, surface: "api", keyId: k.id };
}

/** For reads: admin sees everything, a requests key sees its own, a decisions key reads as a reviewer. */
export function readerActor(k: AuthenticatedKey): Actor {
  if (k.scopes.includes("admin")) return { type: "admin", keyId: k.id, owner: k.owner };
  if (k.scopes.includes("requests")) return agentActor(k);
  return reviewerActor(k);
}
