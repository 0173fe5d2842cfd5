import { CountersignError, type FieldError } from "@countersign/core";
import type { z } from "zod";

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

/** Prisma / driver errors that mean the database cannot be reached right now. */
export function isDatabaseUnavailable(e: unknown): boolean {
  const s = `${(e as { code?: string })?.code ?? ""} ${(e as Error)?.message ?? ""} ${String((e as { cause?: unknown })?.cause ?? "")}`;
  return /P1001|P1002|P1017|P2024|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|Connection terminated|connection timeout|timeout exceeded when trying to connect|DatabaseNotReachable|the database system is (shutting down|starting up)|terminating connection|Can't reach database|Server has closed the connection|Closed the connection|client has encountered a connection error/i.test(
    s,
  );
}

export function isUniqueViolation(e: unknown): boolean {
  const code = (e as { code?: string })?.code;
  const msg = (e as Error)?.message ?? "";
  return code === "P2002" || /Unique constraint|duplicate key value/i.test(msg);
}
