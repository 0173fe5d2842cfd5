import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AuditEventBody, type AuditEventRecord, auditHash, GENESIS_HASH } from "@countersign/core";
import { afterAll, describe, expect, it } from "vitest";
import { verifyExportFile } from "./audit-file.ts";
import { CliError } from "./errors.ts";

const dir = mkdtempSync(join(tmpdir(), "countersign-audit-file-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileCount = 0;
function writeExport(lines: string[], eol = "\n"): string {
  const file = join(dir, `export-${++fileCount}.jsonl`);
  writeFileSync(file, lines.join(eol) + eol);
  return file;
}

function record(seq: number, prevHash: string, data: unknown = { n: seq }): AuditEventRecord {
  const body: AuditEventBody = {
    seq,
    at: `2025-01-0${seq}T00:00:00.000Z`,
    type: seq === 1 ? "request.created" : "request.approved",
    requestId: "req_1",
    actor: { type: "agent", principal: "ops@example.com", surface: seq === 1 ? null : "slack", surfaceUserId: seq === 1 ? null : "U123" },
    data,
    prevHash,
  };
  return { ...body, hash: auditHash(body) };
}

const first = record(1, GENESIS_HASH);
const second = record(2, first.hash);
const chain = [first, second].map((e) => JSON.stringify(e));
const line1 = JSON.stringify(first);

async function failure(file: string): Promise<string> {
  const e = await verifyExportFile(file, () => {}).then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(CliError);
  return (e as CliError).message;
}

describe("verifyExportFile: good files", () => {
  it("verifies a 2-event chain and reports progress per event", async () => {
    const seen: number[] = [];
    await expect(verifyExportFile(writeExport(chain), (n) => seen.push(n))).resolves.toEqual({ ok: true, count: 2, lastSeq: 2 });
    expect(seen).toEqual([1, 2]);
  });

  it("skips blank lines and accepts CRLF line ends and a leading BOM", async () => {
    await expect(verifyExportFile(writeExport(["", chain[0]!, "   ", "\t", chain[1]!, ""], "\r\n"), () => {})).resolves.toEqual({
      ok: true,
      count: 2,
      lastSeq: 2,
    });
    await expect(verifyExportFile(writeExport([`\uFEFF${chain[0]}`, chain[1]!]), () => {})).resolves.toEqual({ ok: true, count: 2, lastSeq: 2 });
  });

  it("verifies an empty file as an empty chain", async () => {
    const file = join(dir, "empty.jsonl");
    writeFileSync(file, "");
    await expect(verifyExportFile(file, () => {})).resolves.toEqual({ ok: true, count: 0, lastSeq: null });
  });
});

describe("verifyExportFile: chain problems are verdicts, not errors", () => {
  it("names an edited event and stops there, without reading further lines", async () => {
    const edited = JSON.stringify({ ...second, data: { n: 99 } });
    const seen: number[] = [];
    const v = await verifyExportFile(writeExport([chain[0]!, edited, "not json at all", "null"]), (n) => seen.push(n));
    expect(v).toEqual({ ok: false, count: 2, lastSeq: 1, firstBad: { seq: 2, problem: "edited", detail: "its content does not match its hash" } });
    expect(seen).toEqual([1, 2]);
  });

  it("counts an extra field as an edit (the line is hashed as written)", async () => {
    const v = await verifyExportFile(writeExport([chain[0]!, JSON.stringify({ ...second, approvedBy: "ceo@example.com" })]), () => {});
    expect(v).toMatchObject({ ok: false, firstBad: { seq: 2, problem: "edited" } });
  });

  it("names a deleted event", async () => {
    const third = record(3, second.hash);
    const v = await verifyExportFile(writeExport([chain[0]!, JSON.stringify(third)]), () => {});
    expect(v).toMatchObject({ ok: false, count: 2, lastSeq: 1, firstBad: { seq: 3, problem: "deleted_or_reordered" } });
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
    ["null", "expected an audit event object, got null"],
    ["[]", "expected an audit event object, got an array"],
    ['"x"', "expected an audit event object, got a string"],
    ["42", "expected an audit event object, got a number"],
    ["true", "expected an audit event object, got a boolean"],
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
    expect(await failure(file)).toBe(`${file}:5: expected an audit event object, got null`);
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
