export type Surface = "api" | "slack" | "teams";

/** Who is calling a service verb. Adapters build one at the edge after verifying the caller. */
export type Actor =
  | { type: "agent"; keyId: string; keyName: string; owner: string; scopes: readonly Scope[] }
  | { type: "reviewer"; principal: string; surface: Surface; surfaceUserId?: string; keyId?: string }
  | { type: "admin"; keyId: string; owner: string }
  | { type: "system"; name: string };

export const SCOPES = ["requests", "decisions", "admin"] as const;
export type Scope = (typeof SCOPES)[number];

/** A principal is a lowercased email address. */
export function normalizePrincipal(email: string): string {
  return email.trim().toLowerCase();
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
export function isPrincipal(s: string): boolean {
  return EMAIL.test(s);
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
