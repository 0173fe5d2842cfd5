import { randomBytes } from "node:crypto";
import { monotonicFactory } from "ulid";

const ulid = monotonicFactory();

export type IdPrefix = "req" | "dec" | "job" | "key" | "msg";

/** Sortable, prefixed ids: `req_01J9...`. */
export function newId(prefix: IdPrefix): string {
  return `${prefix}_${ulid()}`;
}

export function randomToken(bytes = 24): string {
  return randomBytes(bytes).toString("base64url");
}
