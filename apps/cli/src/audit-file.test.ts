import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AuditEventRecord, GENESIS_HASH, type LogVerifierOptions } from "@countersign/core";
import { TestLog } from "@countersign/core/testing";
import { afterAll, describe, expect, it } from "vitest";
import { verifyExportFile as verifyWith } from "./audit-file.ts";
import { CliError } from "./errors.ts";

const dir = mkdtempSync(join(tmpdir(), "countersign-audit-file-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileCount = 0;
function writeExport(lines: string[], eol = "\n"): string {
  const file = join(dir, `export-${++fileCount}.jsonl`);
  writeFileSync(file, lines.join(eol) + eol);
  return file;
}

/** A request approved in Slack: two events sealed in one checkpoint, then one unsealed. */
function sampleLog(): TestLog {
  const log = new TestLog();
  log.append({ requestId: "req_1", type: "request.created", actor: { type: "agent", principal: "ops@example.com", surface: "api", surfaceUserId: "key_1" } });
  log.append({
    requestId: "req_1",
    type: "request.approved",
    actor: { type: "reviewer", principal: "carol@example.com", surface: "slack", surfaceUserId: "U123" },
  });
  log.seal();
  log.append({ requestId: "req_1", type: "receipt.redeemed" });
  return log;
}

const log = sampleLog();
const lines = log.exportLines();
const first = log.events[0] as AuditEventRecord;
const line1 = JSON.stringify(first);
const opts = (o: Partial<LogVerifierOptions> = {}): LogVerifierOptions => ({ verifySignature: log.signer.verify, maxUnsealedAgeMs: 60_000, ...o });
const verifyExportFile = (file: string, progress: (n: number) => void, o: Partial<LogVerifierOptions> = {}) => verifyWith(file, opts(o), progress);

async function failure(file: string): Promise<string> {
  const e = await verifyExportFile(file, () => {}).then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(CliError);
  return (e as CliError).message;
}

describe("verifyExportFile: good files", () => {
  it("verifies events and checkpoints, and reports progress per event", async () => {
    const seen: number[] = [];
    await expect(verifyExportFile(writeExport(lines), (n) => seen.push(n))).resolves.toMatchObject({ ok: true, events: 3, checkpoints: 1, unsealed: 1 });
    expect(seen).toEqual([1, 2, 3]);
  });

  it("skips blank lines and accepts CRLF line ends and a leading BOM", async () => {
    const [a, b, c, d] = lines as [string, string, string, string];
    await expect(verifyExportFile(writeExport(["", a, "   ", "\t", b, c, "", d], "\r\n"), () => {})).resolves.toMatchObject({ ok: true, events: 3 });
    await expect(verifyExportFile(writeExport([`\uFEFF${a}`, b, c, d]), () => {})).resolves.toMatchObject({ ok: true, events: 3 });
  });

  it("verifies an empty file as an empty log", async () => {
    const file = join(dir, "empty.jsonl");
    writeFileSync(file, "");
    await expect(verifyExportFile(file, () => {})).resolves.toEqual({ ok: true, events: 0, checkpoints: 0, unsealed: 0, lastCheckpoint: null });
  });
});

describe("verifyExportFile: log problems are verdicts, not errors", () => {
  it("names an edited event and stops there, without reading further lines", async () => {
    const edited = JSON.stringify({ ...first, data: { n: 99 } });
    const v = await verifyExportFile(writeExport([edited, lines[1]!, lines[2]!, "not json at all"]), () => {});
    expect(v).toMatchObject({ ok: false, firstBad: { event: first.seq, problem: "edited", detail: "its content does not match its hash" } });
  });

  it("names a deleted event", async () => {
    const v = await verifyExportFile(writeExport([lines[1]!, lines[2]!, lines[3]!]), () => {});
    expect(v).toMatchObject({ ok: false, firstBad: { problem: "deleted" } });
  });

  it("names an event moved in front of a checkpoint that does not seal it", async () => {
    const v = await verifyExportFile(writeExport([lines[0]!, lines[1]!, lines[3]!, lines[2]!]), () => {});
    expect(v).toMatchObject({ ok: false, firstBad: { problem: "reordered", event: log.events[2]?.seq } });
  });

  it("names a checkpoint signed by a key it was not told to trust", async () => {
    const other = new TestLog();
    const v = await verifyExportFile(writeExport(lines), () => {}, { verifySignature: other.signer.verify });
    expect(v).toMatchObject({ ok: false, firstBad: { problem: "bad_signature", checkpoint: 1 } });
  });

  it("names a truncated export against an anchor", async () => {
    const anchors = [{ seq: 1, hash: log.checkpoints[0]!.hash }];
    // Cut cleanly at the start: nothing left claims the checkpoint, so only the anchor shows the loss.
    const v = await verifyExportFile(writeExport([]), () => {}, { anchors });
    expect(v).toMatchObject({ ok: false, firstBad: { problem: "deleted", checkpoint: 1 } });
    await expect(verifyExportFile(writeExport(lines), () => {}, { anchors })).resolves.toMatchObject({ ok: true });
  });
});

describe("verifyExportFile: a line that is not an audit event names the line and the problem", () => {
  const without = (key: keyof AuditEventRecord) => {
    const { [key]: _, ...rest } = first;
    return JSON.stringify(rest);
  };
  const withField = (patch: Record<string, unknown>) => JSON.stringify({ ...first, ...patch });

  it.each([
    ["{}", 'missing "seq"'],
    ["null", "expected an audit event or checkpoint object, got null"],
    ["[]", "expected an audit event or checkpoint object, got an array"],
    ['"x"', "expected an audit event or checkpoint object, got a string"],
    ["42", "expected an audit event or checkpoint object, got a number"],
    ["true", "expected an audit event or checkpoint object, got a boolean"],
    ['{"seq":1,', "not valid JSON"],
    ["{'seq':1}", "not valid JSON"],
    [withField({ hash: first.hash.slice(0, 63) }), '"hash" must be 64 lowercase hex characters'],
    [withField({ hash: first.hash.toUpperCase() }), '"hash" must be 64 lowercase hex characters'],
    [withField({ hash: 7 }), '"hash" must be 64 lowercase hex characters'],
    [withField({ prevHash: `${GENESIS_HASH}0` }), '"prevHash" must be 64 lowercase hex characters'],
    [without("hash"), 'missing "hash"'],
    [without("data"), 'missing "data"'],
    [without("at"), 'missing "at"'],
    [withField({ seq: 0 }), '"seq" must be a positive integer'],
    [withField({ seq: 1.5 }), '"seq" must be a positive integer'],
    [withField({ seq: "1" }), '"seq" must be a positive integer'],
    [withField({ at: null }), '"at" must be a string'],
    [withField({ type: 3 }), '"type" must be a string'],
    [withField({ requestId: 5 }), '"requestId" must be a string or null'],
    [withField({ actor: null }), '"actor" must be an object'],
    [withField({ actor: [] }), '"actor" must be an object'],
    [withField({ actor: { type: "agent", principal: null, surface: null } }), 'missing "actor.surfaceUserId"'],
    [withField({ actor: { type: "agent", principal: 1, surface: null, surfaceUserId: null } }), '"actor.principal" must be a string or null'],
    [withField({ actor: { principal: null, surface: null, surfaceUserId: null } }), 'missing "actor.type"'],
    [withField({ approvedBy: "ceo@example.com" }), 'unknown field "approvedBy"'],
    [withField({ v: 3 }), '"v" must be 1 or 2'],
    [withField({ index: -1 }), '"index" must be a non-negative integer'],
    [withField({ sealedIn: "1" }), '"sealedIn" must be a positive integer or null'],
    [JSON.stringify({ ...log.checkpoints[0], object: "checkpoint", rootHash: "x" }), '"rootHash" must be 64 lowercase hex characters'],
    [JSON.stringify({ ...log.checkpoints[0], object: "checkpoint", extra: 1 }), 'unknown field "extra"'],
  ])("%s → %s", async (line, problem) => {
    // Line 1 is a good event and line 2 is blank: the bad line is line 3.
    const file = writeExport([line1, "", line]);
    expect(await failure(file)).toBe(`${file}:3: ${problem}`);
  });

  it("reports the first problem in field order", async () => {
    const file = writeExport([JSON.stringify({ hash: "x", seq: -1 })]);
    expect(await failure(file)).toBe(`${file}:1: "seq" must be a positive integer`);
  });

  it("counts blank lines, including CRLF ones, in the line number", async () => {
    const file = writeExport(["", "", line1, "  ", "null"], "\r\n");
    expect(await failure(file)).toBe(`${file}:5: expected an audit event or checkpoint object, got null`);
  });
});

describe("verifyExportFile: unreadable files", () => {
  it("says so for a missing file", async () => {
    const file = join(dir, "does-not-exist.jsonl");
    expect(await failure(file)).toBe(`cannot read ${file}: no such file`);
  });

  it("says so for a directory", async () => {
    expect(await failure(dir)).toBe(`cannot read ${dir}: is a directory`);
  });
});
