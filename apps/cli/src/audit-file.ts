import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { type AuditEventRecord, ChainVerifier, parseStrictJson } from "@countersign/core";
import { z } from "zod";
import { CliError } from "./errors.ts";

export type Verdict = ReturnType<ChainVerifier["verdict"]>;

const hex64 = z.string({ error: "must be 64 lowercase hex characters" }).regex(/^[0-9a-f]{64}$/, { error: "must be 64 lowercase hex characters" });
const str = z.string({ error: "must be a string" });
const strOrNull = z.string({ error: "must be a string or null" }).nullable();
const positiveInt = "must be a positive integer";

/** The shape of one exported audit event (AuditEventRecord); unknown fields are left for the hash to judge. */
const auditEventSchema = z.object({
  seq: z.number({ error: positiveInt }).int({ error: positiveInt }).positive({ error: positiveInt }),
  at: str,
  type: str,
  requestId: strOrNull,
  actor: z.object({ type: str, principal: strOrNull, surface: strOrNull, surfaceUserId: strOrNull }, { error: "must be an object" }),
  data: z.unknown(),
  prevHash: hex64,
  hash: hex64,
});

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}

/** What is wrong with a parsed line, or null when it is a well-formed audit event. */
function problemWith(value: unknown): string | null {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return `expected an audit event object, got ${describe(value)}`;
  const r = auditEventSchema.safeParse(value);
  if (r.success) return null;
  const issue = r.error.issues[0]!;
  const path = issue.path.map(String);
  const name = JSON.stringify(path.join("."));
  // Walk to the parent of the failing field to tell a missing field from a mistyped one.
  let parent: unknown = value;
  for (const seg of path.slice(0, -1)) parent = (parent as Record<string, unknown>)[seg];
  const last = path[path.length - 1];
  if (last !== undefined && parent !== null && typeof parent === "object" && !Object.hasOwn(parent, last)) return `missing ${name}`;
  return `${name} ${issue.message}`;
}

function readProblem(e: unknown): string {
  switch ((e as NodeJS.ErrnoException)?.code) {
    case "ENOENT":
      return "no such file";
    case "EISDIR":
      return "is a directory";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    default:
      return (e as Error)?.message ?? String(e);
  }
}

/**
 * Verifies an `audit export` JSON Lines file. Blank lines are skipped (but counted, so
 * line numbers match an editor's); a line that is not a well-formed audit event ends the
 * run with a CliError naming `file:line` and the problem. Otherwise events go through the
 * same ChainVerifier as the database check, stopping at the first bad one.
 */
export async function verifyExportFile(file: string, onProgress: (n: number) => void): Promise<Verdict> {
  const input = createReadStream(file);
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  const v = new ChainVerifier();
  let n = 0;
  let lineNo = 0;
  try {
    for await (const raw of lines) {
      lineNo++;
      const line = lineNo === 1 ? raw.replace(/^\uFEFF/, "") : raw;
      if (!line.trim()) continue;
      // Strict: a line with a key twice could show a reader one value and the verifier another.
      const parsed = parseStrictJson(line);
      if (!parsed.ok) {
        throw new CliError(
          `${file}:${lineNo}: ${parsed.message === "malformed JSON" ? "not valid JSON" : `${parsed.message}${parsed.path ? ` at ${parsed.path}` : ""}`}`,
        );
      }
      const value = parsed.value;
      const problem = problemWith(value);
      if (problem) throw new CliError(`${file}:${lineNo}: ${problem}`);
      onProgress(++n);
      // The line as parsed, not zod's copy: any extra field stays in, so the hash check sees it.
      if (!v.push(value as AuditEventRecord)) break;
    }
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError(`cannot read ${file}: ${readProblem(e)}`);
  } finally {
    lines.close();
    input.destroy();
  }
  return v.verdict();
}
