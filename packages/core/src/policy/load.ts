import { readFileSync } from "node:fs";
import { LineCounter, parseDocument } from "yaml";
import type { z } from "zod";
import { normalizePrincipal } from "../actor.ts";
import { PolicyFile } from "./schema.ts";

export interface PolicyProblem {
  /** YAML path such as `rules[1].approvers[0]`. */
  path: string;
  line: number;
  column: number;
  message: string;
}

export class PolicyError extends Error {
  override name = "PolicyError";
  constructor(
    readonly file: string,
    readonly problems: PolicyProblem[],
  ) {
    super(problems.map((p) => `${file}:${p.line}:${p.column}: ${p.path ? `${p.path}: ` : ""}${p.message}`).join("\n"));
  }
}

export interface LoadedPolicy {
  source: string;
  policy: PolicyFile;
}

export function formatYamlPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out;
}

/** Parses and validates policy YAML; every problem carries its YAML path and line. */
export function parsePolicy(text: string, file = "<policy>"): PolicyFile {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number | undefined) => {
    const pos = lineCounter.linePos(offset ?? 0);
    return { line: pos.line, column: pos.col };
  };
  if (doc.errors.length > 0) {
    throw new PolicyError(
      file,
      doc.errors.map((e) => ({ path: "", ...at(e.pos[0]), message: e.message.split("\n")[0] ?? e.message })),
    );
  }
  const input: unknown = doc.toJS() ?? {};
  const parsed = PolicyFile.safeParse(input);
  if (!parsed.success) {
    throw new PolicyError(
      file,
      parsed.error.issues.flatMap(specific).map((issue) => locate(explain(issue, input), doc, at)),
    );
  }
  return normalize(parsed.data);
}

type Issue = z.core.$ZodIssue;

/**
 * A one-or-many field (`risk: high` or `risk: [high, critical]`) fails as a union, which
 * zod reports as a bare "Invalid input" holding each alternative's issues. Report the
 * alternative that fits the value instead: one whose issues are not a type mismatch of
 * the value itself, and of those the one that reaches deepest (into a list item). Its
 * issues get the union's path prefixed. With no single best alternative the union issue
 * stands.
 */
function specific(issue: Issue): Issue[] {
  if (issue.code !== "invalid_union" || issue.errors.length === 0) return [issue];
  const rank = (branch: Issue[]) => {
    const mismatch = branch.some((i) => i.code === "invalid_type" && i.path.length === 0);
    return (mismatch ? 0 : 1000) + Math.max(0, ...branch.map((i) => i.path.length));
  };
  const ranks = issue.errors.map(rank);
  const top = Math.max(...ranks);
  const best = issue.errors.filter((_, i) => ranks[i] === top);
  if (best.length !== 1 || top < 1000) return [issue];
  return (best[0] as Issue[]).flatMap((i) => specific({ ...i, path: [...issue.path, ...i.path] } as Issue));
}

/** The input value at `path`, and whether it is there at all. */
function valueAt(input: unknown, path: readonly PropertyKey[]): { present: boolean; value?: unknown } {
  let v = input;
  for (const seg of path) {
    if (v === null || typeof v !== "object" || !Object.hasOwn(v, seg)) return { present: false };
    v = (v as Record<PropertyKey, unknown>)[seg];
  }
  return { present: true, value: v };
}

function shown(v: unknown): string {
  if (Array.isArray(v)) return "a list";
  if (v !== null && typeof v === "object") return "a mapping";
  return JSON.stringify(v) ?? String(v);
}

/** Names the allowed values and the value given, for an enum or literal mismatch. */
function explain(issue: Issue, input: unknown): Issue {
  if (issue.code !== "invalid_value" || issue.values.length === 0) return issue;
  const allowed = issue.values.map((v) => (typeof v === "string" ? v : shown(v)));
  const expected = allowed.length === 1 ? `expected ${allowed[0]}` : `expected one of ${allowed.join(", ")}`;
  const got = valueAt(input, issue.path as PropertyKey[]);
  return { ...issue, message: got.present ? `${expected} (got ${shown(got.value)})` : `required: ${expected}` };
}

function locate(issue: Issue, doc: ReturnType<typeof parseDocument>, at: (o: number | undefined) => { line: number; column: number }): PolicyProblem {
  // An unknown key is reported at the key itself, not at the mapping that holds it.
  const path = [...(issue.path as PropertyKey[])];
  if (issue.code === "unrecognized_keys" && issue.keys.length > 0) {
    const map = (path.length === 0 ? doc.contents : doc.getIn(path as unknown[], true)) as
      | { items?: { key: { value?: unknown; range?: [number, number, number] } }[] }
      | undefined;
    const pair = map?.items?.find((it) => it.key?.value === issue.keys[0]);
    if (pair?.key?.range) {
      return { path: formatYamlPath([...path, issue.keys[0] as string]), ...at(pair.key.range[0]), message: issue.message };
    }
  }
  // Walk up the path until a node exists: a missing key is reported at its parent.
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n) as unknown[], true);
    const range = (node as { range?: [number, number, number] } | undefined)?.range;
    if (range) return { path: formatYamlPath(path), ...at(range[0]), message: issue.message };
  }
  return { path: formatYamlPath(path), line: 1, column: 1, message: issue.message };
}

function normalize(p: PolicyFile): PolicyFile {
  const groups = Object.fromEntries(Object.entries(p.groups).map(([k, v]) => [k, v.map(normalizePrincipal)]));
  const rules = p.rules.map((r) =>
    r.approvers ? { ...r, approvers: r.approvers.map((a) => (Object.hasOwn(groups, a) || a === "*" ? a : normalizePrincipal(a))) } : r,
  );
  return { ...p, groups, rules };
}

export function loadPolicyFile(file: string): PolicyFile {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new PolicyError(file, [{ path: "", line: 0, column: 0, message: `cannot read file: ${(e as Error).message}` }]);
  }
  return parsePolicy(text, file);
}
