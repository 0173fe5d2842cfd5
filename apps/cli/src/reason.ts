import { EnvError } from "@countersign/config";
import { PolicyError } from "@countersign/core";
import { DataDirLockedError, describeConnectFailure } from "@countersign/db";
import { toCountersignError } from "@countersign/services";
import { CliError } from "./errors.ts";

// Loaded only once a command has failed: it pulls in the services, which `--help` and
// `-V` must not pay for.

/** Policy problems, one per line, as `file:line:column: path: message` (editors can jump to them). */
export function policyProblems(e: PolicyError): string[] {
  return e.problems.map((p) => (p.line > 0 ? `${e.file}:${p.line}:${p.column}: ${p.path ? `${p.path}: ` : ""}${p.message}` : `${e.file}: ${p.message}`));
}

/** A failure as the API would name it: a stable code, a message, and field problems where there are any. */
export interface Failure {
  code: string;
  message: string;
  errors?: { path: string; message: string }[];
}

/**
 * The CLI's mapping of any error. Service and database errors go through the same
 * normaliser as every other surface, so a database outage reads as `service_unavailable`,
 * never as a driver's stack trace.
 */
export function failure(e: unknown): Failure {
  if (e instanceof EnvError)
    return { code: "invalid_configuration", message: e.oneLine(), errors: e.problems.map((p) => ({ path: p.variable, message: p.message })) };
  if (e instanceof PolicyError) {
    return { code: "invalid_policy", message: `${e.file}: invalid policy`, errors: e.problems.map((p) => ({ path: p.path, message: p.message })) };
  }
  if (e instanceof DataDirLockedError) return { code: "data_dir_locked", message: e.message };
  if (e instanceof CliError) return { code: "invalid_argument", message: e.message };
  if ((e as Error)?.name === "TeamsPackageError") return { code: "invalid_configuration", message: (e as Error).message };
  const unreachable = process.env.DATABASE_URL ? describeConnectFailure(e, process.env.DATABASE_URL) : undefined;
  if (unreachable) return { code: "service_unavailable", message: unreachable };
  const ce = toCountersignError(e);
  if (ce.code === "internal_error") return { code: ce.code, message: `unexpected error: ${(e as Error)?.message ?? String(e)}` };
  return { code: ce.code, message: ce.message, ...(ce.errors?.length ? { errors: ce.errors.map((f) => ({ path: f.path ?? "", message: f.message })) } : {}) };
}

/** What a failed command prints on stderr: one line (policy problems: one per problem). */
export function failureText(e: unknown): string {
  if (e instanceof PolicyError) return policyProblems(e).join("\n");
  const f = failure(e);
  if (
    e instanceof EnvError ||
    e instanceof DataDirLockedError ||
    e instanceof CliError ||
    f.code === "internal_error" ||
    (e as Error)?.name === "TeamsPackageError"
  ) {
    return `countersign: ${f.message}`;
  }
  const fields = f.errors?.length ? ` (${f.errors.map((x) => (x.path ? `${x.path}: ${x.message}` : x.message)).join("; ")})` : "";
  return `countersign: ${f.code}: ${f.message}${fields}`;
}
