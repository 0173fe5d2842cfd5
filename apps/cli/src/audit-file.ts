import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { type AuditEventRecord, type CheckpointRecord, type LogVerdict, LogVerifier, type LogVerifierOptions, parseStrictJson } from "@countersign/core";
import { z } from "zod";
import { CliError } from "./errors.ts";

export type Verdict = LogVerdict;

const hex64 = z.string({ error: "must be 64 lowercase hex characters" }).regex(/^[0-9a-f]{64}$/, { error: "must be 64 lowercase hex characters" });
const str = z.string({ error: "must be a string" });
const strOrNull = z.string({ error: "must be a string or null" }).nullable();
const positiveInt = "must be a positive integer";

const nonNegativeInt = "must be a non-negative integer";
const int = (msg: string, min: number) => z.number({ error: msg }).int({ error: msg }).min(min, { error: msg });
const intOrNull = (msg: string) => int(msg, 0).nullable();

/** One exported audit event (AuditEventRecord). Strict: a field the hash does not cover must not ride along. */
const auditEventSchema = z.strictObject({
  seq: int(positiveInt, 1),
  v: z.union([z.literal(1), z.literal(2)], { error: "must be 1 or 2" }),
  stream: str,
  index: int(nonNegativeInt, 0),
  at: str,
  type: str,
  requestId: strOrNull,
  actor: z.strictObject({ type: str, principal: strOrNull, surface: strOrNull, surfaceUserId: strOrNull }, { error: "must be an object" }),
  data: z.unknown(),
  prevHash: hex64,
  hash: hex64,
  sealedIn: intOrNull("must be a positive integer or null"),
  leafIndex: intOrNull("must be a non-negative integer or null"),
});

/** One exported checkpoint line (`"object": "checkpoint"`). */
const checkpointSchema = z.strictObject({
  object: z.literal("checkpoint"),
  v: z.literal(1, { error: "must be 1" }),
  seq: int(positiveInt, 1),
  prevHash: hex64,
  treeSize: int(positiveInt, 1),
  cumulativeSize: int(positiveInt, 1),
  rootHash: hex64,
  firstAt: str,
  lastAt: str,
  sealedAt: str,
  legacy: z.boolean({ error: "must be a boolean" }),
  hash: hex64,
  kid: str,
  jws: str,
});

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}

/** What is wrong with a parsed line, or null when it is a well-formed event or checkpoint. */
function problemWith(value: unknown): string | null {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return `expected an audit event or checkpoint object, got ${describe(value)}`;
  const isCheckpoint = (value as { object?: unknown }).object === "checkpoint";
  const r = (isCheckpoint ? checkpointSchema : auditEventSchema).safeParse(value);
  if (r.success) return null;
  const issue = r.error.issues[0]!;
  if (issue.code === "unrecognized_keys") return `unknown field ${JSON.stringify([...issue.path.map(String), issue.keys[0]].join("."))}`;
  const path = issue.path.map(String);
  const name = JSON.stringify(path.join("."));
  // Walk to the parent of the failing field to tell a missing field from a mistyped one.
  let parent: unknown = value;
  for (const seg of path.slice(0, -1)) parent = (parent as Record<string, unknown>)[seg];
  const last = path[path.length - 1];
  if (last !== undefined && parent !== null && typeof parent === "object" && !Object.hasOwn(parent, last)) return `missing ${name}`;
  return `${name} ${issue.message}`;
}

/** Why a file could not be read, in a few words. */
export function readProblem(e: unknown): string {
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
 * Verifies an `audit export` JSON Lines file with the same LogVerifier as the database
 * check: events are held until the checkpoint line that seals them, and whatever follows
 * the last checkpoint is the unsealed tail. Blank lines are skipped (but counted, so line
 * numbers match an editor's); a line that is not a well-formed event or checkpoint ends
 * the run with a CliError naming `file:line` and the problem.
 */
export async function verifyExportFile(file: string, opts: LogVerifierOptions, onProgress: (n: number) => void): Promise<Verdict> {
  const input = createReadStream(file);
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  const v = new LogVerifier(opts);
  let pending: AuditEventRecord[] = [];
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
      const problem = problemWith(parsed.value);
      if (problem) throw new CliError(`${file}:${lineNo}: ${problem}`);
      const value = parsed.value as (CheckpointRecord & { object: "checkpoint" }) | AuditEventRecord;
      if ("object" in value) {
        const { object: _o, ...checkpoint } = value;
        const sealed = pending.filter((e) => e.sealedIn === checkpoint.seq);
        const stray = pending.find((e) => e.sealedIn !== checkpoint.seq);
        pending = [];
        if (stray) {
          v.report({ problem: "reordered", event: stray.seq, detail: `it comes before checkpoint ${checkpoint.seq} but is not sealed by it` });
          break;
        }
        if (!(await v.checkpoint(checkpoint, sealed))) break;
      } else {
        onProgress(++n);
        pending.push(value);
      }
    }
    if (!v.failed) for (const e of pending) if (!v.unsealed(e)) break;
    v.finish();
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError(`cannot read ${file}: ${readProblem(e)}`);
  } finally {
    lines.close();
    input.destroy();
  }
  return v.verdict();
}
