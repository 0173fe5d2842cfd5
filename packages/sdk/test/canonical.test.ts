import * as core from "@countersign/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canonicalJson, paramsSha256, sha256Hex, toWireParams } from "../src/canonical.ts";

// The SDK reimplements canonical JSON so it does not depend on the server's packages at
// run time. Receipts only verify if both produce the same bytes for the same params.

const tricky: [string, unknown][] = [
  ["key order by UTF-16 code units", { a: 1, B: 2, é: 3, z: 4, _: 5, "1": 6, "": 7 }],
  ["astral keys sort by surrogates", { "\uFFFF": "max-bmp", "\u{1F600}": "emoji", "\uE000": "private" }],
  ["nested objects in arrays", { outer: [{ d: 1, c: 2 }, { b: { y: 1, x: 2 } }, [], {}] }],
  ["undefined members and array holes", { a: undefined, b: null, c: [1, undefined, 3] }],
  ["numbers", { n: [0, -0, 1e21, 1e-7, -2.5, 123456789012345680000, 0.1 + 0.2, Number.MAX_SAFE_INTEGER, 5e-324] }],
  ["escapes", { s: 'quote " backslash \\ slash / tab \t nl \n cr \r nul \u0000 del \u007f ls \u2028 ps \u2029' }],
  ["lone surrogates", { hi: "\uD800", lo: "\uDC00x", pair: "\uD83D\uDE00" }],
  ["non-ASCII text", { greek: "Ωμέγα", cjk: "漢字", rtl: "مرحبا", combining: "e\u0301" }],
  ["dates", { at: new Date("2026-11-21T16:32:26.689Z") }],
  ["deep nesting", { l1: { l2: { l3: { l4: { l5: [{ l6: { z: true, a: false } }] } } } } }],
  ["empty", {}],
  ["prototype-looking keys", JSON.parse('{"__proto__": {"x": 1}, "constructor": "c", "toString": 2}')],
];

describe("SDK canonical JSON matches the gateway's byte for byte", () => {
  it.each(tricky)("%s", async (_name, value) => {
    expect(canonicalJson(value)).toBe(core.canonicalJson(value));
    expect(await sha256Hex(canonicalJson(value))).toBe(core.canonicalSha256(value));
  });

  it("for arbitrary JSON values (property test)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), async (v) => {
        expect(canonicalJson(v)).toBe(core.canonicalJson(v));
        expect(await sha256Hex(canonicalJson(v))).toBe(core.canonicalSha256(v));
      }),
      { numRuns: 150 },
    );
  });

  it("for arbitrary objects with unicode keys and values (property test)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.dictionary(fc.string({ unit: "binary" }), fc.jsonValue({ maxDepth: 2 })), async (v) => {
        expect(await paramsSha256(v)).toBe(core.canonicalSha256(JSON.parse(JSON.stringify(v))));
      }),
      { numRuns: 60 },
    );
  });

  it("refuses what the gateway refuses", () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, 10n, () => 1, Symbol("s")]) {
      expect(() => core.canonicalJson({ v: bad })).toThrow(TypeError);
      expect(() => canonicalJson({ v: bad })).toThrow(TypeError);
    }
  });
});

describe("params on the wire", () => {
  it("hashes what the gateway will see: a JSON round trip", async () => {
    class Money {
      constructor(readonly cents: number) {}
      toJSON() {
        return `${this.cents / 100} EUR`;
      }
    }
    const params = { amount: new Money(1250), at: new Date("2026-01-02T03:04:05.000Z"), skip: undefined, nan: Number.NaN };
    const wire = toWireParams(params);
    expect(wire).toEqual({ amount: "12.5 EUR", at: "2026-01-02T03:04:05.000Z", nan: null });
    expect(await paramsSha256(params)).toBe(core.canonicalSha256(wire));
  });

  it("accepts only a plain object", () => {
    expect(toWireParams(undefined)).toEqual({});
    for (const bad of [null, [], [1], "x", 1, true]) expect(() => toWireParams(bad)).toThrow(/plain JSON object/);
  });
});
