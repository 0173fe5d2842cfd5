import { type Actor, CountersignError, type Scope } from "@countersign/core";

export function requireAgent(actor: Actor, scope: Scope): Extract<Actor, { type: "agent" }> {
  if (actor.type !== "agent" || !actor.scopes.includes(scope)) {
    throw new CountersignError("forbidden", `this action needs an API key with the "${scope}" scope`);
  }
  return actor;
}

export function requireReviewer(actor: Actor): Extract<Actor, { type: "reviewer" }> {
  if (actor.type !== "reviewer") {
    throw new CountersignError("forbidden", "only a verified reviewer can decide; agent keys never can");
  }
  return actor;
}

/** Who may read a request: the key that made it, any decisions key, or admin. */
export function canRead(actor: Actor, apiKeyId: string): boolean {
  if (actor.type === "admin" || actor.type === "system") return true;
  if (actor.type === "agent") return actor.keyId === apiKeyId;
  return actor.type === "reviewer";
}
