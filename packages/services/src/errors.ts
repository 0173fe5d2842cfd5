import { CountersignError, type FieldError } from "@countersign/core";
import { classifyDatabaseError } from "@countersign/db";
import { z } from "zod";

export function invalid(message: string, errors?: FieldError[]): CountersignError {
  return new CountersignError("invalid_request", message, errors ? { errors } : {});
}

export function fromZod(error: z.ZodError, root = ""): CountersignError {
  const at = (path: PropertyKey[]) => [root, ...path.map(String)].filter(Boolean).join(".");
  // Each unknown field is reported at its own path, so a client can point at the field.
  const errors = error.issues.flatMap((i) =>
    i.code === "unrecognized_keys"
      ? i.keys.map((k) => ({ path: at([...i.path, k]), message: "unknown field" }))
      : [{ path: at(i.path as PropertyKey[]), message: i.message }],
  );
  return invalid("The request body is not valid.", errors);
}

export function isDatabaseUnavailable(e: unknown): boolean {
  const kind = classifyDatabaseError(e);
  return kind === "unavailable" || kind === "busy";
}

export function isUniqueViolation(e: unknown): boolean {
  return classifyDatabaseError(e) === "unique";
}

/**
 * The one place any thrown value becomes a CountersignError with a stable code. Every
 * surface (HTTP, Slack, Teams, the admin socket, the CLI) calls this and then maps the
 * code onto its own output. An unknown error becomes `internal_error`, with the original
 * kept as `cause` for the log and never shown to the caller.
 */
export function toCountersignError(err: unknown): CountersignError {
  if (err instanceof CountersignError) return err;
  if (err instanceof z.ZodError) return fromZod(err);
  switch (classifyDatabaseError(err)) {
    case "unavailable":
      return new CountersignError("service_unavailable", "The database is unavailable; nothing was recorded. Retry shortly.", { retryAfter: 5, cause: err });
    // No pool connection within maxWait, a transaction that outlived its timeout, or a
    // serialization conflict: nothing was committed, so retrying is safe.
    case "busy":
      return new CountersignError("service_unavailable", "The server is busy; nothing was recorded. Retry shortly.", { retryAfter: 1, cause: err });
    case "unique":
      return new CountersignError("conflict", "That conflicts with something that already exists.", { cause: err });
    default:
      return new CountersignError("internal_error", "An internal error occurred. Quote the request id when reporting it.", { cause: err });
  }
}
