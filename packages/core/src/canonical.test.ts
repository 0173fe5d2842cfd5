import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { canonicalJson, canonicalSha256, sha256Hex } from "./canonical.ts";

describe("canonicalJson: objects", () => {
  it("sorts keys and emits no whitespace", () => {
    expect(canonicalJson({ b: 1, a: 2, c: { z: true, y: null } })).toBe('{"a":2,"b":1,"c":{"y":null,"z":true}}');
  });

  it("sorts nested keys at every depth, including inside arrays", () => {
    expect(canonicalJson({ outer: [{ d: 1, c: 2 }, { b: { y: 1, x: 2 } }] })).toBe('{"outer":[{"c":2,"d":1},{"b":{"x":2,"y":1}}]}');
  });

  it("sorts by UTF-16 code units: uppercase before lowercase, ASCII before Latin-1", () => {
    expect(canonicalJson({ a: 1, B: 2, é: 3, z: 4, _: 5, "1": 6 })).toBe('{"1":6,"B":2,"_":5,"a":1,"z":4,"é":3}');
  });

  it("sorts astral-plane keys by their surrogates, not by code point (RFC 8785)", () => {
    // U+1F600 is D83D DE00 in UTF-16, so it sorts before U+FFFF even though its code point is larger.
    const s = canonicalJson({ "\uFFFF": "max-bmp", "\u{1F600}": "emoji", "\uE000": "private" });
    expect(s).toBe('{"\u{1F600}":"emoji","\uE000":"private","\uFFFF":"max-bmp"}');
  });

  it("is stable under key insertion order", () => {
    const a: Record<string, unknown> = {};
    a.zeta = 1;
    a.alpha = { two: 2, one: 1 };
    a.mid = [3, 2, 1];
    const b: Record<string, unknown> = {};
    b.mid = [3, 2, 1];
    b.alpha = { one: 1, two: 2 };
    b.zeta = 1;
    expect(JSON.stringify(a)).not.toBe(JSON.stringify(b));
    expect(canonicalJson(a)).toBe(canonicalJson(b));
    expect(canonicalSha256(a)).toBe(canonicalSha256(b));
  });

  it("drops undefined members but keeps null", () => {
    expect(canonicalJson({ a: undefined, b: null, c: 1 })).toBe('{"b":null,"c":1}');
    expect(canonicalJson({ a: undefined })).toBe("{}");
    expect(canonicalJson({ a: 1, b: undefined })).toBe(canonicalJson({ a: 1 }));
  });

  it("empty object and array", () => {
    expect(canonicalJson({})).toBe("{}");
    expect(canonicalJson([])).toBe("[]");
  });

  it("round-trips through JSON.parse to an equal value", () => {
    const v = { s: "x\ny", n: [1, -2.5, 0], o: { t: true, f: false, z: null } };
    expect(JSON.parse(canonicalJson(v))).toEqual(v);
  });
});

describe("canonicalJson: arrays, scalars and special values", () => {
  it("keeps array order", () => {
    expect(canonicalJson([3, 1, 2, "b", "a"])).toBe('[3,1,2,"b","a"]');
  });

  it("encodes undefined array elements as null, as JSON.stringify does", () => {
    expect(canonicalJson([1, undefined, 3])).toBe("[1,null,3]");
  });

  it("scalars", () => {
    expect(canonicalJson(null)).toBe("null");
    expect(canonicalJson(true)).toBe("true");
    expect(canonicalJson(false)).toBe("false");
    expect(canonicalJson(0)).toBe("0");
    expect(canonicalJson(-0)).toBe("0");
    expect(canonicalJson(42)).toBe("42");
    expect(canonicalJson(-1.5)).toBe("-1.5");
    expect(canonicalJson(1e21)).toBe("1e+21");
  });

  it("Dates become ISO-8601 UTC strings, also when nested", () => {
    const d = new Date(Date.UTC(2024, 1, 29, 13, 5, 9, 7));
    expect(canonicalJson(d)).toBe('"2024-02-29T13:05:09.007Z"');
    expect(canonicalJson({ at: d })).toBe('{"at":"2024-02-29T13:05:09.007Z"}');
  });

  it.each([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY])("throws on non-finite %s, also nested", (n) => {
    expect(() => canonicalJson(n)).toThrow(TypeError);
    expect(() => canonicalJson({ a: { b: [1, n] } })).toThrow(/non-finite/);
  });

  it.each([
    ["bigint", 1n],
    ["function", () => 1],
    ["symbol", Symbol("s")],
  ])("throws on a %s", (_name, v) => {
    expect(() => canonicalJson(v)).toThrow(TypeError);
    expect(() => canonicalJson({ v })).toThrow(TypeError);
  });

  it("top-level undefined is not encodable", () => {
    expect(() => canonicalJson(undefined)).toThrow(TypeError);
  });
});

describe("canonicalJson: strings", () => {
  it("escapes quotes, backslashes and control characters", () => {
    expect(canonicalJson('a"b\\c')).toBe(String.raw`"a\"b\\c"`);
    expect(canonicalJson("line1\nline2\t\r")).toBe(String.raw`"line1\nline2\t\r"`);
    expect(canonicalJson("\u0001\u001f")).toBe(String.raw`"\u0001\u001f"`);
  });

  it("leaves non-ASCII characters unescaped (UTF-8 on the wire)", () => {
    expect(canonicalJson("héllo wörld ✓ 😀")).toBe('"héllo wörld ✓ 😀"');
    expect(canonicalJson("/")).toBe('"/"');
  });

  it("escapes lone surrogates so the output is valid UTF-8", () => {
    expect(canonicalJson("\uD800")).toBe(String.raw`"\ud800"`);
  });

  it("escapes keys the same way as values", () => {
    expect(canonicalJson({ 'k"\n': "v" })).toBe(String.raw`{"k\"\n":"v"}`);
  });
});

describe("sha256Hex / canonicalSha256", () => {
  it("known vectors", () => {
    expect(sha256Hex("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(sha256Hex("")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  });

  it("hashes strings as UTF-8 and equals hashing the same bytes", () => {
    expect(sha256Hex(new Uint8Array([0x61, 0x62, 0x63]))).toBe(sha256Hex("abc"));
    expect(sha256Hex("é")).toBe(sha256Hex(new Uint8Array([0xc3, 0xa9])));
  });

  it("canonicalSha256 is sha256 of the canonical JSON", () => {
    const v = { b: [1, "é"], a: null };
    expect(canonicalJson(v)).toBe('{"a":null,"b":[1,"é"]}');
    const expected = createHash("sha256").update(Buffer.from('{"a":null,"b":[1,"é"]}', "utf8")).digest("hex");
    expect(canonicalSha256(v)).toBe(expected);
    expect(canonicalSha256(v)).toMatch(/^[0-9a-f]{64}$/);
  });

  it("different values give different hashes", () => {
    expect(canonicalSha256({ a: 1 })).not.toBe(canonicalSha256({ a: 2 }));
    expect(canonicalSha256([1, 2])).not.toBe(canonicalSha256([2, 1]));
  });
});
