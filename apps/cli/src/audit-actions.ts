import { appendFileSync, createWriteStream, readFileSync } from "node:fs";
import { type CheckpointRecord, type LogFinding, type LogVerdict, parseStrictJson } from "@countersign/core";
import { type AdminOps, checkpointSignatureVerifier } from "@countersign/services";
import type { JSONWebKeySet } from "jose";
import { readProblem, verifyExportFile } from "./audit-file.ts";
import { CliError } from "./errors.ts";
import { print, progress } from "./output.ts";

export type WithAdmin = <T>(fn: (ops: AdminOps) => Promise<T>) => Promise<T>;

/** What `audit anchor` keeps: enough to recognise the checkpoint and to re-check its signature. */
function anchorLine(c: CheckpointRecord): string {
  return JSON.stringify({ seq: c.seq, hash: c.hash, cumulativeSize: c.cumulativeSize, rootHash: c.rootHash, sealedAt: c.sealedAt, kid: c.kid, jws: c.jws });
}

function readFileOr(file: string, what: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw new CliError(`cannot read ${what} ${file}: ${readProblem(e)}`);
  }
}

/** Anchors from a file `audit anchor --append` wrote: one JSON object per line, each with seq and hash. */
export function readAnchors(file: string): { seq: number; hash: string }[] {
  const out: { seq: number; hash: string }[] = [];
  for (const [i, line] of readFileOr(file, "anchor file").split("\n").entries()) {
    if (!line.trim()) continue;
    const p = parseStrictJson(line);
    const v = p.ok ? (p.value as { seq?: unknown; hash?: unknown }) : null;
    if (!v || typeof v !== "object" || !Number.isInteger(v.seq) || (v.seq as number) < 1 || typeof v.hash !== "string" || !/^[0-9a-f]{64}$/.test(v.hash)) {
      throw new CliError(`${file}:${i + 1}: not an anchor (expected a JSON object with "seq" and a 64-hex "hash", as \`audit anchor\` writes)`);
    }
    out.push({ seq: v.seq as number, hash: v.hash });
  }
  if (out.length === 0) throw new CliError(`${file}: holds no anchors`);
  return out;
}

async function loadJwks(source: string): Promise<JSONWebKeySet> {
  let text: string;
  if (/^https?:\/\//.test(source)) {
    const r = await fetch(source).catch((e: Error) => {
      throw new CliError(`cannot fetch --jwks ${source}: ${e.message}`);
    });
    if (!r.ok) throw new CliError(`cannot fetch --jwks ${source}: HTTP ${r.status}`);
    text = await r.text();
  } else {
    text = readFileOr(source, "--jwks");
  }
  const p = parseStrictJson(text);
  const keys = p.ok ? (p.value as { keys?: unknown }).keys : undefined;
  if (!Array.isArray(keys)) throw new CliError(`--jwks ${source}: not a JSON Web Key Set (expected {"keys": [...]})`);
  return { keys } as JSONWebKeySet;
}

function describeFinding(b: LogFinding): string {
  const where = b.event !== undefined ? `event seq ${b.event}` : b.checkpoint !== undefined ? `checkpoint ${b.checkpoint}` : `request ${b.requestId}`;
  return `${where}: ${b.problem} (${b.detail})`;
}

function summary(v: LogVerdict): string {
  const last = v.lastCheckpoint ? `, last checkpoint ${v.lastCheckpoint.seq} (${v.lastCheckpoint.hash.slice(0, 16)}…)` : "";
  return `audit log ok: ${v.events} events in ${v.checkpoints} checkpoints, ${v.unsealed} not sealed yet${last}`;
}

const ageArg = (value: string): number => {
  const m = /^(\d+)(ms|s|m)?$/.exec(value);
  if (!m) throw new CliError(`--max-unsealed-age must be a duration such as 60s or 5m, got "${value}"`);
  return Number(m[1]) * (m[2] === "m" ? 60_000 : m[2] === "ms" ? 1 : 1000);
};

export async function auditExport(o: { since: string; out?: string }, withAdmin: WithAdmin): Promise<void> {
  const since = /^\d+$/.test(o.since) ? Number(o.since) : Number.NaN;
  if (!Number.isSafeInteger(since)) throw new CliError(`--since must be a checkpoint number, got "${o.since}"`);
  let out: NodeJS.WritableStream = process.stdout;
  if (o.out) {
    const file = createWriteStream(o.out);
    await new Promise<void>((ok, fail) => {
      file.once("open", () => ok());
      file.once("error", (e) => fail(new CliError(`cannot write ${o.out}: ${e.message}`)));
    });
    out = file;
  }
  // No progress line on a terminal that is also receiving the events themselves.
  const bar = progress("exported", { enabled: Boolean(o.out) || !process.stdout.isTTY });
  await withAdmin(async (ops) => {
    let n = 0;
    for await (const e of ops.exportAudit(since)) {
      if (!out.write(`${JSON.stringify(e)}\n`)) await new Promise<void>((r) => out.once("drain", () => r()));
      if (!("object" in e)) bar.tick(++n);
    }
    bar.done(n);
  });
  if (o.out) await new Promise<void>((r) => out.end(() => r()));
}

export async function auditAnchor(o: { append?: string; post?: string; json?: boolean }, withAdmin: WithAdmin): Promise<void> {
  const c = await withAdmin((ops) => ops.latestCheckpoint());
  if (!c) throw new CliError("no checkpoint yet: the gateway seals events about a second after they are written; start it and try again");
  const line = anchorLine(c);
  if (o.append) {
    try {
      appendFileSync(o.append, `${line}\n`);
    } catch (e) {
      throw new CliError(`cannot append to ${o.append}: ${(e as Error).message}`);
    }
  }
  if (o.post) {
    let r: Response;
    try {
      r = await fetch(o.post, { method: "POST", headers: { "content-type": "application/json" }, body: line });
    } catch (e) {
      throw new CliError(`cannot POST the anchor to ${o.post}: ${(e as Error).message}`);
    }
    if (!r.ok) throw new CliError(`POST ${o.post} answered HTTP ${r.status}; the anchor was not kept there`);
  }
  print((o.append || o.post) && !o.json ? `anchored checkpoint ${c.seq} (${c.cumulativeSize} events, ${c.hash})` : line);
}

export async function auditVerify(
  o: { file?: string; jwks?: string; anchor?: string; tail?: boolean; maxUnsealedAge: string; json?: boolean },
  withAdmin: WithAdmin,
  localJwks: () => Promise<JSONWebKeySet>,
): Promise<void> {
  const maxUnsealedAgeMs = ageArg(o.maxUnsealedAge);
  const anchors = o.anchor ? readAnchors(o.anchor) : undefined;
  const jwks = o.jwks ? await loadJwks(o.jwks) : undefined;
  const bar = progress("verified");
  let verdict: LogVerdict;
  if (o.file) {
    const keys = jwks ?? (await localJwks());
    // Only a file that holds a checkpoint needs keys; say so when the first one comes.
    const verifySignature =
      keys.keys.length > 0
        ? checkpointSignatureVerifier(keys)
        : () =>
            Promise.reject(new CliError("no keys to check checkpoint signatures with: pass --jwks (the gateway's /.well-known/jwks.json, saved or as a URL)"));
    verdict = await verifyExportFile(o.file, { verifySignature, maxUnsealedAgeMs, tail: Boolean(o.tail), anchors: anchors ?? [] }, (n) => bar.tick(n));
  } else {
    if (o.tail) throw new CliError("--tail applies only to --file");
    verdict = await withAdmin((ops) => ops.verifyAudit({ onProgress: (n) => bar.tick(n), maxUnsealedAgeMs, anchors, jwks }));
  }
  bar.done(verdict.events);
  if (o.json) print(verdict);
  else if (verdict.ok) print(`${summary(verdict)}${anchors ? `; it extends all ${anchors.length} anchored checkpoint(s)` : ""}`);
  if (!verdict.ok && verdict.firstBad) throw new CliError(`audit log broken at ${describeFinding(verdict.firstBad)}`);
}
