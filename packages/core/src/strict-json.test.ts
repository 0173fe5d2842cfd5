import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isUtf8Charset, MAX_DEPTH, parseStrictJson } from "./strict-json.ts";

const MALFORMED = { ok: false, path: "", message: "malformed JSON" };

function jsonParses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

const FORBIDDEN = new Set(["__proto__", "constructor", "prototype"]);

function hasForbiddenKey(v: unknown): boolean {
  if (Array.isArray(v)) return v.some(hasForbiddenKey);
  if (v !== null && typeof v === "object") return Object.entries(v).some(([k, x]) => FORBIDDEN.has(k) || hasForbiddenKey(x));
  return false;
}

/** Every UTF-16 code unit of `s` as a \uXXXX escape (so an astral character becomes a surrogate pair). */
function escapeAll(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) out += `\\u${s.charCodeAt(i).toString(16).padStart(4, "0")}`;
  return out;
}

describe("parseStrictJson: refusals", () => {
  it.each([
    ["duplicate at the root", '{"decision":"approve","decision":"deny"}', "decision", 'duplicate key "decision"'],
    ["duplicate after unescaping", '{"decision":"approve","dec\\u0069sion":"deny"}', "decision", 'duplicate key "decision"'],
    ["duplicate with escaped first occurrence", '{"\\u0064ecision":1,"decision":2}', "decision", 'duplicate key "decision"'],
    ["duplicate deep in arrays", '{"params":{"items":[{},{},{"name":"a","name":"b"}]}}', "params.items[2].name", 'duplicate key "name"'],
    ["duplicate in an array at the root", '[1,{"a":1,"a":1}]', "[1].a", 'duplicate key "a"'],
    ["duplicate in a nested array", '{"m":[[0],[1,{"x":0,"y":0,"x":0}]]}', "m[1][1].x", 'duplicate key "x"'],
    ["duplicate empty key", '{"":1,"":2}', "", 'duplicate key ""'],
    ["duplicate with whitespace around", ' { "a" : 1 ,\n "a" : 1 } ', "a", 'duplicate key "a"'],
    ["duplicate with a quote in the key", '{"a\\"b":1,"a\\"b":2}', 'a"b', 'duplicate key "a\\"b"'],
    ["__proto__ in metadata", '{"metadata":{"__proto__":"x"}}', "metadata.__proto__", 'key "__proto__" is not allowed'],
    ["__proto__ at the root", '{"__proto__":{"admin":true}}', "__proto__", 'key "__proto__" is not allowed'],
    ["escaped __proto__", '{"__pro\\u0074o__":1}', "__proto__", 'key "__proto__" is not allowed'],
    ["fully escaped __proto__", `{"${escapeAll("__proto__")}":1}`, "__proto__", 'key "__proto__" is not allowed'],
    ["constructor", '{"a":[{"constructor":{"prototype":1}}]}', "a[0].constructor", 'key "constructor" is not allowed'],
    ["prototype", '{"x":{"prototype":null}}', "x.prototype", 'key "prototype" is not allowed'],
    ["the first refusal in text order wins", '{"a":{"b":1,"b":2},"a":3,"__proto__":1}', "a.b", 'duplicate key "b"'],
    ["forbidden key before a duplicate", '{"constructor":1,"a":1,"a":2}', "constructor", 'key "constructor" is not allowed'],
  ])("%s", (_name, text, path, message) => {
    expect(parseStrictJson(text)).toEqual({ ok: false, path, message });
  });

  it("only refuses keys named exactly like prototype members", () => {
    const text = '{"__proto":1,"_proto__":2,"Constructor":3,"prototypes":4,"toString":5,"hasOwnProperty":6,"__defineGetter__":7}';
    expect(parseStrictJson(text)).toEqual({ ok: true, value: JSON.parse(text) });
  });

  it("treats prototype-named strings as ordinary values", () => {
    expect(parseStrictJson('{"a":"__proto__","b":["constructor"]}')).toEqual({ ok: true, value: { a: "__proto__", b: ["constructor"] } });
  });
});

describe("parseStrictJson: nesting depth", () => {
  const nested = (n: number) => "[".repeat(n) + "]".repeat(n);

  it(`accepts ${MAX_DEPTH} levels`, () => {
    expect(parseStrictJson(nested(64))).toEqual({ ok: true, value: JSON.parse(nested(64)) });
    const objects = '{"a":'.repeat(63) + "{}" + "}".repeat(63);
    expect(parseStrictJson(objects)).toEqual({ ok: true, value: JSON.parse(objects) });
  });

  it("refuses the 65th level, at its path", () => {
    expect(parseStrictJson(nested(65))).toEqual({ ok: false, path: "[0]".repeat(64), message: "nested too deeply" });
    const objects = '{"a":'.repeat(64) + "{}" + "}".repeat(64);
    expect(parseStrictJson(objects)).toEqual({ ok: false, path: Array(64).fill("a").join("."), message: "nested too deeply" });
    const mixed = '{"k":[' + nested(63) + "]}";
    expect(parseStrictJson(mixed)).toEqual({ ok: false, path: "k" + "[0]".repeat(63), message: "nested too deeply" });
  });

  it("refuses nesting as deep as a whole 64 KB body without overflowing the stack", () => {
    expect(parseStrictJson(nested(32_768))).toMatchObject({ ok: false, message: "nested too deeply" });
    expect(parseStrictJson('{"a":'.repeat(100_000) + "1" + "}".repeat(100_000))).toMatchObject({ ok: false, message: "nested too deeply" });
  });

  it("still checks the syntax of what is too deep: a syntax error wins", () => {
    expect(parseStrictJson(nested(100) + "]")).toEqual(MALFORMED);
    expect(parseStrictJson("[".repeat(100) + "]".repeat(99))).toEqual(MALFORMED);
    expect(parseStrictJson(`${"[".repeat(70)}{"a" 1}${"]".repeat(70)}`)).toEqual(MALFORMED);
    expect(parseStrictJson(`${"[".repeat(70)}[1,]${"]".repeat(70)}`)).toEqual(MALFORMED);
    expect(parseStrictJson(`${"[".repeat(70)}{"a":1,}${"]".repeat(70)}`)).toEqual(MALFORMED);
    expect(parseStrictJson(`${"[".repeat(70)}{"a":[1,{"b":"\\x"}]}${"]".repeat(70)}`)).toEqual(MALFORMED);
    // Valid syntax all the way down: the refusal stands.
    const deepValid = `[${"[".repeat(70)}{"a":[1,{"b":"\\u0041","c":{}},[]],"d":-1.5e3}, true, null${"]".repeat(70)}, 2]`;
    expect(jsonParses(deepValid)).toBe(true);
    expect(parseStrictJson(deepValid)).toEqual({ ok: false, path: "[0]".repeat(64), message: "nested too deeply" });
  });

  it("reports duplicate keys inside a too-deep value no more precisely than the depth", () => {
    const text = `{"a":1,"a":2,"b":${nested(70)}}`;
    expect(parseStrictJson(text)).toEqual({ ok: false, path: "a", message: 'duplicate key "a"' });
  });
});

describe("parseStrictJson: malformed JSON", () => {
  it.each([
    "",
    " ",
    "\n\t\r ",
    "01",
    "-01",
    "00",
    "1.",
    ".5",
    "+1",
    "-",
    "- 1",
    "1e",
    "1e+",
    "1E-",
    "1.e3",
    "0x1",
    "1_000",
    "NaN",
    "Infinity",
    "-Infinity",
    "tru",
    "True",
    "nul",
    "nulll",
    "undefined",
    "[1,]",
    "[,1]",
    "[1 2]",
    "[",
    "]",
    "[]]",
    '{"a":1,}',
    '{,"a":1}',
    "{a:1}",
    "{'a':1}",
    "'a'",
    '{"a" 1}',
    '{"a":1 "b":2}',
    '{"a"}',
    '{"a":}',
    "{1:2}",
    '"\t"',
    '"\n"',
    '"\u0000"',
    '"\u001f"',
    '"\\x"',
    '"\\U0041"',
    '"\\u12"',
    '"\\u12G4"',
    '"\\u{41}"',
    '"\\',
    '"abc',
    '"',
    "\uFEFF{}",
    "1 2",
    "{}x",
    "{} {}",
    "\u00a01",
    "\f1",
    "\v1",
    "1\u2028",
    "/* c */ 1",
    "[1]//",
    // A duplicate before the syntax error: the syntax error wins.
    '{"a":1,"a":2',
    '{"a":1,"a":2}}',
    '{"__proto__":1,}',
  ])("%j", (text) => {
    expect(jsonParses(text)).toBe(false);
    expect(parseStrictJson(text)).toEqual(MALFORMED);
  });
});

describe("parseStrictJson: valid JSON gives the same value as JSON.parse", () => {
  it.each([
    "0",
    "-0",
    "1",
    "-1",
    "0.5",
    "-0.0",
    "1e3",
    "1E3",
    "1e+3",
    "1e-3",
    "1.5E+300",
    "1e400",
    "-1e400",
    "1e-400",
    "5e-324",
    "2.2250738585072014e-308",
    "0.1",
    "9007199254740993",
    "123456789012345678901234567890",
    "0.30000000000000004",
    "1.7976931348623157e308",
    "1.7976931348623158e308",
    "true",
    "false",
    "null",
    '""',
    '"abc"',
    '"\\"\\\\\\/\\b\\f\\n\\r\\t"',
    '"\\u0000\\u001F\\u00e9\\u00E9\\uFFFF"',
    '"\\uD83D\\uDE00"',
    '"\\ud83d\\ude00 and raw \ud83d\ude00"',
    '"\\uD800"',
    '"\\uDC00\\uD800"',
    '"raw lone \ud800 surrogate"',
    '"\u2028\u2029\u007f\u0080"',
    '"a/b\\/c"',
    "[]",
    "{}",
    "[[],{}]",
    ' \t\n\r[ 1 , "a" , { "b" : null } ] \t\n\r',
    '{"a":{"b":{"c":[1,2,{"d":true}]}}}',
    '{"b":1,"2":2,"1":3,"a":4,"-1":5,"01":6}',
    '{"":0," ":1,"\\u0000":2}',
    '{"a":1,"A":2,"a ":3}',
    '{"metadata":{"toString":"x","valueOf":1}}',
    '[1,1,"a","a",{"a":1},{"a":1}]',
  ])("%j", (text) => {
    const r = parseStrictJson(text);
    expect(r).toStrictEqual({ ok: true, value: JSON.parse(text) });
    if (r.ok && r.value !== null && typeof r.value === "object") {
      // Same key order, including integer-like keys first.
      expect(JSON.stringify(r.value)).toBe(JSON.stringify(JSON.parse(text)));
    }
  });

  it("keeps -0 and the exact double", () => {
    const r = parseStrictJson("[-0, 0.1, 1e400]");
    expect(r.ok && Object.is((r.value as number[])[0], -0)).toBe(true);
    expect(r).toEqual({ ok: true, value: [-0, 0.1, Number.POSITIVE_INFINITY] });
  });

  it("builds plain objects that no key could have touched", () => {
    const r = parseStrictJson('{"a":{"b":[{}]}}');
    expect(r.ok).toBe(true);
    const v = (r as { value: { a: { b: object[] } } }).value;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(Object.getPrototypeOf(v.a.b[0])).toBe(Object.prototype);
  });

  it("defines members rather than assigning them, so setters on Object.prototype never run", () => {
    let called = false;
    Object.defineProperty(Object.prototype, "trap", {
      configurable: true,
      set() {
        called = true;
      },
    });
    try {
      const r = parseStrictJson('{"trap":1}');
      expect(called).toBe(false);
      expect(r.ok && Object.getOwnPropertyDescriptor(r.value, "trap")).toEqual({ value: 1, writable: true, enumerable: true, configurable: true });
    } finally {
      delete (Object.prototype as { trap?: unknown }).trap;
    }
  });

  it("is linear: a 64 KB string with escapes and a wide object parse quickly", () => {
    const str = JSON.stringify('\\"é\n'.repeat(16_000));
    const wide = `{${Array.from({ length: 6000 }, (_, i) => `"k${i}":${i}`).join(",")}}`;
    const long = `[${"1,".repeat(32_000)}1]`;
    const t0 = performance.now();
    for (const text of [str, wide, long]) expect(parseStrictJson(text)).toEqual({ ok: true, value: JSON.parse(text) });
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});

describe("parseStrictJson: properties", () => {
  const cleanJson = fc.jsonValue().filter((v) => !hasForbiddenKey(v));

  it("agrees with JSON.parse on every serialised JSON value", () => {
    fc.assert(
      fc.property(cleanJson, fc.constantFrom(undefined, 1, "\t"), (v, indent) => {
        const text = JSON.stringify(v, null, indent);
        expect(parseStrictJson(text)).toStrictEqual({ ok: true, value: JSON.parse(text) });
      }),
      { numRuns: 500 },
    );
  });

  it("agrees with JSON.parse on strings of any code units", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), fc.string({ unit: "binary" }), (k, s) => {
        if (FORBIDDEN.has(k)) return;
        const text = JSON.stringify({ [k]: s, list: [s, k] });
        expect(parseStrictJson(text)).toStrictEqual({ ok: true, value: JSON.parse(text) });
        expect(parseStrictJson(`"${escapeAll(s)}"`)).toStrictEqual({ ok: true, value: s });
      }),
    );
  });

  it("agrees with JSON.parse on numbers", () => {
    const numberText = fc.oneof(
      fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => JSON.stringify(d)),
      fc
        .tuple(
          fc.boolean(),
          fc.stringMatching(/^(0|[1-9][0-9]{0,25})$/),
          fc.option(fc.stringMatching(/^[0-9]{1,25}$/)),
          fc.option(fc.stringMatching(/^[eE][+-]?[0-9]{1,4}$/)),
        )
        .map(([neg, int, frac, exp]) => `${neg ? "-" : ""}${int}${frac === null ? "" : `.${frac}`}${exp ?? ""}`),
    );
    fc.assert(
      fc.property(numberText, (text) => {
        const r = parseStrictJson(text);
        expect(r.ok).toBe(true);
        expect(Object.is(r.ok && r.value, JSON.parse(text))).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it("refuses a duplicate of any key, escaped or not, at its path", () => {
    const obj = fc.dictionary(fc.string(), cleanJson, { minKeys: 1 }).filter((o) => !hasForbiddenKey(o));
    fc.assert(
      fc.property(obj, fc.nat(), cleanJson, fc.boolean(), (o, n, extra, escaped) => {
        const keys = Object.keys(o);
        const k = keys[n % keys.length]!;
        const member = `${escaped ? `"${escapeAll(k)}"` : JSON.stringify(k)}:${JSON.stringify(extra)}`;
        const text = `{"outer":${JSON.stringify(o).slice(0, -1)},${member}}}`;
        expect(parseStrictJson(text)).toEqual({ ok: false, path: `outer.${k}`, message: `duplicate key ${JSON.stringify(k)}` });
      }),
    );
  });

  const fragment = fc.constantFrom(
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    '"',
    "\\",
    '"a"',
    '"\\u0061"',
    '"__proto__"',
    '"constructor"',
    "a",
    "u",
    "0",
    "1",
    "-",
    ".",
    "e",
    "E",
    "+",
    "true",
    "false",
    "null",
    " ",
    "\n",
    "\t",
    "\r",
    "\f",
    "\u00a0",
    "\u2028",
    "\ud800",
    "\u0000",
    "\\u",
    "\\n",
    "x",
  );
  const fragments = fc.array(fragment, { maxLength: 40 }).map((a) => a.join(""));
  const mutated = fc
    .tuple(
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.nat(),
      fc.nat({ max: 3 }),
      fragment,
    )
    .map(([text, at, del, ins]) => {
      const i = at % (text.length + 1);
      return text.slice(0, i) + ins + text.slice(i + del);
    });
  const randomText = fc.oneof(fragments, mutated, fc.string({ unit: "binary" }), fc.string({ unit: fc.constantFrom(...'{}[],:"\\ 01-.eE+tfnulrsa') }));

  it("never throws on random text, and is malformed exactly when JSON.parse throws", () => {
    fc.assert(
      fc.property(randomText, (text) => {
        const r = parseStrictJson(text);
        if (!jsonParses(text)) {
          expect(r).toEqual(MALFORMED);
        } else if (r.ok) {
          expect(r.value).toStrictEqual(JSON.parse(text));
        } else {
          // Only the extra refusals, never "malformed", for text JSON.parse accepts.
          expect(r.message).toMatch(/^(duplicate key ".*"|key "(__proto__|constructor|prototype)" is not allowed|nested too deeply)$/s);
          expect(typeof r.path).toBe("string");
        }
      }),
      { numRuns: 3000 },
    );
  });
});

describe("isUtf8Charset", () => {
  it.each([
    [undefined, true],
    ["", true],
    ["application/json", true],
    ["application/json;", true],
    ["application/json; ", true],
    ["application/json; charset=utf-8", true],
    ["application/json; charset=UTF-8", true],
    ["application/json;charset=utf8", true],
    ["application/json; charset=UTF8", true],
    ["application/json; charset=Utf-8", true],
    ['application/json; charset="utf-8"', true],
    ['application/json; charset="UTF-8"', true],
    ['application/json; charset="utf\\-8"', true],
    ["application/json; CHARSET=utf-8", true],
    ["application/json; Charset=UTF-8", true],
    ["application/json; charset=utf-8 ", true],
    ["application/json ; charset=utf-8 ; foo=bar", true],
    ['application/json; foo="a;charset=utf-16"; charset=utf-8', true],
    ["application/json; boundary=x", true],
    ["application/json;;charset=utf-8", true],
    ["application/json; charset=utf-16", false],
    ["application/json; charset=UTF-16", false],
    ["application/json; charset=utf-16le", false],
    ['application/json; charset="utf-16"', false],
    ["application/json; charset=iso-8859-1", false],
    ["application/json; charset=us-ascii", false],
    ["application/json; charset=utf-8; charset=utf-16", false],
    ["application/json; charset=utf-16; charset=utf-8", false],
    ["application/json; charset=utf-8-x", false],
    ["application/json; charset=", false],
    ['application/json; charset=""', false],
    ["application/json; charset", false],
    ["application/json; charset = utf-8", false],
    ['application/json; charset="utf-8', false],
    ['application/json; charset="utf-8"x', false],
    ["application/json; charset=utf-8 x", false],
    ["application/json; =utf-8", false],
  ])("%j → %s", (contentType, expected) => {
    expect(isUtf8Charset(contentType)).toBe(expected);
  });
});
