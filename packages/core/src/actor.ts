import { SCOPES } from "./constants.ts";
import { canonicalPrincipal, isValidPrincipal } from "./principal.ts";

export { SCOPES };

export type Surface = "api" | "slack" | "teams";

/** Who is calling a service verb. Adapters build one at the edge after verifying the caller. */
export type Actor =
  | { type: "agent"; keyId: string; keyName: string; owner: string; scopes: readonly Scope[] }
  | { type: "reviewer"; principal: string; surface: Surface; surfaceUserId?: string; keyId?: string }
  | { type: "admin"; keyId: string; owner: string }
  | { type: "system"; name: string }
  /** Someone a chat surface could not verify (a bot, a deleted or foreign account): only ever audited, never allowed to act. */
  | { type: "unverified"; surface: Surface; surfaceUserId: string };

export type Scope = (typeof SCOPES)[number];

/**
 * A principal is an email address in one canonical form (see principal.ts): NFKC, case
 * folded, no invisible characters, no trailing dot, IDNA domain. Throws invalid_request
 * (with the reason) for an address that is malformed or ambiguous.
 */
export function normalizePrincipal(email: string): string {
  return canonicalPrincipal(email);
}

/** True for an address that has an unambiguous canonical form. */
export function isPrincipal(s: string): boolean {
  return isValidPrincipal(s);
}

export function actorPrincipal(actor: Actor): string | undefined {
  switch (actor.type) {
    case "agent":
      return actor.owner;
    case "reviewer":
      return actor.principal;
    case "admin":
      return actor.owner;
    case "system":
    case "unverified":
      return undefined;
  }
}

/** The logging surface every package takes; the gateway backs it with winston. */
export interface Logger {
  debug(message: string, meta?: Record<string, unknown>): void;
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  error(message: string, meta?: Record<string, unknown>): void;
  child(meta: Record<string, unknown>): Logger;
}
