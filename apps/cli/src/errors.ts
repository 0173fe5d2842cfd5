import { EnvError } from "@countersign/config";
import { DataDirLockedError } from "@countersign/db";
import { toCountersignError } from "@countersign/services";

/** A problem with what the user typed or pointed at; printed as is. */
export class CliError extends Error {
  override name = "CliError";
}

/** Ends the command with this status; what went wrong was already printed (e.g. as --json). */
export class ExitStatus extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

/**
 * The CLI's mapping of any error onto one line. Service and database errors go through
 * the same normaliser as every other surface, so a database outage reads as
 * `service_unavailable`, never as a driver's stack trace.
 */
export function reason(e: unknown): string {
  if (e instanceof EnvError) return e.oneLine();
  if (e instanceof CliError || e instanceof DataDirLockedError || (e as Error)?.name === "TeamsPackageError") return (e as Error).message;
  const ce = toCountersignError(e);
  if (ce.code === "internal_error") return `unexpected error: ${(e as Error)?.message ?? String(e)}`;
  const fields = ce.errors?.length ? ` (${ce.errors.map((f) => (f.path ? `${f.path}: ${f.message}` : f.message)).join("; ")})` : "";
  return `${ce.code}: ${ce.message}${fields}`;
}
